//! Which healthy volunteers a client gets (SPEC §10): the nearest by address, where
//! nearest = longest common prefix with the client, then smallest absolute
//! difference. The client is the EDNS Client Subnet when the resolver sent one, else
//! the resolver's own address. Pure functions over sorted address lists.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Who asks: an address and how many of its leading bits are meaningful (an ECS
/// source prefix; the full width for a resolver address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client's address, or the ECS subnet's.
    pub addr: IpAddr,
    /// Leading bits of `addr` that are meaningful (up to 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

impl Client {
    /// Parses `203.0.113.0/24`, `2001:db8::/56` or a bare address (PowerDNS's `remote`
    /// and `real-remote`, which may carry a port: `192.0.2.1:5353`, `[2001:db8::1]:53`).
    pub fn parse(s: &str) -> Option<Client> {
        let s = s.trim();
        if let Some((a, p)) = s.split_once('/') {
            let addr: IpAddr = a.parse().ok()?;
            let prefix: u8 = p.parse().ok()?;
            return (prefix <= width(addr)).then_some(Client { addr, prefix });
        }
        let addr = s
            .parse::<IpAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))?;
        Some(Client {
            addr,
            prefix: width(addr),
        })
    }
}

fn width(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// Healthy addresses by family, sorted and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// IPv4 addresses as numbers, ascending.
    pub v4: Vec<u32>,
    /// IPv6 addresses as numbers, ascending.
    pub v6: Vec<u128>,
}

impl Sorted {
    /// Splits `addrs` by family, sorted and deduplicated.
    pub fn new(addrs: impl IntoIterator<Item = IpAddr>) -> Sorted {
        let mut s = Sorted::default();
        for a in addrs {
            match a {
                IpAddr::V4(a) => s.v4.push(a.into()),
                IpAddr::V6(a) => s.v6.push(a.into()),
            }
        }
        s.v4.sort_unstable();
        s.v4.dedup();
        s.v6.sort_unstable();
        s.v6.dedup();
        s
    }

    /// How many addresses, both families together.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when there are no addresses at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every address: IPv4 first, then IPv6, each ascending.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .iter()
            .map(|a| IpAddr::from(std::net::Ipv4Addr::from(*a)))
            .chain(
                self.v6
                    .iter()
                    .map(|a| IpAddr::from(std::net::Ipv6Addr::from(*a))),
            )
    }
}

/// Up to `k` IPv4 addresses of `sorted` nearest `client`, nearest first.
pub fn nearest_v4(sorted: &[u32], client: Client, k: usize) -> Vec<IpAddr> {
    let picked = match client.addr {
        IpAddr::V4(a) => nearest(sorted, u32::from(a) as u128, 32, client.prefix, k),
        IpAddr::V6(_) => spread(sorted, client, k),
    };
    picked
        .into_iter()
        .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a)))
        .collect()
}

/// Up to `k` IPv6 addresses of `sorted` nearest `client`, nearest first.
pub fn nearest_v6(sorted: &[u128], client: Client, k: usize) -> Vec<IpAddr> {
    let picked = match client.addr {
        IpAddr::V6(a) => nearest(sorted, u128::from(a), 128, client.prefix, k),
        IpAddr::V4(_) => spread(sorted, client, k),
    };
    picked
        .into_iter()
        .map(|a| IpAddr::from(std::net::Ipv6Addr::from(a)))
        .collect()
}

/// The ranking key of candidate `c` for client `x`: common prefix (capped at what the
/// client's prefix makes meaningful) descending, then absolute difference ascending.
fn key(x: u128, width: u32, prefix: u32, c: u128) -> (u32, u128) {
    let common = ((x ^ c) << (128 - width)).leading_zeros().min(width);
    (prefix - common.min(prefix), x.abs_diff(c))
}

/// The `k` nearest of `sorted` (ascending) to `x`. The candidates sharing at least L
/// leading bits with `x` form a run of the sorted list around `x`'s place, for every
/// L, so the best `k` lie within `k` places either side of it: rank only those.
fn nearest<T: Copy + Into<u128>>(
    sorted: &[T],
    x: u128,
    width: u32,
    prefix: u8,
    k: usize,
) -> Vec<T> {
    let prefix = u32::from(prefix).min(width);
    // Bits past the prefix say nothing about where the client is.
    let x = if prefix == 0 {
        0
    } else {
        let keep = (u128::MAX << (128 - prefix)) >> (128 - width);
        x & keep
    };
    let at = sorted.partition_point(|c| (*c).into() < x);
    let window = &sorted[at.saturating_sub(k)..(at + k).min(sorted.len())];
    let mut ranked: Vec<T> = window.to_vec();
    ranked.sort_by_key(|c| key(x, width, prefix, (*c).into()));
    ranked.truncate(k);
    ranked
}

/// No address of the client's family: distance means nothing, so each client gets a
/// run of `k` starting at a place of its own (its hash), which spreads the load.
fn spread<T: Copy>(sorted: &[T], client: Client, k: usize) -> Vec<T> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut h = std::hash::DefaultHasher::new();
    client.addr.hash(&mut h);
    let start = (h.finish() % sorted.len() as u64) as usize;
    (0..k.min(sorted.len()))
        .map(|i| sorted[(start + i) % sorted.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pick(healthy: &[&str], client: &str, k: usize) -> Vec<String> {
        let s = Sorted::new(healthy.iter().map(|a| a.parse().unwrap()));
        nearest_v4(&s.v4, Client::parse(client).unwrap(), k)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn longest_common_prefix_first_then_smallest_difference() {
        let five = [
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.5",
        ];
        // .3 = 011: .3 (32 bits), .2 = 010 (31), .1 = 001 (30), then .4/.5 (29).
        assert_eq!(
            pick(&five, "127.0.0.3/32", 3),
            ["127.0.0.3", "127.0.0.2", "127.0.0.1"]
        );
        // .4 = 100: .5 (31), then .3, .2, .1 share 29 bits: .3 is the closest.
        assert_eq!(
            pick(&five, "127.0.0.4", 3),
            ["127.0.0.4", "127.0.0.5", "127.0.0.3"]
        );
        // Without .3, a client at .3 still gets the nearest.
        let four = ["127.0.0.1", "127.0.0.2", "127.0.0.4", "127.0.0.5"];
        assert_eq!(
            pick(&four, "127.0.0.3", 3),
            ["127.0.0.2", "127.0.0.1", "127.0.0.4"]
        );
        // Prefix beats difference: 10.0.1.0 is 255 away from 10.0.0.255 but shares
        // more bits with 10.0.1.200.
        assert_eq!(
            pick(&["10.0.0.255", "10.0.1.0"], "10.0.1.200", 1),
            ["10.0.1.0"]
        );
        assert_eq!(pick(&five, "127.0.0.3", 9).len(), 5);
        assert!(pick(&[], "127.0.0.3", 3).is_empty());
    }

    #[test]
    fn an_ecs_subnet_counts_only_its_prefix() {
        // The resolver says 198.51.100.0/24: every node in that /24 is equally near by
        // prefix, and the rest of the address is zero.
        let healthy = ["198.51.100.200", "198.51.100.7", "198.51.101.1", "9.9.9.9"];
        assert_eq!(
            pick(&healthy, "198.51.100.0/24", 3),
            ["198.51.100.7", "198.51.100.200", "198.51.101.1"]
        );
        // Host bits sent with a prefix are ignored.
        assert_eq!(
            pick(&healthy, "198.51.100.255/24", 3),
            pick(&healthy, "198.51.100.0/24", 3)
        );
        assert_eq!(pick(&healthy, "0.0.0.0/0", 1), ["9.9.9.9"]);
    }

    #[test]
    fn clients_of_the_other_family_are_spread() {
        let s = Sorted::new((1..=50u8).map(|i| IpAddr::from([10, 0, 0, i])));
        let firsts: std::collections::BTreeSet<IpAddr> = (0..40u16)
            .map(|i| {
                let c = Client::parse(&format!("2001:db8::{i:x}")).unwrap();
                nearest_v4(&s.v4, c, 3)[0]
            })
            .collect();
        assert!(firsts.len() > 10, "{firsts:?}");
        let c = Client::parse("2001:db8::1").unwrap();
        assert_eq!(nearest_v4(&s.v4, c, 3), nearest_v4(&s.v4, c, 3));
    }

    #[test]
    fn client_forms() {
        assert_eq!(
            Client::parse("203.0.113.0/24"),
            Some(Client {
                addr: "203.0.113.0".parse().unwrap(),
                prefix: 24
            })
        );
        assert_eq!(Client::parse("192.0.2.1:5353").unwrap().prefix, 32);
        assert_eq!(Client::parse("[2001:db8::1]:53").unwrap().prefix, 128);
        assert_eq!(Client::parse("2001:db8::/56").unwrap().prefix, 56);
        assert_eq!(Client::parse("10.0.0.0/33"), None);
        assert_eq!(Client::parse("nonsense"), None);
    }

    fn brute(all: &[u32], x: u32, prefix: u8, k: usize) -> Vec<u32> {
        let p = u32::from(prefix);
        let xm = if p == 0 {
            0
        } else {
            x & (u32::MAX << (32 - p))
        } as u128;
        let mut v = all.to_vec();
        v.sort_by_key(|c| key(xm, 32, p, *c as u128));
        v.truncate(k);
        v
    }

    proptest! {
        #[test]
        fn the_window_finds_what_a_full_sort_finds(
            mut all in proptest::collection::vec(any::<u32>(), 0..200),
            x in any::<u32>(),
            prefix in 0u8..=32,
            k in 1usize..6,
            near in any::<bool>(),
        ) {
            if near {
                // Crowd the client's neighbourhood so prefixes tie often.
                for (i, a) in all.iter_mut().enumerate() {
                    *a = (x & 0xffff_ff00) | (*a & 0xff) ^ (i as u32 & 1);
                }
            }
            all.sort_unstable();
            all.dedup();
            let got = nearest(&all, x as u128, 32, prefix, k);
            prop_assert_eq!(got, brute(&all, x, prefix, k));
        }
    }
}
