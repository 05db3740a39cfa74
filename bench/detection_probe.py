#!/usr/bin/env python3
"""Measures how long a silent path or a frozen server goes unnoticed, for three set-ups at once.

Run by bench/detection, which sets up the network namespace, the PostgreSQL inside it and the
config files; this program starts PgBouncer and pgvigil afresh for each fault window, injects
the fault (nftables in the namespace, or SIGSTOP to the server), watches the three set-ups side
by side until each noticed or the cap passed, heals, and writes the table.

Standard library only: the client speaks the PostgreSQL protocol itself (startup, trust
authentication, simple query), with SO_KEEPALIVE on and nothing else, as libpq does by default.
"""

import argparse
import datetime
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request


# --- a minimal PostgreSQL client -------------------------------------------------------------

class Lost(Exception):
    """The connection broke (EOF or a socket error)."""


class PgClient:
    def __init__(self, host, port, dbname, user, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        # libpq's defaults: keepalives=1 with the kernel's idle/interval/count, no user timeout.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.sock.settimeout(None)
        self.buffer = b""
        params = b"user\0" + user.encode() + b"\0database\0" + dbname.encode() + b"\0\0"
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        deadline = time.monotonic() + timeout
        while True:
            kind, body = self.message(deadline)
            if kind == b"E":
                raise RuntimeError("start-up refused: " + error_text(body))
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise RuntimeError("the server asks for a password; the bench uses trust")
            if kind == b"Z":
                return

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def message(self, deadline):
        """Next (type, body); TimeoutError at the deadline, Lost on EOF or socket error."""
        while True:
            if len(self.buffer) >= 5:
                kind = self.buffer[:1]
                length = struct.unpack("!i", self.buffer[1:5])[0]
                if len(self.buffer) >= 1 + length:
                    body = self.buffer[5:1 + length]
                    self.buffer = self.buffer[1 + length:]
                    return kind, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            readable, _, _ = select.select([self.sock], [], [], min(left, 1.0))
            if not readable:
                continue
            try:
                chunk = self.sock.recv(65536)
            except OSError as error:
                raise Lost(os.strerror(error.errno) if error.errno else str(error))
            if not chunk:
                raise Lost("EOF")
            self.buffer += chunk

    def query(self, sql, deadline):
        """Runs sql; returns (ok, what). Rows are ignored. TimeoutError at the deadline."""
        self.send(sql)
        return self.finish(deadline)

    def send(self, sql):
        """Sends sql as a simple Query; finish() reads the answer."""
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(sql) + 1) + sql.encode() + b"\0")

    def finish(self, deadline):
        """Reads the answer to what send() sent, up to ReadyForQuery; as query()."""
        error = None
        while True:
            try:
                kind, body = self.message(deadline)
            except Lost as lost:
                return False, (error + "; then " if error else "") + "connection lost: " + str(lost)
            if kind == b"E" and error is None:
                error = error_text(body)
            if kind == b"Z":
                return error is None, error or "ok"

    def rows(self, sql, deadline):
        """Runs sql; returns a list of dicts (for the PgBouncer admin console)."""
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(sql) + 1) + sql.encode() + b"\0")
        names, result = [], []
        while True:
            kind, body = self.message(deadline)
            if kind == b"T":
                count = struct.unpack("!h", body[:2])[0]
                offset = 2
                for _ in range(count):
                    end = body.index(b"\0", offset)
                    names.append(body[offset:end].decode())
                    offset = end + 1 + 18
            elif kind == b"D":
                count = struct.unpack("!h", body[:2])[0]
                offset, values = 2, []
                for _ in range(count):
                    length = struct.unpack("!i", body[offset:offset + 4])[0]
                    offset += 4
                    if length < 0:
                        values.append(None)
                    else:
                        values.append(body[offset:offset + length].decode())
                        offset += length
                result.append(dict(zip(names, values)))
            elif kind == b"E":
                raise RuntimeError(error_text(body))
            elif kind == b"Z":
                return result

    def wait_dead(self, deadline):
        """Waits, sending nothing, until the kernel reports the connection dead."""
        try:
            while True:
                self.message(deadline)
        except Lost as lost:
            return str(lost)


def error_text(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode(errors="replace")
    return "%s %s" % (fields.get("C", "?????"), fields.get("M", ""))


# --- the set-ups ---------------------------------------------------------------------------

def wait_port(port, process, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("exited with %s" % process.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %d not open after %d s" % (port, seconds))


class Setups:
    def __init__(self, args):
        self.args = args
        self.pgbouncer = None
        self.pgvigil = None

    def start(self, log_suffix):
        a = self.args
        log = open(os.path.join(a.workdir, "pgvigil-%s.log" % log_suffix), "w")
        self.pgvigil = subprocess.Popen([a.pgvigil, "--config", a.pgvigil_config],
                                        stdout=log, stderr=subprocess.STDOUT)
        self.pgbouncer = subprocess.Popen(["runuser", "-u", "postgres", "--", a.pgbouncer_binary,
                                           a.pgbouncer_config],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(a.pgvigil_port, self.pgvigil)
        wait_port(a.pgbouncer_port, self.pgbouncer)

    def stop(self):
        for process in (self.pgvigil, self.pgbouncer):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def clients(self):
        a = self.args
        return {
            "direct": PgClient(a.server_host, a.server_port, "postgres", "postgres"),
            "pgbouncer": PgClient("127.0.0.1", a.pgbouncer_port, "postgres", "postgres"),
            "pgvigil": PgClient("127.0.0.1", a.pgvigil_port, "postgres", "postgres"),
        }

    def pgbouncer_servers(self):
        admin = PgClient("127.0.0.1", self.args.pgbouncer_port, "pgbouncer", "pgbouncer")
        try:
            return {row["ptr"] for row in admin.rows("SHOW SERVERS", time.monotonic() + 5)
                    if row.get("database") == "postgres"}
        finally:
            admin.close()

    def pgvigil_evictions(self):
        url = "http://127.0.0.1:%d/metrics" % self.args.pgvigil_admin_port
        total, reasons = 0.0, {}
        with urllib.request.urlopen(url, timeout=2) as page:
            for line in page.read().decode().splitlines():
                if line.startswith("pgvigil_evictions_total{"):
                    value = float(line.rsplit(" ", 1)[1])
                    reason = line.split('reason="', 1)[1].split('"', 1)[0]
                    total += value
                    if value:
                        reasons[reason] = value
        return total, reasons


# --- faults ----------------------------------------------------------------------------------

def nft(args, rules):
    subprocess.run(["ip", "netns", "exec", args.netns, "nft", rules], check=True)


def black_hole(args):
    port = str(args.server_port)
    drop = "tcp dport %s drop; tcp sport %s drop; " % (port, port)
    nft(args, "add table inet pgvigil_bench\ndelete table inet pgvigil_bench\n"
              "table inet pgvigil_bench {\n"
              "  chain input { type filter hook input priority -10; policy accept; " + drop + "}\n"
              "  chain output { type filter hook output priority -10; policy accept; " + drop +
              "}\n}\n")


def heal(args):
    nft(args, "add table inet pgvigil_bench\ndelete table inet pgvigil_bench\n")


def server_pids(args):
    with open(os.path.join(args.datadir, "postmaster.pid")) as pidfile:
        postmaster = int(pidfile.readline())
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                pids.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def freeze(args):
    for pid in server_pids(args):
        os.kill(pid, signal.SIGSTOP)


def thaw(args):
    for pid in server_pids(args):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


# --- one fault window ------------------------------------------------------------------------

def window(args, setups, name, inject, undo, kind):
    """Returns {setup: (seconds or None, note)} for one fault, all three watched at once."""
    setups.start(name)
    clients = {}
    results = {}
    try:
        clients = setups.clients()
        deadline = time.monotonic() + 10
        for client in clients.values():
            ok, what = client.query("SELECT 1", deadline)
            if not ok:
                raise RuntimeError("warm-up query failed: " + what)
        servers_before = setups.pgbouncer_servers()
        evictions_before, _ = setups.pgvigil_evictions()
        if kind == "running":
            # A long query runs on the server when the fault strikes.
            for client in clients.values():
                client.send(RUNNING_QUERY)
            time.sleep(1)
        else:
            # Idle for a while first, as a real connection between two requests: longer than
            # PgBouncer's server_check_delay and pgvigil's validate_after_idle.
            time.sleep(2)
        started = time.monotonic()
        inject(args)
        cap = started + args.cap

        def watch(setup, measure):
            try:
                results[setup] = measure()
            except Exception as error:  # a measurement failing is a result too
                results[setup] = (None, "measurement failed: %s" % error)

        def elapsed():
            return time.monotonic() - started

        def idle_direct():
            try:
                what = clients["direct"].wait_dead(cap)
                return elapsed(), "client socket: " + what
            except TimeoutError:
                return None, "client socket still open"

        def idle_pgbouncer():
            while time.monotonic() < cap:
                if not (servers_before & setups.pgbouncer_servers()):
                    return elapsed(), "server connection closed (SHOW SERVERS)"
                time.sleep(0.2)
            return None, "server connection still listed"

        def idle_pgvigil():
            while time.monotonic() < cap:
                total, reasons = setups.pgvigil_evictions()
                if total > evictions_before:
                    return elapsed(), "evicted: " + ", ".join(sorted(reasons))
                time.sleep(0.2)
            return None, "nothing evicted"

        def query(setup):
            def run():
                try:
                    ok, what = clients[setup].query("SELECT 1", cap)
                    return elapsed(), ("answered" if ok else what)
                except TimeoutError:
                    return None, "no answer"
            return run

        def running(setup):
            def run():
                try:
                    ok, what = clients[setup].finish(cap)
                    return elapsed(), ("answered" if ok else what)
                except TimeoutError:
                    return None, "no answer"
            return run

        if kind == "idle":
            measures = {"direct": idle_direct, "pgbouncer": idle_pgbouncer,
                        "pgvigil": idle_pgvigil}
        elif kind == "running":
            measures = {setup: running(setup) for setup in clients}
        else:
            measures = {setup: query(setup) for setup in clients}
        threads = [threading.Thread(target=watch, args=(setup, measure), daemon=True)
                   for setup, measure in measures.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        undo(args)
        for client in clients.values():
            client.close()
        setups.stop()
    return results


FAULTS = [
    ("1", "silent path (black hole), idle connection: time until it is found dead",
     black_hole, heal, "idle"),
    ("2", "silent path (black hole), then a query: time until the client gets an answer or error",
     black_hole, heal, "query"),
    ("4", "frozen server (SIGSTOP), idle connection: time until it is found dead",
     freeze, thaw, "idle"),
    ("4q", "frozen server (SIGSTOP), then a query: time until the client gets an answer or error",
     freeze, thaw, "query"),
    ("2r", "silent path (black hole) while a query runs (pg_sleep(60)): time until the client "
     "gets an answer or error", black_hole, heal, "running"),
    ("4r", "frozen server (SIGSTOP) while a query runs (pg_sleep(60)): time until the client "
     "gets an answer or error", freeze, thaw, "running"),
]

# Longer than every bound measured, so that its end is never mistaken for a detection.
RUNNING_QUERY = "SELECT pg_sleep(60)"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("netns", "server-host", "datadir", "workdir", "pgvigil", "pgvigil-config",
                 "pgbouncer-binary", "pgbouncer-config", "output", "command", "settings"):
        parser.add_argument("--" + name, required=True)
    for name in ("server-port", "pgvigil-port", "pgvigil-admin-port", "pgbouncer-port"):
        parser.add_argument("--" + name, type=int, required=True)
    parser.add_argument("--cap", type=float, default=180)
    parser.add_argument("--faults", default="1,2,4,4q,2r,4r")
    args = parser.parse_args()

    wanted = args.faults.split(",")
    setups = Setups(args)
    table = []
    began = time.monotonic()
    for key, title, inject, undo, kind in FAULTS:
        if key not in wanted:
            continue
        print("fault %s: %s (cap %.0f s) ..." % (key, title, args.cap), flush=True)
        results = window(args, setups, "fault" + key, inject, undo, kind)
        for setup in ("direct", "pgbouncer", "pgvigil"):
            seconds, note = results.get(setup, (None, "not measured"))
            shown = ("%.1f s" % seconds) if seconds is not None else "> %.0f s" % args.cap
            print("  %-9s %-9s %s" % (setup, shown, note), flush=True)
        table.append((key, title, results))

    cap = "> %.0f s" % args.cap
    lines = [
        "# Detection benchmark: how long a dead path goes unnoticed",
        "",
        "Command: `%s`  " % args.command,
        "Date: %s  " % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "Host: Linux %s, %d CPUs; total run %.0f s; cap per fault %.0f s." % (
            os.uname().release, os.cpu_count(), time.monotonic() - began, args.cap),
        "",
        "Seconds from the fault to detection (idle rows) or to the client's answer (query rows),",
        "all three set-ups watched side by side during the same fault. `%s`: nothing noticed" % cap,
        "before the cap.",
        "",
        "| fault | direct libpq-style client | PgBouncer | pgvigil |",
        "|---|---|---|---|",
    ]
    notes = []
    for key, title, results in table:
        cells = []
        for setup in ("direct", "pgbouncer", "pgvigil"):
            seconds, note = results.get(setup, (None, "not measured"))
            cells.append(("%.1f s" % seconds) if seconds is not None else cap)
            notes.append("- fault %s, %s: %s" % (key, setup, note))
        lines.append("| %s. %s | %s |" % (key, title, " | ".join(cells)))
    lines += ["", "What each set-up said:", ""] + notes + ["", "Set-ups:", ""]
    lines += ["- " + line for line in json.loads(args.settings)]
    text = "\n".join(lines) + "\n"
    with open(args.output, "w") as out:
        out.write(text)
    print()
    print(text)


if __name__ == "__main__":
    sys.exit(main())
