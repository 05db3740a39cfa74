// PreparedWorkload JDBC_URL
//
// Proves that pgjdbc with its DEFAULT settings, behind a HikariCP pool, works through pgvigil in
// transaction pooling mode. pgjdbc's default prepareThreshold is 5: the first 4 executions of a
// text on a connection use the unnamed statement, from the 5th on it Parses a named server
// statement (S_1, S_2, ...) once and then only Binds it. Through pgvigil those names must follow
// each client connection onto whichever server connection it gets. Checked:
//   - 8 threads x 500 iterations over 50 distinct texts (3 shapes), every result;
//   - every 25th iteration a transaction (setAutoCommit(false) ... commit) of 3 statements,
//     with txid_current() the same at its start and end;
//   - per thread, a named statement failing with division by zero outside and inside a
//     transaction (then rollback), after which the same statement is used again;
//   - pgjdbc reported server-side prepare for executions, and pg_prepared_statements is non-empty.
// Prints "pgjdbc OK: N executions, 0 errors" and exits 0 only if all is right, else exits 1.
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.postgresql.PGStatement;

public class PreparedWorkload {
  static final int THREADS = 8, ITERS = 500, TEXTS = 50;
  static final AtomicLong executions = new AtomicLong();
  static final AtomicLong serverPrepared = new AtomicLong();
  static final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
  static HikariDataSource ds;

  static void fail(String m) { if (failures.size() < 50) failures.add(m); }

  // Text k: shape k%3: scalar sum, two columns (int, text), or a set of rows.
  static String text(int k) {
    switch (k % 3) {
      case 0: return "SELECT ?::int + " + k;
      case 1: return "SELECT ?::int * " + k + ", ?::text || '-" + k + "'";
      default: return "SELECT g + " + k + " FROM generate_series(1, ?::int) g";
    }
  }

  // Runs text k with value v on c and checks the result.
  static void run(Connection c, int k, int v, String where) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(text(k))) {
      int n = (v % 7) + 1;
      ps.setInt(1, k % 3 == 2 ? n : v);
      if (k % 3 == 1) ps.setString(2, "v" + v);
      try (ResultSet rs = ps.executeQuery()) {
        if (k % 3 == 0) {
          if (!rs.next() || rs.getInt(1) != v + k) fail(where + ": text " + k + " v=" + v + " wrong sum");
        } else if (k % 3 == 1) {
          if (!rs.next() || rs.getInt(1) != v * k || !rs.getString(2).equals("v" + v + "-" + k))
            fail(where + ": text " + k + " v=" + v + " wrong row");
        } else {
          int rows = 0;
          while (rs.next()) { rows++; if (rs.getInt(1) != rows + k) fail(where + ": text " + k + " bad row " + rows); }
          if (rows != n) fail(where + ": text " + k + " expected " + n + " rows, got " + rows);
        }
        if (rs.next()) fail(where + ": text " + k + " extra row");
      }
      if (ps.unwrap(PGStatement.class).isUseServerPrepare()) serverPrepared.incrementAndGet();
      executions.incrementAndGet();
    }
  }

  static long txid(Connection c) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("SELECT txid_current()"); ResultSet rs = ps.executeQuery()) {
      rs.next(); executions.incrementAndGet(); return rs.getLong(1);
    }
  }

  // Executes "SELECT 1000 / ?::int" with d; returns the result, or -1 on division by zero.
  static int divide(PreparedStatement ps, int d) throws SQLException {
    ps.setInt(1, d);
    try (ResultSet rs = ps.executeQuery()) { rs.next(); executions.incrementAndGet(); return rs.getInt(1); }
    catch (SQLException e) {
      if (!"22012".equals(e.getSQLState())) throw e;
      executions.incrementAndGet();
      return -1;
    }
  }

  static void errorCase(int t) throws SQLException {
    String where = "thread " + t + " error case";
    try (Connection c = ds.getConnection(); PreparedStatement ps = c.prepareStatement("SELECT 1000 / ?::int")) {
      for (int d = 1; d <= 6; d++) if (divide(ps, d) != 1000 / d) fail(where + ": 1000/" + d);
      if (divide(ps, 0) != -1) fail(where + ": no division by zero error (autocommit)");
      if (divide(ps, 8) != 125) fail(where + ": statement unusable after error (autocommit)");
      c.setAutoCommit(false);
      if (divide(ps, 10) != 100) fail(where + ": 1000/10 in transaction");
      if (divide(ps, 0) != -1) fail(where + ": no division by zero error (transaction)");
      c.rollback();
      if (divide(ps, 20) != 50) fail(where + ": statement unusable after rollback");
      c.commit();
      c.setAutoCommit(true);
      run(c, t, 77, where + " after error");
    }
  }

  static void worker(int t) {
    for (int i = 0; i < ITERS; i++) {
      String where = "thread " + t + " iter " + i;
      int k = (i * 7 + t) % TEXTS, v = t * 10000 + i;
      try {
        if (i == 250) errorCase(t);
        try (Connection c = ds.getConnection()) {
          if (i % 25 == 24) {
            c.setAutoCommit(false);
            long x1 = txid(c);
            for (int j = 0; j < 3; j++) run(c, (k + j) % TEXTS, v + j, where + " (tx)");
            long x2 = txid(c);
            c.commit();
            c.setAutoCommit(true);
            if (x1 != x2) fail(where + ": txid changed inside a transaction " + x1 + " -> " + x2);
          } else {
            run(c, k, v, where);
          }
        }
      } catch (Exception e) {
        fail(where + ": " + e);
      }
    }
  }

  public static void main(String[] args) {
    if (args.length != 1) { System.err.println("usage: PreparedWorkload JDBC_URL"); System.exit(2); }
    try {
      workload(args[0]);
    } catch (Throwable e) {  // a connection failure or a hang: the workers may still be running
      failures.forEach(System.out::println);
      System.out.println("pgjdbc FAILED: " + e);
      System.exit(1);
    }
    if (!failures.isEmpty()) {
      failures.forEach(System.out::println);
      System.out.println("pgjdbc FAILED: " + executions.get() + " executions, " + failures.size() + " errors");
      System.exit(1);
    }
    System.out.println("pgjdbc OK: " + executions.get() + " executions, 0 errors");
    System.exit(0);
  }

  static void workload(String url) throws Exception {
    HikariConfig cfg = new HikariConfig();
    cfg.setJdbcUrl(url);
    cfg.setMaximumPoolSize(THREADS);
    cfg.setConnectionTimeout(20000);
    ds = new HikariDataSource(cfg);
    ExecutorService ex = Executors.newFixedThreadPool(THREADS);
    List<Future<?>> fs = new ArrayList<>();
    for (int t = 0; t < THREADS; t++) { final int tt = t; fs.add(ex.submit(() -> worker(tt))); }
    for (Future<?> f : fs) f.get(50, TimeUnit.SECONDS);
    ex.shutdown();
    // Every pooled connection has run texts more than 5 times, so the server connections it
    // used have named statements. Each query may land on another server connection (transaction
    // pooling), and one opened late (a shard's place moved, pool.shards) may have prepared
    // nothing yet: the most any of 20 answers shows.
    try (Connection c = ds.getConnection(); Statement s = c.createStatement()) {
      long n = 0;
      for (int i = 0; i < 20 && n <= 0; i++) {
        try (ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_prepared_statements")) {
          rs.next();
          n = Math.max(n, rs.getLong(1));
        }
      }
      if (n <= 0) fail("pg_prepared_statements is empty after the workload");
      System.out.println("server-prepared executions: " + serverPrepared.get() + ", pg_prepared_statements: " + n);
    }
    if (serverPrepared.get() < executions.get() / 2)
      fail("only " + serverPrepared.get() + " of " + executions.get() + " executions were server-prepared");
    ds.close();
  }
}
