//! Shared test support: a fake Ackee, a raw HTTP/1.1 client, the real gateway binary started
//! on loopback with ephemeral ports, and an HTTP/3 client (aioquic). Each test binary uses a different part.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod fake_ackee;
pub mod fake_cors;
pub mod gateway;
pub mod http3;
pub mod pebble;
pub mod tls;

pub use client::{Conn, Response, preflight, request};
pub use fake_ackee::{FakeAckee, mutation_body};
pub use gateway::{Gateway, Scrape, Spec, eventually, run};
