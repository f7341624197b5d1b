//! Anonymous uploads (SPEC §7). `container`: the sealed, padded, encrypted container a
//! source's files travel in. `stem`: the hop-by-hop phase, sans-IO.

pub mod container;
pub mod stem;
