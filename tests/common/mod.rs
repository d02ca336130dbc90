//! Shared test support: a fake Ackee, a raw HTTP/1.1 client, and the real gateway binary
//! started on loopback with ephemeral ports. Each test binary uses a different part.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod fake_ackee;
pub mod fake_cors;
pub mod gateway;
pub mod pebble;
pub mod tls;

pub use client::{Conn, Response, preflight, request};
pub use fake_ackee::{FakeAckee, mutation_body};
pub use gateway::{Gateway, Scrape, Spec, eventually, run};
