//! What the node's driver does around the protocol's machines, where the simulator must
//! do the same to say anything about the node: the defaults (how many peers it dials,
//! how often it pulls, when it blacklists, how long it waits) and the rules between the
//! machines (which hints are taken and to whom they are relayed, what a refusal becomes,
//! which node audits, which addresses are dialled and which peers a blacklist cuts
//! off). The node (`node::core`, `NodeConfig::new`) and the simulator
//! (`sim/src/world.rs`) both call these, so a rule changes in one place.

use std::net::IpAddr;

use crate::blacklist::{Enforcement, hintable};
use crate::content::Blacklist;
use crate::gossip::PeerKey;
use crate::hints::{Hints, HintsConfig};
use crate::name::SystemName;
use crate::record::{Payload, Record};
use crate::wire::Hint;

/// The wire port a node listens on by default (`--wire-listen`).
pub const WIRE_PORT: u16 = 6880;
/// The BitTorrent port a node listens on by default (`--bt-listen`).
pub const BT_PORT: u16 = 6881;

/// Outgoing wire connections a node keeps (`--max-peers`).
pub const MAX_PEERS: usize = 32;
/// Inbound wire connections a node accepts in total, and from one address (issue 20).
pub const MAX_INBOUND: usize = 256;
/// See [`MAX_INBOUND`].
pub const MAX_INBOUND_PER_IP: usize = 8;
/// Whether a node takes records pushed to it unasked (`--no-push` turns it off).
pub const ACCEPT_PUSH: bool = true;
/// How often a node asks its peers for what it tracks (`--pull-interval`), ms.
pub const PULL_INTERVAL_MS: u64 = 60_000;
/// Evidence entries from one address before auto-blacklisting lists it: one stray
/// failure is not enough.
pub const AUTO_BLACKLIST_THRESHOLD: u32 = 3;
/// How often auto-blacklisting batches new entries into a new blacklist version, ms.
pub const AUTO_BLACKLIST_INTERVAL_MS: u64 = 60_000;
/// How long a dial waits for the other side to accept, ms.
pub const DIAL_TIMEOUT_MS: u64 = 10_000;
/// How long an auditor's re-check waits for an accused peer that does not answer, ms.
pub const RECHECK_LIMIT_MS: u64 = 20_000;
/// The first rendezvous round, ms after start.
pub const RENDEZVOUS_FIRST_MS: u64 = 1_000;

/// How often the rendezvous round runs (DHT refresh, finding and dialling peers): with
/// the pull rounds, never more than once a second.
pub fn rendezvous_period_ms(pull_interval_ms: u64) -> u64 {
    pull_interval_ms.max(1_000)
}

/// Whether a hint a peer sent is taken (handed to [`Hints::receive`]): never one about
/// this node itself (`own`), nor about an address whose blacklisting is in force.
pub fn take_hint(hint: &Hint, own: IpAddr, enforcement: &Enforcement) -> bool {
    hint.ip != own && !enforcement.contains(hint.ip)
}

/// Whether a hint the [`Hints`] machine relays goes to `peer` (at `peer_ip`): never
/// back to the peer it came from (`except`), never to the accused.
pub fn relay_hint_to(hint: &Hint, except: Option<PeerKey>, peer: PeerKey, peer_ip: IpAddr) -> bool {
    Some(peer) != except && peer_ip != hint.ip
}

/// The hint a refusal of what the peer at `ip` sent becomes, when an auditor can check
/// it again by itself ([`hintable`]); the ports say where to look.
pub fn refusal_hint(
    ip: IpAddr,
    wire_port: Option<u16>,
    bt_port: Option<u16>,
    reason: &str,
    object: Option<SystemName>,
) -> Option<Hint> {
    hintable(reason).then(|| Hint {
        ip,
        wire_port,
        bt_port,
        reason: reason.into(),
        object,
        hops: crate::hints::HOPS,
    })
}

/// A node's evidence machines: one that runs auto-blacklisting (`auto_threshold`)
/// counts evidence and audits every hint it hears; any other only relays.
pub fn evidence_machines(auto_threshold: Option<u32>, hints: HintsConfig) -> (Enforcement, Hints) {
    let hints = HintsConfig {
        auditor: auto_threshold.is_some(),
        ..hints
    };
    (Enforcement::new(auto_threshold), Hints::new(hints))
}

/// Whether a node takes an incoming wire connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Taken.
    Yes,
    /// The address is listed by the blacklist in force (counted as a refusal).
    Listed,
    /// No room: [`MAX_INBOUND`] in all or [`MAX_INBOUND_PER_IP`] from this address
    /// (the node's settings), or the address is kept out for a while after sending too
    /// many refused items.
    NoRoom,
}

/// Whether a node with `inbound` incoming connections, `from_ip` of them from `ip`, takes
/// one more from `ip` (`slowed`: the address is kept out for now).
pub fn admit_inbound(
    ip: IpAddr,
    enforcement: &Enforcement,
    (inbound, from_ip): (usize, usize),
    (max_inbound, max_per_ip): (usize, usize),
    slowed: bool,
) -> Admit {
    if enforcement.contains(ip) {
        Admit::Listed
    } else if inbound >= max_inbound || from_ip >= max_per_ip || slowed {
        Admit::NoRoom
    } else {
        Admit::Yes
    }
}

/// What a node knows of an address when it thinks of dialling it.
#[derive(Clone, Copy, Debug, Default)]
pub struct DialCheck {
    /// A connection to it is open or being made.
    pub connected: bool,
    /// The blacklist in force lists it.
    pub listed: bool,
    /// The DHT named it falsely not long ago.
    pub dropped: bool,
    /// It sent too many refused items not long ago.
    pub slowed: bool,
    /// Outgoing connections open or being made.
    pub outgoing: usize,
    /// The most outgoing connections (`NodeConfig::max_peers`, [`MAX_PEERS`]).
    pub max_peers: usize,
}

/// Whether a node dials an address (found in the DHT, configured, or given).
pub fn may_dial(c: &DialCheck) -> bool {
    !c.connected && !c.listed && !c.dropped && !c.slowed && c.outgoing < c.max_peers
}

/// Which of `peers` (key, address) a newly put in force blacklist cuts off, in their
/// order.
pub fn cut_off<K>(
    enforcement: &Enforcement,
    peers: impl IntoIterator<Item = (K, IpAddr)>,
) -> Vec<K> {
    peers
        .into_iter()
        .filter(|(_, ip)| enforcement.contains(*ip))
        .map(|(k, _)| k)
        .collect()
}

/// The site a node serves unless told otherwise: the bundle's first (1 when it names
/// none).
pub fn default_site(bundle: &crate::bundle::Bundle) -> u32 {
    bundle.sites().first().map_or(1, |s| s.id)
}

/// Largest torrent-form blacklist a node fetches (about 100,000 entries).
pub const MAX_BLACKLIST_BYTES: u64 = 16 * 1024 * 1024;

/// What a node does with an accepted blacklist record.
#[derive(Debug, PartialEq, Eq)]
pub enum BlacklistIn {
    /// Not newer than the list in force: nothing.
    Stale,
    /// An inline list, decoded: put it in force.
    InForce(Blacklist),
    /// A list too long for a record travels as a torrent of one file: fetch it (within
    /// [`MAX_BLACKLIST_BYTES`]), decode it, then put it in force.
    Fetch {
        /// The torrent's info hash.
        ih: [u8; 20],
        /// The file's size, bytes.
        size: u64,
    },
    /// Signed but unusable (does not decode, or too large): evidence `bad-blacklist`
    /// against nobody, with the reason.
    Refused(String),
}

/// What to do with the accepted blacklist `record` while version `in_force` is in force.
pub fn blacklist_in(record: &Record, in_force: u32) -> BlacklistIn {
    if record.name.version() <= in_force {
        return BlacklistIn::Stale;
    }
    match &record.payload {
        Payload::Body(body) => match Blacklist::decode(body, body.len()) {
            Ok(list) => BlacklistIn::InForce(list),
            Err(e) => BlacklistIn::Refused(format!("signed blacklist does not parse: {e}")),
        },
        Payload::Torrent { size, .. } if *size > MAX_BLACKLIST_BYTES => {
            BlacklistIn::Refused(format!(
                "signed blacklist of {size} bytes is over the {MAX_BLACKLIST_BYTES}-byte limit"
            ))
        }
        Payload::Torrent { ih, size } => BlacklistIn::Fetch {
            ih: *ih,
            size: *size,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(ip: [u8; 4]) -> Hint {
        refusal_hint(
            IpAddr::from(ip),
            Some(WIRE_PORT),
            None,
            "bad-signature",
            None,
        )
        .expect("a forged signature can be checked again")
    }

    #[test]
    fn hints_are_not_about_ourselves_nor_relayed_back_or_to_the_accused() {
        let (enforcement, _) = evidence_machines(None, HintsConfig::default());
        let h = hint([10, 0, 0, 9]);
        assert!(take_hint(&h, IpAddr::from([10, 0, 0, 1]), &enforcement));
        assert!(!take_hint(&h, IpAddr::from([10, 0, 0, 9]), &enforcement));
        assert!(relay_hint_to(&h, Some(3), 4, IpAddr::from([10, 0, 0, 4])));
        assert!(!relay_hint_to(&h, Some(3), 3, IpAddr::from([10, 0, 0, 3])));
        assert!(!relay_hint_to(&h, Some(3), 9, IpAddr::from([10, 0, 0, 9])));
    }

    #[test]
    fn inbound_connections_within_the_caps_from_addresses_not_listed() {
        let mut enforcement = Enforcement::new(None);
        let list = Blacklist::from_text("10.0.0.9 forged", 1).unwrap();
        assert!(enforcement.put_in_force(1, list));
        let caps = (MAX_INBOUND, MAX_INBOUND_PER_IP);
        let ip = |last| IpAddr::from([10, 0, 0, last]);
        assert_eq!(
            admit_inbound(ip(1), &enforcement, (0, 0), caps, false),
            Admit::Yes
        );
        assert_eq!(
            admit_inbound(ip(9), &enforcement, (0, 0), caps, false),
            Admit::Listed
        );
        let full = (MAX_INBOUND, 0);
        assert_eq!(
            admit_inbound(ip(1), &enforcement, full, caps, false),
            Admit::NoRoom
        );
        let one_ip = (3, MAX_INBOUND_PER_IP);
        assert_eq!(
            admit_inbound(ip(1), &enforcement, one_ip, caps, false),
            Admit::NoRoom
        );
        assert_eq!(
            admit_inbound(ip(1), &enforcement, (0, 0), caps, true),
            Admit::NoRoom
        );
    }

    #[test]
    fn a_node_dials_only_new_addresses_in_good_standing_while_it_has_room() {
        let ok = DialCheck {
            outgoing: MAX_PEERS - 1,
            max_peers: MAX_PEERS,
            ..DialCheck::default()
        };
        assert!(may_dial(&ok));
        for bad in [
            DialCheck {
                connected: true,
                ..ok
            },
            DialCheck { listed: true, ..ok },
            DialCheck {
                dropped: true,
                ..ok
            },
            DialCheck { slowed: true, ..ok },
            DialCheck {
                outgoing: MAX_PEERS,
                ..ok
            },
        ] {
            assert!(!may_dial(&bad), "{bad:?}");
        }
    }

    #[test]
    fn a_blacklist_in_force_cuts_off_listed_peers_only() {
        let mut enforcement = Enforcement::new(None);
        let list = Blacklist::from_text("10.0.0.9 forged\n10.0.1.0/24 forged", 1).unwrap();
        assert!(enforcement.put_in_force(1, list));
        let peers = [(1, [10, 0, 0, 1]), (2, [10, 0, 1, 7]), (3, [10, 0, 0, 9])];
        let peers = peers.map(|(k, ip)| (k, IpAddr::from(ip)));
        assert_eq!(cut_off(&enforcement, peers), vec![2, 3]);
    }

    #[test]
    fn a_blacklist_record_is_put_in_force_fetched_or_refused() {
        use crate::name::{NetworkTag, file_id, kind};
        let tag: NetworkTag = "TESTNETS1".parse().unwrap();
        let name = |v| SystemName::new(tag, kind::AUTHORIZED_FILE, file_id::BLACKLIST, v);
        let list = Blacklist::from_text("10.0.0.9 forged", 1).unwrap();
        let inline = Record::new(name(2), 1, Payload::Body(list.encode())).unwrap();
        assert_eq!(blacklist_in(&inline, 1), BlacklistIn::InForce(list));
        assert_eq!(blacklist_in(&inline, 2), BlacklistIn::Stale);
        let garbage = Record::new(name(3), 1, Payload::Body(b"x".to_vec())).unwrap();
        assert!(matches!(blacklist_in(&garbage, 2), BlacklistIn::Refused(_)));
        let torrent = |size| Record::new(name(3), 1, Payload::Torrent { ih: [7; 20], size });
        assert_eq!(
            blacklist_in(&torrent(1 << 20).unwrap(), 2),
            BlacklistIn::Fetch {
                ih: [7; 20],
                size: 1 << 20
            }
        );
        let huge = torrent(MAX_BLACKLIST_BYTES + 1).unwrap();
        assert!(matches!(blacklist_in(&huge, 2), BlacklistIn::Refused(_)));
    }

    #[test]
    fn only_what_an_auditor_can_check_becomes_a_hint() {
        assert!(refusal_hint(IpAddr::from([10, 0, 0, 9]), None, None, "not-newer", None).is_none());
        assert_eq!(hint([10, 0, 0, 9]).hops, crate::hints::HOPS);
        assert_eq!(rendezvous_period_ms(0), 1_000);
        assert_eq!(rendezvous_period_ms(PULL_INTERVAL_MS), PULL_INTERVAL_MS);
    }
}
