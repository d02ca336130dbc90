//! `ackee-gateway explain`: the answer to "why does my site record nothing?".
//!
//! Offline, it computes what the gateway with a given config answers a browser on a given site,
//! with [`crate::cors`] exactly as the proxy does; online, it asks any server. Either way it
//! judges the answers by the WHATWG Fetch rules, with the tracker's credentials on and off, and
//! says why a browser refuses and what to change. No pingora here; one concern per file:
//!
//! | file | owns |
//! |---|---|
//! | [`browser`] | what a browser accepts: the CORS check and the preflight rules |
//! | [`nearest`] | the configured entry an origin came nearest to, and how it differs |
//! | [`offline`] | the gateway's answers from its config, and the fix in that config |
//! | [`online`] | one HTTP/1.1 exchange, plain or over rustls, with bounded timeouts |
//! | [`report`] | the printed report, reasons and fixes |
//! | [`tracker`] | the tracker script: served from the edge or not, its sizes, its cache policy |
//! | [`visit`] | whether a visit would be counted or ignored at the edge, by the rules of `visits` |
//! | [`cli`] | the command line and exit codes |

pub mod browser;
pub mod cli;
pub mod nearest;
pub mod offline;
pub mod online;
pub mod report;
pub mod tracker;
pub mod visit;
