//! Leases: segments being read (a clip streaming to a client) that retention must not
//! delete until the reading ends.
//!
//! In memory only (a lease dies with the response, or the process). The table is shared
//! through the [`Index`] handle, so the readers (export) and the deleter (the committer's
//! retention) meet without other wiring. Taking a lease and starting a deletion are
//! atomic with respect to each other: a deletion starts only on a segment nobody leases
//! ([`Index::begin_delete`]), and a lease is refused on a segment whose deletion started,
//! so a reader that leased a segment and then finds it still indexed can read all of it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::Index;

/// A segment's key: camera id and start µs.
pub type SegmentKey = (u32, i64);

#[derive(Default)]
pub(super) struct Table {
    leased: HashMap<SegmentKey, usize>,
    deleting: HashSet<SegmentKey>,
}

/// Segments leased by one reader; released on drop.
pub struct Lease {
    table: Arc<Mutex<Table>>,
    keys: Vec<SegmentKey>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({} segments)", self.keys.len())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap();
        for k in &self.keys {
            if let Some(n) = t.leased.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    t.leased.remove(k);
                }
            }
        }
    }
}

impl Index {
    /// Leases `keys`, or None if the deletion of any of them has begun (the caller finds
    /// it gone from the index and plans again).
    pub fn lease(&self, keys: Vec<SegmentKey>) -> Option<Lease> {
        let table = self.shared.leases.clone();
        let mut t = table.lock().unwrap();
        if keys.iter().any(|k| t.deleting.contains(k)) {
            return None;
        }
        for k in &keys {
            *t.leased.entry(*k).or_default() += 1;
        }
        drop(t);
        Some(Lease { table, keys })
    }

    /// Whether a segment is leased now.
    pub fn is_leased(&self, key: SegmentKey) -> bool {
        self.shared.leases.lock().unwrap().leased.contains_key(&key)
    }

    /// Marks a segment as being deleted, unless it is leased (then false: skip it for
    /// now). End with [`Index::end_delete`].
    pub fn begin_delete(&self, key: SegmentKey) -> bool {
        let mut t = self.shared.leases.lock().unwrap();
        if t.leased.contains_key(&key) {
            return false;
        }
        t.deleting.insert(key);
        true
    }

    /// The deletion of a segment ended (done, or failed and to be tried again).
    pub fn end_delete(&self, key: SegmentKey) {
        self.shared.leases.lock().unwrap().deleting.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_segment_cannot_be_deleted_until_released_and_vice_versa() {
        let ix = Index::temporary().unwrap();
        let a = ix.lease(vec![(1, 0), (1, 10)]).unwrap();
        let b = ix.lease(vec![(1, 10)]).unwrap();
        assert!(!ix.begin_delete((1, 0)) && !ix.begin_delete((1, 10)));
        assert!(ix.begin_delete((1, 20)));
        // A segment being deleted cannot be leased.
        assert!(ix.lease(vec![(1, 10), (1, 20)]).is_none());
        assert!(ix.is_leased((1, 10)), "a refused lease took nothing");
        drop(a);
        assert!(ix.begin_delete((1, 0)));
        assert!(!ix.begin_delete((1, 10)), "still leased by b");
        drop(b);
        assert!(!ix.is_leased((1, 10)));
        assert!(ix.begin_delete((1, 10)));
        ix.end_delete((1, 20));
        assert!(ix.lease(vec![(1, 20)]).is_some());
    }
}
