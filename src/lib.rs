//! ackee-gateway: an edge gateway for self-hosted [Ackee](https://github.com/electerious/Ackee),
//! on Cloudflare's Pingora. It answers CORS preflights at the edge, proxies tracker traffic to
//! Ackee with Ackee's own CORS headers replaced, and counts everything for Prometheus.
//!
//! # Layout
//!
//! Pure logic first; none of these modules imports pingora or the pingora layer below, and each
//! is unit-tested on its own:
//!
//! | module | owns |
//! |---|---|
//! | [`origin`] | normalising allow-list entries, compiling and matching origins |
//! | [`ackee_origins`] | origins from Ackee's domain list: titles to origins, the GraphQL answer, the refresh state machine, the poll client; the token file checked at start-up |
//! | [`assets`] | Ackee's static files at the edge: which paths, the `Accept-Encoding` and `If-None-Match` decisions, the compressed copy and its refresh state machine, fetching it from a replica |
//! | `ackee_client` | one blocking HTTP/1.1 exchange with a replica, bounded in time and size (the background polls' client) |
//! | [`cors`] | a request's whole CORS fate as one decision (preflight allowed or refused, allowed, forwarded bare, rejected, same origin, not applicable) and its log and metric labels; every CORS header value, `Vary` merging; which method and header names may be allowed |
//! | [`forwarded`] | trusted proxies and the client-IP headers Ackee believes: the edits each request's headers get on their way to Ackee |
//! | `health` | each replica's health from active checks: thresholds, first-pass rule; the health-check settings, the probe path checked as a request target |
//! | `framing` | request framing checks (`Host`, ambiguous lengths), hop-by-hop response headers |
//! | `limits` | request head and body size checks |
//! | [`visits`] | visits worth counting: bots (isbot's list, compiled once), the owner's networks, GPC and DNT; the tracker writes in a body and Ackee's answer for an ignored visit; the decision |
//! | [`connections`] | connections a client and the whole process may hold open: the per-client table (fixed at start-up), the bound from `RLIMIT_NOFILE`, refusals logged once per episode |
//! | [`ratelimit`] | per-client rate limits: which rule a request falls under, `createToken` in a body, the decision, `Retry-After` (its counters are pingora-limits, a standalone crate) |
//! | `replicas` | the Ackee replicas as configured (each address resolved once, at start-up; name, weight), how one is chosen, and how the gateway talks to them: the `upstream` section, validated ([`config::UpstreamSettings`]) |
//! | `retry` | one request's attempts at Ackee (replicas tried, the next one, the client key), and whether a failed attempt is tried again, and where |
//! | `redirect` | the plain-HTTP to HTTPS redirect |
//! | [`acme`] | certificates from ACME: certbot's HTTP-01 challenge files served from a webroot (`webroot.rs`); the gateway's own ACME client's pure parts: settings and their checks, the renewal schedule and backoff, the state directory (atomic files, the order lock) and the status record it keeps, pending challenges, one order with instant-acme, the status `ackee-gateway certificates` shows |
//! | `certs` | certificates from PEM files: loading a chain and its key, the names it covers, its expiry |
//! | [`tls`] | a TLS listener's certificates: choosing one by SNI, reloading them |
//! | [`config`] | reading the YAML file, validating it, reporting every problem at once; a rule about a value that another module uses is that module's, and config reports its message at the key path |
//! | `files` | reading the files the config names: regular files only, never a blocking read |
//! | [`quic`] | HTTP/3's rules without a QUIC stack: a listener's HTTP/3 settings and its `Alt-Svc` value, admitting a new connection (accept, stateless retry, refuse), which error codes are a client's protocol violations, the budget of requests a client may reset |
//! | [`procnet`] | the TCP addresses a process listens on, from `/proc` (graceful upgrade checks) |
//! | [`handover`] | the upgrade lock, the ready marker, and waiting for a gateway to serve |
//! | [`access_log`] | one line per request, text or JSON, written off the request path; the log file checked at start-up |
//! | [`metrics`] | every Prometheus metric, registered once; the label sets |
//! | [`logging`] | stderr logging with levels; pingora's handshake failures counted, its bookkeeping of a start and a stop at debug level |
//! | `lifecycle` | what the log says when the gateway starts, hands over in a reload and stops: version, listeners, replicas, origins, ready, the signal and what happens next |
//! | [`explain`] | `ackee-gateway explain`: what a browser gets, and why it fails, and whether a visit is counted (no pingora; its online half speaks plain HTTP/1.1 and rustls) |
//! | `periodic` | a background service's steady beat: one step every period until shutdown (tokio only) |
//! | `outage` | failed requests during an Ackee outage, tallied and summarised, not logged one by one |
//!
//! Then the thin pingora layer, which imports the modules above and never the other way
//! (`tests/imports.rs` fails on any cycle in the import graph of src/):
//!
//! | module | owns |
//! |---|---|
//! | `http3` | the HTTP/3 listener beside a TLS listener: QUIC (quinn) and HTTP/3 (h3), each request handed to pingora as a custom session that runs the same `proxy` phases; admission, limits, GOAWAY on stop and upgrade, the UDP socket handed over with the TCP listeners |
//! | `balancer` | choosing an Ackee replica on pingora's load balancer (each backend carries its replica's index); peers; the health checker, which holds the balancer and the metrics |
//! | `proxy` | the `ProxyHttp` implementation: each phase calls into the modules above (`request.rs` the steps of `request_filter`, `respond.rs` the answers at the edge, `visits.rs` ignored visits, `failure.rs` Ackee's failures) |
//! | [`server`] | turning a [`config::Config`] into a running pingora `Server`; its background services (`services.rs`), the ACME renewal of each managed certificate (`acme.rs`); the allocator's collection on every worker thread (`allocator.rs`); client connections counted at accept (`connections.rs`); running it, with each stop signal logged (`signals.rs`) |
//!
//! "Upstream" names only the config's `upstream` section (read by `config/upstream.rs`,
//! validated as [`config::UpstreamSettings`] in `replicas`) and, as in pingora, the side of a
//! proxied request that faces Ackee (`upstream_peer`, `upstream_request_filter`, ...); the
//! pingora load balancer is the `balancer`.
//!
//! Modules without a link are `pub(crate)`: only the crate uses them. Inside every module, what
//! only the crate uses is `pub(crate)` too, so the compiler reports dead code.
//!
//! The binary (`src/main.rs`) parses the command line, loads the config and calls [`server`],
//! or hands `explain` to [`explain::cli`].

#![deny(missing_docs)]
// These docs are for the people who change the gateway, read with `--document-private-items`
// (as CI builds them), where links to private modules resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod access_log;
pub(crate) mod ackee_client;
pub mod ackee_origins;
pub mod acme;
pub mod assets;
pub(crate) mod balancer;
pub(crate) mod certs;
pub mod config;
pub mod connections;
pub mod cors;
pub mod explain;
pub(crate) mod files;
pub mod forwarded;
pub(crate) mod framing;
pub mod handover;
pub(crate) mod health;
pub(crate) mod http3;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub mod logging;
pub mod metrics;
pub mod origin;
pub(crate) mod outage;
pub(crate) mod periodic;
pub mod procnet;
pub(crate) mod proxy;
pub mod quic;
pub mod ratelimit;
pub(crate) mod redirect;
pub(crate) mod replicas;
pub(crate) mod retry;
pub mod server;
pub mod tls;
pub mod visits;
