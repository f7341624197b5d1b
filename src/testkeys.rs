//! Keys shared by the unit tests: generating RSA-3072 keys takes a while, so each test
//! binary makes one pool, in parallel, the first time a test asks.

use std::sync::OnceLock;

use crate::keys::{MIN_BITS, PrivateKey};

const POOL: usize = 12;

fn pool() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|w| {
                    s.spawn(move || {
                        (w..POOL)
                            .step_by(2)
                            .map(|_| PrivateKey::generate(MIN_BITS).expect("keygen"))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("keygen thread"))
                .collect()
        })
    })
}

/// The `i`-th key of the pool (`i < 12`).
pub fn key(i: usize) -> &'static PrivateKey {
    &pool()[i]
}
