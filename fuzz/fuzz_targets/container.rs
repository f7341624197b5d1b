//! Uploads as an attacker can make them: anyone holding the intake's public key seals
//! whatever payload it likes, so the intake's opener meets arbitrary zstd and tar after
//! decryption. Half the inputs are sealed as they are, half compressed first (to reach
//! the tar reader more often); a few are opened raw (no valid seal at all). Opening
//! never panics; what it accepts lies inside the destination, holds only files and
//! folders, and stays within the limits.
#![no_main]

#[path = "../common/upload.rs"]
mod upload;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmsite_node::keys::PrivateKey;
use swarmsite_node::upload::container::{open, seal};
use upload::LIMITS;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(swarmsite_node::keys::MIN_BITS).expect("keygen"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let container = match mode % 8 {
        0 => rest.to_vec(),
        1..=4 => {
            let mut out = Vec::new();
            if seal(rest, key().public(), &mut out, &LIMITS).is_err() {
                return;
            }
            out
        }
        _ => {
            let Ok(payload) = zstd::encode_all(rest, 1) else {
                return;
            };
            let mut out = Vec::new();
            if seal(&payload, key().public(), &mut out, &LIMITS).is_err() {
                return;
            }
            out
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("upload");
    upload::check_outcome(tmp.path(), open(&container[..], &[key()], &dest, &LIMITS));
});
