//! A model of the rendezvous DHT's lookups: librqbit's Mainline DHT is not re-run
//! here, its costs are. A lookup walks `hops` rounds of `alpha` parallel queries
//! towards the name, then asks the `k` closest nodes for peers (and, to announce,
//! stores the node's port with them). Hops follow Kademlia's ⌈log2(size) / b⌉ with
//! b = log2(k) bits gained per round; each query either answers after a round trip to a
//! node somewhere in the world or times out (departed nodes and nodes behind NAT sit in
//! routing tables too).
//!
//! Who holds a name is kept exactly (the "ideal store": every announcement is kept and
//! a lookup returns a random sample of live holders). librqbit's own peer store differs
//! (it keeps the first 1000 announcements of all names together and never expires
//! them); docs/SIMULATION.md shows what that does at scale.

use rand::Rng;
use rand::rngs::StdRng;

use crate::engine::Ms;
use crate::net::{Net, REGIONS, RTT_MS};

#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Nodes of the public Mainline DHT the rendezvous DHT is part of.
    pub public_nodes: u64,
    /// Parallel queries per round (BEP 5 clients use 3).
    pub alpha: u32,
    /// Bucket size, and how many closest nodes are asked at the end.
    pub k: u32,
    /// Share of queries that get no answer.
    pub timeout_share: f64,
    /// How long a query waits for an answer.
    pub timeout_ms: Ms,
    /// Peers a `get_peers` answer carries at most.
    pub peers_per_reply: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            public_nodes: 10_000_000,
            alpha: 3,
            k: 8,
            timeout_share: 0.2,
            timeout_ms: 2_000,
            peers_per_reply: 50,
        }
    }
}

/// What one lookup cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub hops: u32,
    /// Queries sent (each has an answer or a timeout; answers are not counted again).
    pub queries: u32,
    pub latency: Ms,
}

impl DhtConfig {
    /// Rounds a lookup takes among `swarmsite_nodes` plus the public DHT.
    pub fn hops(&self, swarmsite_nodes: usize) -> u32 {
        let size = (self.public_nodes + swarmsite_nodes as u64).max(2) as f64;
        let bits = (self.k.max(2) as f64).log2();
        (size.log2() / bits).ceil() as u32
    }

    /// One lookup by `from` (and its announcement when `announce`).
    pub fn lookup(
        &self,
        net: &Net,
        from: u32,
        swarmsite_nodes: usize,
        announce: bool,
        rng: &mut StdRng,
    ) -> Cost {
        let hops = self.hops(swarmsite_nodes);
        let own = net.region(from);
        let access = 2 * net.class(from).access_ms as Ms;
        let answer = |rng: &mut StdRng| -> Ms {
            if rng.gen_bool(self.timeout_share) {
                return self.timeout_ms;
            }
            // A node somewhere, weighted like the population; 10 ms for its last mile.
            let mut x: f64 = rng.r#gen();
            let mut region = REGIONS.len() - 1;
            for (i, r) in REGIONS.iter().enumerate() {
                x -= r.share;
                if x < 0.0 {
                    region = i;
                    break;
                }
            }
            RTT_MS[own][region] as Ms + access + 20
        };
        let mut latency = 0;
        for _ in 0..hops {
            // A round ends with its first answer (the walk moves on with it).
            latency += (0..self.alpha)
                .map(|_| answer(rng))
                .min()
                .unwrap_or(self.timeout_ms);
        }
        // The k closest are asked together; the slowest answer (or timeout) ends it.
        latency += (0..self.k).map(|_| answer(rng)).max().unwrap_or(0);
        let queries = self.alpha * hops + self.k * if announce { 2 } else { 1 };
        Cost {
            hops,
            queries,
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetConfig;
    use rand::SeedableRng;

    #[test]
    fn a_lookup_costs_kademlia_rounds() {
        let cfg = DhtConfig::default();
        assert_eq!(cfg.hops(1_000_000), 8, "log2(1.1e7) / 3 = 7.8");
        let mut rng = StdRng::seed_from_u64(3);
        let net = Net::new(100, NetConfig::default(), &mut rng);
        let c = cfg.lookup(&net, 0, 1_000_000, true, &mut rng);
        assert_eq!(c.queries, 3 * 8 + 16);
        assert!(c.latency > 8 * 20 && c.latency < 30_000, "{c:?}");
    }
}
