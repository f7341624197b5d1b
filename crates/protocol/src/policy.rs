//! The node's defaults that the simulator must share to say anything about the node: how
//! many peers it dials, how often it pulls, when it blacklists, how long it waits. The
//! node's configuration starts from these (`NodeConfig::new`), and the simulator's
//! `WorldConfig::node_defaults` takes them from here, so the two cannot drift apart.

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
