//! Per-partition progress: the next offset that may be committed — never past a record that is not done.

use std::sync::atomic::{AtomicI64, Ordering};

/// The commit position of one partition.
#[derive(Debug)]
pub struct Progress {
    next: AtomicI64,
    committed: AtomicI64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            next: AtomicI64::new(-1),
            committed: AtomicI64::new(-1),
        }
    }
}

impl Progress {
    /// Every record before `offset` is done (delivered, dead-lettered or skipped).
    pub fn done_before(&self, offset: i64) {
        self.next.fetch_max(offset, Ordering::AcqRel);
    }

    /// The offset to commit if it moved since the last commit.
    pub fn pending(&self) -> Option<i64> {
        let next = self.next.load(Ordering::Acquire);
        (next >= 0 && next > self.committed.load(Ordering::Acquire)).then_some(next)
    }

    /// Records a successful commit.
    pub fn committed(&self, offset: i64) {
        self.committed.fetch_max(offset, Ordering::AcqRel);
    }

    /// The last committed offset (-1 if none yet).
    pub fn committed_offset(&self) -> i64 {
        self.committed.load(Ordering::Acquire)
    }

    /// The next offset to commit (-1 if nothing is done yet).
    pub fn next(&self) -> i64 {
        self.next.load(Ordering::Acquire)
    }
}

/// The offset to commit after a batch, given which of its records are done: the first record not done, or one
/// past the last record when all are.
pub fn commit_point(offsets: &[i64], done: &[bool]) -> Option<i64> {
    match done.iter().position(|d| !d) {
        Some(0) => None,
        Some(i) => Some(offsets[i]),
        None => offsets.last().map(|o| o + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_past_an_unfinished_record() {
        let offsets = [10, 11, 12, 13];
        assert_eq!(commit_point(&offsets, &[true, true, true, true]), Some(14));
        assert_eq!(commit_point(&offsets, &[true, true, false, true]), Some(12));
        assert_eq!(commit_point(&offsets, &[false, true, true, true]), None);
        let p = Progress::default();
        assert_eq!(p.pending(), None);
        p.done_before(12);
        p.done_before(11); // never moves back
        assert_eq!(p.pending(), Some(12));
        p.committed(12);
        assert_eq!(p.pending(), None);
    }
}
