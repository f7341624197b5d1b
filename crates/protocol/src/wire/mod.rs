//! The swarmsite wire protocol (SPEC §5): BitTorrent-shaped framing and a sans-IO
//! connection state machine.

pub mod conn;
pub mod message;

pub use conn::{CloseReason, Connection, Event, WireConfig};
pub use message::{DocClaims, Hint, Message, MetaPart};
