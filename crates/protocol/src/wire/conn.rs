//! One wire connection as a sans-IO state machine.
//!
//! The driver feeds received bytes ([`Connection::handle_input`]) and the clock
//! ([`Connection::handle_timeout`]), and takes back bytes to send
//! ([`Connection::take_transmit`]) and events ([`Connection::poll_event`]). No sockets,
//! no clocks, no tasks: the node drives it with tokio, the simulator with virtual time.
//! Time is milliseconds on any monotonic scale the driver chooses.

use std::collections::VecDeque;

use super::message::{
    EXT_HANDSHAKE, EXTENDED, EXTENSIONS, ExtHandshake, HANDSHAKE_LEN, Handshake, MAX_MESSAGE_LEN,
    Message, frame_extended,
};

/// Limits and identity of one side.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// The info hash both sides must present: the node rendezvous name.
    pub rendezvous: [u8; 20],
    /// Our peer id, sent in the BitTorrent handshake.
    pub peer_id: [u8; 20],
    /// Our wire port, told to the peer so it can dial us back.
    pub listen_port: Option<u16>,
    /// Our BitTorrent port, told to the peer so it can fetch content from us.
    pub bt_port: Option<u16>,
    /// Our rendezvous DHT node (UDP port, id), told to the peer for its routing table.
    pub dht: Option<(u16, [u8; 20])>,
    /// Both handshakes must be done within this.
    pub handshake_timeout_ms: u64,
    /// Close when nothing arrives for this long.
    pub idle_timeout_ms: u64,
    /// Send a keep-alive after this much silence.
    pub keepalive_ms: u64,
    /// Token bucket on incoming messages: sustained rate and burst.
    pub max_messages_per_sec: u32,
    /// Messages the bucket holds: how many may arrive at once.
    pub message_burst: u32,
}

impl WireConfig {
    /// Our identity with the defaults of PROTOCOL.md §9 (10 s to handshake, dropped after
    /// 180 s of silence, keep-alive after 60 s, 50 messages/s with bursts of 400), telling
    /// the peer no BitTorrent port and no DHT node.
    pub fn new(rendezvous: [u8; 20], peer_id: [u8; 20], listen_port: Option<u16>) -> Self {
        WireConfig {
            rendezvous,
            peer_id,
            listen_port,
            bt_port: None,
            dht: None,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 180_000,
            keepalive_ms: 60_000,
            max_messages_per_sec: 50,
            message_burst: 400,
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// A plain BitTorrent client (no swarmsite extension, or another info hash): closed
    /// politely, nothing to hold against it.
    NotSwarmsite,
    /// The first bytes were not a BitTorrent handshake.
    Garbage,
    /// A message longer than the limit was announced.
    Oversized(usize),
    /// A message that does not parse.
    Malformed(String),
    /// More messages than the rate limit allows.
    RateLimited,
    /// The handshake did not finish in time, or the peer went silent.
    Timeout,
    /// We closed it, or the peer closed its side cleanly (between messages).
    Local,
}

impl CloseReason {
    /// True when a peer that completed the handshake then broke the protocol (to be
    /// recorded as evidence for the operator to read; it never counts toward the
    /// blacklist, see `blacklist::counts`: bytes injected on the path could cause it
    /// too). Bytes that are no handshake at all are not evidence: scanners, HTTP
    /// clients on the wrong port, and anyone injecting them send those.
    pub fn is_evidence(&self) -> bool {
        matches!(
            self,
            CloseReason::Oversized(_) | CloseReason::Malformed(_) | CloseReason::RateLimited
        )
    }

    /// A short machine-readable code, e.g. `wire-malformed`: the evidence code when
    /// [`CloseReason::is_evidence`].
    pub fn code(&self) -> &'static str {
        match self {
            CloseReason::NotSwarmsite => "not-swarmsite",
            CloseReason::Garbage => "wire-garbage",
            CloseReason::Oversized(_) => "wire-oversized",
            CloseReason::Malformed(_) => "wire-malformed",
            CloseReason::RateLimited => "wire-rate-limited",
            CloseReason::Timeout => "wire-timeout",
            CloseReason::Local => "closed",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::NotSwarmsite => f.write_str("peer is not a swarmsite node"),
            CloseReason::Garbage => f.write_str("not a BitTorrent handshake"),
            CloseReason::Oversized(n) => {
                write!(f, "message of {n} bytes exceeds {MAX_MESSAGE_LEN}")
            }
            CloseReason::Malformed(why) => write!(f, "malformed message: {why}"),
            CloseReason::RateLimited => f.write_str("too many messages"),
            CloseReason::Timeout => f.write_str("timed out"),
            CloseReason::Local => f.write_str("closed locally"),
        }
    }
}

/// What the connection tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Both handshakes done: the peer is a swarmsite node.
    Ready {
        /// The peer's id, from its BitTorrent handshake.
        peer_id: [u8; 20],
        /// The peer's wire listening port (`p`), to dial it back on.
        listen_port: Option<u16>,
        /// The peer's BitTorrent port (`ss_bt`), handed to librqbit as a peer.
        bt_port: Option<u16>,
        /// The peer's rendezvous DHT node: UDP port and node id (`ss_dht`, `ss_nid`).
        dht: Option<(u16, [u8; 20])>,
        /// The peer's client name and version (`v`), e.g. `swarmsite/<version>`.
        client: Option<String>,
        /// The peer takes uploads (named `ss_blob` and `ss_up`).
        uploads: bool,
        /// The peer asks for and answers metainfo (named `ss_mget` and `ss_meta`).
        metainfo: bool,
    },
    /// A swarmsite message from the peer, decoded.
    Message(Message),
    /// The connection is over; the driver drops the socket after sending what is left.
    Closed(CloseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    ExtHandshake,
    Ready,
    Closed,
}

/// One wire connection (module docs): both handshakes, framing, the incoming rate limit,
/// keep-alives and timeouts.
pub struct Connection {
    cfg: WireConfig,
    initiator: bool,
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: VecDeque<Event>,
    peer_id: [u8; 20],
    peer_ids: [Option<u8>; EXTENSIONS.len()],
    handshake_deadline: u64,
    last_recv: u64,
    last_send: u64,
    tokens: f64,
    refilled_at: u64,
}

impl Connection {
    /// A new connection at time `now`. The initiator speaks first; a responder answers
    /// only a handshake for our rendezvous name, so a scanner learns nothing.
    pub fn new(cfg: WireConfig, now: u64, initiator: bool) -> Self {
        let burst = cfg.message_burst as f64;
        let mut c = Connection {
            handshake_deadline: now + cfg.handshake_timeout_ms,
            cfg,
            initiator,
            phase: Phase::Handshake,
            inbuf: Vec::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            peer_id: [0; 20],
            peer_ids: [None; EXTENSIONS.len()],
            last_recv: now,
            last_send: now,
            tokens: burst,
            refilled_at: now,
        };
        if initiator {
            c.send_handshakes(now);
        }
        c
    }

    fn send_handshakes(&mut self, now: u64) {
        self.out
            .extend_from_slice(&Handshake::new(self.cfg.rendezvous, self.cfg.peer_id).encode());
        let ext = ExtHandshake::ours(self.cfg.listen_port, self.cfg.bt_port, self.cfg.dht).encode();
        self.out
            .extend_from_slice(&frame_extended(EXT_HANDSHAKE, &ext));
        self.last_send = now;
    }

    /// True once both handshakes are done, until the connection closes.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// True once the connection is over ([`Event::Closed`] is queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The peer's id from its handshake; zeros until that arrives.
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    fn close(&mut self, reason: CloseReason) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.inbuf.clear();
            self.events.push_back(Event::Closed(reason));
        }
    }

    /// Closes the connection from our side.
    pub fn close_local(&mut self) {
        self.close(CloseReason::Local);
    }

    /// Queues `msg`; dropped silently before the connection is ready or after close.
    pub fn send(&mut self, msg: &Message, now: u64) {
        if self.phase != Phase::Ready {
            return;
        }
        if let Some(id) = self.peer_ids[msg.extension()] {
            self.out
                .extend_from_slice(&frame_extended(id, &msg.encode_payload()));
            self.last_send = now;
        }
    }

    /// Bytes to write to the socket.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The next event for the driver, if any: drain after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] next needs calling.
    pub fn next_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::Closed => None,
            Phase::Ready => Some(
                (self.last_recv + self.cfg.idle_timeout_ms)
                    .min(self.last_send + self.cfg.keepalive_ms),
            ),
            _ => Some(self.handshake_deadline),
        }
    }

    /// Advances the clock: closes the connection when the handshakes are late or the peer
    /// went silent, and queues a keep-alive after our own silence.
    pub fn handle_timeout(&mut self, now: u64) {
        match self.phase {
            Phase::Closed => {}
            Phase::Ready => {
                if now >= self.last_recv + self.cfg.idle_timeout_ms {
                    self.close(CloseReason::Timeout);
                } else if now >= self.last_send + self.cfg.keepalive_ms {
                    self.out.extend_from_slice(&[0, 0, 0, 0]);
                    self.last_send = now;
                }
            }
            _ => {
                if now >= self.handshake_deadline {
                    self.close(CloseReason::Timeout);
                }
            }
        }
    }

    /// The peer closed its side: a message cut short is malformed input.
    pub fn handle_eof(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.inbuf.is_empty() {
            self.close(CloseReason::Local);
        } else {
            let n = self.inbuf.len();
            self.close(CloseReason::Malformed(format!(
                "connection ended inside a message ({n} bytes pending)"
            )));
        }
    }

    /// Feeds received bytes.
    pub fn handle_input(&mut self, bytes: &[u8], now: u64) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_recv = now;
        self.inbuf.extend_from_slice(bytes);
        let mut pos = 0;
        while self.phase != Phase::Closed {
            match self.parse_one(pos, now) {
                Some(used) => pos += used,
                None => break,
            }
        }
        if self.phase != Phase::Closed {
            self.inbuf.drain(..pos);
        }
    }

    /// Parses one unit at `pos`; returns the bytes it used, or `None` for "need more".
    fn parse_one(&mut self, pos: usize, now: u64) -> Option<usize> {
        let buf = &self.inbuf[pos..];
        if self.phase == Phase::Handshake {
            // Refuse garbage as soon as the first byte shows it, without waiting for 68.
            if !buf.is_empty() && buf[0] != 19 {
                self.close(CloseReason::Garbage);
                return None;
            }
            if buf.len() < HANDSHAKE_LEN {
                return None;
            }
            let hs = Handshake::decode(buf[..HANDSHAKE_LEN].try_into().expect("68"));
            match hs {
                None => self.close(CloseReason::Garbage),
                Some(h) if h.info_hash != self.cfg.rendezvous || !h.supports_extensions() => {
                    self.close(CloseReason::NotSwarmsite)
                }
                Some(h) => {
                    self.peer_id = h.peer_id;
                    if !self.initiator {
                        self.send_handshakes(now);
                    }
                    self.phase = Phase::ExtHandshake;
                }
            }
            return Some(HANDSHAKE_LEN);
        }
        if buf.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4")) as usize;
        if len > MAX_MESSAGE_LEN {
            self.close(CloseReason::Oversized(len));
            return None;
        }
        if buf.len() < 4 + len {
            return None;
        }
        let body = buf[4..4 + len].to_vec();
        self.handle_message(&body, now);
        Some(4 + len)
    }

    fn take_token(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.refilled_at) as f64 / 1000.0;
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.cfg.max_messages_per_sec as f64)
            .min(self.cfg.message_burst as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn handle_message(&mut self, body: &[u8], now: u64) {
        if body.is_empty() {
            return; // keep-alive
        }
        if !self.take_token(now) {
            self.close(CloseReason::RateLimited);
            return;
        }
        if body[0] != EXTENDED || body.len() < 2 {
            if self.phase == Phase::ExtHandshake {
                // A plain client starting on bitfield, interested, …
                self.close(CloseReason::NotSwarmsite);
            } else {
                self.close(CloseReason::Malformed(format!(
                    "unexpected message id {}",
                    body[0]
                )));
            }
            return;
        }
        let ext_id = body[1];
        let payload = &body[2..];
        match self.phase {
            Phase::ExtHandshake => {
                if ext_id != EXT_HANDSHAKE {
                    self.close(CloseReason::Malformed(
                        "extended message before the extended handshake".into(),
                    ));
                    return;
                }
                match ExtHandshake::decode(payload) {
                    Some(ext) if ext.is_swarmsite() => {
                        self.peer_ids = ext.ids;
                        self.phase = Phase::Ready;
                        self.events.push_back(Event::Ready {
                            peer_id: self.peer_id,
                            listen_port: ext.port,
                            bt_port: ext.bt_port,
                            dht: ext.dht,
                            uploads: ext.takes_uploads(),
                            metainfo: ext.serves_metainfo(),
                            client: ext.client,
                        });
                    }
                    _ => self.close(CloseReason::NotSwarmsite),
                }
            }
            Phase::Ready => {
                if ext_id == EXT_HANDSHAKE {
                    return; // BEP 10 allows repeating it; nothing we need changes
                }
                let Some(index) = EXTENSIONS.iter().position(|(_, id)| *id == ext_id) else {
                    self.close(CloseReason::Malformed(format!(
                        "unknown extended message id {ext_id}"
                    )));
                    return;
                };
                match Message::decode_payload(index, payload) {
                    Ok(msg) => self.events.push_back(Event::Message(msg)),
                    Err(e) => self.close(CloseReason::Malformed(e.to_string())),
                }
            }
            Phase::Handshake | Phase::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::{NetworkTag, SystemName};

    fn cfg(id: u8) -> WireConfig {
        WireConfig::new([9; 20], [id; 20], Some(7000 + id as u16))
    }

    /// Moves bytes both ways until nothing is left to send.
    fn pump(a: &mut Connection, b: &mut Connection, now: u64) {
        for _ in 0..10 {
            let ab = a.take_transmit();
            let ba = b.take_transmit();
            if ab.is_empty() && ba.is_empty() {
                return;
            }
            b.handle_input(&ab, now);
            a.handle_input(&ba, now);
        }
    }

    fn events(c: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn two_nodes_handshake_and_exchange() {
        let mut a = Connection::new(cfg(1), 0, true);
        let mut b = Connection::new(cfg(2), 0, false);
        pump(&mut a, &mut b, 1);
        assert!(a.is_ready() && b.is_ready());
        assert!(matches!(
            events(&mut a)[0],
            Event::Ready {
                listen_port: Some(7002),
                ..
            }
        ));
        assert!(matches!(
            events(&mut b)[0],
            Event::Ready {
                listen_port: Some(7001),
                ..
            }
        ));
        let name = SystemName::new(NetworkTag::DEFAULT, 0x1000, 1, 1);
        a.send(&Message::Get { name }, 2);
        pump(&mut a, &mut b, 2);
        assert_eq!(events(&mut b), vec![Event::Message(Message::Get { name })]);
    }

    #[test]
    fn byte_by_byte_input_works() {
        let mut a = Connection::new(cfg(1), 0, true);
        let mut b = Connection::new(cfg(2), 0, false);
        for byte in a.take_transmit() {
            b.handle_input(&[byte], 0);
        }
        a.handle_input(&b.take_transmit(), 0);
        assert!(a.is_ready() && b.is_ready());
    }

    #[test]
    fn plain_bittorrent_clients_are_closed_politely() {
        // Another info hash.
        let mut b = Connection::new(cfg(2), 0, false);
        b.handle_input(&Handshake::new([1; 20], [3; 20]).encode(), 0);
        assert_eq!(
            events(&mut b),
            vec![Event::Closed(CloseReason::NotSwarmsite)]
        );
        assert!(
            b.take_transmit().is_empty(),
            "a responder reveals nothing to a stranger"
        );
        // Our info hash, but no swarmsite extension.
        let mut b = Connection::new(cfg(2), 0, false);
        b.handle_input(&Handshake::new([9; 20], [3; 20]).encode(), 0);
        b.handle_input(&frame_extended(0, b"d1:md6:ut_pexi1eee"), 0);
        assert_eq!(
            events(&mut b),
            vec![Event::Closed(CloseReason::NotSwarmsite)]
        );
        assert!(!CloseReason::NotSwarmsite.is_evidence());
    }

    fn ready_responder() -> Connection {
        let mut a = Connection::new(cfg(1), 0, true);
        let mut b = Connection::new(cfg(2), 0, false);
        pump(&mut a, &mut b, 0);
        events(&mut b);
        b
    }

    #[test]
    fn bad_input_closes_with_evidence() {
        let mut b = Connection::new(cfg(2), 0, false);
        b.handle_input(b"GET / HTTP/1.1\r\n", 0);
        assert_eq!(events(&mut b), vec![Event::Closed(CloseReason::Garbage)]);
        assert!(
            !CloseReason::Garbage.is_evidence(),
            "a scanner is no evidence"
        );

        let mut b = ready_responder();
        b.handle_input(&(70_000u32).to_be_bytes(), 0);
        assert_eq!(
            events(&mut b),
            vec![Event::Closed(CloseReason::Oversized(70_000))]
        );

        let mut b = ready_responder();
        b.handle_input(&frame_extended(1, b"not bencode"), 0);
        assert!(matches!(
            events(&mut b)[..],
            [Event::Closed(CloseReason::Malformed(_))]
        ));

        let mut b = ready_responder();
        b.handle_input(&frame_extended(77, b"de"), 0);
        assert!(matches!(
            events(&mut b)[..],
            [Event::Closed(CloseReason::Malformed(_))]
        ));

        let mut b = ready_responder();
        b.handle_input(&frame_extended(1, b"d4:name")[..8], 0);
        b.handle_eof();
        assert!(
            matches!(
                events(&mut b)[..],
                [Event::Closed(CloseReason::Malformed(_))]
            ),
            "truncated"
        );
    }

    #[test]
    fn floods_are_rate_limited_and_silence_times_out() {
        let mut b = ready_responder();
        let get = frame_extended(3, &Message::Have { names: vec![] }.encode_payload());
        let mut flood = Vec::new();
        for _ in 0..1000 {
            flood.extend_from_slice(&get);
        }
        b.handle_input(&flood, 10);
        let ev = events(&mut b);
        assert_eq!(ev.last(), Some(&Event::Closed(CloseReason::RateLimited)));
        assert!(ev.len() < 1000);

        let mut b = ready_responder();
        b.handle_timeout(60_000);
        assert_eq!(
            b.take_transmit(),
            vec![0, 0, 0, 0],
            "keep-alive after a minute"
        );
        b.handle_timeout(180_000);
        assert_eq!(events(&mut b), vec![Event::Closed(CloseReason::Timeout)]);

        let mut b = Connection::new(cfg(2), 0, false);
        assert_eq!(b.next_timeout(), Some(10_000));
        b.handle_timeout(10_000);
        assert_eq!(events(&mut b), vec![Event::Closed(CloseReason::Timeout)]);
    }
}
