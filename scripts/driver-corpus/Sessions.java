// pgJDBC and MariaDB Connector/J traffic for the driver corpus (see
// capture.py). Application statements start with the marker comment
// /*app*/; everything else in the server's log was sent by the driver.
// Usage: java Sessions {pg|mariadb} DB
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.Properties;

public class Sessions {
    static final String APP = "/*app*/ ";

    public static void main(String[] args) throws Exception {
        String which = args[0];
        String db = args[1];
        Properties props = new Properties();
        String url;
        if (which.equals("pg")) {
            url = "jdbc:postgresql://127.0.0.1:5432/" + db;
            props.setProperty("user", "postgres");
        } else {
            url = "jdbc:mariadb://127.0.0.1:3306/" + db;
            props.setProperty("user", "root");
            props.setProperty("password", "");
        }
        try (Connection c = DriverManager.getConnection(url, props)) {
            try (Statement s = c.createStatement()) {
                s.execute(APP + "CREATE TABLE t (id int, v varchar(10))");
            }
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement(APP + "INSERT INTO t VALUES (?, ?)")) {
                for (int i = 0; i < 6; i++) {
                    p.setInt(1, i);
                    p.setString(2, "v" + i);
                    p.addBatch();
                }
                p.executeBatch();
            }
            Savepoint sp = c.setSavepoint("sp1");
            try (Statement s = c.createStatement()) {
                s.execute(APP + "INSERT INTO t VALUES (9, 'x')");
            }
            c.rollback(sp);
            Savepoint anon = c.setSavepoint();
            c.releaseSavepoint(anon);
            c.commit();
            try (Statement s = c.createStatement()) {
                s.setFetchSize(2);
                try (ResultSet r = s.executeQuery(APP + "SELECT * FROM t")) {
                    while (r.next()) { }
                }
            }
            c.commit();
            for (int level : new int[] {Connection.TRANSACTION_SERIALIZABLE,
                    Connection.TRANSACTION_REPEATABLE_READ, Connection.TRANSACTION_READ_COMMITTED,
                    Connection.TRANSACTION_READ_UNCOMMITTED}) {
                c.setTransactionIsolation(level);
                c.getTransactionIsolation();
            }
            c.setReadOnly(true);
            try (Statement s = c.createStatement()) {
                s.executeQuery(APP + "SELECT 1").close();
            }
            c.commit();
            c.setReadOnly(false);
            c.setAutoCommit(true);
            c.setCatalog(c.getCatalog());
            c.getSchema();
            c.isValid(2);
            DatabaseMetaData md = c.getMetaData();
            md.getDatabaseProductVersion();
            md.getTables(null, null, "t", null).close();
            md.getColumns(null, null, "t", null).close();
            md.getPrimaryKeys(null, null, "t").close();
            md.getIndexInfo(null, null, "t", false, true).close();
            md.getTypeInfo().close();
            try (Statement s = c.createStatement()) {
                s.execute(APP + "DROP TABLE t");
            }
        }
    }
}
