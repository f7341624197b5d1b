//! The discrete-event core: a virtual clock and a binary heap of timed events.
//!
//! Events that fall on the same millisecond come out in the order they were scheduled
//! (a sequence number breaks ties), so a run depends on nothing but its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Virtual time in milliseconds. Runs start at [`T0`] rather than 0 so that record
/// times (unix seconds) look like real ones to the trust checks.
pub type Ms = u64;

/// 2026-01-01T00:00:00Z, in ms: where every run's clock starts.
pub const T0: Ms = 1_767_225_600_000;

pub const SECOND: Ms = 1_000;
pub const MINUTE: Ms = 60 * SECOND;
pub const HOUR: Ms = 60 * MINUTE;
pub const DAY: Ms = 24 * HOUR;

struct Entry<E> {
    at: Ms,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events in time order.
pub struct Queue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: Ms,
    /// Events handed out so far.
    pub popped: u64,
    /// Most events pending at once.
    pub peak: usize,
}

impl<E> Queue<E> {
    pub fn new(now: Ms) -> Self {
        Queue {
            heap: BinaryHeap::new(),
            seq: 0,
            now,
            popped: 0,
            peak: 0,
        }
    }

    /// The virtual clock: the time of the last event handed out.
    pub fn now(&self) -> Ms {
        self.now
    }

    /// Schedules `ev` at `at` (never in the past: an earlier time means now).
    pub fn at(&mut self, at: Ms, ev: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
        self.peak = self.peak.max(self.heap.len());
    }

    /// Schedules `ev` after `delay`.
    pub fn after(&mut self, delay: Ms, ev: E) {
        self.at(self.now.saturating_add(delay), ev);
    }

    /// The next event if it is due by `until`; the clock moves to it.
    pub fn pop_until(&mut self, until: Ms) -> Option<E> {
        if self.heap.peek().is_none_or(|e| e.at > until) {
            return None;
        }
        let e = self.heap.pop()?;
        self.now = e.at;
        self.popped += 1;
        Some(e.ev)
    }

    /// Moves the clock to `t` (when nothing is due before it).
    pub fn advance(&mut self, t: Ms) {
        debug_assert!(self.heap.peek().is_none_or(|e| e.at >= t));
        self.now = self.now.max(t);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The reference for docs/PERFORMANCE.md: the bare queue, no protocol, through
/// `events` events (each handled one schedules a new one up to a second later, the
/// shape of message delivery). Returns the wall time taken.
pub fn reference(events: u64, in_flight: u64, seed: u64) -> std::time::Duration {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut q: Queue<(u32, u32)> = Queue::new(T0);
    let start = std::time::Instant::now();
    for i in 0..in_flight {
        q.after(rng.gen_range(0..SECOND), (i as u32, 0));
    }
    let mut done = 0;
    while let Some((a, b)) = q.pop_until(Ms::MAX) {
        done += 1;
        if done + q.len() as u64 <= events {
            q.after(rng.gen_range(1..SECOND), (b, a));
        }
    }
    start.elapsed()
}

/// A seed for the `i`-th thing of kind `what` in a run seeded with `seed`: every state
/// machine gets its own stream, so adding one does not shift the others.
pub fn derive_seed(seed: u64, what: u64, i: u64) -> u64 {
    // SplitMix64 over the three words: cheap, and neighbouring inputs scatter.
    let mut z = seed
        .wrapping_add(what.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_time_then_scheduling_order() {
        let mut q = Queue::new(100);
        q.at(300, "c");
        q.at(200, "a");
        q.at(200, "b");
        q.at(50, "past");
        assert_eq!(q.pop_until(99), None);
        assert_eq!(q.pop_until(1000), Some("past"));
        assert_eq!(q.now(), 100, "an event in the past runs now");
        assert_eq!(q.pop_until(1000), Some("a"));
        assert_eq!(q.pop_until(1000), Some("b"));
        assert_eq!(q.pop_until(250), None);
        assert_eq!(q.pop_until(1000), Some("c"));
        assert_eq!(q.now(), 300);
        assert!(q.is_empty());
        assert_eq!((q.popped, q.peak), (4, 4));
    }

    #[test]
    fn derived_seeds_differ() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|i| derive_seed(7, 1, i)).collect();
        assert_eq!(a.len(), 1000);
        assert_ne!(derive_seed(7, 1, 0), derive_seed(7, 2, 0));
        assert_ne!(derive_seed(7, 1, 0), derive_seed(8, 1, 0));
    }
}
