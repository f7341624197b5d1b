//! Property tests of the canonical bencode: every value round-trips, and every
//! non-canonical variant of an encoding is refused.

use std::collections::BTreeMap;

use proptest::prelude::*;
use swarmsite_node::bencode::{DecodeError, Limits, Value, decode, encode};

const LIMITS: Limits = Limits {
    max_len: 1 << 20,
    max_depth: 8,
};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..6
            )
            .prop_map(Value::Dict),
        ]
    })
}

/// A dictionary with at least two keys, for key-order mutations.
fn dict2() -> impl Strategy<Value = BTreeMap<Vec<u8>, Value>> {
    proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 1..6), value(), 2..6)
}

fn encode_dict_in_order(entries: &[(Vec<u8>, Value)]) -> Vec<u8> {
    let mut out = vec![b'd'];
    for (k, v) in entries {
        out.extend_from_slice(format!("{}:", k.len()).as_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&encode(v));
    }
    out.push(b'e');
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(v in value()) {
        let bytes = encode(&v);
        prop_assert_eq!(decode(&bytes, LIMITS), Ok(v.clone()));
        // Canonical: re-encoding the decoded value gives the same bytes.
        prop_assert_eq!(encode(&decode(&bytes, LIMITS).unwrap()), bytes);
    }

    #[test]
    fn swapped_keys_are_refused(d in dict2(), i in 0usize..5) {
        let mut entries: Vec<_> = d.into_iter().collect();
        let i = i % (entries.len() - 1);
        entries.swap(i, i + 1);
        prop_assert_eq!(decode(&encode_dict_in_order(&entries), LIMITS), Err(DecodeError::UnsortedOrDuplicateKeys));
    }

    #[test]
    fn duplicate_keys_are_refused(d in dict2(), i in 0usize..5) {
        let mut entries: Vec<_> = d.into_iter().collect();
        let i = i % entries.len();
        let dup = entries[i].clone();
        entries.insert(i + 1, dup);
        prop_assert_eq!(decode(&encode_dict_in_order(&entries), LIMITS), Err(DecodeError::UnsortedOrDuplicateKeys));
    }

    #[test]
    fn leading_zeros_are_refused(n in 0i64..1_000_000, zeros in 1usize..4) {
        let int = format!("i{}{}e", "0".repeat(zeros), n);
        prop_assert!(decode(int.as_bytes(), LIMITS).is_err());
        let s = format!("{}{}:{}", "0".repeat(zeros), 3, "abc");
        prop_assert!(decode(s.as_bytes(), LIMITS).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused(v in value(), tail in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode(&v);
        bytes.extend_from_slice(&tail);
        prop_assert!(decode(&bytes, LIMITS).is_err());
    }

    #[test]
    fn truncation_is_refused(v in value(), cut in 1usize..64) {
        let bytes = encode(&v);
        let cut = cut.min(bytes.len());
        prop_assert!(decode(&bytes[..bytes.len() - cut], LIMITS).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = decode(&bytes, LIMITS) {
            // Whatever is accepted is canonical.
            prop_assert_eq!(encode(&v), bytes);
        }
    }
}

#[test]
fn limits_are_enforced() {
    let deep = format!("{}{}", "l".repeat(9), "e".repeat(9));
    assert_eq!(
        decode(deep.as_bytes(), LIMITS),
        Err(DecodeError::TooDeep { max: 8 })
    );
    let ok = format!("{}{}", "l".repeat(8), "e".repeat(8));
    assert!(decode(ok.as_bytes(), LIMITS).is_ok());
    let big = vec![b'0'; 100];
    assert!(matches!(
        decode(
            &big,
            Limits {
                max_len: 99,
                max_depth: 8
            }
        ),
        Err(DecodeError::TooLong { .. })
    ));
    assert!(decode(b"i-0e", LIMITS).is_err());
}
