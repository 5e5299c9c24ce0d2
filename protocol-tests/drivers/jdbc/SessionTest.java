// Scripted pgJDBC session, run against the gateway or directly against Postgres.
// Plain main(): prints one line per step, exits 1 on the first failure.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
// Every object this program creates is prefixed `jdbc_` so other driver
// sessions can run at the same time in the same database.
//
// Compile and run with run.sh next to this file.

import java.io.ByteArrayInputStream;
import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.Timer;
import java.util.TimerTask;

import org.postgresql.PGConnection;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

public class SessionTest {
    private static final String DRIVER = "jdbc";
    // A stuck gateway must fail this program, not hang the caller.
    private static final long DEADLINE_MS = 60_000;

    interface Body {
        void run() throws Exception;
    }

    static void step(String name, Body body) {
        try {
            body.run();
        } catch (Throwable e) {
            System.err.println("[" + DRIVER + "] FAIL " + name + ": " + e);
            if (e instanceof SQLException) {
                System.err.println("  SQLState: " + ((SQLException) e).getSQLState());
            }
            System.exit(1);
        }
        System.out.println("[" + DRIVER + "] ok   " + name);
    }

    static void check(Object actual, Object expected, String what) {
        if (!Objects.deepEquals(actual, expected)) {
            throw new AssertionError(what + ": expected " + show(expected) + ", got " + show(actual));
        }
    }

    static String show(Object value) {
        if (value instanceof byte[]) return Arrays.toString((byte[]) value);
        if (value instanceof Object[]) return Arrays.deepToString((Object[]) value);
        return String.valueOf(value);
    }

    static String env(String name) {
        String value = System.getenv(name);
        if (value == null) throw new IllegalStateException("environment variable " + name + " is not set");
        return value;
    }

    static Connection connect(boolean serverPrepareEverything) throws SQLException {
        String url = "jdbc:postgresql://" + env("PGHOST") + ":" + env("PGPORT") + "/" + env("PGDATABASE");
        Properties props = new Properties();
        props.setProperty("user", env("PGUSER"));
        props.setProperty("password", env("PGPASSWORD"));
        props.setProperty("sslmode", "disable");
        props.setProperty("ApplicationName", "airlock-jdbc-session");
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "30");
        if (serverPrepareEverything) {
            // Switch to server-side named statements from the first execution on.
            props.setProperty("prepareThreshold", "1");
        }
        return DriverManager.getConnection(url, props);
    }

    static long count(Connection conn, String where) throws SQLException {
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM jdbc_items WHERE " + where)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    static Connection conn;
    static Connection named;

    public static void main(String[] args) {
        Timer deadline = new Timer(true);
        deadline.schedule(new TimerTask() {
            @Override
            public void run() {
                System.err.println("[" + DRIVER + "] FAIL session exceeded " + DEADLINE_MS / 1000 + "s");
                System.exit(1);
            }
        }, DEADLINE_MS);

        step("connect (default and prepareThreshold=1)", () -> {
            conn = connect(false);
            named = connect(true);
            check(conn.getAutoCommit(), true, "autocommit");
        });

        step("Statement: DDL, insert, query", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE IF EXISTS jdbc_items, jdbc_types, jdbc_copy");
                st.execute("CREATE TABLE jdbc_items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2))");
                st.execute("CREATE TABLE jdbc_types (id int PRIMARY KEY, c_int int, c_numeric numeric, c_text text,"
                        + " c_bytea bytea, c_tstz timestamptz, c_bool boolean, c_int_arr int[], c_text_arr text[])");
                st.execute("CREATE TABLE jdbc_copy (id int PRIMARY KEY, label text, amount numeric)");
                check(st.executeUpdate("INSERT INTO jdbc_items VALUES (1, 'one', 1.50), (2, 'two', 2.50)"), 2, "rows inserted");
                try (ResultSet rs = st.executeQuery("SELECT id, name, price FROM jdbc_items ORDER BY id")) {
                    check(rs.next(), true, "first row present");
                    check(rs.getInt("id"), 1, "id");
                    check(rs.getString("name"), "one", "name");
                    check(rs.getBigDecimal("price"), new BigDecimal("1.50"), "price");
                    check(rs.next(), true, "second row present");
                    check(rs.getInt("id"), 2, "id");
                    check(rs.next(), false, "no third row");
                }
            }
        });

        step("PreparedStatement: batch insert and parameterized query", () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_items VALUES (?, ?, ?)")) {
                for (int i = 3; i <= 12; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "item-" + i);
                    ps.setBigDecimal(3, new BigDecimal(i).movePointLeft(1));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                check(counts.length, 10, "batch size");
                check(Arrays.stream(counts).sum(), 10, "rows inserted by batch");
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM jdbc_items WHERE price > ? ORDER BY id")) {
                ps.setBigDecimal(1, new BigDecimal("1.05"));
                List<String> names = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) names.add(rs.getString(1));
                }
                check(names, List.of("one", "two", "item-11", "item-12"), "names");
            }
        });

        step("server-side named PreparedStatement (prepareThreshold=1) reused", () -> {
            try (PreparedStatement ps = named.prepareStatement("SELECT name, price FROM jdbc_items WHERE id = ?")) {
                for (int id : new int[] {3, 7, 12, 7}) {
                    ps.setInt(1, id);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), true, "row for id " + id);
                        check(rs.getString(1), "item-" + id, "name for id " + id);
                        check(rs.getBigDecimal(2), new BigDecimal(id).movePointLeft(1).setScale(2), "price for id " + id);
                        check(rs.next(), false, "single row for id " + id);
                    }
                }
                check(ps.unwrap(PGStatement.class).isUseServerPrepare(), true, "statement is server-prepared");
            }
        });

        step("ResultSet types: int, numeric, text, bytea, timestamptz, boolean, arrays, NULL", () -> {
            byte[] bytes = new byte[256];
            for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) i;
            BigDecimal exact = new BigDecimal("12345678901234567890.000000000000000001");
            String text = "grüße — 日本語 🐘";
            OffsetDateTime when = OffsetDateTime.of(2024, 2, 29, 23, 59, 59, 123456000, ZoneOffset.ofHoursMinutes(5, 30));
            try (PreparedStatement ps = named.prepareStatement("INSERT INTO jdbc_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                ps.setInt(1, 1);
                ps.setInt(2, Integer.MIN_VALUE);
                ps.setBigDecimal(3, exact);
                ps.setString(4, text);
                ps.setBytes(5, bytes);
                ps.setObject(6, when);
                ps.setBoolean(7, true);
                ps.setArray(8, named.createArrayOf("int4", new Integer[] {1, null, 3}));
                ps.setArray(9, named.createArrayOf("text", new String[] {"a", "b c", null, "\"q\""}));
                check(ps.executeUpdate(), 1, "typed row inserted");
            }
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("INSERT INTO jdbc_types (id) VALUES (2)");
                try (ResultSet rs = st.executeQuery("SELECT * FROM jdbc_types ORDER BY id")) {
                    check(rs.next(), true, "typed row present");
                    check(rs.getInt("c_int"), Integer.MIN_VALUE, "int");
                    check(rs.getBigDecimal("c_numeric"), exact, "numeric");
                    check(rs.getString("c_text"), text, "text");
                    check(rs.getBytes("c_bytea"), bytes, "bytea");
                    check(rs.getObject("c_tstz", OffsetDateTime.class).toInstant(), when.toInstant(), "timestamptz instant");
                    check(rs.getBoolean("c_bool"), true, "boolean");
                    Array ints = rs.getArray("c_int_arr");
                    check(ints.getBaseTypeName(), "int4", "int array base type");
                    check(ints.getArray(), new Integer[] {1, null, 3}, "int array");
                    check(rs.getArray("c_text_arr").getArray(), new String[] {"a", "b c", null, "\"q\""}, "text array");

                    check(rs.next(), true, "NULL row present");
                    check(rs.getInt("c_int"), 0, "NULL int as primitive");
                    check(rs.wasNull(), true, "wasNull after NULL int");
                    for (String col : new String[] {"c_numeric", "c_text", "c_bytea", "c_tstz", "c_bool", "c_int_arr", "c_text_arr"}) {
                        check(rs.getObject(col), null, "NULL " + col);
                    }
                    check(rs.next(), false, "no third row");
                }
            }
        });

        step("DatabaseMetaData.getTables / getColumns", () -> {
            DatabaseMetaData md = conn.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "jdbc_items", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
            }
            check(tables, List.of("jdbc_items:TABLE"), "tables");
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "jdbc_items", null)) {
                while (rs.next()) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            check(columns, List.of("id:int4", "name:text", "price:numeric"), "columns");
        });

        step("transaction: rollback, then fetchSize=2 over 10 rows (portal suspension), commit", () -> {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("INSERT INTO jdbc_items VALUES (100, 'undone', 0)");
                check(count(conn, "id = 100"), 1L, "row visible inside transaction");
                check(count(named, "id = 100"), 0L, "row invisible to other session");
            }
            conn.rollback();
            check(count(conn, "id = 100"), 0L, "row after rollback");

            // With autocommit off and a fetch size, pgJDBC executes the portal
            // two rows at a time and resumes it until it is exhausted.
            try (PreparedStatement ps = conn.prepareStatement("SELECT id, name FROM jdbc_items WHERE id BETWEEN ? AND ? ORDER BY id")) {
                ps.setFetchSize(2);
                ps.setInt(1, 3);
                ps.setInt(2, 12);
                List<Integer> ids = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        check(rs.getString("name"), "item-" + rs.getInt("id"), "name matches id");
                        ids.add(rs.getInt("id"));
                    }
                }
                check(ids, List.of(3, 4, 5, 6, 7, 8, 9, 10, 11, 12), "ids in order");
            }
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("INSERT INTO jdbc_items VALUES (101, 'kept', 0)");
            }
            conn.commit();
            conn.setAutoCommit(true);
            check(count(named, "id = 101"), 1L, "committed row seen by other session");
        });

        step("SQLException 22012, connection keeps working", () -> {
            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT 1/0");
                    throw new AssertionError("SELECT 1/0 did not fail");
                } catch (SQLException e) {
                    check(e.getSQLState(), "22012", "SQLState");
                }
                try (ResultSet rs = st.executeQuery("SELECT 41 + 1")) {
                    rs.next();
                    check(rs.getInt(1), 42, "query after error");
                }
            }
            try (PreparedStatement ps = named.prepareStatement("SELECT 1 / ?")) {
                ps.setInt(1, 0);
                try {
                    ps.executeQuery();
                    throw new AssertionError("SELECT 1 / 0 (prepared) did not fail");
                } catch (SQLException e) {
                    check(e.getSQLState(), "22012", "SQLState (prepared)");
                }
                ps.setInt(1, 4);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check(rs.getInt(1), 0, "same prepared statement after error");
                }
            }
        });

        step("CopyManager COPY IN and COPY OUT", () -> {
            CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
            String csv = "1,first,1.5\n2,,2.25\n3,\"quoted, comma\",3\n";
            long copied = copy.copyIn("COPY jdbc_copy (id, label, amount) FROM STDIN (FORMAT csv)", new StringReader(csv));
            check(copied, 3L, "rows copied in");
            StringWriter out = new StringWriter();
            long exported = copy.copyOut("COPY (SELECT * FROM jdbc_copy ORDER BY id) TO STDOUT (FORMAT csv)", out);
            check(exported, 3L, "rows copied out");
            check(out.toString(), csv, "exported csv");
            byte[] utf8 = "4\tünïcode\t4\n".getBytes(StandardCharsets.UTF_8);
            check(copy.copyIn("COPY jdbc_copy FROM STDIN", new ByteArrayInputStream(utf8)), 1L, "text-format row copied in");
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT label FROM jdbc_copy WHERE id = 4")) {
                rs.next();
                check(rs.getString(1), "ünïcode", "non-ASCII label after COPY");
            }
        });

        step("close", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE jdbc_items, jdbc_types, jdbc_copy");
            }
            named.close();
            conn.close();
        });

        deadline.cancel();
        System.out.println("[" + DRIVER + "] session passed");
    }
}
