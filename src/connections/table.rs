//! The open connections: how many each client holds and how many the process holds, in a
//! table whose size is fixed at start-up, and the decision for a new one. No pingora, no
//! clock: every case is a row in a table of tests.
//!
//! The table is exact: an open-addressing hash table (linear probing, backward-shift
//! deletion) of client keys and their counts, with twice as many slots as the process's
//! bound on open connections. A key is in the table only while its client holds a connection,
//! and every connection counted is one of at most `bound`, so there are never more keys than
//! half the slots, however many addresses clients use: a lookup always finds its key or an
//! empty slot within a few probes, and nothing is ever evicted or over-counted. The hashes
//! are keyed at random at start-up, so nobody can choose addresses that pile up on one run of
//! slots.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

/// Why a connection was refused. Its label is one of a fixed set, safe for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its client already holds `limits.max_connections_per_client` connections.
    PerClient,
    /// The process already holds as many connections as its bound allows.
    Process,
    /// The process had no file descriptor left to accept it with (`EMFILE`, `ENFILE`).
    Descriptors,
}

impl Refusal {
    /// Every refusal, in label order.
    pub const ALL: [Refusal; 3] = [Refusal::PerClient, Refusal::Process, Refusal::Descriptors];

    /// The value of the `limit` label of `ackee_gateway_limit_rejections_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerClient => "connections_per_client",
            Refusal::Process => "connections",
            Refusal::Descriptors => "descriptors",
        }
    }
}

/// Whether one more connection may open: `open` connections in the process against its
/// `bound`, and `client` (the new connection's client's connections, `None` for a client
/// exempt from the per-client limit) against `per_client` (`None` when that limit is off).
/// The process's bound comes first: when the process is full everyone is refused.
pub fn decide(
    open: u32,
    bound: u32,
    client: Option<u32>,
    per_client: Option<u32>,
) -> Result<(), Refusal> {
    if open >= bound {
        return Err(Refusal::Process);
    }
    match (client, per_client) {
        (Some(held), Some(limit)) if held >= limit => Err(Refusal::PerClient),
        _ => Ok(()),
    }
}

/// Counts open connections per client and for the process, and admits or refuses new ones.
/// Shared by every listener; each admission and release takes one short lock.
#[derive(Debug)]
pub struct Table {
    per_client: Option<u32>,
    bound: u32,
    slots: Mutex<Slots>,
}

/// The hash table itself: a slot with a count of 0 is empty.
#[derive(Debug)]
struct Slots {
    keys: Box<[u128]>,
    counts: Box<[u32]>,
    mask: usize,
    hasher: RandomState,
    open: u32,
}

impl Slots {
    fn with_slots(n: usize) -> Slots {
        Slots {
            keys: vec![0; n].into_boxed_slice(),
            counts: vec![0; n].into_boxed_slice(),
            mask: n - 1,
            hasher: RandomState::new(),
            open: 0,
        }
    }

    fn home(&self, key: u128) -> usize {
        // Truncation on purpose: the low bits of the hash pick the slot.
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// The slot that holds `key`, or else the empty slot where it would go.
    fn find(&self, key: u128) -> (usize, bool) {
        let mut i = self.home(key);
        loop {
            if self.counts[i] == 0 {
                return (i, false);
            }
            if self.keys[i] == key {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The count `key` holds now.
    fn held(&self, key: u128) -> u32 {
        match self.find(key) {
            (i, true) => self.counts[i],
            _ => 0,
        }
    }

    fn add(&mut self, key: u128) {
        let (i, found) = self.find(key);
        if !found {
            self.keys[i] = key;
        }
        self.counts[i] += 1;
    }

    fn remove_one(&mut self, key: u128) {
        let (i, found) = self.find(key);
        if !found {
            return;
        }
        self.counts[i] -= 1;
        if self.counts[i] == 0 {
            self.close_gap(i);
        }
    }

    /// Backward-shift deletion: moves later entries of the run into the emptied slot when
    /// their home lies at or before it, so every key stays reachable from its home without
    /// tombstones.
    fn close_gap(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            if self.counts[j] == 0 {
                return;
            }
            let home = self.home(self.keys[j]);
            // Can j's entry move back to the hole? Only if the hole is not before its home,
            // counting along the run from home to j.
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.keys[hole] = self.keys[j];
                self.counts[hole] = self.counts[j];
                self.counts[j] = 0;
                hole = j;
            }
        }
    }
}

impl Table {
    /// A table for a process that holds at most `bound` connections (at least 1), each client
    /// at most `per_client` (`None`: no per-client limit). Its memory, 20 bytes a slot for the
    /// next power of two at or above twice `bound`, is allocated here and never grows.
    pub fn new(per_client: Option<u32>, bound: u32) -> Table {
        let bound = bound.max(1);
        let n = (2 * bound as usize).next_power_of_two().max(16);
        Table {
            per_client,
            bound,
            // Without a per-client limit no key is ever stored.
            slots: Mutex::new(Slots::with_slots(if per_client.is_some() { n } else { 1 })),
        }
    }

    /// The process's bound on open connections.
    pub fn bound(&self) -> u32 {
        self.bound
    }

    /// The per-client limit, if on.
    pub fn per_client(&self) -> Option<u32> {
        self.per_client
    }

    /// Admits a new connection from the client with this key (`None`: exempt from the
    /// per-client limit, such as a trusted proxy, and counted only for the process), and counts
    /// it; or refuses it, and counts nothing. Returns the connections now open.
    pub fn admit(&self, key: Option<u128>) -> Result<u32, Refusal> {
        let mut s = self.lock();
        let key = key.filter(|_| self.per_client.is_some());
        let held = key.map(|k| s.held(k));
        decide(s.open, self.bound, held, self.per_client)?;
        if let Some(k) = key {
            s.add(k);
        }
        s.open += 1;
        Ok(s.open)
    }

    /// Counts a connection admitted with this key as closed. Returns the connections now open.
    pub fn release(&self, key: Option<u128>) -> u32 {
        let mut s = self.lock();
        if let Some(k) = key.filter(|_| self.per_client.is_some()) {
            s.remove_one(k);
        }
        s.open = s.open.saturating_sub(1);
        s.open
    }

    /// The connections open now.
    pub fn open(&self) -> u32 {
        self.lock().open
    }

    /// The connections the client with this key holds now.
    pub fn held(&self, key: u128) -> u32 {
        self.lock().held(key)
    }

    /// The bytes of slots held, fixed at construction.
    pub fn bytes(&self) -> usize {
        let s = self.lock();
        s.keys.len() * (std::mem::size_of::<u128>() + std::mem::size_of::<u32>())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while the lock was held cannot leave the counts half-written (each
        // operation writes whole slots), so a poisoned lock is still good to use.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_bound_comes_first_then_the_clients_own() {
        use Refusal::*;
        type Case = (u32, u32, Option<u32>, Option<u32>, Result<(), Refusal>);
        let cases: &[Case] = &[
            // open, bound, client holds, per-client limit, decision
            (0, 10, Some(0), Some(2), Ok(())),
            (5, 10, Some(1), Some(2), Ok(())),
            (5, 10, Some(2), Some(2), Err(PerClient)),
            (5, 10, Some(7), Some(2), Err(PerClient)),
            (9, 10, Some(0), Some(2), Ok(())),
            (10, 10, Some(0), Some(2), Err(Process)),
            (10, 10, Some(2), Some(2), Err(Process)),
            (11, 10, None, Some(2), Err(Process)),
            // Exempt clients (trusted proxies) and a per-client limit that is off.
            (9, 10, None, Some(2), Ok(())),
            (9, 10, Some(500), None, Ok(())),
            (10, 10, Some(0), None, Err(Process)),
        ];
        for (i, (open, bound, held, limit, want)) in cases.iter().enumerate() {
            assert_eq!(decide(*open, *bound, *held, *limit), *want, "case {i}");
        }
    }

    #[test]
    fn a_client_gets_its_limit_and_its_slots_back_when_they_close() {
        let t = Table::new(Some(3), 100);
        let (a, b) = (Some(1u128), Some(2u128));
        for open in 1..=3 {
            assert_eq!(t.admit(a), Ok(open));
        }
        assert_eq!(t.admit(a), Err(Refusal::PerClient), "the cap plus one");
        assert_eq!(t.admit(b), Ok(4), "another client is served");
        assert_eq!(t.admit(None), Ok(5), "an exempt client too");
        assert_eq!(t.release(a), 4);
        assert_eq!(t.admit(a), Ok(5), "one closed, one more admitted");
        for _ in 0..3 {
            t.release(a);
        }
        assert_eq!((t.held(1), t.held(2), t.open()), (0, 1, 2));
        for _ in 0..3 {
            assert!(t.admit(a).is_ok());
        }
    }

    #[test]
    fn the_process_is_full_at_its_bound_whoever_asks() {
        let t = Table::new(Some(3), 4);
        let results: Vec<_> = (0..6u128).map(|k| t.admit(Some(k))).collect();
        assert_eq!(results[..4], [Ok(1), Ok(2), Ok(3), Ok(4)]);
        assert_eq!(results[4..], [Err(Refusal::Process), Err(Refusal::Process)]);
        assert_eq!(t.admit(None), Err(Refusal::Process), "exempt clients too");
        t.release(Some(0));
        assert_eq!(t.admit(None), Ok(4));
    }

    #[test]
    fn without_a_per_client_limit_only_the_process_counts() {
        let t = Table::new(None, 5);
        for open in 1..=5 {
            assert_eq!(t.admit(Some(7)), Ok(open));
        }
        assert_eq!(t.admit(Some(7)), Err(Refusal::Process));
        assert_eq!(t.held(7), 0, "no key is stored");
        assert!(t.bytes() <= 20, "and no table is allocated");
    }

    /// Many clients coming and going in a scrambled order, checked against a plain map: the
    /// table must agree after every step (which exercises the backward-shift deletion on runs
    /// that wrap around the end of the table).
    #[test]
    fn counts_match_a_plain_map_through_churn() {
        use std::collections::HashMap;
        let t = Table::new(Some(4), 64);
        let mut model: HashMap<u128, u32> = HashMap::new();
        let mut open = 0u32;
        // A fixed pseudo-random walk (xorshift), so a failure reproduces.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = u128::from(x % 40);
            let held = model.get(&key).copied().unwrap_or(0);
            if x & 0x100 == 0 && held > 0 {
                t.release(Some(key));
                model.insert(key, held - 1);
                open -= 1;
            } else {
                let want = decide(open, 64, Some(held), Some(4)).map(|()| open + 1);
                assert_eq!(t.admit(Some(key)), want, "step {step}");
                if want.is_ok() {
                    model.insert(key, held + 1);
                    open += 1;
                }
            }
            if step % 997 == 0 {
                for (k, n) in &model {
                    assert_eq!(t.held(*k), *n, "step {step}, key {k}");
                }
            }
        }
        assert_eq!(t.open(), open);
    }

    #[test]
    fn memory_is_fixed_however_many_addresses_come_and_go() {
        let t = Table::new(Some(2), 1000);
        let before = t.bytes();
        assert_eq!(
            before,
            2048 * 20,
            "2,048 slots of 20 bytes for a bound of 1,000"
        );
        // 1,000,000 distinct addresses, each holding a connection for a while.
        let mut held = std::collections::VecDeque::new();
        for k in 0..1_000_000u128 {
            if held.len() == 1000 {
                t.release(held.pop_front());
            }
            assert!(t.admit(Some(k << 64)).is_ok(), "address {k}");
            held.push_back(k << 64);
        }
        assert_eq!(t.bytes(), before);
        assert_eq!(t.open(), 1000);
        assert_eq!(t.admit(Some(1)), Err(Refusal::Process));
    }
}
