//! The node's wire connections as the core and the feature drivers see them: who is at
//! the other end, what it announced, and a way to send it a message. The sockets are
//! `node::wire_io` tasks; this is the core's side of them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::gossip::PeerKey;
use crate::name::SystemName;
use crate::wire::Message;

/// Addresses of closed connections kept, so evidence about what they sent can still
/// name them.
const CLOSED_KEPT: usize = 1024;

/// One wire connection.
pub(super) struct Conn {
    pub tx: mpsc::Sender<Message>,
    pub remote: SocketAddr,
    /// The address we dialled (outgoing) or the peer's announced wire address.
    pub wire_addr: Option<SocketAddr>,
    pub outgoing: bool,
    pub ready: bool,
    pub peer_id: [u8; 20],
    pub bt_addr: Option<SocketAddr>,
    pub client: Option<String>,
    /// Set when the rendezvous DHT named this address as holding `name`: if it then
    /// turns out not to be a swarmsite node at all, the announcement was a lie.
    pub found_under: Option<SystemName>,
    pub dht_id: Option<[u8; 20]>,
    /// The peer takes uploads (`ss_blob`, `ss_up`).
    pub uploads: bool,
    /// The peer asks for and answers metainfo (`ss_mget`, `ss_meta`).
    pub metainfo: bool,
    /// Hostile items it sent (see `Core::count_refused_item`).
    pub refused: u32,
}

impl Conn {
    pub fn addrs(&self) -> PeerAddrs {
        PeerAddrs {
            remote: self.remote,
            wire: self.wire_addr,
            bt: self.bt_addr,
            node_id: self.dht_id,
        }
    }
}

/// Where a peer is: the address of the connection, and the ports it announced.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerAddrs {
    pub remote: SocketAddr,
    pub wire: Option<SocketAddr>,
    pub bt: Option<SocketAddr>,
    /// Its rendezvous DHT node id, when it told us.
    pub node_id: Option<[u8; 20]>,
}

/// The open connections, the addresses of recently closed ones, and the connections a
/// feature driver closed that the core has yet to tell the other features about.
pub(super) struct Conns {
    open: HashMap<PeerKey, Conn>,
    next_key: PeerKey,
    /// Bounded by [`CLOSED_KEPT`], oldest first.
    closed: VecDeque<(PeerKey, PeerAddrs)>,
    /// Closed by [`Conns::close`]: out of `open` already; `Core::conn_gone` follows.
    gone: Vec<(PeerKey, Conn)>,
}

impl Conns {
    pub fn new() -> Self {
        Conns {
            open: HashMap::new(),
            next_key: 1,
            closed: VecDeque::new(),
            gone: Vec::new(),
        }
    }

    /// Registers a connection (incoming, or outgoing to `dialled`) and returns its key
    /// and the receiver of the messages the core will send it.
    pub fn register(
        &mut self,
        remote: SocketAddr,
        dialled: Option<SocketAddr>,
    ) -> (PeerKey, mpsc::Receiver<Message>) {
        let key = self.next_key;
        self.next_key += 1;
        let (tx, rx) = mpsc::channel(256);
        let conn = Conn {
            tx,
            remote,
            wire_addr: dialled,
            outgoing: dialled.is_some(),
            ready: false,
            peer_id: [0; 20],
            bt_addr: None,
            client: None,
            found_under: None,
            dht_id: None,
            uploads: false,
            metainfo: false,
            refused: 0,
        };
        self.open.insert(key, conn);
        (key, rx)
    }

    pub fn get(&self, key: &PeerKey) -> Option<&Conn> {
        self.open.get(key)
    }

    pub fn get_mut(&mut self, key: &PeerKey) -> Option<&mut Conn> {
        self.open.get_mut(key)
    }

    /// Takes a connection out (the caller ends it by dropping it).
    pub fn remove(&mut self, key: &PeerKey) -> Option<Conn> {
        self.open.remove(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &Conn> {
        self.open.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PeerKey, &Conn)> {
        self.open.iter()
    }

    /// Queues `msg` for `key`; false when it is closed or not keeping up.
    pub fn send(&self, key: PeerKey, msg: Message) -> bool {
        let Some(conn) = self.open.get(&key) else {
            return false;
        };
        let sent = conn.tx.try_send(msg).is_ok();
        if !sent {
            // Its queue is full (or its task ended): the message is dropped, never
            // waited for, so one slow peer cannot hold the core up.
            tracing::debug!("peer {} is not keeping up; message dropped", conn.remote);
        }
        sent
    }

    /// Closes `key` from a feature driver: it leaves at once, and the core tells every
    /// feature at its next turn (`take_gone`).
    pub fn close(&mut self, key: PeerKey) {
        if let Some(conn) = self.open.remove(&key) {
            self.gone.push((key, conn));
        }
    }

    /// The connections [`Conns::close`]d since the last call.
    pub fn take_gone(&mut self) -> Vec<(PeerKey, Conn)> {
        std::mem::take(&mut self.gone)
    }

    pub fn remember_closed(&mut self, key: PeerKey, addrs: PeerAddrs) {
        if self.closed.len() >= CLOSED_KEPT {
            self.closed.pop_front();
        }
        self.closed.push_back((key, addrs));
    }

    /// Where `key` is, open or recently closed.
    pub fn addrs(&self, key: PeerKey) -> Option<PeerAddrs> {
        self.open.get(&key).map(Conn::addrs).or_else(|| {
            self.closed
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, a)| *a)
        })
    }

    /// `key`'s address for a log line.
    pub fn name(&self, key: PeerKey) -> String {
        self.addrs(key)
            .map_or_else(|| "a closed peer".into(), |a| a.remote.to_string())
    }

    /// The DHT node id of whoever is (or was) at `addr`, where a connection told us.
    pub fn node_id_of(&self, addr: SocketAddr) -> Option<[u8; 20]> {
        self.open
            .values()
            .map(Conn::addrs)
            .chain(self.closed.iter().rev().map(|(_, a)| *a))
            .find(|a| a.remote == addr || a.wire == Some(addr) || a.bt == Some(addr))
            .and_then(|a| a.node_id)
    }
}
