//! Anonymous uploads (SPEC §7). `container`: the sealed, padded, encrypted container a
//! source's files travel in.

pub mod container;
