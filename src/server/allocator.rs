//! The allocator's once-a-second collection on every worker thread of every service that
//! serves visitors: [`Collected`] wraps a pingora service and runs the collection inside its
//! runtime, on each of its workers.
//!
//! mimalloc gives a thread's pages back only from that thread. A block freed by another thread
//! goes on its page's list of remote frees, and the page is found empty, freed to the arena and
//! purged only when its owner next collects: when it allocates a page, every 10,000 allocations
//! it makes, or when it calls `mi_collect`. With `threads: 2` a connection accepted on one
//! worker ends on the other (work stealing, or pingora spawning it on a random thread of a
//! no-steal pool), so after a wave of 10,000 idle connections closed and both workers fell
//! quiet, about 35 MB stayed resident, wave after wave, while a collection on a thread of its
//! own reached only that thread's empty heap (README, Benchmarks).

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::{ListenFds, RuntimeOpts, ShutdownWatch};
use pingora_core::services::{ServiceReadyNotifier, ServiceWithDependents};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::periodic;

/// How often each worker collects: mimalloc purges what has been free for its purge delay
/// (1 s, see `main.rs`) when a thread collects.
const PERIOD: Duration = Duration::from_secs(1);

/// How long a worker waits for the others to reach the collection (see [`rendezvous`]). They
/// normally do within microseconds; a worker in the middle of a long step is skipped this time.
const MEETING_LIMIT: Duration = Duration::from_millis(5);

/// How many spawns, per worker, [`scattered`] tries before it gives up on reaching them all
/// (each lands on a random worker: with 16 per worker, 2 workers are both reached but once in
/// 2^31 rounds).
const SPAWNS_PER_WORKER: usize = 16;

/// A pingora service whose runtime's workers each collect the allocator's free pages once a
/// second. Everything else is the wrapped service's.
pub(super) struct Collected<S> {
    inner: S,
    workers: usize,
}

impl<S: ServiceWithDependents> Collected<S> {
    /// Wraps `inner`, which runs on its own thread count or on `default_threads` (the
    /// server's `threads`).
    pub(super) fn new(inner: S, default_threads: usize) -> Self {
        let workers = inner.threads().unwrap_or(default_threads).max(1);
        Collected { inner, workers }
    }
}

#[async_trait]
impl<S: ServiceWithDependents> ServiceWithDependents for Collected<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let workers = self.workers;
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            periodic::every(PERIOD, &mut stop, || async move {
                on_every_worker(workers, collect, MEETING_LIMIT).await;
            })
            .await;
        });
        self.inner
            .start_service(fds, shutdown, listeners_per_fd, ready)
            .await;
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.inner.on_startup_delay(time_waited);
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

/// A worker that used less than this per cent of its time since its previous collection is
/// quiet: it gives back at once everything free (a busy one waits out the purge delay, so that
/// it does not fault in again the pages it frees and takes back on every few requests).
const QUIET_PER_CENT: u64 = 1;

thread_local! {
    /// The monotonic clock and this thread's CPU time at its previous collection, in ns.
    static PREVIOUS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Nanoseconds on `clock`, or 0 if it cannot be read.
fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// This thread's collection: its empty pages (remote frees included) go back to the arena, and
/// the arenas give the system what they have held free for longer than the purge delay, or,
/// if this thread has been quiet since its previous collection, everything they hold free.
/// A second call within half a period does nothing.
fn collect() {
    let (wall, cpu) = (
        now_ns(libc::CLOCK_MONOTONIC),
        now_ns(libc::CLOCK_THREAD_CPUTIME_ID),
    );
    let (wall_before, cpu_before) = PREVIOUS.get();
    let elapsed = wall.saturating_sub(wall_before);
    if elapsed < u64::try_from(PERIOD.as_nanos() / 2).unwrap_or(u64::MAX) {
        return;
    }
    PREVIOUS.set((wall, cpu));
    let used = cpu.saturating_sub(cpu_before);
    let quiet = used.saturating_mul(100) < elapsed.saturating_mul(QUIET_PER_CENT);
    // SAFETY: mi_collect has no preconditions; it works on the calling thread's own heap and
    // on the arenas, which it locks. Harmless under another global allocator.
    unsafe { libmimalloc_sys::mi_collect(quiet) }
}

/// Runs `step` on each of the `workers` worker threads of the runtime it is called in (a pingora
/// service's), as far as it can reach them, and returns the threads it ran on. `patience`: see
/// [`rendezvous`].
async fn on_every_worker(workers: usize, step: fn(), patience: Duration) -> HashSet<ThreadId> {
    match Handle::current().runtime_flavor() {
        RuntimeFlavor::MultiThread => rendezvous(workers, step, patience).await,
        // pingora's no-steal pool: one current-thread runtime per worker.
        _ => scattered(workers, step).await,
    }
}

/// A work-stealing runtime: `workers` tasks that each run `step` and then wait, on their
/// thread, until all have arrived. A waiting task holds its worker, so they can only all arrive
/// on different workers; a worker that is busy for longer than `patience` may be missed.
async fn rendezvous(workers: usize, step: fn(), patience: Duration) -> HashSet<ThreadId> {
    let meeting = Arc::new((Mutex::new(0usize), Condvar::new()));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let meeting = meeting.clone();
            tokio::spawn(async move {
                step();
                let (arrived, all) = &*meeting;
                let Ok(mut n) = arrived.lock() else {
                    return std::thread::current().id();
                };
                *n += 1;
                all.notify_all();
                // A short, bounded wait that must block the thread: that is its purpose.
                let _ = all.wait_timeout_while(n, patience, |n| *n < workers);
                std::thread::current().id()
            })
        })
        .collect();
    let mut reached = HashSet::new();
    for task in tasks {
        if let Ok(thread) = task.await {
            reached.insert(thread);
        }
    }
    reached
}

/// pingora's no-steal pool: `pingora_runtime::current_handle()` is a random worker's runtime;
/// spawns there until every worker has run `step` (or [`SPAWNS_PER_WORKER`] per worker).
async fn scattered(workers: usize, step: fn()) -> HashSet<ThreadId> {
    let mut reached = HashSet::new();
    for _ in 0..workers * SPAWNS_PER_WORKER {
        if reached.len() >= workers {
            break;
        }
        let task = pingora_runtime::current_handle().spawn(async move {
            step();
            std::thread::current().id()
        });
        if let Ok(thread) = task.await {
            reached.insert(thread);
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() {}

    /// Runs `on_every_worker` in `runtime` (pingora's, as the services get) and returns how many
    /// threads it reached.
    fn reached_in(runtime: &pingora_runtime::Runtime, workers: usize) -> usize {
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.get_handle().spawn(async move {
            // Patient: a loaded test machine may be slow to wake a parked worker.
            let patience = Duration::from_secs(2);
            let _ = tx.send(on_every_worker(workers, nothing, patience).await.len());
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn every_worker_of_a_work_stealing_runtime_collects() {
        for workers in [1, 2, 4] {
            let runtime = pingora_runtime::Runtime::new_steal(workers, "steal");
            for _ in 0..20 {
                assert_eq!(reached_in(&runtime, workers), workers, "{workers} workers");
            }
        }
    }

    #[test]
    fn every_worker_of_a_no_steal_pool_collects() {
        // All alive at once, as a server's are: pingora keeps each pool thread's handles in a
        // `ThreadLocal`, whose slot a new thread inherits from an exited one, stale handles and
        // all.
        let runtimes: Vec<_> = [1, 2, 4]
            .into_iter()
            .map(|workers| {
                (
                    workers,
                    pingora_runtime::Runtime::new_no_steal(workers, "nosteal"),
                )
            })
            .collect();
        for (workers, runtime) in &runtimes {
            for _ in 0..20 {
                assert_eq!(reached_in(runtime, *workers), *workers, "{workers} workers");
            }
        }
    }
}
