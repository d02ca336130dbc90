//! Logging: levels to stderr, in a form journald understands, and pingora's TLS handshake
//! failures turned into a metric instead of an error line per internet scanner.
//!
//! When stderr is the journal (systemd sets `JOURNAL_STREAM` to the `dev:ino` of the stream it
//! connected, and fd 2 is that stream), every line starts with its syslog priority as
//! sd-daemon(3) describes: `<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace, and no
//! timestamp (journald adds its own). `journalctl -p warning -u ackee-gateway` then shows exactly
//! the gateway's warnings and errors. Anywhere else the lines are env_logger's usual
//! `[time LEVEL ] message`.
//!
//! Pingora logs a failed downstream TLS handshake as an error and offers no hook for it, so the
//! logger recognises that one record, counts it in `ackee_gateway_tls_handshakes_total` and
//! re-logs it at debug level. Its report of an `accept` that found no descriptor, one error
//! line per listener every second while it lasts, is counted with the refused connections and
//! logged once per episode (`crate::connections::episode`). Pingora's own bookkeeping of a
//! start, a reload and a stop (its services started in dependency order, each one's exit, the
//! runtimes waited for: about 25 info lines each time) is re-logged at debug level too: the
//! gateway says what an operator needs in its own lines ([`crate::lifecycle`]), and
//! `RUST_LOG=debug`, or `RUST_LOG=info,pingora_core::server=debug,pingora_core::services=debug`,
//! brings pingora's back. Everything else passes through unchanged.

use std::sync::{Arc, OnceLock};

use log::{Level, Log, Metadata, Record};

use crate::metrics::Metrics;

static HANDSHAKE_METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();

/// What to do when an accept fails for want of descriptors: count it, and give the line to
/// log if it starts an episode of refusals.
type OnExhausted = Box<dyn Fn() -> Option<String> + Send + Sync>;

static DESCRIPTORS_EXHAUSTED: OnceLock<OnExhausted> = OnceLock::new();

/// Where failed accepts for want of descriptors go instead of an error line each (pingora
/// logs one per failed `accept`, every second per listener while it lasts). Called once.
pub(crate) fn on_descriptors_exhausted(f: OnExhausted) {
    let _ = DESCRIPTORS_EXHAUSTED.set(f);
}

/// Whether a log record is pingora's report of an `accept` that failed because the process
/// (`EMFILE`, 24) or the system (`ENFILE`, 23) has no descriptor left.
pub(crate) fn is_descriptor_exhaustion(target: &str, level: Level, message: &str) -> bool {
    level == Level::Error
        && target.starts_with("pingora_core::services::listening")
        && message.starts_with("Accept() failed")
        && (message.contains("(os error 24)") || message.contains("(os error 23)"))
}

/// Where failed handshakes are counted. Called once the metrics exist.
pub(crate) fn count_handshake_failures_in(metrics: Arc<Metrics>) {
    let _ = HANDSHAKE_METRICS.set(metrics);
}

/// Whether a log record is pingora's report of a failed downstream handshake.
pub(crate) fn is_handshake_failure(target: &str, level: Level, message: &str) -> bool {
    level == Level::Error
        && target.starts_with("pingora_core::services::listening")
        && message.starts_with("Downstream handshake")
}

/// Whether a log record is pingora's note, while a new process waits for the old one's sockets
/// during a graceful upgrade, that they have not arrived yet. It is expected for the first
/// second or so of every reload, so it is logged at debug level, not as an error.
pub(crate) fn is_upgrade_wait(target: &str, level: Level, message: &str) -> bool {
    level == Level::Error
        && target.starts_with("pingora_core::server::transfer_fd")
        && message.starts_with("No incoming socket transfer")
}

/// The modules whose info lines are pingora's bookkeeping of a start, a reload or a stop: the
/// server (its main loop, bootstrap, daemon and socket hand-over) and its services (the
/// dependency order, the listeners' shutdown). Their warnings and errors are problems, and stay.
const BOOKKEEPING: [&str; 2] = ["pingora_core::server", "pingora_core::services"];

/// Whether a log record is pingora's bookkeeping, logged at debug level instead of info.
pub(crate) fn is_bookkeeping(target: &str, level: Level) -> bool {
    level == Level::Info
        && BOOKKEEPING.iter().any(|module| {
            target
                .strip_prefix(module)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The gateway's logger: env_logger, plus the handshake-failure hook and pingora's bookkeeping
/// at debug level.
pub(crate) struct GatewayLogger {
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
                self.relog(record, Level::Debug, &message);
                return;
            }
            if is_descriptor_exhaustion(target, record.level(), &message) {
                if let Some(line) = DESCRIPTORS_EXHAUSTED.get().and_then(|f| f()) {
                    self.relog(record, Level::Warn, &line);
                }
                return;
            }
        }
        if is_bookkeeping(target, record.level()) {
            let demoted = Record::builder()
                .level(Level::Debug)
                .target(target)
                .args(*record.args())
                .build();
            if self.inner.enabled(demoted.metadata()) {
                self.inner.log(&demoted);
            }
            return;
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

/// The sd-daemon(3) prefix that gives a line its syslog priority in the journal.
pub(crate) fn syslog_prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

/// Whether a `JOURNAL_STREAM` value (`"dev:ino"`, in decimal) names the file whose device and
/// inode numbers are `dev` and `ino`. sd-daemon(3) says to compare it with `fstat` of the fd,
/// since a service may redirect stderr while the variable stays in its environment.
pub(crate) fn journal_stream_names(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// Whether stderr is connected to the journal.
pub(crate) fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    // SAFETY: fstat only writes into the zeroed struct we pass; fd 2 may be closed, which it
    // reports as an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    journal_stream_names(&value, st.st_dev as u64, st.st_ino as u64)
}

/// Prefixes every line of a message with the level's syslog priority, for the journal.
pub(crate) fn journal_lines(level: Level, message: &str) -> String {
    let prefix = syslog_prefix(level);
    let mut out = String::with_capacity(message.len() + 4);
    for line in message.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str(prefix);
        out.push('\n');
    }
    out
}

static JOURNAL: OnceLock<bool> = OnceLock::new();

/// Writes a message that is not a log record (a config diagnostic, a start-up problem) to
/// stderr, with its priority when stderr is the journal and as it is otherwise.
pub fn to_stderr(level: Level, message: &str) {
    use std::io::Write;
    let journal = *JOURNAL.get_or_init(stderr_is_journal);
    let text = if journal {
        journal_lines(level, message)
    } else if message.ends_with('\n') {
        message.to_owned()
    } else {
        format!("{message}\n")
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Installs the logger: `RUST_LOG` sets the level, `info` by default; lines carry their syslog
/// priority when stderr is the journal.
pub fn init() {
    let journal = *JOURNAL.get_or_init(stderr_is_journal);
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format_target(false);
    if journal {
        builder.format(|buf, record| {
            use std::io::Write;
            let text = journal_lines(record.level(), &record.args().to_string());
            buf.write_all(text.as_bytes())
        });
    }
    let inner = builder.build();
    let max = inner.filter().max(log::LevelFilter::Error);
    if log::set_boxed_logger(Box::new(GatewayLogger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_gets_its_sd_daemon_priority() {
        let cases = [
            (Level::Error, "<3>"),
            (Level::Warn, "<4>"),
            (Level::Info, "<6>"),
            (Level::Debug, "<7>"),
            (Level::Trace, "<7>"),
        ];
        for (level, prefix) in cases {
            assert_eq!(syslog_prefix(level), prefix, "{level}");
        }
    }

    #[test]
    fn journal_stream_must_name_this_very_file() {
        let cases = [
            ("8:1234", 8, 1234, true),
            (" 8:1234\n", 8, 1234, true),
            ("8:1235", 8, 1234, false),
            ("9:1234", 8, 1234, false),
            ("8", 8, 1234, false),
            ("", 8, 1234, false),
            ("x:y", 8, 1234, false),
            ("8:1234:5", 8, 1234, false),
        ];
        for (value, dev, ino, want) in cases {
            assert_eq!(journal_stream_names(value, dev, ino), want, "{value:?}");
        }
    }

    #[test]
    fn every_line_of_a_message_carries_the_priority() {
        let cases = [
            (Level::Warn, "one", "<4>one\n"),
            (Level::Error, "a\nb\n", "<3>a\n<3>b\n"),
            (Level::Info, "", "<6>\n"),
        ];
        for (level, message, want) in cases {
            assert_eq!(journal_lines(level, message), want, "{message:?}");
        }
    }

    #[test]
    fn only_pingoras_info_lines_of_the_server_and_its_services_are_bookkeeping() {
        let cases = [
            ("pingora_core::server", Level::Info, true),
            (
                "pingora_core::server::bootstrap_services",
                Level::Info,
                true,
            ),
            ("pingora_core::server::daemon", Level::Info, true),
            ("pingora_core::server::transfer_fd", Level::Info, true),
            ("pingora_core::services", Level::Info, true),
            ("pingora_core::services::listening", Level::Info, true),
            ("pingora_core::server", Level::Warn, false),
            ("pingora_core::server", Level::Error, false),
            ("pingora_core::services::listening", Level::Error, false),
            ("pingora_core::server", Level::Debug, false),
            ("pingora_core::serverless", Level::Info, false),
            (
                "pingora_core::protocols::http::v1::server",
                Level::Info,
                false,
            ),
            ("pingora_proxy", Level::Info, false),
            ("ackee_gateway::server", Level::Info, false),
        ];
        for (target, level, want) in cases {
            assert_eq!(is_bookkeeping(target, level), want, "{target} {level}");
        }
    }

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
    fn only_accepts_that_found_no_descriptor_are_recognised() {
        let t = "pingora_core::services::listening";
        let cases: &[(&str, Level, &str, bool)] = &[
            (
                t,
                Level::Error,
                "Accept() failed  AcceptError context: Fail to accept() cause: Too many open files (os error 24)",
                true,
            ),
            (
                t,
                Level::Error,
                "Accept() failed  AcceptError context: Fail to accept() cause: Too many open files in system (os error 23)",
                true,
            ),
            (
                t,
                Level::Error,
                "Accept() failed  AcceptError context: Fail to accept() cause: Connection aborted (os error 103)",
                false,
            ),
            (t, Level::Warn, "Accept() failed ... (os error 24)", false),
            (
                "ackee_gateway",
                Level::Error,
                "Accept() failed ... (os error 24)",
                false,
            ),
        ];
        for (target, level, message, want) in cases {
            assert_eq!(
                is_descriptor_exhaustion(target, *level, message),
                *want,
                "{message}"
            );
        }
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
