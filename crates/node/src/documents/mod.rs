//! The `/documents/` pages of the node's HTTP server: [`view`] is what the node knows of
//! each published document, [`pages`] renders the list, search and download pages. The
//! record format, the keep-or-drop choice and the search index are the protocol's
//! (`swarmsite_protocol::documents`, re-exported here).

pub mod pages;
pub mod view;

pub use swarmsite_protocol::documents::*;
