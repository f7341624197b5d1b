//! Keys shared by the unit tests: generating RSA-3072 keys takes a while, so each test
//! binary makes one pool, in parallel, the first time a test asks.

use std::sync::OnceLock;

use crate::keys::{MIN_BITS, PrivateKey};

const POOL: usize = 12;

fn pool() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| crate::publisher::generate_keys(POOL, MIN_BITS).expect("keygen"))
}

/// The `i`-th key of the pool (`i < 12`).
pub fn key(i: usize) -> &'static PrivateKey {
    &pool()[i]
}
