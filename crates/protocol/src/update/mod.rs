//! Software updates through the swarm (SPEC §1: kind `0x8080` id 3, signed by the
//! software role `0x0004`): [`manifest`] is the signed manifest (version, minimum version
//! it updates from, notes, the torrent of the packages, and each package's platform,
//! kind, size and SHA-256), [`plan`] what a node does about one (fetch, offer, seed, or
//! ignore). Installing and publishing are the node's (`swarmsite::update`).

pub mod manifest;
pub mod plan;

pub use manifest::{Manifest, PackageFile, PackageKind, Platform};
