-- wrk script for the load harness, driven by environment variables so one file serves every
-- HTTP/1.1 workload:
--   BENCH_REQUEST=preflight  OPTIONS /api with the tracker's preflight headers
--   BENCH_REQUEST=post       POST /api with the tracker's createRecord body (BENCH_BODY: file)
-- done() prints one machine-readable line; wrk counts answers with status > 399 as errors.
local origin = "https://example.com"
local kind = os.getenv("BENCH_REQUEST") or "preflight"

wrk.path = "/api"
wrk.headers["Origin"] = origin
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) ackee-gateway-load-harness"

if kind == "preflight" then
  wrk.method = "OPTIONS"
  wrk.headers["Access-Control-Request-Method"] = "POST"
  wrk.headers["Access-Control-Request-Headers"] = "content-type"
elseif kind == "post" then
  local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY not set"), "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
else
  error("BENCH_REQUEST must be preflight or post, not " .. kind)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
end
