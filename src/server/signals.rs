//! Running the server: the start's lines, pingora's own signal handling (SIGTERM, SIGQUIT,
//! SIGINT) with the operator's line logged as a signal arrives, and `stopped` at the end. The
//! lines are [`crate::lifecycle`]'s.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use log::info;
use pingora_core::server::{
    RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch,
};

use crate::config::{Config, ServerSettings};
use crate::lifecycle::{self, Stop};

/// Pingora's Unix signals, each logged in the gateway's words when it arrives.
struct LoggedSignals {
    server: ServerSettings,
    /// When the signal arrived.
    at: Arc<OnceLock<Instant>>,
}

#[async_trait]
impl ShutdownSignalWatch for LoggedSignals {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        let _ = self.at.set(Instant::now());
        let stop = match signal {
            ShutdownSignal::GracefulTerminate => Stop::Graceful,
            ShutdownSignal::GracefulUpgrade => Stop::HandOver,
            ShutdownSignal::FastShutdown => Stop::Now,
        };
        info!("{}", lifecycle::stopping(stop, &self.server));
        signal
    }
}

/// Logs the start, runs the server until a signal stops it, logs `stopped` and exits. `upgrade`
/// when this process takes over from a running gateway (`-u`).
pub fn run(server: Server, config: &Config, upgrade: bool) -> ! {
    for line in lifecycle::starting(config, upgrade) {
        info!("{line}");
    }
    let at = Arc::new(OnceLock::new());
    let args = RunArgs {
        shutdown_signal: Box::new(LoggedSignals {
            server: config.server.clone(),
            at: at.clone(),
        }),
    };
    server.run(args);
    let seconds = at.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
    info!("{}", lifecycle::stopped(seconds));
    // Pingora's run_forever exits here too, without running destructors.
    log::logger().flush();
    std::process::exit(0)
}
