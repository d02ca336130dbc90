#!/usr/bin/env python3
"""Idle keep-alive connection memory of one proxy, for the load harness (benches/load/run).

For each wave: read the proxy's RSS once it has settled, open N keep-alive connections to its
HTTP/1.1 listener, send one CORS preflight on each and read the 204, read the RSS again with all
N open and idle, close them all, wait until the proxy has closed its side of every one (polled
from /proc/net/tcp, with a deadline), and read the RSS once more when it has settled.

"Settled" means no change of more than 1% over 2 s, read every 0.25 s, for at most 10 s. An
allocator that gives memory back on a timer (the gateway's mimalloc purges once a second) is
measured for what it keeps, not for where its timer happens to be; a proxy whose RSS does not
move is read at once, after 2 s.

RSS is the sum of VmRSS over the given process and all its descendants (nginx: master and
worker). One TSV line per wave goes to standard output:

    system wave conns ok rss_before_kb rss_open_kb rss_closed_kb kb_per_conn open_s close_s
"""

import argparse
import asyncio
import os
import socket
import sys
import time

REQUEST = (
    "OPTIONS /api HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Origin: https://example.com\r\n"
    "Access-Control-Request-Method: POST\r\n"
    "Access-Control-Request-Headers: content-type\r\n"
    "\r\n"
).encode()


def descendants(pid):
    """pid and every process below it, from /proc/PID/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def rss_kb(pid):
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def settled_rss_kb(pid, window=2.0, limit=10.0, step=0.25):
    """RSS once it has moved by at most 1% over `window` seconds, or after `limit` seconds."""
    start = time.monotonic()
    reads = [(start, rss_kb(pid))]
    while time.monotonic() - start < limit:
        time.sleep(step)
        now = time.monotonic()
        reads.append((now, rss_kb(pid)))
        recent = [kb for t, kb in reads if now - t <= window]
        if now - start >= window and max(recent) - min(recent) <= 0.01 * max(recent):
            break
    return reads[-1][1]


def server_sockets(port):
    """Sockets on the proxy's side of its listener port, in any state but LISTEN."""
    n = 0
    want = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(want) and fields[3] != "0A":
                n += 1
    return n


def wait_for(predicate, deadline_s, what):
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            sys.exit(f"idle_memory: timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.05)


async def open_one(port, sem, keep):
    async with sem:
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
            await loop.sock_sendall(s, REQUEST)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = await asyncio.wait_for(loop.sock_recv(s, 4096), 10)
                if not chunk:
                    raise ConnectionError("closed before the answer")
                buf += chunk
        except Exception as e:  # counted, and the wave fails below
            s.close()
            return f"{type(e).__name__}: {e}"
        keep.append(s)
        status = buf.split(b"\r\n", 1)[0]
        if b" 204" not in status:
            return status.decode(errors="replace")
        return None


async def open_all(port, conns, parallel):
    sem = asyncio.Semaphore(parallel)
    keep = []
    errors = await asyncio.gather(*(open_one(port, sem, keep) for _ in range(conns)))
    return keep, [e for e in errors if e]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", required=True)
    ap.add_argument("--pid", type=int, required=True, help="the proxy's main process")
    ap.add_argument("--port", type=int, required=True, help="its plain HTTP/1.1 port")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--waves", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=200, help="connections opened at once")
    ap.add_argument("--deadline", type=float, default=60, help="seconds to wait for closes")
    a = ap.parse_args()

    for wave in range(1, a.waves + 1):
        # Nothing of ours may be open before we read the starting RSS.
        wait_for(lambda: server_sockets(a.port) == 0, a.deadline, "the proxy to close old sockets")
        before = settled_rss_kb(a.pid)
        t0 = time.monotonic()
        keep, errors = asyncio.run(open_all(a.port, a.conns, a.parallel))
        opened = time.monotonic() - t0
        if errors:
            print(f"idle_memory: {a.system} wave {wave}: {len(errors)} of {a.conns} connections "
                  f"failed, first: {errors[0]}", file=sys.stderr)
        # Every answer is in, so the proxy has accepted and served all of them; they idle now.
        held = server_sockets(a.port)
        open_rss = rss_kb(a.pid)
        if held < len(keep):
            print(f"idle_memory: {a.system} wave {wave}: only {held} of {len(keep)} connections "
                  f"still open on the proxy's side", file=sys.stderr)
        t1 = time.monotonic()
        for s in keep:
            s.close()
        wait_for(lambda: server_sockets(a.port) == 0, a.deadline,
                 f"{a.system} to close its side of {len(keep)} connections")
        closed_s = time.monotonic() - t1
        closed = settled_rss_kb(a.pid)
        per_conn = (open_rss - before) / len(keep) if keep else float("nan")
        print(f"{a.system}\t{wave}\t{a.conns}\t{a.conns - len(errors)}\t"
              f"{before}\t{open_rss}\t{closed}\t{per_conn:.2f}\t{opened:.2f}\t{closed_s:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
