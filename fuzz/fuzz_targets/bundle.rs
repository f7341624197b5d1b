//! Bundle parsing: never panics on any text, and a parsed bundle round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmsite_node::bundle::Bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bundle) = Bundle::parse(text) {
        let again = Bundle::parse(&bundle.to_json()).expect("a written bundle parses");
        assert_eq!(again.fingerprint(), bundle.fingerprint());
    }
});
