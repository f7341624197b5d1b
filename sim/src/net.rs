//! The network the virtual nodes live on: where each node is (a geographic region and
//! its last mile), what its home connection carries, whether it can accept
//! connections (NAT), and how long its sessions last (churn).
//!
//! The figures are assumptions, stated here once and in docs/SIMULATION.md: round-trip
//! times between regions are rounded medians of public inter-city ping tables, region
//! shares follow internet users, connection classes a spread of home fixed and mobile
//! access. Every draw comes from the run's seeded generator.

use std::net::{IpAddr, Ipv4Addr};

use rand::Rng;
use rand::rngs::StdRng;

use crate::engine::{MINUTE, Ms};

/// A region: its name and its share of the nodes.
pub struct Region {
    pub name: &'static str,
    pub share: f64,
}

pub const REGIONS: [Region; 9] = [
    Region {
        name: "North America east",
        share: 0.08,
    },
    Region {
        name: "North America west",
        share: 0.05,
    },
    Region {
        name: "South America",
        share: 0.09,
    },
    Region {
        name: "Europe west",
        share: 0.10,
    },
    Region {
        name: "Europe east",
        share: 0.09,
    },
    Region {
        name: "Africa",
        share: 0.11,
    },
    Region {
        name: "East Asia",
        share: 0.28,
    },
    Region {
        name: "South Asia",
        share: 0.18,
    },
    Region {
        name: "Oceania",
        share: 0.02,
    },
];

/// Round-trip time between regions in ms (the diagonal: within a region).
pub const RTT_MS: [[u16; 9]; 9] = [
    [20, 70, 130, 85, 115, 220, 180, 220, 210],
    [70, 20, 170, 145, 170, 280, 120, 230, 150],
    [130, 170, 40, 190, 220, 330, 280, 330, 310],
    [85, 145, 190, 15, 35, 150, 240, 130, 270],
    [115, 170, 220, 35, 20, 170, 220, 120, 290],
    [220, 280, 330, 150, 170, 60, 300, 250, 360],
    [180, 120, 280, 240, 220, 300, 40, 100, 120],
    [220, 230, 330, 130, 120, 250, 100, 40, 150],
    [210, 150, 310, 270, 290, 360, 120, 150, 25],
];

/// A class of home connection.
pub struct Class {
    pub name: &'static str,
    pub share: f64,
    pub down_mbit: f64,
    pub up_mbit: f64,
    /// One-way delay of the last mile, ms.
    pub access_ms: u8,
}

pub const CLASSES: [Class; 7] = [
    Class {
        name: "DSL, slow",
        share: 0.10,
        down_mbit: 8.0,
        up_mbit: 1.0,
        access_ms: 15,
    },
    Class {
        name: "DSL",
        share: 0.15,
        down_mbit: 25.0,
        up_mbit: 5.0,
        access_ms: 12,
    },
    Class {
        name: "cable",
        share: 0.25,
        down_mbit: 100.0,
        up_mbit: 10.0,
        access_ms: 8,
    },
    Class {
        name: "cable, fast",
        share: 0.15,
        down_mbit: 300.0,
        up_mbit: 30.0,
        access_ms: 6,
    },
    Class {
        name: "fibre",
        share: 0.20,
        down_mbit: 500.0,
        up_mbit: 200.0,
        access_ms: 3,
    },
    Class {
        name: "fibre, gigabit",
        share: 0.05,
        down_mbit: 1000.0,
        up_mbit: 500.0,
        access_ms: 2,
    },
    Class {
        name: "mobile or fixed wireless",
        share: 0.10,
        down_mbit: 50.0,
        up_mbit: 10.0,
        access_ms: 25,
    },
];

#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Share of nodes that cannot accept connections (behind NAT without a mapping):
    /// they dial out only.
    pub nat_share: f64,
    /// Per-message queueing jitter, as a fraction of the path's delay (uniform 0..j).
    pub jitter: f64,
    /// Session lengths: Weibull shape (below 1: heavy-tailed) and median.
    pub session_shape: f64,
    pub session_median: Ms,
    /// Time offline between sessions: same shape, this median.
    pub offline_median: Ms,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            nat_share: 0.4,
            jitter: 0.1,
            session_shape: 0.5,
            session_median: 60 * MINUTE,
            offline_median: 60 * MINUTE,
        }
    }
}

/// Per-node network attributes, one byte each.
pub struct Net {
    pub cfg: NetConfig,
    region: Vec<u8>,
    class: Vec<u8>,
    nat: Vec<bool>,
    salt: u64,
}

fn pick<T>(rng: &mut StdRng, items: &[T], share: impl Fn(&T) -> f64) -> usize {
    let mut x: f64 = rng.r#gen();
    for (i, it) in items.iter().enumerate() {
        x -= share(it);
        if x < 0.0 {
            return i;
        }
    }
    items.len() - 1
}

impl Net {
    pub fn new(n: usize, cfg: NetConfig, rng: &mut StdRng) -> Self {
        let mut net = Net {
            region: Vec::with_capacity(n),
            class: Vec::with_capacity(n),
            nat: Vec::with_capacity(n),
            salt: rng.r#gen(),
            cfg,
        };
        for _ in 0..n {
            net.region.push(pick(rng, &REGIONS, |r| r.share) as u8);
            net.class.push(pick(rng, &CLASSES, |c| c.share) as u8);
            let nat = rng.gen_bool(net.cfg.nat_share.clamp(0.0, 1.0));
            net.nat.push(nat);
        }
        net
    }

    pub fn len(&self) -> usize {
        self.region.len()
    }

    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// The node's address: 10.0.0.0/8 numbered from 1 (room for 16 million nodes).
    pub fn ip(node: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + node + 1))
    }

    /// The node with address `ip`, if it is one.
    pub fn node_of(ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => u32::from(v4).checked_sub(0x0A00_0001),
            IpAddr::V6(_) => None,
        }
    }

    pub fn region(&self, node: u32) -> usize {
        self.region[node as usize] as usize
    }

    pub fn class(&self, node: u32) -> &'static Class {
        &CLASSES[self.class[node as usize] as usize]
    }

    /// False for nodes behind NAT: they dial out, nobody dials them.
    pub fn reachable(&self, node: u32) -> bool {
        !self.nat[node as usize]
    }

    /// Makes `node` reachable or not (scenarios place their actors).
    pub fn set_reachable(&mut self, node: u32, reachable: bool) {
        self.nat[node as usize] = !reachable;
    }

    /// The path's one-way delay without queueing, ms: half the regions' round trip,
    /// inflated by up to 30 % per pair of nodes (routes are not straight), plus both
    /// last miles.
    pub fn base_delay(&self, a: u32, b: u32) -> Ms {
        let rtt = RTT_MS[self.region(a)][self.region(b)] as f64;
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let h = crate::engine::derive_seed(self.salt, lo as u64, hi as u64);
        let inflation = 1.0 + 0.3 * (h >> 11) as f64 / (1u64 << 53) as f64;
        let ms =
            rtt / 2.0 * inflation + self.class(a).access_ms as f64 + self.class(b).access_ms as f64;
        ms.round() as Ms
    }

    /// One message's delay from `a` to `b`: the path plus queueing jitter.
    pub fn delay(&self, a: u32, b: u32, rng: &mut StdRng) -> Ms {
        let base = self.base_delay(a, b);
        let jitter = (base as f64 * self.cfg.jitter * rng.r#gen::<f64>()) as Ms;
        base + jitter
    }

    /// Round trip between two nodes (no jitter).
    pub fn rtt(&self, a: u32, b: u32) -> Ms {
        2 * self.base_delay(a, b)
    }

    /// Upload capacity, bytes per second.
    pub fn upload_bps(&self, node: u32) -> f64 {
        self.class(node).up_mbit * 125_000.0
    }

    /// Download capacity, bytes per second.
    pub fn download_bps(&self, node: u32) -> f64 {
        self.class(node).down_mbit * 125_000.0
    }

    /// A session length or an offline time (Weibull with the configured shape).
    pub fn weibull(&self, median: Ms, rng: &mut StdRng) -> Ms {
        let k = self.cfg.session_shape;
        let scale = median as f64 / std::f64::consts::LN_2.powf(1.0 / k);
        let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        (scale * (-u.ln()).powf(1.0 / k)).round() as Ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shares_add_up_and_the_matrix_is_symmetric() {
        let r: f64 = REGIONS.iter().map(|r| r.share).sum();
        let c: f64 = CLASSES.iter().map(|c| c.share).sum();
        assert!((r - 1.0).abs() < 1e-9 && (c - 1.0).abs() < 1e-9);
        for (i, row) in RTT_MS.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v, RTT_MS[j][i]);
            }
        }
    }

    #[test]
    fn draws_follow_the_configuration() {
        let mut rng = StdRng::seed_from_u64(1);
        let net = Net::new(20_000, NetConfig::default(), &mut rng);
        let nat = (0..20_000).filter(|&i| !net.reachable(i)).count() as f64 / 20_000.0;
        assert!((nat - 0.4).abs() < 0.02, "{nat}");
        let east_asia = (0..20_000).filter(|&i| net.region(i) == 6).count() as f64 / 20_000.0;
        assert!((east_asia - 0.28).abs() < 0.02, "{east_asia}");
        assert_eq!(net.base_delay(3, 7), net.base_delay(7, 3));
        let d = net.base_delay(3, 7);
        assert!((2..400).contains(&d), "{d}");
        let mut sessions: Vec<Ms> = (0..20_001)
            .map(|_| net.weibull(60 * MINUTE, &mut rng))
            .collect();
        sessions.sort_unstable();
        let median = sessions[10_000] as f64 / MINUTE as f64;
        assert!((median - 60.0).abs() < 4.0, "{median}");
        assert!(sessions[19_980] > 20 * 60 * MINUTE, "heavy tail");
        assert_eq!(Net::node_of(Net::ip(12345)), Some(12345));
    }
}
