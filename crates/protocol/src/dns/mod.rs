//! DNS steering (SPEC §10, docs/DNS.md), the pure parts of the front that answers the
//! site's domain with the nearest live volunteers serving the newest verified release:
//!
//! - [`zone`]: the zone file (SOA, NS, steered names, TTLs, static records, prober
//!   settings), checked when parsed.
//! - [`backend`]: PowerDNS's remote-backend HTTP JSON protocol.
//! - [`select`]: nearest-address selection.
//! - [`prober`]: probe scheduling and the healthy set.
//!
//! The IO around them (the listener PowerDNS calls, the probes, discovery of candidates)
//! is the node's `swarmsite::dns::service`.

pub mod backend;
pub mod prober;
pub mod select;
pub mod zone;

pub use zone::{Zone, ZoneError};
