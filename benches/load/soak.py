#!/usr/bin/python3
"""Soak of ackee-gateway (benches/load/soak): a long, mixed, changing load, and whether the
gateway stays flat under it.

Starts the canned Ackee (a separate nginx, benches/load/conf/upstream-nginx.conf) and the
gateway (benches/load/conf/soak-gateway.yaml), then for --minutes runs, all at once and each
at a steady rate:

  preflight_h1   CORS preflights over HTTP/1.1 keep-alive connections
  post_h1        tracker POSTs (createRecord) over HTTP/1.1 keep-alive connections
  post_tls       the same over HTTPS (HTTP/1.1)
  h2             a preflight and a POST as two concurrent streams, over HTTP/2 connections
  handshake      a new TLS connection with a full handshake (no resumption) per preflight,
                 `Connection: close`
  waves          every --wave-seconds, idle connections opened and dropped: plain TCP that
                 sends nothing, TLS that sends nothing after its handshake, and HTTP/2 that
                 sends its preface and SETTINGS and nothing more; held half the period, closed

and restarts the replica (stop, a few seconds down, start) every --restart-minutes.

Every 2 s it reads the gateway's RSS (VmRSS) and open descriptors (/proc/PID/fd). Per minute
it reports requests, p50 and p99 latency, answers other than 2xx by status, failed requests
(no answer: reset, closed, timeout), the median RSS and descriptors of the samples taken
between waves (no idle connection open for 2 s: what the steady load alone holds, the same
every minute, where a leak shows) and their peaks with a wave open. The run passes when,
comparing the last minute with the first minute after the warm-up, RSS and descriptors are
within 10%, no answer other than 2xx appears except 502 and 503 while the replica restarts
(from its stop until --grace-seconds after its start), no request fails without an answer,
and once the load has stopped the gateway counts no connection open
(`ackee_gateway_connections` back to 0).

Needs Debian's python3-h2 (the HTTP/2 client), nginx and openssl.
"""

import argparse
import array
import asyncio
import collections
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGIN = "https://example.com"
# A browser's user agent, as benches/load/run sends: the gateway answers a bot's tracker writes
# itself (visits.ignore_bots, on by default), and the soak's writes must reach the replica.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) ackee-gateway-soak"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- what was seen --------------------------------------------------------------------------


class Tally:
    """Every request's outcome, by minute since the start of the load."""

    def __init__(self, t0):
        self.t0 = t0
        self.latency = collections.defaultdict(lambda: array.array("f"))
        self.statuses = collections.defaultdict(collections.Counter)
        self.failures = collections.defaultdict(collections.Counter)
        self.samples = collections.defaultdict(list)
        # (stopped, started) monotonic times of each replica restart.
        self.restarts = []
        self.outside = collections.Counter()
        # Whether idle connections of a wave are open, and when the last wave was closed.
        self.wave_open = False
        self.wave_closed_at = t0

    def minute(self, t):
        return int((t - self.t0) // 60)

    def in_restart(self, t, grace):
        return any(stop <= t <= (start or t) + grace for stop, start in self.restarts)

    def answer(self, kind, status, started, grace):
        now = time.monotonic()
        m = self.minute(now)
        self.latency[m].append(now - started)
        self.statuses[m][status] += 1
        if not 200 <= status < 300:
            if not (status in (502, 503) and self.in_restart(now, grace)):
                self.outside[f"{kind} {status}"] += 1

    def failure(self, kind, why):
        now = time.monotonic()
        self.failures[self.minute(now)][f"{kind}: {why}"] += 1
        self.outside[f"{kind} failed: {why}"] += 1


# --- HTTP/1.1 -------------------------------------------------------------------------------


def h1_request(method, body=b"", close=False):
    head = [
        f"{method} /api HTTP/1.1",
        "Host: localhost",
        f"Origin: {ORIGIN}",
        f"User-Agent: {BROWSER_UA}",
    ]
    if method == "OPTIONS":
        head += ["Access-Control-Request-Method: POST", "Access-Control-Request-Headers: content-type"]
    if body:
        head += ["Content-Type: application/json;charset=UTF-8", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader):
    """(status, whether the server closes the connection after it)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed before an answer")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip().lower()
    close = headers.get(b"connection") == b"close"
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304) and status >= 200:
        await reader.read()
        close = True
    return status, close


async def next_due(due, interval):
    """Waits until the next request of a steady rate is due and returns when that is; a worker
    that fell behind starts again from now instead of sending a burst to catch up."""
    due += interval
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
        return due
    return time.monotonic()


async def h1_worker(kind, args, port, tls, request, tally, stop):
    ctx = client_context(args, ["http/1.1"]) if tls else None
    reader = writer = None
    interval = 1.0 / args.rate
    due = time.monotonic()
    while not stop.is_set():
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if tls else None
                    ),
                    10,
                )
            started = time.monotonic()
            writer.write(request)
            status, close = await asyncio.wait_for(read_response(reader), 30)
            tally.answer(kind, status, started, args.grace_seconds)
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            tally.failure(kind, type(e).__name__)
            if writer is not None:
                writer.close()
            writer = None
        due = await next_due(due, interval)
    if writer is not None:
        writer.close()


async def handshake_worker(args, port, tally, stop):
    """A full TLS handshake per preflight: asyncio never offers a session for resumption."""
    ctx = client_context(args, ["http/1.1"])
    interval = 1.0 / args.rate
    due = time.monotonic()
    request = h1_request("OPTIONS", close=True)
    while not stop.is_set():
        writer = None
        try:
            started = time.monotonic()
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 10
            )
            if writer.get_extra_info("ssl_object").session_reused:
                raise ValueError("resumed")
            writer.write(request)
            status, _ = await asyncio.wait_for(read_response(reader), 30)
            tally.answer("handshake", status, started, args.grace_seconds)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            tally.failure("handshake", type(e).__name__)
        finally:
            if writer is not None:
                writer.close()
        due = await next_due(due, interval)


# --- HTTP/2 ---------------------------------------------------------------------------------


class H2Client:
    """One HTTP/2 connection with concurrent streams, on python3-h2."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.writer.write(self.conn.data_to_send())
        self.pending = {}
        self.status = {}
        self.closed = False
        self.task = asyncio.create_task(self.read_loop())

    async def read_loop(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for ev in self.conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        self.status[ev.stream_id] = int(dict(ev.headers)[":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        fut = self.pending.pop(ev.stream_id, None)
                        if fut and not fut.done():
                            fut.set_result(self.status.pop(ev.stream_id, 0))
                    elif isinstance(ev, h2.events.StreamReset):
                        fut = self.pending.pop(ev.stream_id, None)
                        if fut and not fut.done():
                            fut.set_exception(ConnectionError(f"stream reset {ev.error_code}"))
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        self.closed = True
                self.writer.write(self.conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError) as e:
            why = e
        else:
            why = ConnectionError("connection closed")
        self.closed = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(why)
        self.pending.clear()

    async def request(self, method, body=b""):
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":path", "/api"),
            (":scheme", "https"),
            (":authority", "localhost"),
            ("origin", ORIGIN),
            ("user-agent", BROWSER_UA),
        ]
        if method == "OPTIONS":
            headers += [("access-control-request-method", "POST"), ("access-control-request-headers", "content-type")]
        if body:
            headers += [("content-type", "application/json;charset=UTF-8"), ("content-length", str(len(body)))]
        fut = asyncio.get_running_loop().create_future()
        self.pending[sid] = fut
        self.conn.send_headers(sid, headers, end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)
        self.writer.write(self.conn.data_to_send())
        return await fut

    def close(self):
        self.task.cancel()
        self.writer.close()


async def h2_worker(args, port, body, tally, stop):
    ctx = client_context(args, ["h2"])
    client = None
    interval = 1.0 / args.rate
    due = time.monotonic()
    while not stop.is_set():
        try:
            if client is None or client.closed:
                if client is not None:
                    client.close()
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 10
                )
                client = H2Client(reader, writer)
            started = time.monotonic()
            for status in await asyncio.wait_for(
                asyncio.gather(client.request("OPTIONS"), client.request("POST", body)), 30
            ):
                tally.answer("h2", status, started, args.grace_seconds)
        except (OSError, asyncio.TimeoutError, h2.exceptions.ProtocolError, KeyError) as e:
            tally.failure("h2", type(e).__name__)
            if client is not None:
                client.close()
            client = None
        due = await next_due(due, interval)
    if client is not None:
        client.close()


# --- idle waves -----------------------------------------------------------------------------


async def idle_one(kind, args, plain, tls):
    if kind == "plain":
        return await asyncio.open_connection("127.0.0.1", plain)
    alpn = ["h2"] if kind == "h2" else ["http/1.1"]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tls, ssl=client_context(args, alpn), server_hostname="localhost"
    )
    if kind == "h2":
        writer.write(PREFACE + EMPTY_SETTINGS)
    return reader, writer


async def waves(args, plain, tls, tally, stop):
    n = 0
    while not stop.is_set():
        n += 1
        opened = []
        tally.wave_open = True
        kinds = ["plain", "tls", "h2"] * args.wave_conns
        results = await asyncio.gather(*(idle_one(k, args, plain, tls) for k in kinds), return_exceptions=True)
        for kind, r in zip(kinds, results):
            if isinstance(r, BaseException):
                tally.failure(f"wave {kind}", type(r).__name__)
            else:
                opened.append(r[1])
        try:
            await asyncio.wait_for(stop.wait(), args.wave_seconds / 2)
        except asyncio.TimeoutError:
            pass
        for w in opened:
            w.close()
        tally.wave_open = False
        tally.wave_closed_at = time.monotonic()
        try:
            await asyncio.wait_for(stop.wait(), args.wave_seconds / 2)
        except asyncio.TimeoutError:
            pass


# --- processes ------------------------------------------------------------------------------


def client_context(args, alpn):
    ctx = ssl.create_default_context(cafile=args.cert)
    ctx.set_alpn_protocols(alpn)
    return ctx


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def render(template, out, **values):
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    if re.search(r"@[A-Z_]+@", text):
        raise SystemExit(f"unfilled placeholder in {out}")
    with open(out, "w") as f:
        f.write(text)


def wait_port(port, proc, what, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start-up (see the logs in the output directory)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} does not listen on {port} after {limit} s")


def make_static(work):
    """Ackee's static files for the canned Ackee, which the gateway copies at start-up (its
    `assets` default): the real tracker if tests/browser has it, small stand-ins otherwise. The
    soak does not ask for them; they are there so the gateway runs as shipped."""
    os.chmod(work, 0o711)  # nginx's workers run as another user when the soak runs as root
    static = os.path.join(work, "static")
    os.makedirs(static, mode=0o755)
    tracker = os.path.join(HERE, "..", "..", "tests", "browser", "node_modules", "ackee-tracker", "dist", "ackee-tracker.min.js")
    files = {
        "tracker.js": open(tracker, "rb").read() if os.path.exists(tracker) else b"/* ackee-tracker */\n" * 1000,
        "index.html": b"<!DOCTYPE html><html><head><title>Ackee</title></head><body><script src=index.js></script></body></html>",
        "index.js": b"function ackee(){return null};\n" * 2000,
        "index.css": b"body{margin:0}\n" * 2000,
        "favicon.ico": bytes(range(256)) * 64,
    }
    for name, data in files.items():
        with open(os.path.join(static, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(static, name), 0o644)


class Upstream:
    def __init__(self, work, port, status_port, logs):
        self.work, self.port, self.logs = work, port, logs
        make_static(work)
        render("upstream-nginx.conf", f"{work}/upstream-nginx.conf", DIR=work, NOFILE=4096,
               UPSTREAM_PORT=port, STATUS_PORT=status_port)
        self.proc = None

    def start(self):
        log_file = open(f"{self.logs}/upstream.log", "ab")
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.work, "-e", f"{self.logs}/upstream-error.log", "-c", f"{self.work}/upstream-nginx.conf"],
            stdout=log_file,
            stderr=log_file,
        )
        wait_port(self.port, self.proc, "the canned Ackee")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def restarts(args, upstream, tally, stop):
    period = args.restart_minutes * 60
    k = 0
    while True:
        k += 1
        due = tally.t0 + k * period
        if due >= tally.t0 + args.minutes * 60:
            return
        try:
            await asyncio.wait_for(stop.wait(), max(0, due - time.monotonic()))
            return
        except asyncio.TimeoutError:
            pass
        stopped = time.monotonic()
        tally.restarts.append((stopped, None))
        log(f"restart {k}: stopping the replica")
        await asyncio.to_thread(upstream.stop)
        await asyncio.sleep(args.down_seconds)
        await asyncio.to_thread(upstream.start)
        tally.restarts[-1] = (stopped, time.monotonic())
        log(f"restart {k}: the replica is up again")


async def sampler(pid, tally, stop):
    """RSS and descriptors every 2 s, each marked quiet when no wave has been open for 2 s
    (the gateway has closed its side of the last wave's connections by then)."""
    while not stop.is_set():
        now = time.monotonic()
        quiet = not tally.wave_open and now - tally.wave_closed_at >= 2
        tally.samples[tally.minute(now)].append((rss_kb(pid), open_fds(pid), quiet))
        try:
            await asyncio.wait_for(stop.wait(), 2)
        except asyncio.TimeoutError:
            pass


# --- the run --------------------------------------------------------------------------------


async def load(args, ports, pid, upstream, tally):
    """Runs the load for --minutes, or until SIGINT or SIGTERM; True if it was interrupted."""
    stop = asyncio.Event()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    plain, tls = ports
    body = open(os.path.join(HERE, "createRecord.json"), "rb").read()
    tasks = [asyncio.create_task(sampler(pid, tally, stop))]
    for _ in range(args.h1_conns):
        tasks.append(asyncio.create_task(h1_worker("preflight_h1", args, plain, False, h1_request("OPTIONS"), tally, stop)))
        tasks.append(asyncio.create_task(h1_worker("post_h1", args, plain, False, h1_request("POST", body), tally, stop)))
    for _ in range(args.tls_conns):
        tasks.append(asyncio.create_task(h1_worker("post_tls", args, tls, True, h1_request("POST", body), tally, stop)))
    for _ in range(args.h2_conns):
        tasks.append(asyncio.create_task(h2_worker(args, tls, body, tally, stop)))
    for _ in range(args.handshakers):
        tasks.append(asyncio.create_task(handshake_worker(args, tls, tally, stop)))
    tasks.append(asyncio.create_task(waves(args, plain, tls, tally, stop)))
    tasks.append(asyncio.create_task(restarts(args, upstream, tally, stop)))
    end = tally.t0 + args.minutes * 60
    last = -1
    while time.monotonic() < end and not interrupted.is_set():
        try:
            await asyncio.wait_for(interrupted.wait(), 1)
        except asyncio.TimeoutError:
            pass
        m = tally.minute(time.monotonic())
        if m != last and m > 0:
            report_minute(tally, m - 1)
            last = m
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return interrupted.is_set()


def minute_row(tally, m):
    lat = sorted(tally.latency.get(m, []))
    samples = tally.samples.get(m, [])
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    statuses = tally.statuses.get(m, collections.Counter())
    other = {s: n for s, n in sorted(statuses.items()) if not 200 <= s < 300}
    restart = any(tally.minute(stop) == m for stop, _ in tally.restarts)
    quiet = [s for s in samples if s[2]] or samples
    return {
        "minute": m + 1,
        "requests": len(lat),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "non_2xx": " ".join(f"{s}:{n}" for s, n in other.items()) or "-",
        "failed": sum(tally.failures.get(m, {}).values()),
        # Between waves: what the gateway holds for the steady load alone.
        "rss_kb": round(statistics.median(s[0] for s in quiet)) if quiet else 0,
        "fds": round(statistics.median(s[1] for s in quiet)) if quiet else 0,
        # With a wave's idle connections open too.
        "peak_rss_kb": max(s[0] for s in samples) if samples else 0,
        "peak_fds": max(s[1] for s in samples) if samples else 0,
        "restart": "yes" if restart else "",
    }


def report_minute(tally, m):
    r = minute_row(tally, m)
    log(
        f"minute {r['minute']:>2}: {r['requests']:>6} requests, p99 {r['p99_ms']:.1f} ms, "
        f"non-2xx {r['non_2xx']}, failed {r['failed']}, RSS {r['rss_kb'] / 1024:.1f} MB "
        f"({r['peak_rss_kb'] / 1024:.1f} with a wave open), {r['fds']:.0f} fds ({r['peak_fds']})"
        f"{' (replica restarted)' if r['restart'] else ''}"
    )


def verdict(args, tally, out):
    rows = [minute_row(tally, m) for m in range(args.minutes)]
    cols = ["minute", "requests", "p50_ms", "p99_ms", "non_2xx", "failed", "rss_kb", "fds",
            "peak_rss_kb", "peak_fds", "restart"]
    with open(os.path.join(out, "soak.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n")
    base, last = rows[args.warmup_minutes], rows[-1]
    problems = []
    for key, name in (("rss_kb", "RSS"), ("fds", "open descriptors")):
        ratio = last[key] / base[key] if base[key] else float("inf")
        line = f"{name}: minute {base['minute']} {base[key]:.0f}, minute {last['minute']} {last[key]:.0f} ({(ratio - 1) * 100:+.1f}%)"
        print(line)
        if abs(ratio - 1) > 0.10:
            problems.append(line + ", more than 10% apart")
    total = sum(r["requests"] for r in rows)
    print(f"requests: {total} answered over {args.minutes} minutes; {len(tally.restarts)} replica restarts")
    for what, n in sorted(tally.outside.items()):
        problems.append(f"{n} x {what} outside a replica restart")
    if problems:
        print("FAIL")
        for p in problems:
            print(f"  {p}")
        return 1
    print("PASS: RSS and descriptors at the end within 10% of the first minute after warm-up; no answer but the restarts' 502/503")
    return 0


def markdown(out):
    with open(os.path.join(out, "soak.tsv")) as f:
        rows = [l.rstrip("\n").split("\t") for l in f]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for r in rows[1:]:
        print("| " + " | ".join(r) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway-bin", required=False)
    ap.add_argument("--out")
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--warmup-minutes", type=int, default=1)
    ap.add_argument("--restart-minutes", type=float, default=5)
    ap.add_argument("--down-seconds", type=float, default=3)
    ap.add_argument("--grace-seconds", type=float, default=20,
                    help="502/503 are the restart's until this long after the replica is up again")
    ap.add_argument("--rate", type=float, default=20, help="requests a second per connection (and per handshaker)")
    ap.add_argument("--h1-conns", type=int, default=8, help="plain HTTP/1.1 connections for preflights, and as many for POSTs")
    ap.add_argument("--tls-conns", type=int, default=4)
    ap.add_argument("--h2-conns", type=int, default=4)
    ap.add_argument("--handshakers", type=int, default=1)
    ap.add_argument("--wave-seconds", type=float, default=20)
    ap.add_argument("--wave-conns", type=int, default=100, help="idle connections of each kind per wave")
    ap.add_argument("--markdown", metavar="DIR", help="print DIR/soak.tsv as a Markdown table and exit")
    args = ap.parse_args()
    if args.markdown:
        markdown(args.markdown)
        return 0
    if not args.gateway_bin or not args.out:
        ap.error("--gateway-bin and --out are required")
    if args.minutes <= args.warmup_minutes:
        ap.error("--minutes must be more than --warmup-minutes")
    os.makedirs(args.out, exist_ok=True)
    logs = os.path.join(args.out, "logs")
    os.makedirs(logs, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ackee-soak.")
    args.cert = f"{work}/cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", f"{work}/key.pem", "-out", args.cert],
        check=True, capture_output=True,
    )
    up_port, status_port, plain, tls, metrics = free_ports(5)
    upstream = Upstream(work, up_port, status_port, logs)
    conf = f"{work}/gateway.yaml"
    render("soak-gateway.yaml", conf, DIR=work, PLAIN_PORT=plain, TLS_PORT=tls,
           METRICS_PORT=metrics, UPSTREAM_PORT=up_port)
    subprocess.run(["cp", conf, os.path.join(args.out, "gateway.yaml")], check=True)
    gw = None
    try:
        upstream.start()
        gw_log = open(f"{logs}/gateway.log", "wb")
        gw = subprocess.Popen([args.gateway_bin, "-c", conf], stdout=subprocess.DEVNULL, stderr=gw_log)
        wait_port(plain, gw, "the gateway")
        wait_port(tls, gw, "the gateway")
        log(f"up: gateway pid {gw.pid} on :{plain} and :{tls}, metrics :{metrics}, replica :{up_port}; "
            f"{args.minutes} minutes, the replica restarted every {args.restart_minutes:g}")
        tally = Tally(time.monotonic())
        if asyncio.run(load(args, (plain, tls), gw.pid, upstream, tally)):
            print("interrupted: no verdict")
            return 130
        if gw.poll() is not None:
            print(f"FAIL: the gateway exited with {gw.returncode}")
            return 1
        # Every connection the load opened is closed now: the gateway's count must come back
        # to 0, or it leaked a count (and would refuse connections it has room for).
        deadline = time.monotonic() + 15
        while True:
            scrape = subprocess.run(["curl", "-s", f"http://127.0.0.1:{metrics}/metrics"],
                                    capture_output=True, text=True).stdout
            open_now = [l for l in scrape.splitlines() if l.startswith("ackee_gateway_connections ")]
            if open_now == ["ackee_gateway_connections 0"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        with open(os.path.join(args.out, "metrics.txt"), "w") as f:
            f.write(scrape)
        for line in scrape.splitlines():
            if line.startswith(("ackee_gateway_limit_rejections_total", "ackee_gateway_connections")):
                print(line)
        if open_now != ["ackee_gateway_connections 0"]:
            tally.outside[f"connections still counted after the load: {open_now}"] += 1
        return verdict(args, tally, args.out)
    finally:
        if gw is not None and gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gw.kill()
        upstream.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
