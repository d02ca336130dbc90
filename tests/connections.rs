//! Nothing a client can pile up, over real sockets: idle HTTP/2 connections closed with a
//! GOAWAY while a slow stream on another connection is kept, the connections one address may
//! hold (other loopback addresses, 127.0.0.2 and up, stand for other clients), and a process
//! that runs short of file descriptors (a low `RLIMIT_NOFILE` set by the test). Every count
//! is checked in `/metrics`.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
    pub mod tls;
}

use common::client::{Conn, Response};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Scrape, Spec};
use common::process::eventually;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::tls::{TestCa, h2_request};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

const STATS: &str = "stats.example.com";
const ORIGIN: &str = "https://example.com";

fn tls_lines(dir: &std::path::Path) -> String {
    format!(
        "tls:\n  certificates:\n    - name: stats\n      cert: \"{d}/stats.pem\"\n      key: \"{d}/stats.key\"",
        d = dir.display()
    )
}

/// A fake Ackee, a test CA and a gateway with a plain and a TLS listener.
struct Setup {
    ca: TestCa,
    _certs: tempfile::TempDir,
    ackee: FakeAckee,
    gw: Gateway,
}

fn setup(extra: impl FnOnce(Spec) -> Spec) -> Setup {
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    ca.leaf(&[STATS]).write(certs.path(), "stats");
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&extra(
        Spec::new(ackee.addr).tls_listener(&tls_lines(certs.path())),
    ));
    Setup {
        ca,
        _certs: certs,
        ackee,
        gw,
    }
}

fn preflight_on(conn: &mut Conn) -> Result<Response, String> {
    conn.try_request(
        "OPTIONS",
        "/api",
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
}

/// A keep-alive connection from `from` that was served a preflight, or the error that shows
/// it was closed without an answer.
fn served_from(from: [u8; 4], addr: SocketAddr) -> Result<Conn, String> {
    let mut conn = Conn::from_address(&std::net::Ipv4Addr::from(from).to_string(), addr);
    let r = preflight_on(&mut conn)?;
    assert_eq!(r.status, 204);
    Ok(conn)
}

/// A TLS connection offering only `h2`, handshake done.
fn h2_tls(ca: &TestCa, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from(STATS).unwrap();
    let client = ClientConnection::new(Arc::new(ca.client_config(&[b"h2"])), name).unwrap();
    let mut tls = StreamOwned::new(client, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// How an HTTP/2 connection ended, read frame by frame until the server closed it.
#[derive(Debug, Default)]
struct Ending {
    /// The error codes of the GOAWAY frames received.
    goaways: Vec<u32>,
    /// Whether the server closed the connection (rather than the read timing out).
    closed: bool,
}

/// Reads what the server sends on an HTTP/2 connection until it closes the connection,
/// acknowledging its SETTINGS if `ack` (a client that sent its preface must).
fn read_until_closed(tls: &mut StreamOwned<ClientConnection, TcpStream>, ack: bool) -> Ending {
    let mut ending = Ending::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => {
                ending.closed = true;
                return ending;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ending;
            }
            // A close without TLS close_notify, or a reset: closed all the same.
            Err(_) => {
                ending.closed = true;
                return ending;
            }
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                // SETTINGS without ACK: acknowledge, as a client must.
                0x4 if ack && flags & 0x1 == 0 => {
                    let _ = tls.write_all(&[0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]);
                }
                0x7 if payload.len() >= 8 => ending.goaways.push(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ])),
                _ => {}
            }
        }
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];

#[test]
fn idle_h2_connections_get_a_goaway_while_a_slow_stream_is_kept() {
    let s = setup(|spec| spec.top("limits:\n  header_timeout_seconds: 0.5"));
    // Ackee takes six times the idle bound to answer a POST.
    s.ackee.set(|b| b.delay = Some(Duration::from_secs(3)));
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            h2_request(
                &s.ca,
                s.gw.https,
                STATS,
                "POST",
                "/api",
                &[("origin", ORIGIN), ("content-type", "application/json")],
                mutation_body("createRecord").as_bytes(),
            )
            .0
        });
        // The slow stream is in progress before the idle connections are opened.
        eventually(
            Duration::from_secs(10),
            "the slow POST to reach Ackee",
            || (s.ackee.count_path("/api") == 1).then_some(()),
        );

        // Preface and SETTINGS, then nothing: the attack in issue #20.
        let mut idle = h2_tls(&s.ca, s.gw.https);
        idle.write_all(PREFACE).unwrap();
        idle.write_all(&EMPTY_SETTINGS).unwrap();
        // TLS with ALPN h2, then not even the preface.
        let mut silent = h2_tls(&s.ca, s.gw.https);

        let ending = read_until_closed(&mut idle, true);
        assert!(
            ending.closed,
            "an idle HTTP/2 connection stays open: {ending:?}"
        );
        assert_eq!(
            ending.goaways,
            [0],
            "one GOAWAY with NO_ERROR before the close"
        );
        let ending = read_until_closed(&mut silent, false);
        assert!(
            ending.closed,
            "a connection that never sent its preface stays open"
        );

        // Counted as the connection task ends, just after the socket is closed.
        let idle = |m: &Scrape| {
            m.get(
                "ackee_gateway_limit_rejections_total",
                &[("limit", "h2_idle")],
            )
        };
        s.gw.scrape_until("both idle connections to be counted", |m| idle(m) >= 2.0);
        assert_eq!(
            idle(&s.gw.scrape()),
            2.0,
            "both counted, the busy connection not"
        );
        let answer = slow.join().unwrap();
        assert_eq!(
            answer.status,
            200,
            "the slow stream was answered: {}",
            answer.text()
        );
        assert!(answer.text().contains("createRecord"));
    });
}

/// The HTTP/2 side of logs.rs's `clients_that_leave_mid_request_are_counted_by_stage_and_logged_as_no_error`:
/// a stream the client resets while Ackee works (a browser leaving the page) is a client that
/// went away, counted by stage and logged at debug, not an error line; its connection serves on.
#[test]
fn a_cancelled_http2_stream_is_counted_as_abandoned_not_logged_as_an_error() {
    let s = setup(|spec| spec);
    s.ackee.set(|b| b.delay = Some(Duration::from_secs(3)));
    let body = mutation_body("createRecord");
    let status = common::tls::h2_post_then_cancel(
        &s.ca,
        s.gw.https,
        STATS,
        &[("origin", ORIGIN), ("content-type", "application/json")],
        body.as_bytes(),
        || s.ackee.count_path("/api") == 1,
    );
    assert_eq!(status, 204, "the connection's next stream is answered");
    let answer = |m: &Scrape| {
        m.get(
            "ackee_gateway_requests_abandoned_total",
            &[("stage", "answer")],
        )
    };
    let scrape =
        s.gw.scrape_until("the cancelled stream counted", |m| answer(m) >= 1.0);
    assert_eq!(answer(&scrape), 1.0);
    let log = s.gw.stderr();
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR") && l.contains("Fail to proxy")),
        "a cancelled stream is logged as an error:\n{log}"
    );
}

#[test]
fn a_client_gets_its_connections_and_the_next_is_closed_before_any_tls() {
    let s = setup(|spec| {
        spec.top("limits:\n  max_connections_per_client: 3\ntrusted_proxies: [\"127.0.0.3\"]")
    });
    let (plain, https) = (s.gw.http, s.gw.https);
    let mut mine: Vec<Conn> = (0..3)
        .map(|_| served_from([127, 0, 0, 1], plain).expect("within the limit"))
        .collect();
    let err = served_from([127, 0, 0, 1], plain).err();
    assert!(
        err.is_some(),
        "the fourth connection from one address is served"
    );
    // The limit is per client, whichever listener: a TLS handshake is not even started.
    let before = s.gw.scrape();
    let tls = common::tls::connect(https, STATS, s.ca.client_config(&[b"http/1.1"]));
    assert!(
        tls.is_err(),
        "a TLS connection over the limit completes its handshake"
    );
    // Another address is another client, and a trusted proxy is exempt.
    let _other = served_from([127, 0, 0, 2], plain).expect("another address is served");
    let _proxy: Vec<Conn> = (0..5)
        .map(|_| served_from([127, 0, 0, 3], plain).expect("a trusted proxy is not limited"))
        .collect();

    let scrape = s.gw.scrape();
    let refused = |s: &Scrape| {
        s.get(
            "ackee_gateway_limit_rejections_total",
            &[("limit", "connections_per_client")],
        )
    };
    assert_eq!(refused(&scrape), 2.0);
    assert_eq!(scrape.get("ackee_gateway_connections", &[]), 9.0);
    assert_eq!(
        scrape.get(
            "ackee_gateway_tls_handshakes_total",
            &[("result", "failed")]
        ),
        before.get(
            "ackee_gateway_tls_handshakes_total",
            &[("result", "failed")]
        ),
        "no TLS work for a refused connection"
    );

    // A connection that closes gives its client the room back.
    drop(mine.pop());
    s.gw.scrape_until("the closed connection to be counted out", |m| {
        m.get("ackee_gateway_connections", &[]) == 8.0
    });
    mine.push(served_from([127, 0, 0, 1], plain).expect("room again after a close"));
    assert_eq!(refused(&s.gw.scrape()), 2.0);

    let log = s.gw.stderr();
    let announced = log
        .lines()
        .filter(|l| l.contains("new connections from 127.0.0.1 are refused"))
        .count();
    assert_eq!(announced, 1, "announced once, not per connection:\n{log}");
}

#[test]
fn out_of_descriptors_new_connections_are_refused_and_established_ones_served() {
    // 128 descriptors: the bound is 128 - 128 / 4 - 64 = 32 client connections.
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).nofile(128));
    assert_eq!(
        gw.scrape().get("ackee_gateway_connections_limit", &[]),
        32.0
    );
    let mut open: Vec<Conn> = (0..32)
        .map(|_| served_from([127, 0, 0, 1], gw.http).expect("within the bound"))
        .collect();
    for _ in 0..10 {
        assert!(
            served_from([127, 0, 0, 1], gw.http).is_err(),
            "a connection over the bound is served"
        );
    }
    // Every established connection keeps being served, all at once through its own
    // connection to Ackee: Ackee holds each POST a moment, so 32 are in flight together.
    ackee.set(|b| b.delay = Some(Duration::from_millis(500)));
    let body = mutation_body("createRecord");
    let before = ackee.connections();
    for conn in &mut open {
        let head = format!(
            "POST /api HTTP/1.1\r\nHost: gateway.test\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.send_raw(head.as_bytes());
    }
    for conn in &mut open {
        let r = conn.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(
        ackee.connections() - before >= 16,
        "the POSTs did not need new connections to Ackee ({} new)",
        ackee.connections() - before
    );
    // The metrics endpoint answers, on a new connection.
    let scrape = gw.scrape();
    assert_eq!(
        scrape.get(
            "ackee_gateway_limit_rejections_total",
            &[("limit", "connections")]
        ),
        10.0
    );
    assert_eq!(scrape.get("ackee_gateway_connections", &[]), 32.0);
    // Room comes back as connections close.
    open.truncate(27);
    gw.scrape_until("closed connections to be counted out", |m| {
        m.get("ackee_gateway_connections", &[]) == 27.0
    });
    open.push(served_from([127, 0, 0, 1], gw.http).expect("room again"));

    let log = gw.stderr();
    let announced = log
        .lines()
        .filter(|l| l.contains("new connections are refused: 32 are open"))
        .count();
    assert_eq!(announced, 1, "announced once, not per connection:\n{log}");
    assert!(!log.contains("Accept() failed"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}
