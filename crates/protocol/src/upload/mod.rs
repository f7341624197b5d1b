//! Anonymous uploads (SPEC §7), the sans-IO machines: [`stem`] is the hop-by-hop phase,
//! [`fluff`] the announcing and fetching phase after it, [`transfer`] the stem transfer
//! of a container over a wire connection (`ss_blob`) with its per-peer limits, and
//! [`receipt`] the intake's signed list of what it holds. The container itself and the
//! queue on disk are the node's (`swarmsite::upload`), which drives these machines in
//! `node::core::uploads`.

pub mod fluff;
pub mod receipt;
pub mod stem;
pub mod transfer;

/// A BitTorrent v1 info hash: how an upload's container is named once it leaves the stem.
pub type InfoHash = [u8; 20];
