//! Immutable snapshots: a writer builds a new value off the hot path and swaps it in; readers
//! load the current one without a lock and keep it for as long as they use it.

use arc_swap::ArcSwap;
use std::sync::Arc;

/// A value readers load without locking and writers replace whole.
#[derive(Debug)]
pub struct Snapshot<T> {
    current: ArcSwap<T>,
}

impl<T> Snapshot<T> {
    /// Starts with `initial`.
    pub fn new(initial: T) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The current value; holding the guard keeps it alive, never blocks a writer.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    /// The current value as an owned `Arc` (for holding across many queries).
    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Replaces the value; readers see the old one or the new one, never a mix.
    pub fn store(&self, next: T) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_their_snapshot_across_a_swap() {
        let snap = Snapshot::new(vec![1, 2, 3]);
        let held = snap.load_full();
        snap.store(vec![4]);
        assert_eq!(*held, vec![1, 2, 3]);
        assert_eq!(**snap.load(), vec![4]);
    }
}
