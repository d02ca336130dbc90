// Drives Debian's Chromium with playwright-core for tests/browser.rs: one browser launch, then
// each visit in a fresh page, in order. Never downloads a browser.
//
//   node drive.mjs CONFIG.json
//
// CONFIG: { chromium, args (more Chromium flags), userDataDir, result, timeoutMs,
//          visits: [{ name, url, userAgent?, clockMs? }] }
// userAgent: the page's user agent (navigator.userAgent and every request), through DevTools;
// without it, Chromium's own (headless: "HeadlessChrome/..."). clockMs: the page runs on
// Playwright's fake clock, advanced by that much once the page is done (the tracker's
// updateRecord every 15 s, counted without waiting for real time).
// Writes to `result` a JSON object { visits: [...] } (or { error }) and exits 0; any other exit
// means the driver itself broke, and its stderr says why.

import { readFileSync, writeFileSync } from 'node:fs'
import { chromium } from 'playwright-core'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const deadline = Date.now() + config.timeoutMs

// Flags that work on a machine with a closed network: without the background-networking ones
// Chromium's own connections are refused and get in the way. QUIC stays off unless a visit
// asks for it (`--enable-quic` in config.args, the HTTP/3 step).
const QUIC = (config.args ?? []).includes('--enable-quic')
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  ...(QUIC ? [] : ['--disable-quic']),
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

const left = () => Math.max(1000, deadline - Date.now())

async function until(what, check) {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

// Polls the page from Node: its own timers may be Playwright's fake clock.
const pageDone = (page) => page.evaluate(() => Boolean(window.probe && window.probe.done()))

async function visit(context, { name, url, userAgent, clockMs }) {
  const page = await context.newPage()
  const consoleMessages = []
  const pageErrors = []
  const failedRequests = []
  page.on('console', (m) => consoleMessages.push({ type: m.type(), text: m.text() }))
  page.on('pageerror', (e) => pageErrors.push(String(e && e.stack ? e.stack : e)))
  page.on('requestfailed', (r) =>
    failedRequests.push({ method: r.method(), url: r.url(), error: r.failure()?.errorText ?? null }),
  )

  // The DevTools Network domain, for what Playwright does not show: preflights, the protocol
  // (h2), CORS error reasons.
  const cdp = await context.newCDPSession(page)
  const requests = new Map()
  const entry = (id) => {
    if (!requests.has(id)) requests.set(id, { id })
    return requests.get(id)
  }
  cdp.on('Network.requestWillBeSent', (e) => {
    const r = entry(e.requestId)
    r.type = e.type ?? null
    r.method = e.request.method
    r.url = e.request.url
    r.initiator = e.initiator?.type ?? null
  })
  cdp.on('Network.responseReceived', (e) => {
    const r = entry(e.requestId)
    r.type = r.type ?? e.type ?? null
    r.status = e.response.status
    r.protocol = e.response.protocol ?? null
    r.responseHeaders = e.response.headers
    r.fromCache = r.fromCache || Boolean(e.response.fromDiskCache || e.response.fromPrefetchCache)
  })
  // A memory-cache hit has no request on the wire.
  cdp.on('Network.requestServedFromCache', (e) => {
    entry(e.requestId).fromCache = true
  })
  cdp.on('Network.loadingFinished', (e) => {
    entry(e.requestId).finished = true
  })
  cdp.on('Network.loadingFailed', (e) => {
    const r = entry(e.requestId)
    r.type = r.type ?? e.type ?? null
    r.failed = e.errorText
    r.corsError = e.corsErrorStatus?.corsError ?? null
    r.blockedReason = e.blockedReason ?? null
  })
  await cdp.send('Network.enable')
  if (userAgent) await cdp.send('Emulation.setUserAgentOverride', { userAgent })
  if (clockMs) await page.clock.install()

  await page.goto(url, { waitUntil: 'load', timeout: left() })
  await until(`the page of visit "${name}" to be done`, () => pageDone(page))
  if (clockMs) {
    await page.clock.runFor(clockMs)
    await until(`the page of visit "${name}" to be done after ${clockMs} ms`, () => pageDone(page))
  }
  const probe = await page.evaluate(() => {
    const { done, ...rest } = window.probe
    return rest
  })
  // DevTools events and console messages about a request can arrive just after the page saw
  // the request end: wait until every request to the gateway's /api has finished or failed,
  // and until each failed one has its console message.
  const api = () => [...requests.values()].filter((r) => r.url && new URL(r.url).pathname === '/api')
  await until(`DevTools to report every /api request of visit "${name}" as finished`, () => {
    const posts = api().filter((r) => r.method === 'POST')
    return posts.length >= probe.sent && posts.every((r) => r.finished || r.failed)
  })
  const failedPosts = () => api().filter((r) => r.method === 'POST' && r.failed).length
  await until(`Chromium's console message for each failed request of visit "${name}"`, () => {
    const errors = consoleMessages.filter((m) => m.type === 'error').length
    return errors >= failedPosts() && failedRequests.length >= failedPosts()
  })
  await cdp.detach().catch(() => {})
  await page.close()
  return {
    name,
    url,
    probe,
    console: consoleMessages,
    pageErrors,
    failedRequests,
    network: [...requests.values()],
  }
}

async function main() {
  let context
  try {
    context = await chromium.launchPersistentContext(config.userDataDir, {
      executablePath: config.chromium,
      headless: true,
      args: [...ARGS, ...(config.args ?? [])],
      timeout: left(),
      handleSIGINT: true,
      handleSIGTERM: true,
      handleSIGHUP: true,
    })
    const visits = []
    for (const v of config.visits) visits.push(await visit(context, v))
    writeFileSync(config.result, JSON.stringify({ browserVersion: context.browser()?.version() ?? null, visits }))
  } catch (e) {
    writeFileSync(config.result, JSON.stringify({ error: String(e && e.stack ? e.stack : e) }))
  } finally {
    if (context) await context.close().catch(() => {})
  }
}

await main()
