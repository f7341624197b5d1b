//! swarmsite-sim: a discrete-event simulator that runs swarmsite's own protocol state
//! machines (`gossip::Gossip`, `hints::Hints`, `blacklist::Enforcement`,
//! `upload::stem::Stem`, `upload::fluff::Fluff`) on up to a million virtual nodes, over a modelled network
//! (geographic latency, home connection classes, NAT, churn) and a modelled DHT.
//!
//! Every scenario is reproducible from its command line (`--nodes`, `--seed`): the same
//! seed gives the same report. docs/SIMULATION.md holds the figures.

pub mod dht;
pub mod engine;
pub mod net;
pub mod records;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod world;
