-- wrk script for the load harness, driven by environment variables so one file serves every
-- HTTP/1.1 workload:
--   BENCH_REQUEST=preflight  OPTIONS /api with the tracker's preflight headers
--   BENCH_REQUEST=post       POST /api with the tracker's createRecord body (BENCH_BODY: file)
--   BENCH_REQUEST=tracker    GET /tracker.js as a browser asks for it (every encoding)
--   BENCH_REQUEST=page_view  a page view's five requests in turn: GET /tracker.js, the
--                            preflight, createRecord and two updateRecord
-- done() prints one machine-readable line; wrk counts answers with status > 399 as errors.
local origin = "https://example.com"
local kind = os.getenv("BENCH_REQUEST") or "preflight"
local browser = "Mozilla/5.0 (X11; Linux x86_64) ackee-gateway-load-harness"
local accept_encoding = "gzip, deflate, br, zstd"

local function body_file()
  local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY not set"), "rb"))
  local b = f:read("*a")
  f:close()
  return b
end

wrk.path = "/api"
wrk.headers["Origin"] = origin
wrk.headers["User-Agent"] = browser

if kind == "preflight" then
  wrk.method = "OPTIONS"
  wrk.headers["Access-Control-Request-Method"] = "POST"
  wrk.headers["Access-Control-Request-Headers"] = "content-type"
elseif kind == "post" then
  wrk.method = "POST"
  wrk.body = body_file()
  wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
elseif kind == "tracker" then
  -- A classic <script src> sends no Origin.
  wrk.headers["Origin"] = nil
  wrk.method = "GET"
  wrk.path = "/tracker.js"
  wrk.headers["Accept-Encoding"] = accept_encoding
elseif kind == "page_view" then
  local record = body_file()
  local update = '{"query":"mutation updateRecord($id: ID!) { updateRecord(id: $id) { success } }","variables":{"id":"3f2b8c1a-9d4e-4b6f-8a7c-5e1d2f3a4b6c"}}'
  local json = { ["Origin"] = origin, ["User-Agent"] = browser,
    ["Content-Type"] = "application/json;charset=UTF-8" }
  local steps
  -- Built at the first request: wrk.format takes the Host from wrk.headers, set up only then.
  local function build()
    return {
      wrk.format("GET", "/tracker.js", { ["User-Agent"] = browser, ["Accept-Encoding"] = accept_encoding }),
      wrk.format("OPTIONS", "/api", { ["Origin"] = origin, ["User-Agent"] = browser,
        ["Access-Control-Request-Method"] = "POST", ["Access-Control-Request-Headers"] = "content-type" }),
      wrk.format("POST", "/api", json, record),
      wrk.format("POST", "/api", json, update),
      wrk.format("POST", "/api", json, update),
    }
  end
  -- The five in turn. wrk hands each request to whichever connection is free (it has no
  -- per-connection state), so a connection sees the five kinds in the same proportions as a
  -- page view, not always in a page view's order; the proxy's CPU per page view is the same.
  local n = 0
  function request()
    steps = steps or build()
    n = n % #steps + 1
    return steps[n]
  end
else
  error("BENCH_REQUEST must be preflight, post, tracker or page_view, not " .. kind)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d bytes=%d duration_us=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
end
