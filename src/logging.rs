//! Logging: levels to stderr (journald keeps them), and pingora's TLS handshake failures turned
//! into a metric instead of an error line per internet scanner.
//!
//! Pingora logs a failed downstream TLS handshake as an error and offers no hook for it, so the
//! logger recognises that one record, counts it in `ackee_gateway_tls_handshakes_total` and
//! re-logs it at debug level. Everything else passes through unchanged.

use std::sync::Arc;

use log::{Level, Log, Metadata, Record};
use once_cell::sync::OnceCell;

use crate::metrics::Metrics;

static HANDSHAKE_METRICS: OnceCell<Arc<Metrics>> = OnceCell::new();

/// Where failed handshakes are counted. Called once the metrics exist.
pub fn count_handshake_failures_in(metrics: Arc<Metrics>) {
    let _ = HANDSHAKE_METRICS.set(metrics);
}

/// Whether a log record is pingora's report of a failed downstream handshake.
pub fn is_handshake_failure(target: &str, level: Level, message: &str) -> bool {
    level == Level::Error
        && target.starts_with("pingora_core::services::listening")
        && message.starts_with("Downstream handshake")
}

/// Whether a log record is pingora's note, while a new process waits for the old one's sockets
/// during a graceful upgrade, that they have not arrived yet. It is expected for the first
/// second or so of every reload, so it is logged at info level, not as an error.
pub fn is_upgrade_wait(target: &str, level: Level, message: &str) -> bool {
    level == Level::Error
        && target.starts_with("pingora_core::server::transfer_fd")
        && message.starts_with("No incoming socket transfer")
}

/// The gateway's logger: env_logger, plus the handshake-failure hook.
pub struct GatewayLogger {
    inner: env_logger::Logger,
}

impl Log for GatewayLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata) || metadata.level() == Level::Error
    }

    fn log(&self, record: &Record<'_>) {
        let target = record.target();
        if record.level() == Level::Error
            && (target.starts_with("pingora_core::services::listening")
                || target.starts_with("pingora_core::server::transfer_fd"))
        {
            let message = record.args().to_string();
            if is_handshake_failure(target, record.level(), &message) {
                if let Some(m) = HANDSHAKE_METRICS.get() {
                    m.tls_handshake(false);
                }
                self.relog(record, Level::Debug, &message);
                return;
            }
            if is_upgrade_wait(target, record.level(), &message) {
                self.relog(record, Level::Info, &message);
                return;
            }
        }
        if self.inner.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

impl GatewayLogger {
    /// Logs a record's message again at another level.
    fn relog(&self, record: &Record<'_>, level: Level, message: &str) {
        let args = format_args!("{message}");
        let demoted = Record::builder()
            .level(level)
            .target(record.target())
            .args(args)
            .build();
        if self.inner.enabled(demoted.metadata()) {
            self.inner.log(&demoted);
        }
    }
}

/// Installs the logger: `RUST_LOG` sets the level, `info` by default.
pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .build();
    let max = inner.filter().max(log::LevelFilter::Error);
    if log::set_boxed_logger(Box::new(GatewayLogger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_upgrade_wait_note_is_recognised() {
        let t = "pingora_core::server::transfer_fd";
        assert!(is_upgrade_wait(
            t,
            Level::Error,
            "No incoming socket transfer, sleep 1s and try again"
        ));
        assert!(!is_upgrade_wait(
            t,
            Level::Error,
            "Unable to send listener sockets"
        ));
        assert!(!is_upgrade_wait(
            "other",
            Level::Error,
            "No incoming socket transfer"
        ));
    }

    #[test]
    fn only_pingoras_downstream_handshake_errors_are_recognised() {
        let t = "pingora_core::services::listening";
        assert!(is_handshake_failure(
            t,
            Level::Error,
            "Downstream handshake error from 1.2.3.4:5: TLS accept() failed"
        ));
        assert!(is_handshake_failure(
            t,
            Level::Error,
            "Downstream handshake timeout"
        ));
        assert!(!is_handshake_failure(
            t,
            Level::Warn,
            "Downstream handshake error"
        ));
        assert!(!is_handshake_failure(
            "ackee_gateway",
            Level::Error,
            "Downstream handshake error"
        ));
        assert!(!is_handshake_failure(t, Level::Error, "something else"));
    }
}
