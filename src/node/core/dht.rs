//! Rendezvous DHT entries that turned out false. A DHT entry is written by whoever
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
}
