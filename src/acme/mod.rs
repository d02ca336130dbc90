//! ACME: certificates from a webroot that certbot fills ([`mod@webroot`]), and certificates the
//! gateway obtains and renews itself (RFC 8555, `listeners[].tls.acme`).
//!
//! The pure parts are here, without pingora; the background service that runs an order and
//! swaps the certificate in is in the pingora layer (`server/acme.rs`).
//!
//! | file | owns |
//! |---|---|
//! | [`mod@webroot`] | serving certbot's HTTP-01 challenge files from a webroot, safely; the webroot checked at start-up |
//! | [`settings`] | a managed certificate's settings, and the rules `-t` checks (names, contact, directory, CA file, account binding, state directory) |
//! | [`schedule`] | when to renew (two thirds of the lifetime), the jittered backoff after a failure |
//! | [`record`] | what the renewing gateway last knew about a certificate (its status and the CA's last problem), as the state directory keeps it |
//! | [`store`] | the state directory: account, certificate, key and status files written atomically (keys 0600), the order lock |
//! | [`challenges`] | the answers to the gateway's own pending challenges: HTTP-01 tokens and TLS-ALPN-01 certificates, in memory and in the state directory |
//! | [`client`] | one order against the CA with instant-acme (tokio, no pingora), and the CA's problem document |
//! | [`status`] | `ackee-gateway certificates`: each managed certificate's names, issuer, expiry, next renewal and last error |

pub(crate) mod challenges;
pub(crate) mod client;
pub mod record;
pub(crate) mod schedule;
pub mod settings;
pub mod status;
pub(crate) mod store;
pub(crate) mod webroot;

pub(crate) use webroot::{Challenge, Webroot, webroot};
