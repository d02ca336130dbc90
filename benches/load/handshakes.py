#!/usr/bin/env python3
"""Full TLS handshakes for the load harness's tls_handshake workload (benches/load/run).

Each of C threads, for S seconds: connect to the proxy's TLS listener, complete a full
handshake (a fresh session every time: no ticket or session ID is offered, so the server signs
and runs the whole key exchange), send the CORS preflight with `Connection: close`, read the
answer to the end, and count it. wrk cannot do this: it reconnects with SSL_clear(), which
keeps the session, so every handshake after a connection's first is a resumption.

Prints one line:

    HANDSHAKES ok=N errors=E resumed=R duration_us=D

ok counts 2xx answers; errors counts everything else (other statuses, failed connects,
handshakes, reads); resumed counts handshakes the server resumed, which must be 0.
"""

import argparse
import socket
import ssl
import threading
import time

REQUEST = (
    "OPTIONS /api HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "Origin: {origin}\r\n"
    "Access-Control-Request-Method: POST\r\n"
    "Access-Control-Request-Headers: content-type\r\n"
    "Connection: close\r\n"
    "\r\n"
)


def worker(port, request, deadline, ctx, tally, lock):
    ok = errors = resumed = 0
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as tls:
                    resumed += tls.session_reused
                    tls.sendall(request)
                    answer = b""
                    while chunk := tls.recv(4096):
                        answer += chunk
            status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/") else b""
            if status.startswith(b"2"):
                ok += 1
            else:
                errors += 1
        except (OSError, ssl.SSLError, IndexError):
            errors += 1
    with lock:
        tally["ok"] += ok
        tally["errors"] += errors
        tally["resumed"] += resumed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="the proxy's TLS port")
    ap.add_argument("--origin", default="https://example.com")
    ap.add_argument("--connections", type=int, default=16, help="threads, one connection each")
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()

    # TLS 1.2 and 1.3 as the proxies offer them; no verification (a throwaway certificate).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    request = REQUEST.format(origin=a.origin).encode()
    tally = {"ok": 0, "errors": 0, "resumed": 0}
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + a.seconds
    threads = [
        threading.Thread(target=worker, args=(a.port, request, deadline, ctx, tally, lock))
        for _ in range(a.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration_us = int((time.monotonic() - start) * 1e6)
    print(
        f"HANDSHAKES ok={tally['ok']} errors={tally['errors']} "
        f"resumed={tally['resumed']} duration_us={duration_us}"
    )


if __name__ == "__main__":
    main()
