//! swarmsite: serve a signed website from volunteers' computers over BitTorrent.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod bencode;
pub mod blacklist;
pub mod bundle;
pub mod content;
pub mod control;
pub mod datadir;
pub mod demo_site;
pub mod dns;
pub mod documents;
pub mod evidence;
pub mod fsutil;
pub mod gossip;
pub mod hints;
pub mod http_server;
pub mod keys;
pub mod keyset;
pub mod logging;
pub mod metainfo;
pub mod name;
pub mod node;
pub mod publisher;
pub mod reach;
pub mod record;
pub mod rendezvous;
pub mod serve;
pub mod settings;
pub mod store;
pub mod torrent;
pub mod torrents;
pub mod trust;
pub mod update;
pub mod upload;
pub mod wire;

#[cfg(test)]
mod testkeys;
