//! DNS steering (SPEC §10, docs/DNS.md): a PowerDNS remote backend that answers the
//! site's domain with the nearest live volunteers serving the newest verified release.
//!
//! - `service`: the IO: the listener PowerDNS calls, the probes, the discovery of
//!   candidates through the node (DHT, wire peers) and the zone's seeds.
//! - `zone`, `backend`, `select`, `prober`: the pure parts, the protocol's
//!   (`swarmsite_protocol::dns`, re-exported here).

pub mod service;

pub use service::{DnsError, DnsFront, DnsStatus};
pub use swarmsite_protocol::dns::{Zone, ZoneError, backend, prober, select, zone};
