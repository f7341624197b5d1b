//! Uploads as an attacker can make them: anyone holding the intake's public key seals
//! whatever payload it likes, so the intake's opener meets arbitrary zstd and tar after
//! decryption. Half the inputs are sealed as they are, half compressed first (to reach
//! the tar reader more often); a few are opened raw (no valid seal at all). Opening
//! never panics; what it accepts lies inside the destination, holds only files and
//! folders, and stays within the limits.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmsite::keys::PrivateKey;
use swarmsite::upload::container::{Limits, open, seal};

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(swarmsite::keys::MIN_BITS).expect("keygen"))
}

const LIMITS: Limits = Limits {
    max_size: 1 << 20,
    max_unpacked: 1 << 20,
    max_entries: 256,
};

/// Every path under `dir`: no symlinks, every regular file counted.
fn walk(dir: &Path, files: &mut u64, bytes: &mut u64) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        assert!(!t.is_symlink(), "a symlink came out: {:?}", e.path());
        if t.is_dir() {
            walk(&e.path(), files, bytes);
        } else {
            assert!(t.is_file(), "{:?} is neither file nor folder", e.path());
            *files += 1;
            *bytes += e.metadata().unwrap().len();
        }
    }
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
    match open(&container[..], &[key()], &dest, &LIMITS) {
        Ok(opened) => {
            let (mut files, mut bytes) = (0, 0);
            walk(&dest, &mut files, &mut bytes);
            assert!(files <= opened.files && opened.files <= LIMITS.max_entries);
            assert!(bytes <= opened.bytes && opened.bytes <= LIMITS.max_unpacked);
        }
        Err(_) => assert!(!dest.exists(), "a refused upload left {dest:?} behind"),
    }
    // Nothing beside the destination either (an entry climbing out).
    assert!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .all(|e| e.unwrap().file_name() == "upload"),
        "something was written beside the upload"
    );
});
