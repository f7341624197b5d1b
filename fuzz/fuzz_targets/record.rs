//! Record decoding and the trust decision on arbitrary bytes: never panics, accepted
//! records re-encode to the same bytes, and nothing unsigned is ever accepted.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarmsite_node::bundle::Bundle;
use swarmsite_node::record::Record;
use swarmsite_node::trust::TrustStore;

fn bundle() -> &'static Bundle {
    static B: OnceLock<Bundle> = OnceLock::new();
    B.get_or_init(|| swarmsite_node::datadir::builtin_bundles().remove(0))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(
            record.encode().expect("decoded records fit"),
            data,
            "non-canonical record accepted"
        );
        let mut trust = TrustStore::from_bundle(bundle());
        // Nobody holds the built-in network's keys, so no fuzzed record may pass.
        assert!(
            trust.accept(&record, 1_800_000_000).is_err(),
            "fuzzer forged a record"
        );
    }
});
