#!/usr/bin/env python3
"""Opens K idle PostgreSQL client sessions against a pooler and holds them open.

Standard library only: asyncio over raw non-blocking sockets and struct, one event loop
(epoll), no thread per connection. Each session sends a StartupMessage (protocol 3.0,
user + database), expects AuthenticationOk (trust; any other request is a failure) and
reads until ReadyForQuery 'Z'. It then sends nothing more and stays idle.

Output on stdout, one line each:
  READY opened=<n> failed=<n> seconds=<t> [first_error=<text>]   all handshakes done
  ALIVE <n>                                                       on exit: sessions still open
The sessions are held until SIGTERM, SIGINT or SIGUSR1 arrives or --max-hold seconds pass
(so the tool always stops by itself). Exit status 1 if any session failed.
"""

import argparse
import asyncio
import os
import select
import signal
import socket
import struct
import sys
import time

PROTOCOL_3_0 = 196608


def startup_message(user: str, database: str, application_name: str) -> bytes:
    body = struct.pack("!I", PROTOCOL_3_0)
    for key, value in (("user", user), ("database", database),
                       ("application_name", application_name)):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


async def recv_exact(loop, sock, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = await loop.sock_recv(sock, n)
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


async def handshake(loop, host, port, message: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, message)
        while True:
            header = await recv_exact(loop, sock, 5)
            kind, length = header[:1], struct.unpack("!I", header[1:])[0]
            payload = await recv_exact(loop, sock, length - 4) if length > 4 else b""
            if kind == b"R":
                code = struct.unpack("!I", payload[:4])[0]
                if code != 0:
                    raise ConnectionError(f"authentication request {code}; expected trust (AuthenticationOk)")
            elif kind == b"E":
                fields = [f[1:].decode(errors="replace") for f in payload.split(b"\0") if f[:1] == b"M"]
                raise ConnectionError("ErrorResponse: " + (fields[0] if fields else repr(payload)))
            elif kind == b"Z":
                return sock
            # 'S' ParameterStatus, 'K' BackendKeyData, 'N' NoticeResponse: ignored.
    except BaseException:
        sock.close()
        raise


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", required=True)
    parser.add_argument("-k", "--clients", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight at once")
    parser.add_argument("--handshake-timeout", type=float, default=20.0)
    parser.add_argument("--max-hold", type=float, default=300.0, help="exit after this many seconds held")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        loop.add_signal_handler(sig, stop.set)

    message = startup_message(args.user, args.database, "pgvigil-bench-idle")
    gate = asyncio.Semaphore(args.concurrency)
    sockets: list[socket.socket] = []
    errors: list[str] = []

    async def one():
        async with gate:
            if stop.is_set():
                return
            try:
                sockets.append(await asyncio.wait_for(
                    handshake(loop, args.host, args.port, message), args.handshake_timeout))
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(e).__name__}: {e}")

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.clients)))
    elapsed = time.monotonic() - started
    line = f"READY opened={len(sockets)} failed={len(errors)} seconds={elapsed:.1f}"
    if errors:
        line += " first_error=" + errors[0].replace("\n", " ")
    print(line, flush=True)

    try:
        await asyncio.wait_for(stop.wait(), args.max_hold)
    except asyncio.TimeoutError:
        pass

    # Sessions still open: a socket that polls readable was closed or sent something unasked.
    poller = select.epoll()
    for s in sockets:
        poller.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    dead = {fd for fd, _ in poller.poll(0.2)}
    poller.close()
    print(f"ALIVE {len(sockets) - len(dead)}", flush=True)
    for s in sockets:
        s.close()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
