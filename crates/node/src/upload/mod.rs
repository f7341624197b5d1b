//! Anonymous uploads (SPEC §7), the node's side. `container`: the sealed, padded,
//! encrypted container a source's files travel in. `queue`: what a node holds and where
//! each upload stands, on disk, with the storage quota. The sans-IO machines (`stem`,
//! `fluff`, `transfer`, `receipt`) are the protocol's (`swarmsite_protocol::upload`,
//! re-exported here). The node drives them in `node::core::uploads`.

pub mod container;
pub mod queue;

pub use swarmsite_protocol::upload::{InfoHash, fluff, receipt, stem, transfer};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::keys::{PrivateKey, PublicKey};
use crate::name::Role;
use crate::trust::TrustStore;

/// A node's upload settings.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    pub stem: stem::StemConfig,
    pub fluff: fluff::FluffConfig,
    pub transfer: transfer::TransferConfig,
    /// Bytes of containers this node keeps at most (stem copies, caches, transfers).
    pub quota: u64,
    /// Largest container this node makes or takes.
    pub max_size: u64,
    /// How long a copy stays on disk after a receipt listed it (0: removed at once);
    /// kept copies are the first to go when room is needed.
    pub keep_receipted: Duration,
    /// Set on the intake node: it opens every upload and publishes receipts.
    pub intake: Option<Arc<IntakeConfig>>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            stem: stem::StemConfig::default(),
            fluff: fluff::FluffConfig::default(),
            transfer: transfer::TransferConfig::default(),
            quota: 8 << 30,
            max_size: container::DEFAULT_MAX_SIZE,
            keep_receipted: Duration::ZERO,
            intake: None,
        }
    }
}

/// What makes a node the intake.
#[derive(Debug)]
pub struct IntakeConfig {
    /// Intake-role private keys (the current one, and older ones for uploads sealed
    /// before a rotation). Held in memory only; on disk they stay encrypted.
    pub keys: Vec<PrivateKey>,
    /// A documents-role key: it signs the receipts.
    pub signer: PrivateKey,
    /// Where opened uploads go, one folder per upload.
    pub out: PathBuf,
    /// How often new receipts are published.
    pub receipt_interval: Duration,
}

/// The key new uploads are sealed to: the first key of the newest intake key set.
pub fn intake_key(trust: &TrustStore) -> Option<&PublicKey> {
    trust
        .current_set(Role::INTAKE)
        .and_then(|(_, set)| set.keys().first())
}
