//! The upload container's inside, as the intake meets it after decryption: arbitrary
//! zstd and tar, at full speed (the `container` target pays an RSA decryption per
//! input). Half the inputs are compressed first, to reach the tar reader more often.
//! Unpacking never panics; what it accepts lies inside the destination, holds only files
//! and folders, and stays within the limits; what it refuses leaves nothing behind.
#![no_main]

#[path = "../common/upload.rs"]
mod upload;

use libfuzzer_sys::fuzz_target;
use swarmsite_node::upload::container::unpack_plain;
use upload::LIMITS;

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
    upload::check_outcome(tmp.path(), unpack_plain(&payload[..], &dest, &LIMITS));
});
