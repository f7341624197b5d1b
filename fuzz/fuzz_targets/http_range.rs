//! `Range` header values as a client (or an amplification attacker) sends them, against
//! a file whose length the first 8 bytes choose: never panics; what is answered lies
//! within the file, is at most 32 parts, and several parts never overlap, so an answer
//! is never longer than the file plus its part headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmsite_node::http_file::{MAX_RANGES, satisfiable_ranges};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*len) >> (len[0] % 64);
    let Ok(header) = std::str::from_utf8(rest) else {
        return;
    };
    let Some(ranges) = satisfiable_ranges(header, len) else {
        return;
    };
    assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
    let mut total: u64 = 0;
    for r in &ranges {
        assert!(r.start() <= r.end() && *r.end() < len, "{r:?} of {len}");
        total += r.end() - r.start() + 1;
    }
    assert!(total <= len, "{total} bytes answered of a {len}-byte file");
});
