//! The upload container's inside, as the intake meets it after decryption: arbitrary
//! zstd and tar, at full speed (the `container` target pays an RSA decryption per
//! input). Half the inputs are compressed first, to reach the tar reader more often.
//! Unpacking never panics; what it accepts lies inside the destination, holds only files
//! and folders, and stays within the limits; what it refuses leaves nothing behind.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use swarmsite::upload::container::{Limits, unpack_plain};

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
    let payload = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        match zstd::encode_all(rest, 1) {
            Ok(p) => p,
            Err(_) => return,
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("upload");
    match unpack_plain(&payload[..], &dest, &LIMITS) {
        Ok(opened) => {
            let (mut files, mut bytes) = (0, 0);
            walk(&dest, &mut files, &mut bytes);
            assert!(files <= opened.files && opened.files <= LIMITS.max_entries);
            assert!(bytes <= opened.bytes && opened.bytes <= LIMITS.max_unpacked);
        }
        Err(_) => assert!(!dest.exists(), "a refused upload left {dest:?} behind"),
    }
    assert!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .all(|e| e.unwrap().file_name() == "upload"),
        "something was written beside the upload"
    );
});
