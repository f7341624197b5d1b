//! The stem transfer of upload containers over wire connections (`ss_blob`, PROTOCOL.md
//! §19), and the per-peer limits on `ss_blob` and `ss_up`, as a sans-IO state machine:
//! events and time in, actions out. The driver owns the files: it reads the ranges this
//! machine asks it to send, writes what arrives, and hashes a finished container.
//!
//! The receiver drives: it answers an offer with what it already holds (so a transfer
//! cut by a crash or a lost connection resumes where it stopped) and grants the sender a
//! window of bytes at a time. Grants are paced by a per-peer byte budget, so a sender
//! can never send faster than the receiver allows; bytes out of order or past the grant
//! are a protocol breach. `Done` is sent only once the container is on disk whole and
//! hashes to its id.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use crate::gossip::PeerKey;
use crate::wire::message::{BLOB_CHUNK, Blob, BlobId};

/// Settings of the stem transfer: the grant window, the per-address budgets, how many
/// containers arrive at once, and the stall timeout.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Bytes granted ahead of what the receiver holds.
    pub window: u64,
    /// Incoming container bytes per second from one address, and the burst. Kept well
    /// under the wire connection's message limit (50 messages/s, burst 400) so that
    /// an honest sender never trips it.
    pub bytes_per_sec: u64,
    /// The burst of that byte budget (raised to at least `window`; both are capped so
    /// that grants stay under the message limit).
    pub burst_bytes: u64,
    /// Offers taken from one address: burst, and refill per hour.
    pub offers_burst: u32,
    /// Offers per hour that budget refills by.
    pub offers_per_hour: u32,
    /// `up` announcements heeded from one address: burst, and refill per hour.
    pub ups_burst: u32,
    /// `up` announcements per hour that budget refills by.
    pub ups_per_hour: u32,
    /// Containers received at once from one peer, and in all.
    pub incoming_per_peer: usize,
    /// Containers received at once from all peers together.
    pub incoming_total: usize,
    /// A transfer that makes no progress for this long fails, on both sides.
    pub stall_ms: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            window: 1 << 20,
            bytes_per_sec: 1 << 20,
            burst_bytes: 8 << 20,
            offers_burst: 8,
            offers_per_hour: 30,
            ups_burst: 64,
            ups_per_hour: 600,
            incoming_per_peer: 2,
            incoming_total: 8,
            stall_ms: 60_000,
        }
    }
}

impl TransferConfig {
    /// The byte budget, capped at 40 full chunks a second and 300 chunks of burst: the
    /// wire connection closes a peer sending more than 50 messages a second
    /// (burst 400), and grants must never make an honest sender do that.
    fn byte_budget(&self) -> (f64, f64) {
        let chunk = BLOB_CHUNK as u64;
        (
            self.bytes_per_sec.min(40 * chunk) as f64,
            self.burst_bytes.clamp(self.window, 300 * chunk) as f64,
        )
    }
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    at: u64,
}

impl Bucket {
    fn full(burst: f64, now: u64) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: u64) {
        let secs = now.saturating_sub(self.at) as f64 / 1000.0;
        self.tokens = (self.tokens + secs * rate).min(burst);
        self.at = now;
    }

    fn take(&mut self, n: f64, rate: f64, burst: f64, now: u64) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// When `n` tokens will be there (ms), at the earliest `now`.
    fn ready_at(&self, n: f64, rate: f64, now: u64) -> u64 {
        if self.tokens >= n || rate <= 0.0 {
            now
        } else {
            self.at + ((n - self.tokens) / rate * 1000.0).ceil() as u64
        }
    }
}

/// The limits kept per address (they outlive a connection, so reconnecting does not
/// reset them).
#[derive(Clone, Debug)]
struct Limits {
    bytes: Bucket,
    offers: Bucket,
    ups: Bucket,
}

#[derive(Clone, Debug)]
struct Incoming {
    size: u64,
    have: u64,
    granted: u64,
    /// True when every byte came from this peer (a hash mismatch is then its fault).
    from_start: bool,
    /// Waiting for the driver's hash check.
    verifying: bool,
    last: u64,
}

#[derive(Clone, Debug)]
struct Outgoing {
    size: u64,
    /// Bytes asked of the driver so far (`None` before the first `Want`).
    sent: Option<u64>,
    last: u64,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferAction {
    /// Send `msg` to `peer`.
    Send {
        /// The wire peer to send to.
        peer: PeerKey,
        /// The `ss_blob` message.
        msg: Blob,
    },
    /// Read bytes `at .. at + len` of container `id` and send them to `peer` as `Data`.
    SendData {
        /// The wire peer to send to.
        peer: PeerKey,
        /// The container to read from.
        id: BlobId,
        /// Offset of the first byte.
        at: u64,
        /// How many bytes, at most [`BLOB_CHUNK`].
        len: u64,
    },
    /// Write `data` at offset `at` of the partial file of `id` (from `peer`), then call
    /// [`Transfers::stored`] (or [`Transfers::abort`] when it cannot be kept).
    Store {
        /// The peer that sent the bytes.
        peer: PeerKey,
        /// The container they belong to.
        id: BlobId,
        /// Offset of `data` in the container.
        at: u64,
        /// The bytes to write.
        data: Vec<u8>,
    },
    /// All of `id` arrived from `peer`: hash it and call [`Transfers::verified`].
    /// `from_start`: every byte came from this peer.
    Verify {
        /// The peer that sent the container.
        peer: PeerKey,
        /// The container, whose SHA-256 must equal this id.
        id: BlobId,
        /// True when every byte came from `peer` (a mismatch is then its fault).
        from_start: bool,
    },
    /// `peer` holds our container `id` whole.
    Delivered {
        /// The peer that now holds it.
        peer: PeerKey,
        /// Our container.
        id: BlobId,
    },
    /// Handing `id` to `peer` failed.
    SendFailed {
        /// The peer it was being sent to.
        peer: PeerKey,
        /// Our container.
        id: BlobId,
        /// Why: the peer's refusal, a stall, the connection closing, …
        why: String,
    },
    /// A transfer from `peer` ended unfinished; what arrived stays for a resume.
    Abandoned {
        /// The peer that was sending it.
        peer: PeerKey,
        /// The unfinished container.
        id: BlobId,
    },
    /// `peer` broke the transfer protocol: record it and close the connection.
    Violation {
        /// The offending peer.
        peer: PeerKey,
        /// What it did, for the record.
        why: String,
    },
}

/// What the driver knows of an offered container before the transfer starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    /// Held whole already (or known to be at the intake): answer `Done`.
    Whole,
    /// This many bytes are on disk from an earlier try: resume from there.
    Partial(u64),
    /// Not taken (quota full, over the cap, …): the reason is sent to the peer.
    Refuse(String),
}

/// Every stem transfer with every wire peer, both ways, and the per-address limits
/// (see the module doc).
pub struct Transfers {
    cfg: TransferConfig,
    sources: HashMap<PeerKey, IpAddr>,
    limits: HashMap<IpAddr, Limits>,
    incoming: BTreeMap<(PeerKey, BlobId), Incoming>,
    outgoing: BTreeMap<(PeerKey, BlobId), Outgoing>,
    actions: VecDeque<TransferAction>,
}

/// Addresses whose limits are remembered, at most (idle ones are forgotten first).
const MAX_SOURCES: usize = 4096;

impl Transfers {
    /// No peers and no transfers yet.
    pub fn new(cfg: TransferConfig) -> Self {
        Transfers {
            cfg,
            sources: HashMap::new(),
            limits: HashMap::new(),
            incoming: BTreeMap::new(),
            outgoing: BTreeMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing the driver must do, oldest first.
    pub fn poll_action(&mut self) -> Option<TransferAction> {
        self.actions.pop_front()
    }

    /// A wire peer that takes uploads is ready; `source` is its address.
    pub fn peer_up(&mut self, peer: PeerKey, source: IpAddr) {
        self.sources.insert(peer, source);
    }

    /// The connection to `peer` is gone: every transfer with it ends.
    pub fn peer_down(&mut self, peer: PeerKey) {
        self.sources.remove(&peer);
        let range = (peer, [0; 32])..=(peer, [255; 32]);
        let ins: Vec<_> = self
            .incoming
            .range(range.clone())
            .map(|(k, _)| *k)
            .collect();
        let outs: Vec<_> = self.outgoing.range(range).map(|(k, _)| *k).collect();
        for (_, id) in ins {
            self.incoming.remove(&(peer, id));
            self.actions
                .push_back(TransferAction::Abandoned { peer, id });
        }
        for (_, id) in outs {
            self.outgoing.remove(&(peer, id));
            let why = "the connection closed".into();
            self.actions
                .push_back(TransferAction::SendFailed { peer, id, why });
        }
    }

    fn limits(&mut self, peer: PeerKey, now: u64) -> Option<&mut Limits> {
        let source = *self.sources.get(&peer)?;
        if !self.limits.contains_key(&source) && self.limits.len() >= MAX_SOURCES {
            // Forget addresses with no connection: their budgets are the least useful.
            let live: Vec<IpAddr> = self.sources.values().copied().collect();
            self.limits.retain(|ip, _| live.contains(ip));
        }
        let (_, burst) = self.cfg.byte_budget();
        let (offers, ups) = (self.cfg.offers_burst as f64, self.cfg.ups_burst as f64);
        Some(self.limits.entry(source).or_insert_with(|| Limits {
            bytes: Bucket::full(burst, now),
            offers: Bucket::full(offers, now),
            ups: Bucket::full(ups, now),
        }))
    }

    /// True when an `up` from `peer` is to be heeded (its budget allows it).
    pub fn allow_up(&mut self, peer: PeerKey, now: u64) -> bool {
        let (rate, burst) = (
            self.cfg.ups_per_hour as f64 / 3600.0,
            self.cfg.ups_burst as f64,
        );
        self.limits(peer, now)
            .is_some_and(|l| l.ups.take(1.0, rate, burst, now))
    }

    // --- Sending ---

    /// Hands container `id` (`size` bytes) to `peer`.
    pub fn send(&mut self, peer: PeerKey, id: BlobId, size: u64, now: u64) {
        self.outgoing.insert(
            (peer, id),
            Outgoing {
                size,
                sent: None,
                last: now,
            },
        );
        self.actions.push_back(TransferAction::Send {
            peer,
            msg: Blob::Offer { id, size },
        });
    }

    /// Stops sending `id` to `peer` (the driver lost the file): tells the peer.
    pub fn cancel(&mut self, peer: PeerKey, id: BlobId, why: &str) {
        if self.outgoing.remove(&(peer, id)).is_some() {
            self.actions.push_back(TransferAction::Send {
                peer,
                msg: Blob::no(id, why),
            });
            self.actions.push_back(TransferAction::SendFailed {
                peer,
                id,
                why: why.into(),
            });
        }
    }

    /// Stops sending `id` to anyone (it was receipted).
    pub fn cancel_all(&mut self, id: &BlobId, why: &str) {
        let peers: Vec<PeerKey> = self
            .outgoing
            .keys()
            .filter(|(_, i)| i == id)
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            self.cancel(peer, *id, why);
        }
    }

    // --- Messages ---

    /// A `Blob` message from `peer`. `local` is asked only for an offer (it reads the
    /// disk): what the driver holds of that container.
    pub fn handle(
        &mut self,
        peer: PeerKey,
        msg: Blob,
        local: impl FnOnce(&BlobId, u64) -> Local,
        now: u64,
    ) {
        match msg {
            Blob::Offer { id, size } => self.on_offer(peer, id, size, local, now),
            Blob::Want { id, have, until } => self.on_want(peer, id, have, until, now),
            Blob::Data { id, at, data } => self.on_data(peer, id, at, data, now),
            Blob::Done { id } => {
                if self.outgoing.remove(&(peer, id)).is_some() {
                    self.actions
                        .push_back(TransferAction::Delivered { peer, id });
                }
            }
            Blob::No { id, why } => {
                if self.outgoing.remove(&(peer, id)).is_some() {
                    self.actions
                        .push_back(TransferAction::SendFailed { peer, id, why });
                } else if self.incoming.remove(&(peer, id)).is_some() {
                    self.actions
                        .push_back(TransferAction::Abandoned { peer, id });
                }
            }
        }
    }

    fn on_offer(
        &mut self,
        peer: PeerKey,
        id: BlobId,
        size: u64,
        local: impl FnOnce(&BlobId, u64) -> Local,
        now: u64,
    ) {
        let refuse = |why: &str| TransferAction::Send {
            peer,
            msg: Blob::no(id, why),
        };
        if self.incoming.contains_key(&(peer, id)) {
            return; // a repeated offer: the transfer is under way
        }
        let from_peer = self.incoming.keys().filter(|(p, _)| *p == peer).count();
        let busy = from_peer >= self.cfg.incoming_per_peer
            || self.incoming.len() >= self.cfg.incoming_total
            || self.incoming.keys().any(|(_, i)| *i == id);
        if busy {
            self.actions.push_back(refuse("busy"));
            return;
        }
        let (offers_rate, offers_burst) = (
            self.cfg.offers_per_hour as f64 / 3600.0,
            self.cfg.offers_burst as f64,
        );
        let allowed = self
            .limits(peer, now)
            .is_some_and(|l| l.offers.take(1.0, offers_rate, offers_burst, now));
        if !allowed {
            self.actions.push_back(refuse("too many offers"));
            return;
        }
        let have = match local(&id, size) {
            Local::Whole => {
                self.actions.push_back(TransferAction::Send {
                    peer,
                    msg: Blob::Done { id },
                });
                return;
            }
            Local::Refuse(why) => {
                self.actions.push_back(refuse(&why));
                return;
            }
            Local::Partial(have) => have.min(size),
        };
        self.incoming.insert(
            (peer, id),
            Incoming {
                size,
                have,
                granted: have,
                from_start: have == 0,
                verifying: false,
                last: now,
            },
        );
        if have == size {
            self.verify(peer, id);
        } else {
            self.grant(peer, id, now);
        }
    }

    fn verify(&mut self, peer: PeerKey, id: BlobId) {
        if let Some(inc) = self.incoming.get_mut(&(peer, id)) {
            inc.verifying = true;
            self.actions.push_back(TransferAction::Verify {
                peer,
                id,
                from_start: inc.from_start,
            });
        }
    }

    /// Bytes `inc` may be granted now, budget aside: up to a window ahead of what
    /// arrived, once less than half a window is outstanding.
    fn wanted(&self, inc: &Incoming) -> u64 {
        let window = self.cfg.window;
        if inc.verifying || inc.granted >= inc.size || inc.granted - inc.have > window / 2 {
            return 0;
        }
        (inc.have + window).min(inc.size) - inc.granted
    }

    /// Grants as much of what is wanted as the peer's byte budget allows, in whole
    /// chunks (so a slow budget still moves the transfer on steadily); the rest
    /// [`Transfers::handle_timeout`] grants later.
    fn grant(&mut self, peer: PeerKey, id: BlobId, now: u64) {
        let (rate, burst) = self.cfg.byte_budget();
        let Some(want) = self.incoming.get(&(peer, id)).map(|i| self.wanted(i)) else {
            return;
        };
        if want == 0 {
            return;
        }
        let Some(limits) = self.limits(peer, now) else {
            return;
        };
        limits.bytes.refill(rate, burst, now);
        let tokens = limits.bytes.tokens.max(0.0) as u64;
        let chunk = BLOB_CHUNK as u64;
        let amount = if tokens >= want {
            want
        } else {
            tokens / chunk * chunk
        };
        if amount == 0 {
            return;
        }
        limits.bytes.tokens -= amount as f64;
        let inc = self.incoming.get_mut(&(peer, id)).expect("checked");
        let until = inc.granted + amount;
        inc.granted = until;
        inc.last = now;
        self.actions.push_back(TransferAction::Send {
            peer,
            msg: Blob::Want {
                id,
                have: inc.have,
                until,
            },
        });
    }

    fn on_want(&mut self, peer: PeerKey, id: BlobId, have: u64, until: u64, now: u64) {
        let Some(out) = self.outgoing.get_mut(&(peer, id)) else {
            return; // a late answer to a transfer already over
        };
        if until > out.size {
            let size = out.size;
            self.outgoing.remove(&(peer, id));
            self.actions.push_back(TransferAction::Violation {
                peer,
                why: format!("asked for bytes up to {until} of a {size}-byte upload"),
            });
            return;
        }
        out.last = now;
        // The first answer says where to start (a resume); later ones only extend.
        let from = *out.sent.get_or_insert(have);
        if until <= from {
            return;
        }
        out.sent = Some(until);
        let mut at = from;
        while at < until {
            let len = (until - at).min(BLOB_CHUNK as u64);
            self.actions
                .push_back(TransferAction::SendData { peer, id, at, len });
            at += len;
        }
    }

    /// Bytes in order and within the grant are stored; anything else is a breach.
    fn on_data(&mut self, peer: PeerKey, id: BlobId, at: u64, data: Vec<u8>, now: u64) {
        let len = data.len() as u64;
        let Some(inc) = self.incoming.get_mut(&(peer, id)) else {
            return; // a transfer we ended; what was in flight is dropped
        };
        let why = if at != inc.have {
            Some(format!("sent bytes at {at}, expected {}", inc.have))
        } else if at + len > inc.granted {
            Some(format!(
                "sent past its grant ({} > {})",
                at + len,
                inc.granted
            ))
        } else {
            None
        };
        if let Some(why) = why {
            self.incoming.remove(&(peer, id));
            self.actions
                .push_back(TransferAction::Abandoned { peer, id });
            self.actions
                .push_back(TransferAction::Violation { peer, why });
            return;
        }
        inc.have += len;
        inc.last = now;
        self.actions
            .push_back(TransferAction::Store { peer, id, at, data });
    }

    /// The driver wrote the bytes of the last `Store`: more may be granted.
    pub fn stored(&mut self, peer: PeerKey, id: BlobId, now: u64) {
        let Some(inc) = self.incoming.get(&(peer, id)) else {
            return;
        };
        if inc.have == inc.size {
            self.verify(peer, id);
        } else {
            self.grant(peer, id, now);
        }
    }

    /// The driver could not keep what arrived (disk error, quota): the transfer ends.
    pub fn abort(&mut self, peer: PeerKey, id: BlobId, why: &str) {
        if self.incoming.remove(&(peer, id)).is_some() {
            self.actions.push_back(TransferAction::Send {
                peer,
                msg: Blob::no(id, why),
            });
            self.actions
                .push_back(TransferAction::Abandoned { peer, id });
        }
    }

    /// The hash check of a finished incoming container: `Ok` tells the sender `Done`
    /// (call it only once the container is safely on disk), `Err` tells it why not.
    pub fn verified(&mut self, peer: PeerKey, id: BlobId, result: Result<(), String>) {
        if self.incoming.remove(&(peer, id)).is_none() {
            return;
        }
        let msg = match result {
            Ok(()) => Blob::Done { id },
            Err(why) => Blob::no(id, &why),
        };
        self.actions.push_back(TransferAction::Send { peer, msg });
    }

    // --- Time ---

    /// When [`Transfers::handle_timeout`] is next needed.
    pub fn next_timeout(&self) -> Option<u64> {
        let (rate, _) = self.cfg.byte_budget();
        let stalls = self
            .incoming
            .values()
            .filter(|i| !i.verifying)
            .map(|i| i.last + self.cfg.stall_ms)
            .chain(self.outgoing.values().map(|o| o.last + self.cfg.stall_ms));
        // Incoming transfers waiting for budget: for the next chunk of it.
        let grants = self.incoming.iter().filter_map(|((peer, _), i)| {
            let want = self.wanted(i).min(BLOB_CHUNK as u64);
            if want == 0 {
                return None;
            }
            let source = self.sources.get(peer)?;
            let bucket = &self.limits.get(source)?.bytes;
            Some(bucket.ready_at(want as f64, rate, bucket.at))
        });
        stalls.chain(grants).min()
    }

    /// Grants what the budgets now allow, and ends transfers that stalled.
    pub fn handle_timeout(&mut self, now: u64) {
        let stalled_in: Vec<_> = self
            .incoming
            .iter()
            .filter(|(_, i)| !i.verifying && now >= i.last + self.cfg.stall_ms)
            .map(|(k, _)| *k)
            .collect();
        for (peer, id) in stalled_in {
            self.abort(peer, id, "stalled");
        }
        let stalled_out: Vec<_> = self
            .outgoing
            .iter()
            .filter(|(_, o)| now >= o.last + self.cfg.stall_ms)
            .map(|(k, _)| *k)
            .collect();
        for (peer, id) in stalled_out {
            self.cancel(peer, id, "stalled");
        }
        let waiting: Vec<_> = self.incoming.keys().copied().collect();
        for (peer, id) in waiting {
            self.grant(peer, id, now);
        }
    }

    /// Incoming transfers under way: (peer, id, bytes held, size).
    pub fn incoming(&self) -> impl Iterator<Item = (PeerKey, &BlobId, u64, u64)> {
        self.incoming
            .iter()
            .map(|((p, id), i)| (*p, id, i.have, i.size))
    }

    /// True when `id` is being sent to anyone.
    pub fn sending(&self, id: &BlobId) -> bool {
        self.outgoing.keys().any(|(_, i)| i == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerKey = 1; // the sender, as the receiver knows it
    const B: PeerKey = 2; // the receiver, as the sender knows it

    fn cfg() -> TransferConfig {
        TransferConfig {
            window: 4 * BLOB_CHUNK as u64,
            bytes_per_sec: 40 * BLOB_CHUNK as u64,
            burst_bytes: 8 * BLOB_CHUNK as u64,
            ..TransferConfig::default()
        }
    }

    /// A sender and a receiver joined by a perfect link, with the driver's part done
    /// in memory.
    struct Pair {
        tx: Transfers,
        rx: Transfers,
        file: Vec<u8>,
        got: Vec<u8>,
        partial: u64,
        events: Vec<TransferAction>,
    }

    impl Pair {
        fn new(cfg: TransferConfig, size: usize) -> Self {
            let mut tx = Transfers::new(cfg.clone());
            let mut rx = Transfers::new(cfg);
            tx.peer_up(B, "127.0.0.2".parse().unwrap());
            rx.peer_up(A, "127.0.0.1".parse().unwrap());
            Pair {
                tx,
                rx,
                file: (0..size).map(|i| (i % 251) as u8).collect(),
                got: Vec::new(),
                partial: 0,
                events: Vec::new(),
            }
        }

        /// Moves messages until both sides are quiet.
        fn pump(&mut self, now: u64) {
            for _ in 0..10_000 {
                let mut busy = false;
                while let Some(a) = self.tx.poll_action() {
                    busy = true;
                    match a {
                        TransferAction::Send { msg, .. } => {
                            let partial = self.partial;
                            self.rx.handle(A, msg, |_, _| Local::Partial(partial), now)
                        }
                        TransferAction::SendData { id, at, len, .. } => {
                            let data = self.file[at as usize..(at + len) as usize].to_vec();
                            self.rx
                                .handle(A, Blob::Data { id, at, data }, |_, _| Local::Whole, now)
                        }
                        other => self.events.push(other),
                    }
                }
                while let Some(a) = self.rx.poll_action() {
                    busy = true;
                    match a {
                        TransferAction::Send { msg, .. } => {
                            self.tx.handle(B, msg, |_, _| Local::Whole, now)
                        }
                        TransferAction::Store { id, at, data, .. } => {
                            assert_eq!(at as usize, self.got.len());
                            self.got.extend_from_slice(&data);
                            self.rx.stored(A, id, now);
                        }
                        TransferAction::Verify { id, .. } => {
                            self.events.push(a.clone());
                            self.rx.verified(A, id, Ok(()));
                        }
                        other => self.events.push(other),
                    }
                }
                if !busy {
                    return;
                }
            }
            panic!("no end");
        }
    }

    #[test]
    fn a_container_crosses_whole_within_the_budget() {
        let size = 10 * BLOB_CHUNK + 123;
        let mut p = Pair::new(cfg(), size);
        p.tx.send(B, [1; 32], size as u64, 0);
        p.pump(0);
        // The burst (8 chunks) went at once; the rest waits for budget.
        assert!(p.got.len() < size && p.got.len() >= 8 * BLOB_CHUNK - 1);
        let mut now = 0;
        for _ in 0..100 {
            let Some(t) = p.rx.next_timeout() else { break };
            assert!(t > now, "time moves on");
            now = t;
            p.rx.handle_timeout(now);
            p.tx.handle_timeout(now);
            p.pump(now);
            if p.got.len() == size {
                break;
            }
        }
        assert_eq!(p.got, p.file);
        assert!(now < 1000, "paced at 40 chunks a second: {now} ms");
        assert!(p.events.contains(&TransferAction::Verify {
            peer: A,
            id: [1; 32],
            from_start: true
        }));
        assert!(p.events.contains(&TransferAction::Delivered {
            peer: B,
            id: [1; 32]
        }));
        assert_eq!(p.tx.next_timeout(), None);
        assert!(p.rx.incoming().next().is_none());
    }

    #[test]
    fn a_resumed_transfer_starts_where_the_receiver_stopped() {
        let size = 3 * BLOB_CHUNK;
        let mut p = Pair::new(cfg(), size);
        p.partial = BLOB_CHUNK as u64 + 7;
        p.got = p.file[..p.partial as usize].to_vec();
        p.tx.send(B, [2; 32], size as u64, 0);
        p.pump(0);
        assert_eq!(p.got, p.file);
        assert!(p.events.contains(&TransferAction::Verify {
            peer: A,
            id: [2; 32],
            from_start: false
        }));
    }

    #[test]
    fn a_held_or_refused_container_ends_at_once() {
        let mut rx = Transfers::new(cfg());
        rx.peer_up(A, "127.0.0.1".parse().unwrap());
        rx.handle(
            A,
            Blob::Offer {
                id: [3; 32],
                size: 9,
            },
            |_, _| Local::Whole,
            0,
        );
        assert_eq!(
            rx.poll_action(),
            Some(TransferAction::Send {
                peer: A,
                msg: Blob::Done { id: [3; 32] }
            })
        );
        rx.handle(
            A,
            Blob::Offer {
                id: [4; 32],
                size: 9,
            },
            |_, _| Local::Refuse("storage quota full".into()),
            0,
        );
        assert_eq!(
            rx.poll_action(),
            Some(TransferAction::Send {
                peer: A,
                msg: Blob::No {
                    id: [4; 32],
                    why: "storage quota full".into()
                }
            })
        );
        // The sender hears it as a failed hop, with the reason.
        let mut tx = Transfers::new(cfg());
        tx.send(B, [4; 32], 9, 0);
        tx.poll_action();
        tx.handle(
            B,
            Blob::No {
                id: [4; 32],
                why: "storage quota full".into(),
            },
            |_, _| Local::Whole,
            0,
        );
        assert_eq!(
            tx.poll_action(),
            Some(TransferAction::SendFailed {
                peer: B,
                id: [4; 32],
                why: "storage quota full".into()
            })
        );
    }

    fn violation(rx: &mut Transfers) -> bool {
        std::iter::from_fn(|| rx.poll_action())
            .any(|a| matches!(a, TransferAction::Violation { peer: A, .. }))
    }

    #[test]
    fn bytes_out_of_order_or_past_the_grant_are_a_breach() {
        let window = cfg().window;
        for (at, len) in [(5, 10), (0, window + 1)] {
            let mut rx = Transfers::new(cfg());
            rx.peer_up(A, "127.0.0.1".parse().unwrap());
            let offer = Blob::Offer {
                id: [5; 32],
                size: 10 * window,
            };
            rx.handle(A, offer, |_, _| Local::Partial(0), 0);
            let data = Blob::Data {
                id: [5; 32],
                at,
                data: vec![0; len as usize],
            };
            rx.handle(A, data, |_, _| Local::Whole, 1);
            assert!(violation(&mut rx), "at {at} len {len}");
            assert!(rx.incoming().next().is_none());
        }
        // Data nobody asked for is dropped quietly (it may be in flight after an end).
        let mut rx = Transfers::new(cfg());
        rx.peer_up(A, "127.0.0.1".parse().unwrap());
        let data = Blob::Data {
            id: [6; 32],
            at: 0,
            data: vec![1],
        };
        rx.handle(A, data, |_, _| Local::Whole, 0);
        assert_eq!(rx.poll_action(), None);
        // A receiver asking past the end is a breach too.
        let mut tx = Transfers::new(cfg());
        tx.send(B, [7; 32], 100, 0);
        tx.poll_action();
        let want = Blob::Want {
            id: [7; 32],
            have: 0,
            until: 101,
        };
        tx.handle(B, want, |_, _| Local::Whole, 0);
        assert!(matches!(
            tx.poll_action(),
            Some(TransferAction::Violation { peer: B, .. })
        ));
    }

    #[test]
    fn offers_and_announcements_are_limited_per_address() {
        let c = TransferConfig {
            offers_burst: 3,
            ups_burst: 2,
            ..cfg()
        };
        let mut rx = Transfers::new(c);
        rx.peer_up(A, "127.0.0.1".parse().unwrap());
        let refusals = |rx: &mut Transfers| {
            std::iter::from_fn(|| rx.poll_action())
                .filter_map(|a| match a {
                    TransferAction::Send {
                        msg: Blob::No { why, .. },
                        ..
                    } => Some(why),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // Two at once from one peer; a third is "busy".
        for i in 0..3u8 {
            let offer = Blob::Offer {
                id: [i; 32],
                size: 1 << 30,
            };
            rx.handle(A, offer, |_, _| Local::Partial(0), 0);
        }
        assert_eq!(refusals(&mut rx), vec!["busy".to_string()]);
        // Offers count even when refused for another reason: the fourth is one too many.
        let offer = Blob::Offer {
            id: [9; 32],
            size: 1,
        };
        rx.handle(
            A,
            Blob::No {
                id: [0; 32],
                why: "x".into(),
            },
            |_, _| Local::Whole,
            0,
        );
        rx.handle(A, offer.clone(), |_, _| Local::Refuse("full".into()), 0);
        rx.handle(
            A,
            Blob::No {
                id: [1; 32],
                why: "x".into(),
            },
            |_, _| Local::Whole,
            0,
        );
        rx.handle(A, offer.clone(), |_, _| Local::Whole, 0);
        assert_eq!(
            refusals(&mut rx),
            vec!["full".to_string(), "too many offers".to_string()]
        );
        // A new connection from the same address keeps the budget.
        rx.peer_down(A);
        rx.peer_up(3, "127.0.0.1".parse().unwrap());
        rx.handle(3, offer, |_, _| Local::Whole, 1000);
        assert_eq!(refusals(&mut rx), vec!["too many offers".to_string()]);
        assert!(rx.allow_up(3, 0) && rx.allow_up(3, 0));
        assert!(!rx.allow_up(3, 0));
        assert!(rx.allow_up(3, 3_600_000 / 600 + 1), "refilled");
        assert!(!rx.allow_up(99, 0), "unknown peers get nothing");
    }

    #[test]
    fn stalls_and_lost_connections_end_transfers_on_both_sides() {
        let mut tx = Transfers::new(cfg());
        tx.send(B, [8; 32], 100, 0);
        tx.poll_action();
        assert_eq!(tx.next_timeout(), Some(60_000));
        tx.handle_timeout(60_000);
        let acts: Vec<_> = std::iter::from_fn(|| tx.poll_action()).collect();
        assert!(
            acts.iter()
                .any(|a| matches!(a, TransferAction::SendFailed { why, .. } if why == "stalled"))
        );
        assert!(acts.iter().any(|a| matches!(
            a,
            TransferAction::Send {
                msg: Blob::No { .. },
                ..
            }
        )));

        let mut rx = Transfers::new(cfg());
        rx.peer_up(A, "127.0.0.1".parse().unwrap());
        rx.handle(
            A,
            Blob::Offer {
                id: [8; 32],
                size: 100,
            },
            |_, _| Local::Partial(0),
            0,
        );
        std::iter::from_fn(|| rx.poll_action()).count();
        rx.peer_down(A);
        assert_eq!(
            rx.poll_action(),
            Some(TransferAction::Abandoned {
                peer: A,
                id: [8; 32]
            })
        );
        tx.send(B, [9; 32], 100, 0);
        tx.poll_action();
        tx.peer_down(B);
        assert!(matches!(
            tx.poll_action(),
            Some(TransferAction::SendFailed { peer: B, .. })
        ));
    }
}
