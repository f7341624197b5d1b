//! Keys shared by the unit tests: generating RSA-3072 keys takes a while, so each test
//! binary makes one pool, in parallel, the first time a test asks.

use std::sync::OnceLock;

use crate::keys::{MIN_BITS, PrivateKey};
use crate::keyset::KeySet;
use crate::name::SystemName;
use crate::record::{Payload, Record};

const POOL: usize = 12;

fn pool() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| crate::keys::generate_keys(POOL, MIN_BITS).expect("keygen"))
}

/// The `i`-th key of the pool (`i < 12`).
pub fn key(i: usize) -> &'static PrivateKey {
    &pool()[i]
}

/// A key set of the pool keys `members`.
pub fn key_set(members: &[usize], threshold: u32, sign: u32) -> KeySet {
    KeySet::new(
        members.iter().map(|&i| key(i).public().clone()).collect(),
        threshold,
        sign,
    )
    .expect("valid set")
}

/// A record signed by the pool keys `signers`.
pub fn signed(name: SystemName, time: u64, payload: Payload, signers: &[usize]) -> Record {
    let mut r = Record::new(name, time, payload).expect("valid record");
    for &i in signers {
        r.sign(key(i));
    }
    r
}
