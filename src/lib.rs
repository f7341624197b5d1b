//! swarmsite: serve a signed website from volunteers' computers over BitTorrent.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod bencode;
pub mod keys;
pub mod name;
pub mod record;

#[cfg(test)]
mod testkeys;
