#!/usr/bin/python3
"""A write load that behaves as an application does through a failover, and its report.

  failover_load.py run --port P [--host H --user U --dbname D --clients 8 --rate 50
                       --seconds 20 --grace 30] --log FILE
      Each client is a thread with one psycopg2 (libpq) connection that runs a pgbench-like
      write transaction (BEGIN; UPDATE pgbench_accounts; INSERT INTO pgbench_history; COMMIT)
      --rate times a second. A transaction that fails is counted and the next one runs at its
      usual time, on a new connection when the old one was closed: failures are not retried in a
      tight loop, so their number says how long the pooler refused, not how fast the client spun.
      Every transaction is one line of FILE, times from the wall clock (time.time()):
        <start> <end> ok
        <start> <end> fail <sqlstate or -> <first line of the error>
        <start> - hung                       still unanswered --grace seconds after the run
        <end> - end                          the load's end (last line)
  failover_load.py report --log FILE --crash-start T --crash-end T --promoted T [--json]
      Counts what the log says about a crash from crash-start (the primary's postmaster sent
      SIGQUIT, as `pg_ctl stop -m immediate` does) to crash-end (it has exited, its backends with
      it) and a promotion that returned at `promoted`. A transaction is in flight at the crash
      when it began before crash-start and had not ended; one begun between the two ran into a
      server already dying; one begun after crash-end could have waited for the new primary.

Needs Debian's python3-psycopg2 (scripts/install-deps.sh installs it).
"""

import argparse
import json
import random
import sys
import threading
import time

WRITE = [
    "UPDATE pgbench_accounts SET abalance = abalance + %(delta)s WHERE aid = %(aid)s",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (1, 1, %(aid)s, %(delta)s, CURRENT_TIMESTAMP)",
]


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Client(threading.Thread):
    def __init__(self, args, stop_at: float, out: list, lock: threading.Lock):
        super().__init__(daemon=True)
        self.args, self.stop_at, self.out, self.lock = args, stop_at, out, lock
        self.conn = None
        self.current_start = None  # the transaction under way, for the hang report

    def connect(self):
        import psycopg2
        self.conn = psycopg2.connect(host=self.args.host, port=self.args.port,
                                     user=self.args.user, dbname=self.args.dbname,
                                     connect_timeout=10, application_name="failover_load")

    def transaction(self):
        if self.conn is None or self.conn.closed:
            self.connect()
        params = {"aid": random.randint(1, self.args.accounts), "delta": random.randint(-5000, 5000)}
        with self.conn.cursor() as cursor:  # psycopg2 opens the transaction (BEGIN) itself
            for statement in WRITE:
                cursor.execute(statement, params)
        self.conn.commit()

    def run(self):
        period = 1.0 / self.args.rate
        next_start = time.time() + random.random() * period  # clients spread over the period
        while next_start < self.stop_at:
            time.sleep(max(0.0, next_start - time.time()))
            start = self.current_start = time.time()
            try:
                self.transaction()
                line = f"{start:.6f} {time.time():.6f} ok"
            except Exception as error:  # every failure is the application's to count
                sqlstate = getattr(error, "pgcode", None) or "-"
                line = f"{start:.6f} {time.time():.6f} fail {sqlstate} {first_line(error)}"
                self.drop_connection()
            self.current_start = None
            with self.lock:
                self.out.append(line)
            next_start = max(next_start + period, time.time())

    def drop_connection(self):
        if self.conn is None:
            return
        try:
            if not self.conn.closed:
                self.conn.rollback()
                return
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass
        self.conn = None


def run(args) -> int:
    lines: list = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds
    clients = [Client(args, stop_at, lines, lock) for _ in range(args.clients)]
    for client in clients:
        client.start()
    give_up_at = stop_at + args.grace
    for client in clients:
        client.join(max(0.0, give_up_at - time.time()))
    with lock:
        for client in clients:
            if client.is_alive() and client.current_start is not None:
                lines.append(f"{client.current_start:.6f} - hung")
        lines.append(f"{stop_at:.6f} - end")
        with open(args.log, "w") as out:
            out.write("\n".join(lines) + ("\n" if lines else ""))
    return 0


def report(args) -> dict:
    done, failed, hung, load_end = [], [], [], None
    with open(args.log) as log:
        for line in log:
            fields = line.rstrip("\n").split(" ", 4)
            if len(fields) < 3:
                continue
            if fields[2] == "hung":
                hung.append(float(fields[0]))
            elif fields[2] == "end":
                load_end = float(fields[0])
            else:
                start, end = float(fields[0]), float(fields[1])
                (done if fields[2] == "ok" else failed).append((start, end, fields[3:]))
    crash_start, crash_end, promoted = args.crash_start, args.crash_end, args.promoted
    in_flight = lambda start, end: start < crash_start < end  # noqa: E731
    commits = sorted(end for _, end, _ in done)
    # The gaps between commits, and from the last one to the load's end: a load whose writes
    # never came back has been without writes since its last commit.
    ends = commits + ([load_end] if load_end is not None and commits else [])
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    after_promotion = [end for end in commits if end >= promoted]
    return {
        "committed": len(done),
        "in_flight_at_crash": sum(1 for start, end, _ in done + failed if in_flight(start, end))
        + sum(1 for start in hung if start < crash_start),
        "failed": len(failed),
        "failed_in_flight_at_crash": sum(1 for start, end, _ in failed if in_flight(start, end)),
        "failed_while_crashing": sum(1 for start, _, _ in failed
                                     if crash_start <= start < crash_end),
        "failed_after_crash": sum(1 for start, _, _ in failed if start >= crash_end),
        "hung": len(hung),
        "longest_failed_seconds": max((end - start for start, end, _ in failed), default=0.0),
        "seconds_without_writes": max(gaps, default=float("inf")),
        "first_write_after_promotion_seconds":
            (after_promotion[0] - promoted) if after_promotion else None,
        "committed_after_promotion": len(after_promotion),
        "errors": sorted({" ".join(f[2]).strip() for f in failed})[:10],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("run")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--user", default="postgres")
    load.add_argument("--dbname", default="postgres")
    load.add_argument("--clients", type=int, default=8)
    load.add_argument("--rate", type=float, default=50.0, help="transactions a second per client")
    load.add_argument("--seconds", type=float, default=20.0)
    load.add_argument("--grace", type=float, default=30.0)
    load.add_argument("--accounts", type=int, default=100000, help="pgbench_accounts rows (-s 1)")
    load.add_argument("--log", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--log", required=True)
    rep.add_argument("--crash-start", type=float, required=True)
    rep.add_argument("--crash-end", type=float, required=True)
    rep.add_argument("--promoted", type=float, required=True)
    rep.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "run":
        return run(args)
    result = report(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
