//! Strict bencode decoding: never panics, and whatever it accepts is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmsite_node::bencode::{Limits, decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode(data, Limits::MESSAGE) {
        assert_eq!(encode(&value), data, "accepted a non-canonical encoding");
    }
});
