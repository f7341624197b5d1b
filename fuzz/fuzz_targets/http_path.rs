//! Request paths as a browser (or an attacker) sends them: cleaning never panics, and a
//! cleaned path never climbs out of the release (`..`, `.`, empty segments, NUL and
//! backslashes are refused after percent-decoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(clean) = swarmsite_node::http_file::clean_path(raw) {
        assert!(!clean.contains('\0') && !clean.contains('\\'));
        assert!(clean.split('/').all(|s| s != ".." && s != "."), "{clean:?}");
    }
});
