//! A background service's steady beat: one step every period until shutdown. Tokio only, so
//! the health checker (in `balancer`) and the server's services share it without importing
//! each other.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Runs `step` every `period` until `shutdown` changes (pingora's `ShutdownWatch` is this
/// receiver). The first step comes one period after the call: callers that want a round at
/// once do it before, usually before telling pingora they are ready. A step that overruns
/// delays the next one instead of bunching them up; a step already running when shutdown comes
/// is finished first.
pub(crate) async fn every<F, Fut>(
    period: Duration,
    shutdown: &mut watch::Receiver<bool>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => step().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn steps_come_one_period_apart_and_stop_at_shutdown() {
        let (stop, mut shutdown) = watch::channel(false);
        let steps = Arc::new(AtomicU32::new(0));
        let counted = steps.clone();
        let service = tokio::spawn(async move {
            every(Duration::from_secs(10), &mut shutdown, || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {}
            })
            .await;
        });
        // Paused time moves only when every task waits, so each advance runs what is due.
        let seen_after = |secs| {
            let steps = steps.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                steps.load(Ordering::SeqCst)
            }
        };
        assert_eq!(seen_after(5).await, 0, "no step at once");
        assert_eq!(seen_after(10).await, 1, "one at 10 s");
        assert_eq!(seen_after(20).await, 3, "two more by 35 s");
        stop.send(true).unwrap();
        service.await.unwrap();
        assert_eq!(seen_after(60).await, 3, "none after shutdown");
    }
}
