//! Record throughput: decode, verify (RSA-3072 PSS), and the whole trust check.
//!
//! `cargo bench --bench records` — figures and the openssl reference run are in
//! docs/PERFORMANCE.md (`bench/records.sh` runs both).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use swarmsite_node::bundle::{Bundle, Site};
use swarmsite_node::keys::{MIN_BITS, PrivateKey};
use swarmsite_node::keyset::KeySet;
use swarmsite_node::name::{NetworkTag, Role, SystemName};
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::trust::TrustStore;

const NOW: u64 = 1_800_000_000;

fn setup() -> (PrivateKey, Bundle, Vec<u8>) {
    let tag = NetworkTag::DEFAULT;
    let keys: Vec<PrivateKey> = (0..3)
        .map(|_| PrivateKey::generate(MIN_BITS).unwrap())
        .collect();
    let set = KeySet::new(keys.iter().map(|k| k.public().clone()).collect(), 2, 1).unwrap();
    let records = Role::ALL
        .iter()
        .map(|&role| {
            let mut r = Record::new(
                SystemName::key_set(tag, role, 1),
                NOW,
                Payload::Body(set.to_body()),
            )
            .unwrap();
            for k in &keys {
                r.sign(k);
            }
            r
        })
        .collect();
    let bundle = Bundle::new(
        tag,
        vec![Site {
            id: 1,
            name: "bench".into(),
        }],
        records,
        vec![],
    )
    .unwrap();
    let mut release = Record::new(
        SystemName::new(tag, 0x1000, 1, 1),
        NOW,
        Payload::Torrent {
            ih: [7; 20],
            size: 50 << 20,
        },
    )
    .unwrap();
    release.sign(&keys[0]);
    let bytes = release.encode().unwrap();
    let key = keys.into_iter().next().unwrap();
    (key, bundle, bytes)
}

fn records(c: &mut Criterion) {
    let (key, bundle, bytes) = setup();
    let record = Record::decode(&bytes).unwrap();
    let message = record.signed_message();
    let sig = record.sigs[0].sig.clone();
    let trust = TrustStore::from_bundle(&bundle);

    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| {
        b.iter(|| Record::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("rsa3072_pss_verify", |b| {
        b.iter(|| assert!(key.public().verify(black_box(&message), black_box(&sig))))
    });
    g.bench_function("decode_and_check", |b| {
        b.iter(|| {
            let r = Record::decode(black_box(&bytes)).unwrap();
            trust.check(&r, NOW).unwrap()
        })
    });
    g.sample_size(20);
    g.bench_function("rsa3072_pss_sign", |b| {
        b.iter(|| key.sign(black_box(&message)))
    });
    g.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
