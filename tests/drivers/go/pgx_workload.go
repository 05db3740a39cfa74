// pgx_workload HOST PORT
//
// Proves that pgx v4 with its DEFAULT statement cache (statement_cache_mode=prepare, capacity
// 512: every query text is Parsed once per connection as a named statement lrupsc_N_M, then
// only Bound) works through pgvigil in transaction pooling mode, over a pgxpool of 8
// connections, so named statements must follow each client connection onto whichever server
// connection it gets. Checked:
//   - 8 goroutines x 500 iterations over 50 distinct texts with $1 (3 shapes), every result;
//   - every 25th iteration a transaction of 3 statements, txid_current() constant inside it;
//   - every 50th iteration a batch (3 named statements pipelined, one Sync);
//   - a statement named explicitly in AfterConnect (conn.Prepare "div") failing with division
//     by zero outside and inside a transaction (then rollback), and reused after each error;
//   - the statement cache is in prepare mode and non-empty, pg_prepared_statements non-empty.
//
// Prints "pgx OK: N queries, 0 errors" and exits 0 only if all is right, else exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgconn/stmtcache"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const goroutines, iters, texts = 8, 500, 50

var (
	queries  int64
	mu       sync.Mutex
	failures []string
)

func fail(format string, a ...interface{}) {
	mu.Lock()
	defer mu.Unlock()
	if len(failures) < 50 {
		failures = append(failures, fmt.Sprintf(format, a...))
	}
}

// item gives text k (shape k%3: a sum, two columns, or a set of rows), its arguments for value
// v, and the rows it must return (as checkRows prints them).
func item(k, v int) (sql string, args []interface{}, want string) {
	switch k % 3 {
	case 0:
		return fmt.Sprintf("SELECT $1::int + %d", k), []interface{}{v}, fmt.Sprint(v + k)
	case 1:
		return fmt.Sprintf("SELECT $1::int * %d, $2::text || '-%d'", k, k),
			[]interface{}{v, fmt.Sprintf("v%d", v)}, fmt.Sprintf("%d v%d-%d", v*k, v, k)
	}
	var rows []string
	for g := 1; g <= v%7+1; g++ {
		rows = append(rows, fmt.Sprint(g+k))
	}
	return fmt.Sprintf("SELECT g + %d FROM generate_series(1, $1::int) g", k), []interface{}{v%7 + 1},
		strings.Join(rows, "|")
}

type querier interface {
	Query(ctx context.Context, sql string, args ...interface{}) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...interface{}) pgx.Row
}

// run executes text k with value v on q and checks the result.
func run(ctx context.Context, q querier, k, v int, where string) {
	sql, args, want := item(k, v)
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		fail("%s: text %d: %v", where, k, err)
		return
	}
	checkRows(rows, k, want, where)
}

func checkRows(rows pgx.Rows, k int, want, where string) {
	defer rows.Close()
	var got []string
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			fail("%s: text %d: %v", where, k, err)
		}
		got = append(got, strings.TrimSuffix(fmt.Sprintln(values...), "\n"))
	}
	if err := rows.Err(); err != nil {
		fail("%s: text %d: %v", where, k, err)
	} else if strings.Join(got, "|") != want {
		fail("%s: text %d: got %q, want %q", where, k, strings.Join(got, "|"), want)
	}
	atomic.AddInt64(&queries, 1)
}

// errorCase runs "div" (1000 / $1, prepared by AfterConnect) failing with division by zero in
// autocommit and in a transaction, and again after each failure.
func errorCase(ctx context.Context, pool *pgxpool.Pool, g int) {
	check := func(q querier, d, want int) {
		r := 0
		err := q.QueryRow(ctx, "div", d).Scan(&r)
		atomic.AddInt64(&queries, 1)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22012" {
			r, err = -1, nil
		}
		if err != nil || r != want {
			fail("goroutine %d error case: 1000/%d = %d, %v (want %d)", g, d, r, err, want)
		}
	}
	check(pool, 4, 250)
	check(pool, 0, -1)
	check(pool, 8, 125)
	tx, err := pool.Begin(ctx)
	if err != nil {
		fail("goroutine %d error case: begin: %v", g, err)
		return
	}
	check(tx, 10, 100)
	check(tx, 0, -1)
	if err := tx.Rollback(ctx); err != nil {
		fail("goroutine %d error case: rollback: %v", g, err)
	}
	check(pool, 20, 50)
	run(ctx, pool, g, 77, fmt.Sprintf("goroutine %d after error", g))
}

func worker(ctx context.Context, pool *pgxpool.Pool, g int) {
	for i := 0; i < iters; i++ {
		where := fmt.Sprintf("goroutine %d iter %d", g, i)
		k, v := (i*7+g)%texts, g*10000+i
		switch {
		case i == 250:
			errorCase(ctx, pool, g)
		case i%50 == 49:
			b := &pgx.Batch{}
			for j := 0; j < 3; j++ {
				sql, args, _ := item((k+j)%texts, v+j)
				b.Queue(sql, args...)
			}
			br := pool.SendBatch(ctx, b)
			for j := 0; j < 3; j++ {
				_, _, want := item((k+j)%texts, v+j)
				if rows, err := br.Query(); err != nil {
					fail("%s (batch %d): %v", where, j, err)
				} else {
					checkRows(rows, (k+j)%texts, want, where+" (batch)")
				}
			}
			if err := br.Close(); err != nil {
				fail("%s: batch close: %v", where, err)
			}
		case i%25 == 24:
			tx, err := pool.Begin(ctx)
			if err != nil {
				fail("%s: begin: %v", where, err)
				continue
			}
			var x1, x2 int64
			err1 := tx.QueryRow(ctx, "SELECT txid_current() + $1", 0).Scan(&x1)
			for j := 0; j < 3; j++ {
				run(ctx, tx, (k+j)%texts, v+j, where+" (tx)")
			}
			err2 := tx.QueryRow(ctx, "SELECT txid_current() + $1", 0).Scan(&x2)
			atomic.AddInt64(&queries, 2)
			if err := tx.Commit(ctx); err != nil || err1 != nil || err2 != nil || x1 != x2 {
				fail("%s: transaction: txid %d -> %d, %v %v %v", where, x1, x2, err1, err2, err)
			}
		default:
			run(ctx, pool, k, v, where)
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pgx_workload HOST PORT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf(
		"host=%s port=%s user=postgres dbname=postgres sslmode=disable", os.Args[1], os.Args[2]))
	if err == nil {
		cfg.MaxConns = goroutines
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Prepare(ctx, "div", "SELECT 1000 / $1::int")
			return err
		}
	}
	var pool *pgxpool.Pool
	if err == nil {
		pool, err = pgxpool.ConnectConfig(ctx, cfg)
	}
	if err != nil {
		fmt.Println("pgx FAILED: connect:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) { defer wg.Done(); worker(ctx, pool, g) }(g)
	}
	wg.Wait()

	// The default statement cache prepared named statements, and the server holds some.
	if c, err := pool.Acquire(ctx); err != nil {
		fail("acquire: %v", err)
	} else {
		sc, n := c.Conn().StatementCache(), int64(0)
		if sc == nil || sc.Mode() != stmtcache.ModePrepare || sc.Len() == 0 {
			fail("statement cache not in prepare mode or empty")
		} else if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements").Scan(&n); err != nil || n == 0 {
			fail("pg_prepared_statements: %d, %v", n, err)
		} else {
			fmt.Printf("statement cache: %d named statements, pg_prepared_statements: %d\n", sc.Len(), n)
		}
		c.Release()
	}
	pool.Close()
	if len(failures) > 0 {
		fmt.Println(strings.Join(failures, "\n"))
		fmt.Printf("pgx FAILED: %d queries, %d errors\n", queries, len(failures))
		os.Exit(1)
	}
	fmt.Printf("pgx OK: %d queries, 0 errors\n", queries)
}
