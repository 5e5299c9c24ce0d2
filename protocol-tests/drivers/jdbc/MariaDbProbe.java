// Differential probe for MariaDB Connector/J: runs one session and prints
// everything the driver reports, one JSON line per step, so that a run
// directly against MariaDB and a run through Airlock can be compared line by
// line (protocol-tests/mysql_driver_probes.rs does that).
//
// Runs the session twice: with useServerPrepStmts=true (COM_STMT_PREPARE /
// EXECUTE, binary rows, COM_STMT_SEND_LONG_DATA for streams) and =false
// (client-side substitution, text rows), each with rewriteBatchedStatements,
// allowMultiQueries, getMoreResults, CallableStatement OUT parameters,
// fetch size (streamed results), warnings, errors mid-batch, savepoints,
// isolation levels, read-only, resetting, ping (isValid), compression.
//
// Connection settings: MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD,
// MYSQL_DATABASE. Statements the probe writes start with /*app*/ (see
// scripts/driver-corpus/capture.py). Objects are prefixed prbj_.

import java.io.ByteArrayInputStream;
import java.math.BigDecimal;
import java.security.MessageDigest;
import java.sql.*;
import java.util.*;

public class MariaDbProbe {
    static final String A = "/*app*/ ";
    static String url(String extra) {
        return "jdbc:mariadb://" + System.getenv("MYSQL_HOST") + ":" + System.getenv("MYSQL_PORT") + "/"
            + System.getenv("MYSQL_DATABASE") + "?useSsl=false&allowMultiQueries=true&connectTimeout=20000" + extra;
    }

    static Connection open(String extra) throws SQLException {
        String pw = System.getenv("MYSQL_PASSWORD");
        return DriverManager.getConnection(url(extra), System.getenv("MYSQL_USER"), pw == null ? "" : pw);
    }

    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String md5(byte[] v) {
        try {
            StringBuilder b = new StringBuilder();
            for (byte x : MessageDigest.getInstance("MD5").digest(v)) b.append(String.format("%02x", x));
            return b.toString();
        } catch (Exception e) {
            return "?";
        }
    }

    static String val(Object v) {
        if (v == null) return "null";
        if (v instanceof byte[]) {
            byte[] b = (byte[]) v;
            if (b.length > 64) return "[\"byte[]\"," + b.length + "," + q(md5(b)) + "]";
            StringBuilder h = new StringBuilder();
            for (byte x : b) h.append(String.format("%02x", x));
            return "[\"byte[]\"," + q(h.toString()) + "]";
        }
        if (v instanceof Blob) {
            try {
                Blob bl = (Blob) v;
                return "[\"Blob\"," + val(bl.getBytes(1, (int) bl.length())) + "]";
            } catch (SQLException e) {
                return q("blob error " + e.getMessage());
            }
        }
        String s = v.toString();
        if (s.length() > 64) {
            return "[" + q(v.getClass().getSimpleName()) + "," + s.length() + "," + q(md5(s.getBytes(java.nio.charset.StandardCharsets.UTF_8))) + "]";
        }
        return "[" + q(v.getClass().getSimpleName()) + "," + q(s) + "]";
    }

    /** The driver prefixes messages with the server's connection id, which
     * differs between any two sessions. */
    static String noConn(String m) {
        return String.valueOf(m).replaceAll("\\(conn=\\d+\\) ", "(conn=N) ");
    }

    static String err(SQLException e) {
        return "{\"error\":" + q(e.getClass().getSimpleName()) + ",\"code\":" + e.getErrorCode() + ",\"state\":"
            + q(String.valueOf(e.getSQLState())) + ",\"msg\":" + q(noConn(e.getMessage())) + "}";
    }

    static String warnings(Statement st) throws SQLException {
        StringBuilder b = new StringBuilder("[");
        for (SQLWarning w = st.getWarnings(); w != null; w = w.getNextWarning()) {
            if (b.length() > 1) b.append(',');
            b.append("[").append(w.getErrorCode()).append(',').append(q(String.valueOf(w.getSQLState()))).append(',')
                .append(q(noConn(w.getMessage()))).append(']');
        }
        return b.append(']').toString();
    }

    static String rs(ResultSet r) throws SQLException {
        ResultSetMetaData m = r.getMetaData();
        StringBuilder b = new StringBuilder("{\"meta\":[");
        for (int i = 1; i <= m.getColumnCount(); i++) {
            if (i > 1) b.append(',');
            b.append('[').append(q(m.getColumnLabel(i))).append(',').append(q(m.getColumnName(i))).append(',')
                .append(q(String.valueOf(m.getTableName(i)))).append(',').append(m.getColumnType(i)).append(',')
                .append(q(m.getColumnTypeName(i))).append(',').append(m.getPrecision(i)).append(',')
                .append(m.getScale(i)).append(',').append(m.isSigned(i)).append(',').append(m.isNullable(i))
                .append(',').append(q(m.getColumnClassName(i))).append(',').append(m.isAutoIncrement(i)).append(']');
        }
        b.append("],\"rows\":[");
        boolean first = true;
        while (r.next()) {
            if (!first) b.append(',');
            first = false;
            b.append('[');
            for (int i = 1; i <= m.getColumnCount(); i++) {
                if (i > 1) b.append(',');
                Object o;
                String s;
                try {
                    o = r.getObject(i);
                } catch (SQLException e) {
                    o = "getObject: " + e.getMessage();
                }
                try {
                    s = r.getString(i);
                } catch (SQLException e) {
                    s = "getString: " + e.getMessage();
                }
                b.append('[').append(val(o)).append(',').append(s == null ? "null" : (s.length() > 64 ? q(md5(s.getBytes(java.nio.charset.StandardCharsets.UTF_8))) : q(s))).append(']');
            }
            b.append(']');
        }
        return b.append("]}").toString();
    }

    /** Every result of an executed statement. */
    static String results(Statement st, boolean isRs) throws SQLException {
        StringBuilder b = new StringBuilder("[");
        while (true) {
            if (b.length() > 1) b.append(',');
            if (isRs) {
                try (ResultSet r = st.getResultSet()) {
                    b.append(rs(r));
                }
            } else {
                int n = st.getUpdateCount();
                if (n == -1) {
                    b.setLength(b.length() - (b.length() > 1 ? 1 : 0));
                    break;
                }
                b.append("{\"update\":").append(n).append('}');
            }
            isRs = st.getMoreResults();
        }
        return b.append(']').toString();
    }

    static void emit(String step, String json) {
        System.out.println("{\"step\":" + q(step) + ",\"result\":" + json + "}");
        System.out.flush();
    }

    interface Body {
        String run() throws Exception;
    }

    static Connection conn;
    static String mode;

    static void step(String name, Body b) {
        String out;
        try {
            out = b.run();
        } catch (SQLException e) {
            out = err(e);
        } catch (Exception e) {
            out = "{\"thrown\":" + q(noConn(e.toString())) + "}";
        }
        emit(name, out);
        try {
            if (conn.isClosed()) {
                conn = open(mode);
                emit(name + ".reconnected", "true");
            }
        } catch (SQLException e) {
            emit(name + ".reconnect", err(e));
        }
    }

    static String exec(String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            boolean isRs = st.execute(A + sql);
            String r = results(st, isRs);
            return "{\"results\":" + r + ",\"warnings\":" + warnings(st) + "}";
        }
    }

    static String prep(String sql, Object... args) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(A + sql)) {
            for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
            boolean isRs = ps.execute();
            String r = results(ps, isRs);
            return "{\"results\":" + r + ",\"warnings\":" + warnings(ps) + "}";
        }
    }

    static final String TYPES = "id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, "
        + "mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, de DECIMAL(30,10), f FLOAT, d DOUBLE, "
        + "dt DATE, tm TIME(6), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, y YEAR, b1 BIT(1), "
        + "b64 BIT(64), e ENUM('a','b','ç'), s SET('x','y','z'), j JSON, c CHAR(5), vc VARCHAR(100), bn BINARY(4), "
        + "vb VARBINARY(10), t TEXT, bl BLOB, lb LONGBLOB";
    static final String[] ROWS = {
        "(1, -128, 0, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0, '-12345678901234567890.0123456789', "
            + "-3.4e38, -1.7976931348623157e308, '1000-01-01', '-838:59:58.999999', '1000-01-01 00:00:00', "
            + "'1000-01-01 00:00:00.000001', '1970-01-02 00:00:00.001', 1901, b'0', b'0', 'a', '', '[]', '', '', x'00', "
            + "x'', '', x'', x'')",
        "(2, 127, 255, 32767, 65535, 8388607, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, "
            + "'12345678901234567890.0123456789', 3.4e38, 1.7976931348623157e308, '9999-12-31', '838:59:58.999999', "
            + "'9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', 2155, b'1', "
            + "x'ffffffffffffffff', 'ç', 'x,y,z', '{\"a\": [1, 2.5, \"ü\", null, true]}', 'abcde', 'żółw 🐢', x'01020304', "
            + "x'00ff00ff', REPEAT('é', 1000), REPEAT(x'ab', 3000), REPEAT(x'ef', 100000))",
        "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            + "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    };

    public static void main(String[] argv) throws Exception {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(300_000);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("TIMEOUT");
            System.exit(3);
        });
        t.setDaemon(true);
        t.start();
        for (String server : new String[] {"true", "false"}) {
            mode = "&useServerPrepStmts=" + server + "&rewriteBatchedStatements=" + ("true".equals(server) ? "false" : "true");
            String p = "ps" + server + ".";
            conn = open(mode);
            emit(p + "connect", "{\"autocommit\":" + conn.getAutoCommit() + ",\"isolation\":" + conn.getTransactionIsolation()
                + ",\"readOnly\":" + conn.isReadOnly() + ",\"catalog\":" + q(conn.getCatalog()) + ",\"product\":"
                + q(conn.getMetaData().getDatabaseProductName()) + "}");
            session(p);
            conn.close();
        }
        emit("end", q("ok"));
        System.exit(0);
    }

    static void session(String p) {
        step(p + "setup", () -> exec("DROP TABLE IF EXISTS prbj_types, prbj_items, prbj_big; DROP PROCEDURE IF EXISTS prbj_proc"));
        step(p + "create", () -> exec("CREATE TABLE prbj_types (" + TYPES + "); CREATE TABLE prbj_items "
            + "(id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) UNIQUE, qty INT)"));
        step(p + "create.proc", () -> exec("CREATE PROCEDURE prbj_proc(IN a INT, INOUT b INT, OUT c VARCHAR(10)) BEGIN "
            + "SELECT a AS a_in, b AS b_in; SET b = a + b, c = CONCAT('c', a); SELECT name FROM prbj_items ORDER BY id; END"));
        for (int i = 0; i < ROWS.length; i++) {
            final String row = ROWS[i];
            step(p + "insert.types." + i, () -> exec("INSERT INTO prbj_types VALUES " + row));
        }
        step(p + "select.statement", () -> exec("SELECT * FROM prbj_types ORDER BY id"));
        step(p + "select.prepared", () -> prep("SELECT * FROM prbj_types WHERE id > ? ORDER BY id", 0));
        step(p + "exprs.prepared", () -> prep("SELECT ?, ?, ?, ?, ?, ?, ?, ?", 1, -1L, new BigDecimal("1.50"), 2.5d,
            "żółw", null, new byte[] {0, (byte) 255}, java.sql.Date.valueOf("2020-01-02")));
        step(p + "insert.keys", () -> {
            try (Statement st = conn.createStatement()) {
                int n = st.executeUpdate(A + "INSERT INTO prbj_items (name, qty) VALUES ('a', 1), ('b', 2)",
                    Statement.RETURN_GENERATED_KEYS);
                ResultSet k = st.getGeneratedKeys();
                return "{\"n\":" + n + ",\"keys\":" + rs(k) + "}";
            }
        });
        step(p + "batch", () -> {
            try (PreparedStatement ps = conn.prepareStatement(A + "INSERT INTO prbj_items (name, qty) VALUES (?, ?)",
                Statement.RETURN_GENERATED_KEYS)) {
                for (String s : new String[] {"m1", "m2", "m3"}) {
                    ps.setString(1, s);
                    ps.setInt(2, 1);
                    ps.addBatch();
                }
                int[] n = ps.executeBatch();
                return "{\"counts\":" + q(Arrays.toString(n)) + ",\"keys\":" + rs(ps.getGeneratedKeys()) + "}";
            }
        });
        step(p + "batch.error", () -> {
            try (PreparedStatement ps = conn.prepareStatement(A + "INSERT INTO prbj_items (name, qty) VALUES (?, ?)")) {
                for (String s : new String[] {"m4", "m1", "m5"}) {
                    ps.setString(1, s);
                    ps.setInt(2, 1);
                    ps.addBatch();
                }
                try {
                    ps.executeBatch();
                    return q("no error");
                } catch (BatchUpdateException e) {
                    return "{\"counts\":" + q(Arrays.toString(e.getUpdateCounts())) + ",\"e\":" + err(e) + "}";
                }
            }
        });
        step(p + "batch.statement", () -> {
            try (Statement st = conn.createStatement()) {
                st.addBatch(A + "UPDATE prbj_items SET qty = qty + 1 WHERE name = 'a'");
                st.addBatch(A + "UPDATE prbj_items SET qty = qty + 1 WHERE name = 'zz'");
                st.addBatch(A + "INSERT INTO prbj_items (name, qty) VALUES ('s1', 1)");
                return q(Arrays.toString(st.executeBatch()));
            }
        });
        step(p + "after.batch", () -> exec("SELECT name, qty FROM prbj_items ORDER BY id"));
        step(p + "update.count", () -> prep("UPDATE prbj_items SET qty = ? WHERE qty <= ?", 1, 1));
        step(p + "warn.mode", () -> exec("SET SESSION sql_mode = ''"));
        step(p + "warn.insert", () -> exec("INSERT INTO prbj_items (name, qty) VALUES ('this name is far too long', 'x')"));
        step(p + "warn.prepared", () -> prep("INSERT INTO prbj_items (name, qty) VALUES (?, ?)", "another name far too long", "y"));
        step(p + "warn.show", () -> exec("SHOW WARNINGS"));
        step(p + "multi", () -> exec("SELECT 1 AS one; SELECT 'two' AS two; UPDATE prbj_items SET qty = qty WHERE id = 1; SELECT 3"));
        step(p + "multi.error", () -> exec("SELECT 1; SELECT * FROM prbj_nope; SELECT 3"));
        step(p + "multi.recover", () -> exec("SELECT 'ok'"));
        step(p + "err.syntax", () -> exec("SELEC 1"));
        step(p + "err.prepared", () -> prep("SELECT * FROM prbj_nope WHERE id = ?", 1));
        step(p + "err.signal", () -> exec("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom ü', MYSQL_ERRNO = 1644"));
        step(p + "callable", () -> {
            try (CallableStatement cs = conn.prepareCall("{call prbj_proc(?, ?, ?)}")) {
                cs.setInt(1, 5);
                cs.setInt(2, 6);
                cs.registerOutParameter(2, Types.INTEGER);
                cs.registerOutParameter(3, Types.VARCHAR);
                boolean isRs = cs.execute();
                String r = results(cs, isRs);
                return "{\"results\":" + r + ",\"b\":" + cs.getInt(2) + ",\"c\":" + q(String.valueOf(cs.getString(3))) + "}";
            }
        });
        step(p + "call.text", () -> exec("CALL prbj_proc(1, @x, @y); SELECT @x, @y"));
        step(p + "fetchsize", () -> {
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(1);
                ResultSet r = st.executeQuery(A + "SELECT id, vc FROM prbj_types ORDER BY id");
                return rs(r);
            }
        });
        step(p + "fetchsize.after", () -> exec("SELECT 1"));
        step(p + "tx", () -> {
            conn.setAutoCommit(false);
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
            exec("INSERT INTO prbj_items (name, qty) VALUES ('tx', 1)");
            Savepoint sp = conn.setSavepoint("sp1");
            exec("INSERT INTO prbj_items (name, qty) VALUES ('sp', 1)");
            conn.rollback(sp);
            Savepoint sp2 = conn.setSavepoint();
            conn.releaseSavepoint(sp2);
            conn.commit();
            conn.setAutoCommit(true);
            return exec("SELECT name FROM prbj_items WHERE name IN ('tx', 'sp')");
        });
        step(p + "isolation", () -> {
            StringBuilder b = new StringBuilder("[");
            for (int level : new int[] {Connection.TRANSACTION_READ_UNCOMMITTED, Connection.TRANSACTION_SERIALIZABLE,
                Connection.TRANSACTION_REPEATABLE_READ}) {
                conn.setTransactionIsolation(level);
                b.append(conn.getTransactionIsolation()).append(',');
            }
            return b.append(q(exec("SELECT @@tx_isolation"))).append(']').toString();
        });
        step(p + "readonly", () -> {
            conn.setReadOnly(true);
            String r = q(String.valueOf(conn.isReadOnly()));
            conn.setReadOnly(false);
            return r;
        });
        step(p + "valid", () -> q(String.valueOf(conn.isValid(5))));
        step(p + "catalog", () -> {
            conn.setCatalog(System.getenv("MYSQL_DATABASE"));
            return q(conn.getCatalog());
        });
        step(p + "metadata.tables", () -> rs(conn.getMetaData().getTables(null, null, "prbj_items", null)));
        step(p + "metadata.columns", () -> rs(conn.getMetaData().getColumns(null, null, "prbj_items", null)));
        step(p + "metadata.pk", () -> rs(conn.getMetaData().getPrimaryKeys(null, null, "prbj_items")));
        step(p + "reset", () -> {
            exec("SET @prb = 1");
            conn.unwrap(org.mariadb.jdbc.MariaDbConnection.class).reset();
            return exec("SELECT @prb");
        });
        step(p + "big.allowed", () -> exec("SELECT @@max_allowed_packet >= 64 * 1024 * 1024"));
        byte[] big = new byte[17 * 1024 * 1024 + 3];
        for (int i = 0; i < big.length; i++) big[i] = (byte) (i * 31);
        step(p + "big.create", () -> exec("CREATE TABLE prbj_big (id INT PRIMARY KEY, v LONGBLOB)"));
        step(p + "big.stream", () -> {
            try (PreparedStatement ps = conn.prepareStatement(A + "INSERT INTO prbj_big VALUES (?, ?)")) {
                ps.setInt(1, 1);
                ps.setBinaryStream(2, new ByteArrayInputStream(big));
                return q(String.valueOf(ps.executeUpdate()));
            }
        });
        step(p + "big.bytes", () -> prep("INSERT INTO prbj_big VALUES (?, ?)", 2, big));
        step(p + "big.select", () -> prep("SELECT id, v FROM prbj_big WHERE id > ? ORDER BY id", 0));
        step(p + "compress", () -> {
            try (Connection z = open(mode + "&useCompression=true"); Statement st = z.createStatement()) {
                return rs(st.executeQuery(A + "SELECT REPEAT('c', 100000) AS c, 1"));
            }
        });
        step(p + "cleanup", () -> exec("DROP TABLE IF EXISTS prbj_types, prbj_items, prbj_big; DROP PROCEDURE IF EXISTS prbj_proc"));
    }
}
