//! The rendezvous DHT (SPEC §4): a Mainline DHT node (librqbit's, standalone) whose id
//! starts with the network tag, so that XOR distance puts swarmsite nodes next to
//! swarmsite names. Nodes announce their wire port under the node-rendezvous name and
//! under the name of every record they hold, and find each other with `get_peers`.
//!
//! librqbit's DHT learns nodes only from `find_node` answers, so a network made only of
//! swarmsite nodes (a loopback test network, or the first few nodes of a new network)
//! would never form. The wire handshake therefore carries each node's DHT id and port,
//! and when the routing table is small and wire peers told us of DHT nodes it lacks,
//! the DHT is restarted on the same port and id with those nodes added to its table
//! (librqbit takes a routing table only at start).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use librqbit::dht::{Dht, DhtConfig, DhtState, Id20};
use tokio::sync::Mutex;

use crate::name::NetworkTag;

/// The public Mainline DHT routers (BEP 5 bootstrap).
pub const PUBLIC_ROUTERS: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// Below this many routing-table nodes, contacts from wire peers trigger a restart.
const SMALL_TABLE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RendezvousError {
    #[error("rendezvous DHT on {addr}: {why}")]
    Start { addr: SocketAddr, why: String },
}

/// A node id for network `tag`: `tag(9) | 0x00 | 0x0000 | 8 random bytes`.
pub fn node_id(tag: NetworkTag) -> [u8; 20] {
    let mut id = [0u8; 20];
    id[..9].copy_from_slice(tag.as_bytes());
    id[12..].copy_from_slice(&rand::random::<[u8; 8]>());
    id
}

struct Inner {
    /// Started once there is someone to bootstrap from (librqbit's DHT stops for good
    /// when its bootstrap fails, and an empty bootstrap list fails).
    dht: Option<Dht>,
    /// DHT nodes learned from wire peers: id → UDP address.
    contacts: BTreeMap<[u8; 20], SocketAddr>,
    /// Contacts added since the last (re)start.
    fresh: usize,
}

pub struct Rendezvous {
    id: [u8; 20],
    addr: SocketAddr,
    routers: Vec<String>,
    inner: Mutex<Inner>,
}

async fn start_dht(
    id: [u8; 20],
    addr: SocketAddr,
    bootstrap: Vec<String>,
    table_from: Option<(&Dht, &BTreeMap<[u8; 20], SocketAddr>)>,
) -> Result<Dht, RendezvousError> {
    // The routing table's type is private to librqbit-dht; it is built by value here.
    let routing_table = table_from.map(|(old, contacts)| {
        let mut table = old.with_routing_tables(|v4, _| v4.clone());
        for (nid, a) in contacts {
            if *nid != id && a.is_ipv4() {
                table.add_node(Id20::new(*nid), *a);
            }
        }
        table
    });
    // A previous instance's socket is released asynchronously after cancellation.
    let mut last = String::new();
    for _ in 0..100 {
        let config = DhtConfig {
            peer_id: Some(Id20::new(id)),
            bootstrap_addrs: Some(bootstrap.clone()),
            routing_table: routing_table.clone(),
            listen_addr: Some(addr),
            ..Default::default()
        };
        match DhtState::with_config(config).await {
            Ok(dht) => return Ok(dht),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(RendezvousError::Start { addr, why: last })
}

impl Rendezvous {
    /// Prepares the DHT on `listen`; it starts right away when `routers` (the public
    /// routers on the real network) are given, else once a wire peer names a DHT node.
    /// A port of 0 is resolved now and kept across restarts.
    pub async fn start(
        tag: NetworkTag,
        listen: SocketAddr,
        routers: Vec<String>,
    ) -> Result<Self, RendezvousError> {
        let id = node_id(tag);
        let addr = if listen.port() == 0 {
            // Reserve a concrete port so restarts can reuse it.
            let sock = std::net::UdpSocket::bind(listen).map_err(|e| RendezvousError::Start {
                addr: listen,
                why: e.to_string(),
            })?;
            sock.local_addr().map_err(|e| RendezvousError::Start {
                addr: listen,
                why: e.to_string(),
            })?
        } else {
            listen
        };
        let dht = if routers.is_empty() {
            None
        } else {
            Some(start_dht(id, addr, routers.clone(), None).await?)
        };
        Ok(Rendezvous {
            id,
            addr,
            routers,
            inner: Mutex::new(Inner {
                dht,
                contacts: BTreeMap::new(),
                fresh: 0,
            }),
        })
    }

    pub fn id(&self) -> [u8; 20] {
        self.id
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Remembers a DHT node a wire peer told us about.
    pub async fn add_contact(&self, id: [u8; 20], addr: SocketAddr) {
        if id == self.id {
            return;
        }
        let mut inner = self.inner.lock().await;
        if inner.contacts.insert(id, addr).is_none() {
            inner.fresh += 1;
        }
    }

    /// Starts the DHT, or restarts it with the learned contacts in its routing table,
    /// when the table is small and contacts are new. Returns whether it (re)started.
    pub async fn refresh(&self) -> Result<bool, RendezvousError> {
        let mut inner = self.inner.lock().await;
        if inner.fresh == 0 {
            return Ok(false);
        }
        let mut bootstrap = self.routers.clone();
        bootstrap.extend(inner.contacts.values().map(|a| a.to_string()));
        let seed = match inner.dht.take() {
            Some(d) => d,
            None => start_dht(self.id, self.addr, bootstrap.clone(), None).await?,
        };
        if seed.with_routing_tables(|v4, v6| v4.len() + v6.len()) >= SMALL_TABLE {
            inner.dht = Some(seed);
            inner.fresh = 0;
            return Ok(false);
        }
        seed.cancellation_token().cancel();
        let dht = start_dht(
            self.id,
            self.addr,
            bootstrap,
            Some((&seed, &inner.contacts)),
        )
        .await?;
        inner.dht = Some(dht);
        inner.fresh = 0;
        Ok(true)
    }

    /// Looks up who holds `name` (and, with `announce`, announces our wire port under
    /// it), for at most `wait`. Returns the peers found.
    pub async fn find(
        &self,
        name: [u8; 20],
        announce: Option<u16>,
        wait: Duration,
    ) -> Vec<SocketAddr> {
        let Some(dht) = self.inner.lock().await.dht.clone() else {
            return Vec::new();
        };
        let mut stream = dht.get_peers(Id20::new(name), announce);
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(peer)) = tokio::time::timeout_at(deadline, stream.next()).await {
            if !found.contains(&peer) {
                found.push(peer);
            }
            if found.len() >= 200 {
                break;
            }
        }
        found
    }

    pub async fn stop(&self) {
        if let Some(d) = self.inner.lock().await.dht.take() {
            d.cancellation_token().cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_carry_the_network_tag() {
        let id = node_id(NetworkTag::DEFAULT);
        assert_eq!(&id[..9], b"WIKILEAKS");
        assert_eq!(&id[9..12], &[0, 0, 0]);
        assert_ne!(node_id(NetworkTag::DEFAULT)[12..], id[12..]);
    }
}
