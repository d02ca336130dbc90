#!/usr/bin/env python3
"""Summarise the load harness's TSV files (benches/load/run writes them).

    report.py OUT_DIR             tables for the terminal
    report.py --markdown OUT_DIR  the same as Markdown, for the README's Benchmarks section

OUT_DIR/throughput.tsv: round workload system requests errors seconds rps cpu_ticks cpu_us
                        busy_pct bytes_per_answer upstream_requests upstream_connects
OUT_DIR/memory.tsv:     system wave conns ok rss_before_kb rss_open_kb rss_closed_kb kb_per_conn
                        open_s close_s

For each workload and system: req/s and CPU µs per request, median and range over the rounds.
"core busy" is the median share of its core the proxy used: well below 100% it was waiting
(on the load generator, the upstream or itself), not saturated. The gateway's ratio is its
median CPU µs per request over the best peer's (the lower of nginx's
and HAProxy's medians; over HTTP/3, Caddy's, the only peer there): below 1.00 the gateway does the work with less CPU. Its req/s ratio is
shown too, but the load generator shares a core with the canned upstream, so req/s says less.

The floor (benches/load/floor.rs) is pingora with the gateway's patches doing none of the
gateway's work: its ratio to the best peer is the least any proxy on pingora spends, and the
gateway's ratio to the floor is what the gateway's own code adds.

For tracker_js_*: bytes on the wire per answer (head and body, as the load generator read
them). For page_view (five requests: the tracker, the preflight, createRecord, two
updateRecord): CPU µs per page view, and how many requests reached the canned Ackee per page
view. nginx_docs is nginx as Ackee's documentation sets it up, in page_view only: not a peer.
"""

import csv
import statistics
import sys
from pathlib import Path

WORKLOADS = [
    ("preflight_h1", "preflight answered at the edge, HTTP/1.1 keep-alive"),
    ("post_h1", "tracker POST proxied, HTTP/1.1"),
    ("post_tls", "tracker POST over TLS, HTTP/1.1"),
    ("preflight_h2", "preflight over HTTP/2 (TLS, ALPN h2)"),
    ("post_h2", "POST over HTTP/2, proxied to HTTP/1.1"),
    ("tls_handshake", "full TLS handshake per request (preflight, Connection: close)"),
    ("tracker_js_h1", "GET /tracker.js, every encoding accepted, HTTP/1.1"),
    ("tracker_js_h2", "GET /tracker.js, every encoding accepted, HTTP/2 (TLS)"),
    ("page_view", "a page view: tracker.js, preflight, createRecord, 2 x updateRecord (TLS)"),
    ("preflight_h3", "preflight over HTTP/3 (QUIC)"),
    ("post_h3", "POST over HTTP/3, proxied to HTTP/1.1"),
    ("quic_handshake", "full QUIC handshake per request (preflight)"),
]
SYSTEMS = ["gateway", "nginx", "haproxy", "floor", "caddy", "nginx_docs"]
PAGE_VIEW = 5
# Caddy runs the HTTP/3 workloads only, where it is the only peer.
PEERS = ["nginx", "haproxy", "caddy"]


def read_tsv(path):
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def spread(values, fmt):
    med = statistics.median(values)
    if len(values) == 1:
        return med, fmt.format(med)
    return med, f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def throughput_rows(rows):
    """[(workload, title, [(system, rps_text, cpu_text, cpu_median, rps_median, errors)], ratios)]"""
    out = []
    for key, title in WORKLOADS:
        per = []
        for system in SYSTEMS:
            mine = [r for r in rows if r["workload"] == key and r["system"] == system]
            if not mine:
                continue
            rps_med, rps_txt = spread([float(r["rps"]) for r in mine], "{:,.0f}")
            cpu_med, cpu_txt = spread([float(r["cpu_us"]) for r in mine], "{:.1f}")
            errors = sum(int(r["errors"]) for r in mine)
            busy = statistics.median(float(r["busy_pct"]) for r in mine)
            wire = statistics.median(float(r.get("bytes_per_answer") or 0) for r in mine)
            reached = statistics.median(
                float(r.get("upstream_requests") or 0) / float(r["requests"]) for r in mine)
            per.append((system, rps_txt, cpu_txt, cpu_med, rps_med, errors, busy, wire, reached))
        if not per:
            continue
        by = {p[0]: p for p in per}
        peers = [by[p] for p in PEERS if p in by]
        ratios = None
        if "gateway" in by and peers:
            best_cpu = min(peers, key=lambda p: p[3])
            best_rps = max(peers, key=lambda p: p[4])
            ratios = (by["gateway"][3] / best_cpu[3], best_cpu[0],
                      by["gateway"][4] / best_rps[4], best_rps[0])
        floor = None
        if "floor" in by and peers:
            best_cpu = min(peers, key=lambda p: p[3])
            gateway = by["gateway"][3] / by["floor"][3] if "gateway" in by else None
            floor = (by["floor"][3] / best_cpu[3], best_cpu[0], gateway)
        out.append((key, title, per, ratios, floor))
    return out


def memory_rows(rows):
    out = []
    # In the order the harness ran them: gateway_shipped (the shipped threads) after gateway.
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        if not mine:
            continue
        start = int(mine[0]["rss_before_kb"])
        waves = []
        for r in mine:
            waves.append((int(r["wave"]), float(r["kb_per_conn"]), int(r["rss_open_kb"]),
                          int(r["rss_closed_kb"]), int(r["conns"]), int(r["ok"]),
                          int(r["rss_before_kb"])))
        out.append((system, start, waves))
    return out


def mb(kb):
    return f"{kb / 1024:,.1f}"


def text(out_dir):
    rows = read_tsv(out_dir / "throughput.tsv")
    rounds = len({r["round"] for r in rows})
    if rows:
        print(f"\nThroughput: {rounds} round(s); median (min–max) over the rounds; "
              "CPU is the proxy's utime+stime per 2xx answer.")
    for key, title, per, ratios, floor in throughput_rows(rows):
        print(f"\n== {key}: {title}")
        print(f"   {'system':<10} {'req/s':>28} {'CPU µs/req':>22} {'core busy':>10} {'errors':>7}"
              f" {'to Ackee/req':>12} {'bytes/answer':>12}")
        for system, rps_txt, cpu_txt, _, _, errors, busy, wire, reached in per:
            flag = "  <-- non-2xx or socket errors" if errors else ""
            print(f"   {system:<10} {rps_txt:>28} {cpu_txt:>22} {busy:>9.0f}% {errors:>7}"
                  f" {reached:>12.3f} {wire:>12,.0f}{flag}")
        if key == "page_view":
            for system, _, _, cpu, _, _, _, _, reached in per:
                print(f"   {system}: {cpu * PAGE_VIEW:.1f} µs CPU and {reached * PAGE_VIEW:.2f} "
                      "requests to Ackee per page view")
        if ratios:
            print(f"   gateway CPU/req ÷ best peer ({ratios[1]}): {ratios[0]:.2f}    "
                  f"gateway req/s ÷ best peer ({ratios[3]}): {ratios[2]:.2f}")
        if floor:
            mine = f"    gateway CPU/req ÷ floor: {floor[2]:.2f}" if floor[2] else ""
            print(f"   floor CPU/req ÷ best peer ({floor[1]}): {floor[0]:.2f}{mine}")
    mem = memory_rows(read_tsv(out_dir / "memory.tsv"))
    if mem:
        print("\nIdle keep-alive connections (RSS of the proxy's processes):")
        for system, start, waves in mem:
            for wave, per_conn, open_kb, closed_kb, conns, ok, before in waves:
                bad = f"  ({conns - ok} of {conns} failed)" if ok != conns else ""
                print(f"   {system:<9} wave {wave}: {per_conn:7.2f} kB per idle connection at "
                      f"{conns:,}; RSS {mb(before)} MB before, {mb(open_kb)} MB open, "
                      f"{mb(closed_kb)} MB after close{bad}")


def markdown(out_dir):
    rows = read_tsv(out_dir / "throughput.tsv")
    print("| workload | gateway CPU µs/req ÷ best peer | gateway req/s ÷ best peer "
          "| floor CPU µs/req ÷ best peer | gateway ÷ floor "
          "| CPU µs/req: gateway / nginx / HAProxy / floor / Caddy (medians) |")
    print("|---|---|---|---|---|---|")
    extra = []
    for key, title, per, ratios, floor in throughput_rows(rows):
        by = {p[0]: p for p in per}
        if key.startswith("tracker_js"):
            extra.append(f"| {title} | bytes per answer | " + " / ".join(
                f"{by[s][7]:,.0f}" if s in by else "–" for s in ["gateway", "nginx", "haproxy"]) + " |")
        if key == "page_view":
            extra.append(f"| {title} | CPU µs per page view | " + " / ".join(
                f"{by[s][3] * PAGE_VIEW:.1f}" if s in by else "–"
                for s in ["gateway", "nginx", "haproxy", "nginx_docs"]) + " |")
            extra.append(f"| {title} | requests reaching Ackee per page view | " + " / ".join(
                f"{by[s][8] * PAGE_VIEW:.2f}" if s in by else "–"
                for s in ["gateway", "nginx", "haproxy", "nginx_docs"]) + " |")
        cpus = " / ".join(f"{by[s][3]:.1f}" if s in by else "–" for s in SYSTEMS[:5])
        cols = [f"**{ratios[0]:.2f}** ({ratios[1]})", f"{ratios[2]:.2f} ({ratios[3]})"] \
            if ratios else ["–", "–"]
        cols += [f"{floor[0]:.2f} ({floor[1]})", f"{floor[2]:.2f}" if floor[2] else "–"] \
            if floor else ["–", "–"]
        print(f"| {title} | {' | '.join(cols)} | {cpus} |")
    if extra:
        print()
        print("| workload | what | gateway / nginx / HAProxy (/ nginx as Ackee's docs) |")
        print("|---|---|---|")
        print("\n".join(extra))
    mem = memory_rows(read_tsv(out_dir / "memory.tsv"))
    if mem:
        print()
        print("| idle keep-alive connections | kB per connection, wave by wave "
              "| RSS at start → after each wave closed |")
        print("|---|---|---|")
        for system, start, waves in mem:
            per = " / ".join(f"{w[1]:.1f}" for w in waves)
            after = " → ".join(f"{mb(w[3])} MB" for w in waves)
            print(f"| {system} | {per} | {mb(start)} MB → {after} |")


def main():
    args = sys.argv[1:]
    md = "--markdown" in args
    args = [a for a in args if a != "--markdown"]
    if len(args) != 1:
        sys.exit(__doc__)
    (markdown if md else text)(Path(args[0]))


if __name__ == "__main__":
    main()
