//! The discrete-event core: a virtual clock and a calendar queue of timed events.
//!
//! Events that fall on the same millisecond come out in the order they were scheduled,
//! so a run depends on nothing but its seed.
//!
//! Why not `BinaryHeap`: at a million nodes the heap held millions of events and its
//! `pop` (a cache miss per level) took a third of a run. Nearly every event is due
//! within two minutes (message delivery, the 60 s pull and rendezvous rounds, dial
//! timeouts), so those go into one FIFO per millisecond of a 131 s wheel, found through
//! a two-level bitmap; the rare later ones (churn sessions, idle timeouts, the seed
//! scheme's days) wait in a heap ordered by (time, scheduling order) and move into the
//! wheel, in that order, as soon as their millisecond is inside it — before anything
//! scheduled later can land there, so each millisecond's FIFO is in scheduling order.
//! No crate offers this with that tie rule (timer wheels hand out a slot's events in
//! any order, or round times to ticks).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Virtual time in milliseconds. Runs start at [`T0`] rather than 0 so that record
/// times (unix seconds) look like real ones to the trust checks.
pub type Ms = u64;

/// 2026-01-01T00:00:00Z, in ms: where every run's clock starts.
pub const T0: Ms = 1_767_225_600_000;

pub const SECOND: Ms = 1_000;
pub const MINUTE: Ms = 60 * SECOND;
pub const HOUR: Ms = 60 * MINUTE;
pub const DAY: Ms = 24 * HOUR;

/// The wheel spans 2^17 ms (131 s): one slot per millisecond.
const WHEEL: usize = 1 << 17;
/// A slot whose queue grew past this many events gives its memory back once empty
/// (the burst of a push wave need not stay allocated).
const KEEP: usize = 16;

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
    /// Events due at `t` for `t` in `now .. now + WHEEL`, in slot `t % WHEEL`, in
    /// scheduling order.
    slots: Vec<VecDeque<E>>,
    /// Bit per slot: not empty. And a bit per word of `occupied`: not zero.
    occupied: Vec<u64>,
    summary: Vec<u64>,
    in_wheel: usize,
    /// Events due at `now + WHEEL` or later.
    far: BinaryHeap<Entry<E>>,
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
            slots: (0..WHEEL).map(|_| VecDeque::new()).collect(),
            occupied: vec![0; WHEEL / 64],
            summary: vec![0; WHEEL / 64 / 64],
            in_wheel: 0,
            far: BinaryHeap::new(),
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
        let at = at.max(self.now);
        if at - self.now < WHEEL as Ms {
            self.put(at, ev);
        } else {
            self.seq += 1;
            self.far.push(Entry {
                at,
                seq: self.seq,
                ev,
            });
        }
        self.peak = self.peak.max(self.len());
    }

    /// Schedules `ev` after `delay`.
    pub fn after(&mut self, delay: Ms, ev: E) {
        self.at(self.now.saturating_add(delay), ev);
    }

    /// The next event if it is due by `until`; the clock moves to it.
    pub fn pop_until(&mut self, until: Ms) -> Option<E> {
        let at = self.next_at()?;
        if at > until {
            return None;
        }
        self.set_now(at);
        let slot = (at % WHEEL as Ms) as usize;
        let q = &mut self.slots[slot];
        let ev = q.pop_front().expect("an occupied slot holds an event");
        if q.is_empty() {
            if q.capacity() > KEEP {
                *q = VecDeque::new();
            }
            self.clear_bit(slot);
        }
        self.in_wheel -= 1;
        self.popped += 1;
        Some(ev)
    }

    /// Moves the clock to `t` (when nothing is due before it).
    pub fn advance(&mut self, t: Ms) {
        debug_assert!(self.next_at().is_none_or(|at| at >= t));
        if t > self.now {
            self.set_now(t);
        }
    }

    /// The `k`-th event still due at the current time, if any (what comes next, for
    /// the driver to fetch its memory early).
    pub fn peek_now(&self, k: usize) -> Option<&E> {
        self.slots[(self.now % WHEEL as Ms) as usize].get(k)
    }

    pub fn len(&self) -> usize {
        self.in_wheel + self.far.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(&mut self, at: Ms, ev: E) {
        let slot = (at % WHEEL as Ms) as usize;
        self.slots[slot].push_back(ev);
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.summary[slot / 4096] |= 1 << (slot / 64 % 64);
        self.in_wheel += 1;
    }

    fn clear_bit(&mut self, slot: usize) {
        let w = &mut self.occupied[slot / 64];
        *w &= !(1 << (slot % 64));
        if *w == 0 {
            self.summary[slot / 4096] &= !(1 << (slot / 64 % 64));
        }
    }

    /// Moves the clock (and the wheel's window) to `t`: far events now inside the
    /// window enter it, earliest first, ties in scheduling order.
    fn set_now(&mut self, t: Ms) {
        self.now = t;
        let end = t.saturating_add(WHEEL as Ms);
        while self.far.peek().is_some_and(|e| e.at < end) {
            let e = self.far.pop().expect("peeked");
            self.put(e.at, e.ev);
        }
    }

    /// When the earliest pending event is due. Every event in the wheel is due before
    /// every far one.
    fn next_at(&self) -> Option<Ms> {
        if self.in_wheel == 0 {
            return self.far.peek().map(|e| e.at);
        }
        let from = (self.now % WHEEL as Ms) as usize;
        let slot = self
            .first_occupied(from)
            .or_else(|| self.first_occupied(0))
            .expect("the wheel holds an event");
        let ahead = (slot + WHEEL - from) % WHEEL;
        Some(self.now + ahead as Ms)
    }

    /// The first occupied slot at or after `from` (no wrapping).
    fn first_occupied(&self, from: usize) -> Option<usize> {
        let w = from / 64;
        let bits = self.occupied[w] & (!0u64 << (from % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        // The next non-zero word, through the summary.
        let next = w + 1;
        if next == self.occupied.len() {
            return None;
        }
        let mut s = next / 64;
        let mut sbits = self.summary[s] & (!0u64 << (next % 64));
        loop {
            if sbits != 0 {
                let word = s * 64 + sbits.trailing_zeros() as usize;
                return Some(word * 64 + self.occupied[word].trailing_zeros() as usize);
            }
            s += 1;
            if s == self.summary.len() {
                return None;
            }
            sbits = self.summary[s];
        }
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

    /// The calendar queue hands events out exactly as a binary heap ordered by (time,
    /// scheduling order) does — the order every report depends on — with ties, events
    /// in the past, events beyond the wheel, and clock jumps longer than the wheel.
    #[test]
    fn same_order_as_a_binary_heap_by_time_then_scheduling() {
        use rand::{Rng, SeedableRng};
        use std::cmp::Reverse;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let start = T0;
        let mut q: Queue<u32> = Queue::new(start);
        let mut heap: BinaryHeap<Reverse<(Ms, u64, u32)>> = BinaryHeap::new();
        let (mut seq, mut now, mut handed) = (0u64, start, 0);
        for id in 0..200_000u32 {
            match rng.gen_range(0..100) {
                // Pop up to a horizon, sometimes past a quiet stretch.
                0..=39 => {
                    let until = now + [0, 3, 500, 200_000, 3 * DAY][rng.gen_range(0..5)];
                    loop {
                        let want = heap.peek().filter(|e| e.0.0 <= until).map(|e| e.0);
                        let got = q.pop_until(until);
                        assert_eq!(got, want.map(|w| w.2), "event {handed}");
                        let Some((at, _, _)) = want else { break };
                        heap.pop();
                        now = at;
                        assert_eq!(q.now(), now);
                        handed += 1;
                        if rng.gen_bool(0.3) {
                            break;
                        }
                    }
                }
                // Move the clock with nothing due before it.
                40..=41 => {
                    let next = heap.peek().map_or(Ms::MAX, |e| e.0.0);
                    let t = (now + rng.gen_range(0..300_000)).min(next);
                    q.advance(t);
                    now = now.max(t);
                    assert_eq!(q.now(), now);
                }
                // Schedule: the same millisecond often, now, the past, far ahead.
                _ => {
                    let at = match rng.gen_range(0..10) {
                        0 => now.saturating_sub(rng.gen_range(0..1000)),
                        1 => now,
                        2 => now + rng.gen_range(100_000..400_000),
                        3 => now + rng.gen_range(0..30) * DAY,
                        4 => now + WHEEL as Ms - 1 + rng.gen_range(0..3),
                        _ => now + rng.gen_range(0..20) * 7,
                    };
                    seq += 1;
                    heap.push(Reverse((at.max(now), seq, id)));
                    q.at(at, id);
                }
            }
            assert_eq!(q.len(), heap.len());
        }
        while let Some(Reverse((at, _, id))) = heap.pop() {
            assert_eq!(q.pop_until(Ms::MAX), Some(id));
            assert_eq!(q.now(), at);
        }
        assert!(q.is_empty());
        assert!(handed > 10_000, "{handed}");
    }

    #[test]
    fn derived_seeds_differ() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|i| derive_seed(7, 1, i)).collect();
        assert_eq!(a.len(), 1000);
        assert_ne!(derive_seed(7, 1, 0), derive_seed(7, 2, 0));
        assert_ne!(derive_seed(7, 1, 0), derive_seed(8, 1, 0));
    }
}
