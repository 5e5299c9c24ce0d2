// Reads result rows through pgJDBC and writes what the driver decoded, for
// protocol-tests/pg_masking.rs to check (the pgJDBC counterpart of
// ../masking_read.py, same output format).
//
//   java MaskingRead OUT TASK...
//
// Tasks:
//   columns  for each column in AIRLOCK_COLUMNS, one PreparedStatement
//            `SELECT id, <column> FROM <AIRLOCK_TABLE> ORDER BY id` executed
//            AIRLOCK_REPEAT times. Past prepareThreshold (5) pgJDBC switches
//            to a named server statement and binary results for the types
//            it can read in binary. Writes {"column", "run", "row"} lines,
//            or {"column", "error"} when a value cannot be decoded.
//   fetch    AIRLOCK_SQL with autocommit off and a fetch size of 2: the rows
//            come from one portal executed two rows at a time. Writes
//            {"column": "*fetch", "run": 0, "row": [...]} lines.
//
// Values: numbers, strings, {"numeric": "..."}, {"bytes": "<hex>"},
// {"json_text": "..."} for json/jsonb, {"inet": "..."}, lists for arrays.
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE. Gives up after 60 s.

import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLXML;
import java.util.Properties;
import java.util.Timer;
import java.util.TimerTask;

import org.postgresql.util.PGobject;

public class MaskingRead {
    static String env(String name) {
        String value = System.getenv(name);
        if (value == null) throw new IllegalStateException("environment variable " + name + " is not set");
        return value;
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
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

    static String tagged(String tag, String value) {
        return "{" + quote(tag) + ": " + quote(value) + "}";
    }

    static String json(Object v) throws Exception {
        if (v == null) return "null";
        if (v instanceof Integer || v instanceof Long || v instanceof Short) return v.toString();
        if (v instanceof Boolean) return v.toString();
        if (v instanceof Double || v instanceof Float) return v.toString();
        if (v instanceof BigDecimal) return tagged("numeric", ((BigDecimal) v).toPlainString());
        if (v instanceof String) return quote((String) v);
        if (v instanceof byte[]) {
            StringBuilder hex = new StringBuilder();
            for (byte b : (byte[]) v) hex.append(String.format("%02x", b & 0xff));
            return tagged("bytes", hex.toString());
        }
        if (v instanceof SQLXML) return quote(((SQLXML) v).getString());
        if (v instanceof Array) return json(((Array) v).getArray());
        if (v instanceof Object[]) {
            StringBuilder b = new StringBuilder("[");
            Object[] items = (Object[]) v;
            for (int i = 0; i < items.length; i++) {
                if (i > 0) b.append(", ");
                b.append(json(items[i]));
            }
            return b.append(']').toString();
        }
        if (v instanceof PGobject) {
            PGobject o = (PGobject) v;
            if (o.getValue() == null) return "null";
            switch (o.getType()) {
                case "json":
                case "jsonb":
                    return tagged("json_text", o.getValue());
                case "inet":
                case "cidr":
                    return tagged("inet", o.getValue());
                default:
                    return "{\"other\": " + quote(o.getType()) + ", \"text\": " + quote(o.getValue()) + "}";
            }
        }
        return "{\"other\": " + quote(v.getClass().getName()) + ", \"text\": " + quote(v.toString()) + "}";
    }

    static String row(ResultSet rs) throws Exception {
        StringBuilder b = new StringBuilder("[");
        int n = rs.getMetaData().getColumnCount();
        for (int i = 1; i <= n; i++) {
            if (i > 1) b.append(", ");
            b.append(json(rs.getObject(i)));
        }
        return b.append(']').toString();
    }

    public static void main(String[] args) throws Exception {
        Timer deadline = new Timer(true);
        deadline.schedule(new TimerTask() {
            @Override
            public void run() {
                System.err.println("MaskingRead: exceeded 60 s");
                System.exit(1);
            }
        }, 60_000);
        String url = "jdbc:postgresql://" + env("PGHOST") + ":" + env("PGPORT") + "/" + env("PGDATABASE");
        Properties props = new Properties();
        props.setProperty("user", env("PGUSER"));
        props.setProperty("password", env("PGPASSWORD"));
        props.setProperty("sslmode", "disable");
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "30");
        try (Connection conn = DriverManager.getConnection(url, props);
             PrintWriter out = new PrintWriter(new OutputStreamWriter(new FileOutputStream(args[0]), StandardCharsets.UTF_8))) {
            for (int t = 1; t < args.length; t++) {
                switch (args[t]) {
                    case "columns": columns(conn, out); break;
                    case "fetch": fetch(conn, out); break;
                    default: throw new IllegalArgumentException("unknown task " + args[t]);
                }
            }
        }
        System.exit(0);
    }

    static void columns(Connection conn, PrintWriter out) throws Exception {
        int repeat = Integer.parseInt(System.getenv().getOrDefault("AIRLOCK_REPEAT", "1"));
        for (String column : env("AIRLOCK_COLUMNS").split(",")) {
            StringBuilder lines = new StringBuilder();
            String sql = "SELECT id, " + column + " FROM " + env("AIRLOCK_TABLE") + " ORDER BY id";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                for (int run = 0; run < repeat; run++) {
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            lines.append("{\"column\": ").append(quote(column)).append(", \"run\": ").append(run)
                                .append(", \"row\": ").append(row(rs)).append("}\n");
                        }
                    }
                }
            } catch (Exception e) {
                // The error is the finding; the other columns are still read.
                out.println("{\"column\": " + quote(column) + ", \"error\": " + quote(e.toString()) + "}");
                continue;
            }
            out.print(lines);
        }
    }

    static void fetch(Connection conn, PrintWriter out) throws Exception {
        conn.setAutoCommit(false);
        try (PreparedStatement ps = conn.prepareStatement(env("AIRLOCK_SQL"))) {
            ps.setFetchSize(2);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.println("{\"column\": \"*fetch\", \"run\": 0, \"row\": " + row(rs) + "}");
                }
            }
        }
        conn.commit();
        conn.setAutoCommit(true);
    }
}
