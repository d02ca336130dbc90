"""An independent HTTP/3 client for the gateway's tests, on aioquic.

Run with the Python of the virtual environment the test command creates (README, Quick
start). It reads one job as JSON from its first argument and prints one JSON result:

    {"host": "127.0.0.1", "port": 8443, "server_name": "localhost", "ca": "ca.pem",
     "mode": "requests", "requests": [{"method": "OPTIONS", "path": "/api",
     "headers": [["origin", "https://example.com"]], "body": ""}]}

Modes:
- requests: the requests, one after another on one connection; with "parallel": true all at
  once. Each response: status, headers (in order, lowercase names), body, or the stream's
  reset code. Also: the handshake's cipher suite, whether the server asked for a retry, and
  how the connection was closed.
- headers_flood: a request stream whose HEADERS frame declares `declared` bytes; `send`
  bytes of it are sent in 16 KiB pieces. Reports what stopped it.
- qpack_dynamic: a header block that refers to the QPACK dynamic table, after an encoder
  instruction that sets its capacity to `capacity`.
- frame: raw `frame_type`/`payload` frames as the first frame of a request stream, or
  `on_control` on a new second control stream.
- rapid_reset: `count` requests each reset right after its HEADERS; reports how many were
  sent before the connection closed and how.
- load: `workers` connections sending `request` for `seconds` (or until `stop_file` exists),
  each opening a new connection when its connection goes away. Counts answers by status,
  requests refused before processing (GOAWAY, H3_REQUEST_REJECTED) and failures of requests
  the server had accepted.
- handshakes: `count` full handshakes, one request each (`request`), from `threads` clients;
  no session or token is reused.
"""

import asyncio
import json
import ssl
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    StopSendingReceived,
    StreamReset,
)
from aioquic.tls import CipherSuite

H3_REQUEST_REJECTED = 0x10B
H3_REQUEST_CANCELLED = 0x10C


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.streams = {}
        self.closed = None
        self.cipher = None
        self.goaway = False
        self.stopped = {}
        self.terminated = asyncio.Event()

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.closed = {"error_code": event.error_code, "reason": event.reason_phrase}
            self.terminated.set()
            for s in self.streams.values():
                if not s["done"].done():
                    s["done"].set_result(None)
        if isinstance(event, StopSendingReceived):
            self.stopped[event.stream_id] = event.error_code
        if isinstance(event, StreamReset):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s["reset"] = event.error_code
                if not s["done"].done():
                    s["done"].set_result(None)
        try:
            events = self.h3.handle_event(event)
        except Exception as e:  # the server broke HTTP/3
            events = []
            self.closed = {"error_code": -1, "reason": f"client error: {e}"}
        for e in events:
            s = self.streams.get(getattr(e, "stream_id", None))
            if s is None:
                continue
            if isinstance(e, HeadersReceived):
                s["headers"].extend((k.decode(), v.decode()) for k, v in e.headers)
            if isinstance(e, DataReceived):
                s["body"] += e.data
            if getattr(e, "stream_ended", False) and not s["done"].done():
                s["done"].set_result(None)

    def start(self, method, path, headers, body, authority):
        sid = self._quic.get_next_available_stream_id()
        fut = asyncio.get_running_loop().create_future()
        self.streams[sid] = {"headers": [], "body": b"", "done": fut, "reset": None}
        head = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ] + [(k.lower().encode(), v.encode()) for k, v in headers]
        self.h3.send_headers(sid, head, end_stream=not body)
        if body:
            self.h3.send_data(sid, body, end_stream=True)
        self.transmit()
        return sid

    def result(self, sid):
        s = self.streams[sid]
        status = None
        headers = []
        for k, v in s["headers"]:
            if k == ":status":
                status = int(v)
            else:
                headers.append([k, v])
        return {
            "status": status,
            "headers": headers,
            "body": s["body"].decode("utf-8", "replace"),
            "reset": s["reset"],
            "stopped": self.stopped.get(sid),
        }


def configuration(job):
    conf = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    conf.server_name = job.get("server_name", "localhost")
    if job.get("ca"):
        conf.load_verify_locations(job["ca"])
    else:
        conf.verify_mode = ssl.CERT_NONE
    if job.get("cipher"):
        conf.cipher_suites = [CipherSuite[job["cipher"]]]
    conf.idle_timeout = job.get("idle_timeout", 10.0)
    return conf


def authority(job):
    return job.get("authority", f"{job.get('server_name', 'localhost')}:{job['port']}")


async def open_client(job):
    return connect(
        job["host"],
        job["port"],
        configuration=configuration(job),
        create_protocol=Client,
        wait_connected=True,
    )


def body_of(req):
    b = req.get("body", "")
    return b.encode() if isinstance(b, str) else bytes(b)


async def requests_mode(job):
    timeout = job.get("timeout", 10)
    async with await open_client(job) as c:
        out = {
            "cipher": None,
            "retry": c._quic._retry_count > 0,
            "responses": [],
            # What the server's transport parameters allow: request streams at once.
            "max_streams_bidi": c._quic._remote_max_streams_bidi,
            "peer_certificate": None,
        }
        suite = getattr(c._quic.tls, "key_schedule", None)
        if suite is not None:
            out["cipher"] = suite.cipher_suite.name
        cert = getattr(c._quic.tls, "_peer_certificate", None)
        if cert is not None:
            from cryptography.hazmat.primitives.serialization import Encoding

            out["peer_certificate"] = cert.public_bytes(Encoding.DER).hex()
        reqs = job["requests"]
        if job.get("parallel"):
            sids = [
                c.start(r.get("method", "GET"), r["path"], r.get("headers", []), body_of(r), authority(job))
                for r in reqs
            ]
            await asyncio.wait_for(
                asyncio.gather(*(c.streams[s]["done"] for s in sids)), timeout
            )
            out["responses"] = [c.result(s) for s in sids]
        else:
            for r in reqs:
                sid = c.start(r.get("method", "GET"), r["path"], r.get("headers", []), body_of(r), authority(job))
                await asyncio.wait_for(c.streams[sid]["done"], timeout)
                out["responses"].append(c.result(sid))
        if job.get("wait_close"):
            try:
                await asyncio.wait_for(c.terminated.wait(), job["wait_close"])
            except asyncio.TimeoutError:
                pass
        out["closed"] = c.closed
        return out


def varint(n):
    b = Buffer(capacity=8)
    b.push_uint_var(n)
    return b.data


async def wait_outcome(c, sid, seconds, close_wait=1.0):
    """Waits until the stream is reset or stopped or the connection closes; then a moment
    more for the connection to close, when that is what the server does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = c.streams.get(sid)
        if c.closed or (s and (s["reset"] is not None or s["done"].done())) or sid in c.stopped:
            break
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(c.terminated.wait(), close_wait)
    except asyncio.TimeoutError:
        pass


def outcome(c, sid):
    s = c.streams.get(sid, {})
    return {
        "closed": c.closed,
        "reset": s.get("reset"),
        "stopped": c.stopped.get(sid),
        "status": next((int(v) for k, v in s.get("headers", []) if k == ":status"), None),
    }


async def headers_flood(job):
    async with await open_client(job) as c:
        sid = c._quic.get_next_available_stream_id()
        fut = asyncio.get_running_loop().create_future()
        c.streams[sid] = {"headers": [], "body": b"", "done": fut, "reset": None}
        # A HEADERS frame (type 1) that declares more than anyone will send.
        c._quic.send_stream_data(sid, varint(1) + varint(job["declared"]))
        sent = 0
        piece = b"a" * 16384
        while sent < job["send"] and not c.closed and sid not in c.stopped and c.streams[sid]["reset"] is None:
            try:
                c._quic.send_stream_data(sid, piece)
            except Exception:
                break
            sent += len(piece)
            c.transmit()
            await asyncio.sleep(0.001)
        await wait_outcome(c, sid, 5)
        r = outcome(c, sid)
        r["sent"] = sent
        return r


async def qpack_dynamic(job):
    async with await open_client(job) as c:
        # The client's QPACK encoder stream (aioquic opened it: type 0x02); "Set Dynamic
        # Table Capacity" is 001xxxxx with a 5-bit prefix integer.
        cap = job.get("capacity", 65536)
        instr = encode_prefixed(cap, 5, 0x20)
        c._quic.send_stream_data(c.h3._local_encoder_stream_id, instr)
        sid = c._quic.get_next_available_stream_id()
        fut = asyncio.get_running_loop().create_future()
        c.streams[sid] = {"headers": [], "body": b"", "done": fut, "reset": None}
        # Required Insert Count 1 (encoded 2), base 0, then an indexed field line that
        # refers to dynamic entry 0.
        block = bytes([0x02, 0x00, 0x80])
        c._quic.send_stream_data(sid, varint(1) + varint(len(block)) + block, end_stream=True)
        c.transmit()
        await wait_outcome(c, sid, 5)
        return outcome(c, sid)


def encode_prefixed(value, bits, flags):
    limit = (1 << bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def frame_mode(job):
    async with await open_client(job) as c:
        payload = bytes.fromhex(job.get("payload", ""))
        frame = varint(job["frame_type"]) + varint(len(payload)) + payload
        if job.get("on_control"):
            sid = c._quic.get_next_available_stream_id(is_unidirectional=True)
            c._quic.send_stream_data(sid, varint(0x00) + frame)
        else:
            sid = c._quic.get_next_available_stream_id()
            c._quic.send_stream_data(sid, frame, end_stream=True)
        fut = asyncio.get_running_loop().create_future()
        c.streams[sid] = {"headers": [], "body": b"", "done": fut, "reset": None}
        c.transmit()
        await wait_outcome(c, sid, 5)
        return outcome(c, sid)


async def rapid_reset(job):
    async with await open_client(job) as c:
        sent = 0
        for _ in range(job["count"]):
            if c.closed:
                break
            try:
                sid = c.start("POST", "/api", [["content-type", "application/json"]], b"", authority(job))
            except Exception:
                break
            c._quic.reset_stream(sid, H3_REQUEST_CANCELLED)
            c._quic.stop_stream(sid, H3_REQUEST_CANCELLED)
            c.transmit()
            sent += 1
            await asyncio.sleep(0.002)
        try:
            await asyncio.wait_for(c.terminated.wait(), 3)
        except asyncio.TimeoutError:
            pass
        return {"sent": sent, "closed": c.closed}


async def load(job):
    counts = {"ok": 0, "rejected": 0, "failed": 0, "connections": 0}
    statuses = {}
    failures = []
    deadline = time.monotonic() + job.get("seconds", 5)
    stop_file = job.get("stop_file")
    req = job["request"]

    def stopped():
        if time.monotonic() > deadline:
            return True
        if stop_file:
            try:
                open(stop_file).close()
                return True
            except OSError:
                return False
        return False

    async def worker():
        while not stopped():
            try:
                client = await asyncio.wait_for(open_client(job), 5)
                c = await asyncio.wait_for(client.__aenter__(), 5)
            except Exception:
                # No connection: nothing was accepted; try again.
                await asyncio.sleep(0.05)
                continue
            counts["connections"] += 1
            try:
                while not stopped() and not c.closed:
                    try:
                        sid = c.start(req.get("method", "GET"), req["path"], req.get("headers", []), body_of(req), authority(job))
                    except Exception:
                        break
                    try:
                        await asyncio.wait_for(c.streams[sid]["done"], 10)
                    except asyncio.TimeoutError:
                        pass
                    r = c.result(sid)
                    if r["status"] is not None and r["reset"] is None:
                        counts["ok"] += 1
                        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
                    elif r["reset"] == H3_REQUEST_REJECTED or (r["status"] is None and c.closed and c.closed["error_code"] in (0x100, 0)):
                        # Refused before any processing: a client sends it again elsewhere.
                        counts["rejected"] += 1
                        break
                    else:
                        counts["failed"] += 1
                        if len(failures) < 10:
                            failures.append({"result": r, "closed": c.closed})
                        break
            finally:
                try:
                    c.close()
                    await asyncio.wait_for(client.__aexit__(None, None, None), 3)
                except Exception:
                    pass

    await asyncio.gather(*(worker() for _ in range(job.get("workers", 4))))
    return {"counts": counts, "statuses": statuses, "failures": failures}


async def handshakes(job):
    done = {"ok": 0, "failed": 0}
    per = job["count"] // job.get("threads", 1)
    req = job["request"]

    async def one_client():
        for _ in range(per):
            try:
                async with await open_client(job) as c:
                    sid = c.start(req.get("method", "GET"), req["path"], req.get("headers", []), body_of(req), authority(job))
                    await asyncio.wait_for(c.streams[sid]["done"], 10)
                    r = c.result(sid)
                    ok = r["status"] is not None and 200 <= r["status"] < 300
                    done["ok" if ok else "failed"] += 1
            except Exception:
                done["failed"] += 1

    start = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(job.get("threads", 1))))
    done["seconds"] = time.monotonic() - start
    return done


MODES = {
    "requests": requests_mode,
    "headers_flood": headers_flood,
    "qpack_dynamic": qpack_dynamic,
    "frame": frame_mode,
    "rapid_reset": rapid_reset,
    "load": load,
    "handshakes": handshakes,
}


def main():
    job = json.loads(sys.argv[1])
    try:
        result = asyncio.run(MODES[job.get("mode", "requests")](job))
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
