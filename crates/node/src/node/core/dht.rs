//! The rendezvous DHT: looking names up (and announcing this node under them), the
//! node rendezvous round, and entries that turned out false. A DHT entry is written by whoever
//! announced it, not provably by the address it names (anyone may point at an innocent
//! address, or at another program's port), so a false one is held against nobody: it is
//! dropped, not dialled again for a while, and noted in the node's log only — never in
//! the evidence log, never counted, never hinted (PROTOCOL.md §17).

use super::*;

/// How long a false DHT entry is not dialled again.
const DROPPED_FOR_MS: u64 = 3_600_000;
/// False entries remembered, at most (a DHT full of lies must not grow the node).
const MAX_DROPPED: usize = 4096;

impl Core {
    /// The DHT named `addr` under `name`, and it did not hold up: `nothing_there` when
    /// no swarmsite node answered at all (dropped for every name), else only for `name`.
    pub(super) fn drop_dht_entry(
        &mut self,
        addr: SocketAddr,
        name: SystemName,
        nothing_there: bool,
        why: &str,
    ) {
        let now = unix_ms();
        if self.dht_dropped.len() >= MAX_DROPPED {
            self.dht_dropped.retain(|_, until| *until > now);
            if self.dht_dropped.len() >= MAX_DROPPED {
                self.dht_dropped.clear();
            }
        }
        let key = (addr, (!nothing_there).then_some(name));
        if self.dht_dropped.insert(key, now + DROPPED_FOR_MS).is_none() {
            tracing::info!(
                "rendezvous DHT entry {addr} under {} v{} dropped (not dialled again for an \
                 hour; held against nobody: anyone can write DHT entries): {why}",
                name.class(),
                name.version()
            );
        }
    }

    /// True when the DHT entry `addr` under `name` was found false lately.
    pub(super) fn dht_entry_dropped(&self, addr: SocketAddr, name: SystemName) -> bool {
        let now = unix_ms();
        [(addr, None), (addr, Some(name))]
            .iter()
            .any(|k| self.dht_dropped.get(k).is_some_and(|until| *until > now))
    }

    /// Looks `name` up in the rendezvous DHT (announcing our wire port under it when
    /// `announce`), and dials whoever holds it.
    pub(super) fn dht_find(&self, name: SystemName, announce: bool) {
        let Some(r) = self.shared.rendezvous.clone() else {
            return;
        };
        let port = announce.then_some(self.wire.listen_port).flatten();
        let commands = self.shared.commands.clone();
        let own = self.wire_local();
        tokio::spawn(async move {
            for peer in r
                .find(*name.as_bytes(), port, Duration::from_secs(10))
                .await
            {
                if peer != own {
                    let _ = commands.send(Command::Found { addr: peer, name }).await;
                }
            }
        });
    }

    /// Every pull interval: fold contacts from wire peers into the DHT's routing table
    /// if it is small, then announce ourselves under the node rendezvous name and dial
    /// the other nodes found there.
    pub(super) fn rendezvous_round(&self) {
        let Some(r) = self.shared.rendezvous.clone() else {
            return;
        };
        let name = SystemName::rendezvous(self.cfg.bundle.network());
        let (port, own, commands) = (
            self.wire.listen_port,
            self.wire_local(),
            self.shared.commands.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = r.refresh().await {
                tracing::warn!("{e}");
            }
            for peer in r
                .find(*name.as_bytes(), port, Duration::from_secs(10))
                .await
            {
                if peer != own {
                    let _ = commands.send(Command::Found { addr: peer, name }).await;
                }
            }
        });
    }

    /// A peer the rendezvous DHT named as holding a record says, in its first `have`,
    /// what it holds: if that is not the record (or a newer one of it), the DHT entry
    /// was empty and is dropped (it proves nothing against the peer: `dht.rs`).
    pub(super) fn check_announcement(&mut self, key: PeerKey, names: &[SystemName]) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let Some(announced) = conn.found_under.take() else {
            return;
        };
        if announced.class() == ObjectClass::NodeRendezvous {
            return; // every node is under it
        }
        let holds = names
            .iter()
            .any(|n| n.slot() == announced.slot() && n.version() >= announced.version());
        if !holds {
            // The entry was empty; the node it names is still a peer like any other.
            let addr = conn.wire_addr.unwrap_or(conn.remote);
            self.drop_dht_entry(addr, announced, false, "its have does not list it");
        }
    }
}
