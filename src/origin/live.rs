//! The allow list in use, swappable while requests read it.
//!
//! A request loads the current [`OriginSet`] with one `arc-swap` load (no lock, no allocation,
//! no reference-count traffic on the hot path); a background refresh (origins from Ackee)
//! stores a new set, compiled beforehand, in one atomic swap. Requests that loaded the old set
//! finish with it.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::OriginSet;

/// A shared handle on the allow list in use. Clones share the same list.
#[derive(Clone, Debug)]
pub struct LiveOrigins {
    current: Arc<ArcSwap<OriginSet>>,
}

impl LiveOrigins {
    /// Starts with a compiled set.
    pub(crate) fn new(set: OriginSet) -> LiveOrigins {
        LiveOrigins {
            current: Arc::new(ArcSwap::from_pointee(set)),
        }
    }

    /// The set in use, for one request.
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<OriginSet>> {
        self.current.load()
    }

    /// Replaces the set in use.
    pub(crate) fn store(&self, set: OriginSet) {
        self.current.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    #[test]
    fn a_stored_set_is_seen_by_every_clone_and_a_loaded_one_stays_valid() {
        let a = LiveOrigins::new(OriginSet::new([parse_entry("https://a.test").unwrap()]));
        let b = a.clone();
        let before = a.load();
        b.store(OriginSet::new([parse_entry("https://b.test").unwrap()]));
        assert!(before.find("https://a.test").is_some());
        assert!(a.load().find("https://a.test").is_none());
        assert!(a.load().find("https://b.test").is_some());
    }
}
