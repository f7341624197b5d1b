//! swarmsite: serve a signed website from volunteers' computers over BitTorrent.
//!
//! This crate is the node and the publisher's tools: the IO around the sans-IO protocol
//! in `swarmsite_protocol`, whose modules are re-exported here under the same names. See
//! `docs/ARCHITECTURE.md` for the map.

pub use swarmsite_protocol::{
    bencode, blacklist, bundle, content, gossip, hints, keys, keyset, metainfo, name, policy,
    record, trust, wire,
};

pub mod clock;
pub mod control;
pub mod datadir;
pub mod demo_site;
pub mod dns;
pub mod documents;
pub mod evidence;
pub mod fsutil;
pub mod http_file;
pub mod http_server;
pub mod logging;
pub mod metainfo_file;
pub mod node;
pub mod publisher;
pub mod reach;
pub mod rendezvous;
pub mod serve;
pub mod settings;
pub mod store;
pub mod stored;
pub mod torrents;
pub mod update;
pub mod upload;

#[cfg(test)]
use swarmsite_protocol::testkeys;
