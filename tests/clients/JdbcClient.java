// The PostgreSQL JDBC driver against a running `discern serve` over TLS (verifying the
// server certificate): a PreparedStatement run past the driver's prepare threshold (named
// statements, binary transfer), DatabaseMetaData.getTables / getColumns, and an error.
// Run by tests/clients.rs.
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class JdbcClient {
    static void check(String name, boolean condition, Object detail) {
        if (!condition) {
            throw new AssertionError(name + ": " + detail);
        }
        System.out.println("ok  " + name);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("DISCERN_HOST") + ":"
                + System.getenv("DISCERN_PORT") + "/discern";
        Properties props = new Properties();
        props.setProperty("user", System.getenv("DISCERN_USER"));
        props.setProperty("password", System.getenv("DISCERN_PASSWORD"));
        props.setProperty("ssl", "true");
        props.setProperty("sslmode", "verify-ca");
        props.setProperty("sslrootcert", System.getenv("DISCERN_CERT"));
        try (Connection conn = DriverManager.getConnection(url, props)) {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*), avg(value) FROM measurements WHERE biomarker = ?")) {
                long n = 0;
                for (int i = 0; i < 7; i++) {
                    ps.setString(1, "iron");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        n = rs.getLong(1);
                        double mean = rs.getDouble(2);
                        check("jdbc PreparedStatement run " + i, n > 0 && mean > 0, n);
                    }
                }
            }
            DatabaseMetaData md = conn.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            check("jdbc getTables", tables.contains("measurements") && tables.contains("samples"), tables);
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "measurements", "%")) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME"));
                }
            }
            check("jdbc getColumns", columns.contains("biomarker") && columns.contains("value"), columns);
            // What Metabase, DBeaver and Tableau ask a JDBC driver when they browse a database.
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "samples")) {
                check("jdbc getPrimaryKeys (none: Parquet tables have no keys)", !rs.next(), null);
            }
            try (ResultSet rs = md.getIndexInfo(null, "public", "measurements", false, true)) {
                check("jdbc getIndexInfo (no indexes)", !rs.next(), null);
            }
            try (ResultSet rs = md.getImportedKeys(null, "public", "measurements")) {
                check("jdbc getImportedKeys (no foreign keys)", !rs.next(), null);
            }
            List<String> types = new ArrayList<>();
            try (ResultSet rs = md.getTypeInfo()) {
                while (rs.next()) {
                    types.add(rs.getString("TYPE_NAME"));
                }
            }
            check("jdbc getTypeInfo", types.contains("float8") && types.contains("text") && types.contains("int8"), types.size());
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) {
                    schemas.add(rs.getString("TABLE_SCHEM"));
                }
            }
            check("jdbc getSchemas", schemas.contains("public"), schemas);
            List<String> catalogs = new ArrayList<>();
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) {
                    catalogs.add(rs.getString("TABLE_CAT"));
                }
            }
            check("jdbc getCatalogs lists the database connected to", catalogs.contains("discern"), catalogs);
            check("jdbc getCatalog", "discern".equals(conn.getCatalog()), conn.getCatalog());
            // LIMIT ? with setInt, past the prepare threshold (binary parameters), and a
            // fetch size (a portal read in pages inside a transaction).
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT sample_id FROM samples ORDER BY sample_id LIMIT ? OFFSET ?")) {
                ps.setFetchSize(2);
                for (int i = 0; i < 6; i++) {
                    ps.setInt(1, 5);
                    ps.setInt(2, 1);
                    List<Long> ids = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            ids.add(rs.getLong(1));
                        }
                    }
                    check("jdbc LIMIT ? OFFSET ? run " + i, ids.equals(List.of(2L, 3L, 4L, 5L, 6L)), ids);
                }
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (PreparedStatement ps = conn.prepareStatement("SELECT * FROM no_such_table")) {
                ps.executeQuery();
                throw new AssertionError("no error");
            } catch (SQLException e) {
                check("jdbc SQLSTATE 42P01", "42P01".equals(e.getSQLState()), e.getSQLState());
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT CAST(1 AS BIGINT) AS i8, CAST(2 AS INT) AS i4, CAST(0.5 AS DOUBLE) AS f8, 'x' AS t, "
                    + "true AS b, CAST('2024-01-02 03:04:05' AS TIMESTAMP) AS ts, "
                    + "CAST(1.25 AS DECIMAL(10, 2)) AS n, [1, 2, 3] AS arr");
                 ResultSet rs = ps.executeQuery()) {
                rs.next();
                Object[] arr = (Object[]) rs.getArray("arr").getArray();
                check("jdbc types", rs.getLong("i8") == 1 && rs.getInt("i4") == 2
                        && rs.getDouble("f8") == 0.5 && "x".equals(rs.getString("t"))
                        && rs.getBoolean("b")
                        && rs.getTimestamp("ts").toString().startsWith("2024-01-02 03:04:05")
                        && rs.getBigDecimal("n").compareTo(new java.math.BigDecimal("1.25")) == 0
                        && arr.length == 3 && ((Number) arr[2]).longValue() == 3, arr.length);
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT mann_whitney(m.value, s.is_case) AS mw FROM measurements m "
                    + "JOIN samples s USING (sample_id) WHERE biomarker = 'iron'");
                 ResultSet rs = ps.executeQuery()) {
                rs.next();
                String mw = rs.getString("mw");
                check("jdbc STRUCT as a record", mw.startsWith("(") && mw.split(",").length == 3, mw);
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT 1")) {
                ResultSet rs = ps.executeQuery();
                rs.next();
                check("jdbc usable after an error", rs.getInt(1) == 1, null);
            }
        }
    }
}
