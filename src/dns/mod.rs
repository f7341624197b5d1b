//! DNS steering (SPEC §10, docs/DNS.md): a PowerDNS remote backend that answers the
//! site's domain with the nearest live volunteers serving the newest verified release.
//!
//! - `zone`: the zone file (SOA, NS, steered names, TTLs, static records, prober
//!   settings), checked when read.
//! - `backend`: the remote backend's HTTP JSON protocol, pure.
//! - `select`: nearest-address selection, pure.
//! - `prober`: probe scheduling and the healthy set, sans-IO.
//! - `service`: the IO around them: the listener PowerDNS calls, the probes, the
//!   discovery of candidates through the node (DHT, wire peers) and the zone's seeds.

pub mod backend;
pub mod prober;
pub mod select;
pub mod service;
pub mod zone;

pub use service::{DnsError, DnsFront, DnsStatus};
pub use zone::{Zone, ZoneError};
