// Scripted MariaDB Connector/J session, run against the gateway or directly
// against MySQL/MariaDB. Plain main(): prints one line per step, exits 1 on the
// first failure.
//
// Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
// MYSQL_PASSWORD, MYSQL_DATABASE. MYSQL_TLS=require: useSsl with
// trustServerCertificate (no verification; the driver refuses a server that
// offers no TLS), and the session checks that the socket is an SSLSocket;
// anything else: no TLS. MYSQL_AUTH: Connector/J 2.7 answers the greeting with
// the plugin the server names and has no option to choose or restrict it
// (restrictedAuth came in 3.x); the session only prints the setting.
// Every object this program creates is prefixed `mjdbc_` so other driver
// sessions can run at the same time in the same database.
//
// Two connections do the work: `text` prepares on the client (the default;
// COM_QUERY, text protocol) and `binary` has useServerPrepStmts=true
// (COM_STMT_PREPARE/EXECUTE, binary protocol; setBinaryStream parameters go
// out with COM_STMT_SEND_LONG_DATA). Connector/J 2.7 has no useCursorFetch:
// setFetchSize streams rows off the socket instead of COM_STMT_FETCH.
//
// Compile and run with mariadb_run.sh next to this file.

import java.io.ByteArrayInputStream;
import java.io.FilterOutputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.CallableStatement;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Statement;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.Timer;
import java.util.TimerTask;

import javax.net.ssl.SSLSocket;

public class MariaDbSessionTest {
    private static final String DRIVER = "mariadb-jdbc";
    // A stuck gateway must fail this program, not hang the caller.
    private static final long DEADLINE_MS = 60_000;
    private static final int BIG_VALUE_BYTES = 16 * 1024 * 1024 + 4096; // just over one 16 MiB packet

    static class Skipped extends Exception {
        Skipped(String message) {
            super(message);
        }
    }

    interface Body {
        void run() throws Exception;
    }

    static void step(String name, Body body) {
        try {
            body.run();
        } catch (Skipped e) {
            System.out.println("[" + DRIVER + "] skip " + name + ": " + e.getMessage());
            return;
        } catch (Throwable e) {
            System.err.println("[" + DRIVER + "] FAIL " + name + ": " + e);
            if (e instanceof SQLException) {
                SQLException s = (SQLException) e;
                System.err.println("  SQLState: " + s.getSQLState() + ", error code: " + s.getErrorCode());
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
        if (value instanceof byte[]) {
            byte[] b = (byte[]) value;
            return b.length > 64 ? "byte[" + b.length + "]" : Arrays.toString(b);
        }
        if (value instanceof Object[]) return Arrays.deepToString((Object[]) value);
        if (value instanceof List) {
            List<String> parts = new ArrayList<>();
            for (Object v : (List<?>) value) parts.add(show(v));
            return parts.toString();
        }
        return value == null ? "null" : value + " (" + value.getClass().getSimpleName() + ")";
    }

    static String env(String name) {
        String value = System.getenv(name);
        if (value == null) throw new IllegalStateException("environment variable " + name + " is not set");
        return value;
    }

    static final boolean TLS_REQUIRED = "require".equals(System.getenv("MYSQL_TLS"));
    static final String AUTH = System.getenv("MYSQL_AUTH");

    static Connection connect(boolean serverPrepare, boolean affectedRows) throws SQLException {
        String url = "jdbc:mariadb://" + env("MYSQL_HOST") + ":" + env("MYSQL_PORT") + "/" + env("MYSQL_DATABASE");
        Properties props = new Properties();
        props.setProperty("user", env("MYSQL_USER"));
        String password = System.getenv("MYSQL_PASSWORD");
        props.setProperty("password", password == null ? "" : password);
        props.setProperty("connectTimeout", "10000");
        props.setProperty("socketTimeout", "30000");
        props.setProperty("allowMultiQueries", "true");
        props.setProperty("useServerPrepStmts", String.valueOf(serverPrepare));
        // Default false: CLIENT_FOUND_ROWS, so UPDATE counts matched rows.
        props.setProperty("useAffectedRows", String.valueOf(affectedRows));
        props.setProperty("connectionAttributes", "program_name:airlock-mariadb-jdbc-session");
        if (TLS_REQUIRED) {
            props.setProperty("useSsl", "true");
            props.setProperty("trustServerCertificate", "true");
            props.setProperty("disableSslHostnameVerification", "true");
        } else {
            props.setProperty("useSsl", "false");
        }
        return DriverManager.getConnection(url, props);
    }

    /**
     * The cipher of the client's own TLS socket, or null in plaintext.
     * Connector/J 2.7 keeps the plain socket in Protocol.getSocket() after the
     * TLS upgrade, so this follows the packet writer down to the stream it
     * writes to: SSLSocketImpl's inner AppOutputStream when TLS is on. Needs
     * the --add-opens flags mariadb_run.sh passes.
     */
    static String clientCipher(Connection c) throws Exception {
        Object mariaConn = c.unwrap(Class.forName("org.mariadb.jdbc.MariaDbConnection"));
        Method getProtocol = mariaConn.getClass().getDeclaredMethod("getProtocol");
        getProtocol.setAccessible(true);
        Object protocol = getProtocol.invoke(mariaConn);
        Field writerField = Class.forName("org.mariadb.jdbc.internal.protocol.AbstractConnectProtocol").getDeclaredField("writer");
        writerField.setAccessible(true);
        Object stream = writerField.get(protocol);
        Field out = FilterOutputStream.class.getDeclaredField("out");
        out.setAccessible(true);
        for (int depth = 0; depth < 8 && stream != null; depth++) {
            for (Field f : stream.getClass().getDeclaredFields()) {
                if (SSLSocket.class.isAssignableFrom(f.getType())) {
                    f.setAccessible(true);
                    return ((SSLSocket) f.get(stream)).getSession().getCipherSuite();
                }
            }
            if (!(stream instanceof FilterOutputStream)) break;
            stream = out.get(stream);
        }
        return null;
    }

    static List<List<Object>> rows(ResultSet rs) throws SQLException {
        List<List<Object>> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<Object> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(rs.getObject(i));
            out.add(row);
        }
        rs.close();
        return out;
    }

    static List<List<Object>> query(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            return rows(st.executeQuery(sql));
        }
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    static String md5(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(data));
    }

    static final byte[] BLOB = new byte[256];
    static final String VARCHAR = "héllo wörld — 日本語 🐬";
    static final String TEXT = "Ünïcödé\nline 'two' \"quoted\" back\\slash\ttab";
    static final String JSON = "{\"a\": [1, 2, {\"b\": null}], \"s\": \"ü🐬\"}";
    static final String COLS = "c_int, c_bigint, c_decimal, c_double, c_date, c_datetime, c_time, c_year, "
            + "c_varchar, c_text, c_blob, c_json, c_enum, c_bit";

    static void bindTypes(PreparedStatement ps, int id) throws SQLException {
        ps.setInt(1, id);
        ps.setInt(2, Integer.MIN_VALUE);
        ps.setLong(3, Long.MAX_VALUE);
        ps.setBigDecimal(4, new BigDecimal("-1234567890.12"));
        ps.setDouble(5, 0.1);
        ps.setObject(6, LocalDate.of(2024, 2, 29));
        ps.setObject(7, LocalDateTime.of(2024, 3, 10, 12, 34, 56, 789_012_000));
        ps.setString(8, "-25:30:01"); // java.sql.Time has no negative or >24h values
        ps.setInt(9, 2155);
        ps.setString(10, VARCHAR);
        ps.setString(11, TEXT);
        ps.setBytes(12, BLOB);
        ps.setString(13, JSON);
        ps.setString(14, "medium");
        ps.setBytes(15, new byte[] {(byte) 0xA5});
    }

    static void checkTypesRow(ResultSet rs, String what) throws SQLException {
        check(rs.getObject("c_int"), Integer.MIN_VALUE, what + " c_int");
        check(rs.getObject("c_bigint"), Long.MAX_VALUE, what + " c_bigint");
        check(rs.getObject("c_decimal"), new BigDecimal("-1234567890.12"), what + " c_decimal");
        check(rs.getObject("c_double"), 0.1, what + " c_double");
        check(rs.getObject("c_date", LocalDate.class), LocalDate.of(2024, 2, 29), what + " c_date");
        check(rs.getObject("c_datetime", LocalDateTime.class), LocalDateTime.of(2024, 3, 10, 12, 34, 56, 789_012_000), what + " c_datetime");
        check(rs.getString("c_datetime"), "2024-03-10 12:34:56.789012", what + " c_datetime as string");
        // Connector/J renders a binary-protocol TIME with microseconds whatever the column's scale.
        check(rs.getString("c_time"), what.startsWith("binary") ? "-25:30:01.000000" : "-25:30:01", what + " c_time as string");
        check(rs.getInt("c_year"), 2155, what + " c_year");
        check(rs.getObject("c_varchar"), VARCHAR, what + " c_varchar");
        check(rs.getObject("c_text"), TEXT, what + " c_text");
        check(rs.getBytes("c_blob"), BLOB, what + " c_blob");
        check(rs.getString("c_json"), JSON, what + " c_json");
        check(rs.getObject("c_enum"), "medium", what + " c_enum");
        check(rs.getBytes("c_bit"), new byte[] {(byte) 0xA5}, what + " c_bit");
    }

    static String digitsCte(int limit) {
        // 1..limit without recursion: MariaDB stops recursive CTEs silently at
        // max_recursive_iterations (1000 by default), MySQL errors at 1000.
        return "WITH d(x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 "
                + "UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 "
                + "UNION ALL SELECT 8 UNION ALL SELECT 9), "
                + "seq(n) AS (SELECT a.x + 10*b.x + 100*c.x + 1000*e.x + 1 FROM d a, d b, d c, d e) "
                + "SELECT n, CONCAT('row-', n) AS label, n * n AS sq FROM seq WHERE n <= " + limit + " ORDER BY n";
    }

    static void check10k(ResultSet rs, String what) throws Exception {
        long count = 0, sum = 0, sq = 0;
        MessageDigest md = MessageDigest.getInstance("MD5");
        MessageDigest expected = MessageDigest.getInstance("MD5");
        while (rs.next()) {
            count++;
            sum += rs.getLong(1);
            sq += rs.getLong(3);
            md.update(((count > 1 ? "," : "") + rs.getString(2)).getBytes(StandardCharsets.UTF_8));
        }
        rs.close();
        long expectedSq = 0;
        for (long n = 1; n <= 10000; n++) {
            expectedSq += n * n;
            expected.update(((n > 1 ? "," : "") + "row-" + n).getBytes(StandardCharsets.UTF_8));
        }
        check(count, 10000L, what + " row count");
        check(sum, 50005000L, what + " sum");
        check(sq, expectedSq, what + " sum of squares");
        check(HexFormat.of().formatHex(md.digest()), HexFormat.of().formatHex(expected.digest()), what + " md5 of labels");
    }

    static void expectError(Body body, int code, String sqlState, String message) throws Exception {
        try {
            body.run();
        } catch (SQLException e) {
            check(e.getErrorCode(), code, "error code of " + e.getMessage());
            check(e.getSQLState(), sqlState, "SQLSTATE of " + e.getMessage());
            if (!e.getMessage().contains(message)) throw new AssertionError("message '" + e.getMessage() + "' lacks '" + message + "'");
            return;
        }
        throw new AssertionError("expected error " + code + ", the statement succeeded");
    }

    static Connection text;
    static Connection binary;
    static Connection other;
    static Connection changed;

    static void dropAll(Connection c) throws SQLException {
        exec(c, "DROP TABLE IF EXISTS mjdbc_items, mjdbc_types, mjdbc_short, mjdbc_long, mjdbc_big");
        exec(c, "DROP PROCEDURE IF EXISTS mjdbc_two_results");
    }

    public static void main(String[] args) {
        for (int i = 0; i < 256; i++) BLOB[i] = (byte) i;
        Timer deadline = new Timer(true);
        deadline.schedule(new TimerTask() {
            @Override
            public void run() {
                System.err.println("[" + DRIVER + "] FAIL session exceeded " + DEADLINE_MS / 1000 + "s");
                System.exit(1);
            }
        }, DEADLINE_MS);
        String database = env("MYSQL_DATABASE");

        step("connect (client-side and useServerPrepStmts=true; TLS " + (TLS_REQUIRED ? "required" : "off")
                + "; MYSQL_AUTH=" + (AUTH == null ? "unset" : AUTH) + " cannot be chosen by this driver)", () -> {
            text = connect(false, false);
            binary = connect(true, false);
            other = connect(false, false);
            changed = connect(true, true);
            check(query(text, "SELECT 1, 'one', NULL"), List.of(Arrays.asList(1, "one", null)), "first row");
        });

        step("TLS state matches MYSQL_TLS", () -> {
            String serverCipher = (String) query(text, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").get(0).get(1);
            for (Connection c : new Connection[] {text, binary, other, changed}) {
                String cipher = clientCipher(c);
                check(cipher != null, TLS_REQUIRED, "connection encrypted (cipher " + cipher + ")");
            }
            System.out.println("[" + DRIVER + "]      " + (TLS_REQUIRED ? "client cipher " + clientCipher(text) : "plaintext")
                    + "; server Ssl_cipher '" + serverCipher + "'");
        });

        step("create tables and a procedure (dropping leftovers first)", () -> {
            dropAll(text);
            exec(text, "CREATE TABLE mjdbc_items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE, qty INT) CHARACTER SET utf8mb4");
            exec(text, "CREATE TABLE mjdbc_types (id INT PRIMARY KEY, c_int INT, c_bigint BIGINT, c_decimal DECIMAL(12,2), "
                    + "c_double DOUBLE, c_date DATE, c_datetime DATETIME(6), c_time TIME, c_year YEAR, "
                    + "c_varchar VARCHAR(100) CHARACTER SET utf8mb4, c_text TEXT CHARACTER SET utf8mb4, c_blob BLOB, "
                    + "c_json JSON, c_enum ENUM('small','medium','large'), c_bit BIT(8)) CHARACTER SET utf8mb4");
            exec(text, "CREATE TABLE mjdbc_short (s VARCHAR(3))");
            exec(text, "CREATE TABLE mjdbc_long (id INT PRIMARY KEY, v MEDIUMBLOB)");
            exec(text, "CREATE PROCEDURE mjdbc_two_results(IN k INT) BEGIN SELECT k AS first_k; SELECT k * 2 AS doubled, 'two' AS tag; END");
        });

        step("INSERT: update counts, generated keys, LAST_INSERT_ID()", () -> {
            try (PreparedStatement ps = text.prepareStatement("INSERT INTO mjdbc_items (name, qty) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, "apple");
                ps.setInt(2, 3);
                check(ps.executeUpdate(), 1, "update count");
                check(rows(ps.getGeneratedKeys()), List.of(List.of(1L)), "generated key");
            }
            try (PreparedStatement ps = binary.prepareStatement(
                    "INSERT INTO mjdbc_items (name, qty) VALUES (?, ?), (?, ?), (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, "banana");
                ps.setInt(2, 5);
                ps.setString(3, "cherry");
                ps.setInt(4, 5);
                ps.setString(5, "durian");
                ps.setNull(6, Types.INTEGER);
                check(ps.executeUpdate(), 3, "update count of a 3-row insert");
                // The OK packet carries the first id; the driver derives the others.
                check(rows(ps.getGeneratedKeys()), List.of(List.of(2L), List.of(3L), List.of(4L)), "generated keys");
            }
            // BIGINT UNSIGNED comes back as a BigInteger.
            check(query(binary, "SELECT LAST_INSERT_ID()"), List.of(List.of(BigInteger.valueOf(2))), "LAST_INSERT_ID()");
        });

        step("UPDATE: matched rows (CLIENT_FOUND_ROWS, default) and changed rows (useAffectedRows=true)", () -> {
            // banana and cherry already have qty 5: three rows match, one changes.
            try (PreparedStatement ps = changed.prepareStatement("UPDATE mjdbc_items SET qty = ? WHERE id <= ?")) {
                ps.setInt(1, 5);
                ps.setInt(2, 3);
                check(ps.executeUpdate(), 1, "changed rows");
            }
            // Now all three already have qty 5: three rows match, none changes.
            try (Statement st = text.createStatement()) {
                check(st.executeUpdate("UPDATE mjdbc_items SET qty = 5 WHERE id <= 3"), 3, "matched rows");
            }
        });

        step("types round-trip: client-side (id 1) and server-side (id 2) inserts, all-NULL row, text and binary reads", () -> {
            String insert = "INSERT INTO mjdbc_types (id, " + COLS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            try (PreparedStatement ps = text.prepareStatement(insert)) {
                bindTypes(ps, 1);
                check(ps.executeUpdate(), 1, "client-side insert");
            }
            try (PreparedStatement ps = binary.prepareStatement(insert)) {
                bindTypes(ps, 2);
                check(ps.executeUpdate(), 1, "server-side insert");
                ps.setInt(1, 3);
                for (int i = 2; i <= 15; i++) ps.setNull(i, Types.NULL);
                check(ps.executeUpdate(), 1, "server-side all-NULL insert");
            }
            for (Connection c : new Connection[] {text, binary}) {
                String how = c == text ? "text" : "binary";
                try (PreparedStatement ps = c.prepareStatement("SELECT " + COLS + " FROM mjdbc_types WHERE id > ? ORDER BY id")) {
                    ps.setInt(1, 0);
                    ResultSet rs = ps.executeQuery();
                    check(rs.next(), true, how + " row 1 present");
                    checkTypesRow(rs, how + " row 1");
                    check(rs.next(), true, how + " row 2 present");
                    checkTypesRow(rs, how + " row 2");
                    check(rs.next(), true, how + " row 3 present");
                    for (int i = 1; i <= 14; i++) {
                        check(rs.getObject(i), null, how + " all-NULL row column " + i);
                        check(rs.wasNull(), true, how + " wasNull column " + i);
                    }
                    check(rs.next(), false, how + " no row 4");
                    rs.close();
                }
            }
            check(query(text, "SELECT HEX(c_blob), CAST(c_time AS CHAR), CHAR_LENGTH(c_varchar), LENGTH(c_varchar), HEX(c_bit) "
                    + "FROM mjdbc_types WHERE id = 2"),
                    List.of(Arrays.asList(HexFormat.of().withUpperCase().formatHex(BLOB), "-25:30:01", 19, 32, "A5")),
                    "server-side rendering of the server-side insert");
        });

        step("server-side prepared statement re-executed with parameters of several types, NULL included", () -> {
            try (PreparedStatement ps = binary.prepareStatement(
                    "SELECT ? + 0, CONCAT(?, ''), ? IS NULL, HEX(?), ? * 2, CAST(? AS DECIMAL(12,2))")) {
                Object[][] cases = {
                    {7L, "ü🐬", null, new byte[] {0, (byte) 0xFF}, 2.5, new BigDecimal("10.05"),
                        Arrays.asList(7L, "ü🐬", 1, "00FF", 5.0, new BigDecimal("10.05"))},
                    {-1L, "", "x", new byte[0], -0.5, new BigDecimal("-0.01"),
                        Arrays.asList(-1L, "", 0, "", -1.0, new BigDecimal("-0.01"))},
                };
                for (Object[] c : cases) {
                    ps.setLong(1, (Long) c[0]);
                    ps.setString(2, (String) c[1]);
                    if (c[2] == null) ps.setNull(3, Types.VARCHAR); else ps.setString(3, (String) c[2]);
                    ps.setBytes(4, (byte[]) c[3]);
                    ps.setDouble(5, (Double) c[4]);
                    ps.setBigDecimal(6, (BigDecimal) c[5]);
                    List<List<Object>> got = rows(ps.executeQuery());
                    check(got.size(), 1, "row count");
                    List<Object> row = got.get(0);
                    // `? + 0` on a BIGINT parameter is BIGINT or DECIMAL depending on the server.
                    row.set(0, ((Number) row.get(0)).longValue());
                    row.set(2, ((Number) row.get(2)).intValue());
                    check(row, c[6], "row for case " + c[1]);
                }
            }
        });

        step("COM_STMT_SEND_LONG_DATA: setBinaryStream on a server-side prepared statement", () -> {
            byte[] value = new byte[300_000];
            for (int i = 0; i < value.length; i++) value[i] = (byte) (i * 7 + i / 256);
            try (PreparedStatement ps = binary.prepareStatement("INSERT INTO mjdbc_long VALUES (?, ?)")) {
                ps.setInt(1, 1);
                ps.setBinaryStream(2, new ByteArrayInputStream(value));
                check(ps.executeUpdate(), 1, "update count");
            }
            check(query(text, "SELECT LENGTH(v), MD5(v) FROM mjdbc_long WHERE id = 1"),
                    List.of(Arrays.asList(300_000, md5(value))), "length and md5 on the server");
            try (PreparedStatement ps = binary.prepareStatement("SELECT v FROM mjdbc_long WHERE id = ?")) {
                ps.setInt(1, 1);
                ResultSet rs = ps.executeQuery();
                rs.next();
                check(rs.getBytes(1), value, "value read back");
                rs.close();
            }
        });

        step("transaction rolled back (row absent) and one committed (seen by another connection)", () -> {
            binary.setAutoCommit(false);
            try (PreparedStatement ps = binary.prepareStatement("INSERT INTO mjdbc_items (name, qty) VALUES (?, ?)")) {
                ps.setString(1, "rolled-back");
                ps.setInt(2, 1);
                ps.executeUpdate();
            }
            check(query(binary, "SELECT COUNT(*) FROM mjdbc_items WHERE name = 'rolled-back'"), List.of(List.of(1L)), "inside");
            check(query(other, "SELECT COUNT(*) FROM mjdbc_items WHERE name = 'rolled-back'"), List.of(List.of(0L)), "other before rollback");
            binary.rollback();
            check(query(binary, "SELECT COUNT(*) FROM mjdbc_items WHERE name = 'rolled-back'"), List.of(List.of(0L)), "after rollback");
            exec(binary, "INSERT INTO mjdbc_items (name, qty) VALUES ('committed', 7)");
            binary.commit();
            binary.setAutoCommit(true);
            check(query(other, "SELECT qty FROM mjdbc_items WHERE name = 'committed'"), List.of(List.of(7)), "other after commit");
        });

        step("errors 1062/23000 and 1146/42S02 (client-side and server-side), connection keeps working", () -> {
            String dup = "Duplicate entry 'apple' for key 'name'";
            String missing = "Table '" + database + ".mjdbc_no_such_table' doesn't exist";
            for (Connection c : new Connection[] {text, binary}) {
                expectError(() -> {
                    try (PreparedStatement ps = c.prepareStatement("INSERT INTO mjdbc_items (name, qty) VALUES (?, 1)")) {
                        ps.setString(1, "apple");
                        ps.executeUpdate();
                    }
                }, 1062, "23000", dup);
                expectError(() -> {
                    try (PreparedStatement ps = c.prepareStatement("SELECT * FROM mjdbc_no_such_table WHERE 1 = ?")) {
                        ps.setInt(1, 1);
                        ps.executeQuery();
                    }
                }, 1146, "42S02", missing);
                expectError(() -> exec(c, "SELECT * FROM mjdbc_no_such_table"), 1146, "42S02", missing);
                check(query(c, "SELECT 41 + 1"), List.of(List.of(42)), "query after the errors");
            }
        });

        step("warnings: truncation under a non-strict sql_mode, division by zero", () -> {
            exec(text, "SET SESSION sql_mode = ''");
            try (Statement st = text.createStatement()) {
                check(st.executeUpdate("INSERT INTO mjdbc_short VALUES ('abcdef')"), 1, "update count");
                SQLWarning w = st.getWarnings();
                check(w != null, true, "a warning");
                check(w.getErrorCode(), 1265, "warning code");
                check(w.getMessage(), "Data truncated for column 's' at row 1", "warning message");
                check(w.getNextWarning(), null, "only one warning");
            }
            check(query(text, "SHOW WARNINGS"), List.of(Arrays.asList("Warning", 1265L, "Data truncated for column 's' at row 1")), "SHOW WARNINGS");
            exec(text, "SET SESSION sql_mode = 'ERROR_FOR_DIVISION_BY_ZERO'");
            try (Statement st = text.createStatement()) {
                check(rows(st.executeQuery("SELECT 1/0")), List.of(Arrays.asList((Object) null)), "1/0");
                SQLWarning w = st.getWarnings();
                check(w != null ? w.getErrorCode() : -1, 1365, "warning code of 1/0");
            }
            exec(text, "SET SESSION sql_mode = DEFAULT");
        });

        step("multiple result sets: multi-statement query, CALL with two result sets", () -> {
            try (Statement st = text.createStatement()) {
                check(st.execute("SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; UPDATE mjdbc_items SET qty = qty WHERE id = 1"), true, "first is a result set");
                check(rows(st.getResultSet()), List.of(List.of(1)), "first result");
                check(st.getMoreResults(), true, "second is a result set");
                check(rows(st.getResultSet()), List.of(Arrays.asList("two", null)), "second result");
                check(st.getMoreResults(), false, "third is an update count");
                check(st.getUpdateCount(), 1, "UPDATE matched rows");
                check(st.getMoreResults(), false, "no fourth");
                check(st.getUpdateCount(), -1, "no more results");
            }
            for (Connection c : new Connection[] {text, binary}) {
                try (CallableStatement cs = c.prepareCall("{call mjdbc_two_results(?)}")) {
                    cs.setInt(1, 21);
                    check(cs.execute(), true, "CALL returns a result set");
                    check(rows(cs.getResultSet()), List.of(List.of(21)), "first CALL result");
                    check(cs.getMoreResults(), true, "second CALL result");
                    check(rows(cs.getResultSet()), List.of(List.of(42L, "two")), "second CALL result");
                }
            }
            check(query(text, "SELECT 'after'"), List.of(List.of("after")), "query after the CALLs");
        });

        step("change database to the same one (setCatalog = COM_INIT_DB, USE), isValid (COM_PING)", () -> {
            text.setCatalog(database);
            check(query(text, "SELECT DATABASE()"), List.of(List.of(database)), "database after setCatalog");
            exec(text, "USE `" + database + "`");
            check(text.getCatalog(), database, "getCatalog after USE");
            check(text.isValid(5), true, "isValid");
            check(query(text, "SELECT COUNT(*) FROM mjdbc_items"), List.of(List.of(5L)), "items after ping");
        });

        step("10,000-row result: text, binary, and streamed with setFetchSize", () -> {
            try (Statement st = text.createStatement()) {
                check10k(st.executeQuery(digitsCte(10000)), "text");
            }
            try (PreparedStatement ps = binary.prepareStatement(digitsCte(10000))) {
                check10k(ps.executeQuery(), "binary");
            }
            try (PreparedStatement ps = binary.prepareStatement(digitsCte(10000))) {
                ps.setFetchSize(250);
                check10k(ps.executeQuery(), "binary streamed");
            }
        });

        step("value of " + BIG_VALUE_BYTES + " bytes (over 16 MiB) through a server-side prepared statement", () -> {
            long limit = ((Number) query(text, "SELECT @@max_allowed_packet").get(0).get(0)).longValue();
            if (limit < BIG_VALUE_BYTES + 1024 * 1024) {
                throw new Skipped("server max_allowed_packet is " + limit + ", needs at least " + (BIG_VALUE_BYTES + 1024 * 1024));
            }
            byte[] big = new byte[BIG_VALUE_BYTES];
            for (int i = 0; i < big.length; i++) big[i] = (byte) (i * 7 + i / 256);
            exec(text, "CREATE TABLE mjdbc_big (id INT PRIMARY KEY, v LONGBLOB)");
            try (PreparedStatement ps = binary.prepareStatement("INSERT INTO mjdbc_big VALUES (?, ?)")) {
                ps.setInt(1, 1);
                ps.setBytes(2, big);
                check(ps.executeUpdate(), 1, "update count");
            }
            check(query(text, "SELECT LENGTH(v), MD5(v) FROM mjdbc_big"), List.of(Arrays.asList(BIG_VALUE_BYTES, md5(big))), "length and md5 on the server");
            try (PreparedStatement ps = binary.prepareStatement("SELECT v FROM mjdbc_big WHERE id = ?")) {
                ps.setInt(1, 1);
                ResultSet rs = ps.executeQuery();
                rs.next();
                check(rs.getBytes(1), big, "value read back (binary)");
                rs.close();
            }
            exec(text, "DROP TABLE mjdbc_big");
        });

        step("drop every object and close", () -> {
            dropAll(text);
            check(query(text, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'mjdbc\\_%'"),
                    List.of(List.of(0L)), "tables left");
            for (Connection c : new Connection[] {text, binary, other, changed}) c.close();
        });

        deadline.cancel();
        System.out.println("[" + DRIVER + "] session passed");
    }
}
