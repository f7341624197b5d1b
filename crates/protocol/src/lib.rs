#![warn(missing_docs)]
//! swarmsite's protocol, sans-IO: everything two nodes must agree on, and every rule a
//! node applies to what its peers send, as plain data and state machines. Machines take
//! (state, event, time) and return actions; the node (`swarmsite`, tokio and librqbit)
//! and the simulator (`swarmsite-sim`, virtual time) drive the same code.
//!
//! No async runtime, no sockets, no clock, no filesystem: see `docs/ARCHITECTURE.md`.

pub mod bencode;
pub mod blacklist;
pub mod bundle;
pub mod content;
pub mod dns;
pub mod documents;
pub mod gossip;
pub mod hints;
pub mod keys;
pub mod keyset;
pub mod metainfo;
pub mod name;
pub mod policy;
pub mod record;
pub mod trust;
pub mod update;
pub mod upload;
pub mod upnp;
pub mod wire;

#[cfg(any(test, feature = "testkeys"))]
pub mod testkeys;
