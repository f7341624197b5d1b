//! The trust rules of SPEC §2–3, one refusal at a time.

use super::*;
use crate::bundle::Site;
use crate::keys::PrivateKey;
use crate::record::Signature;
use crate::testkeys::key;

const NOW: u64 = 1_800_000_000;
const TAG: NetworkTag = NetworkTag::DEFAULT;

/// Role site: keys 0,1,2 (threshold 2, sign 1); every other role: keys 3,4,5.
fn bundle_with(site_sign: u32) -> Bundle {
    let records = Role::ALL
        .iter()
        .map(|&role| {
            let idx: [usize; 3] = if role == Role::SITE {
                [0, 1, 2]
            } else {
                [3, 4, 5]
            };
            let sign = if role == Role::SITE { site_sign } else { 1 };
            keyset_record(role, 1, &idx, 2, sign, &idx)
        })
        .collect();
    let sites = vec![Site {
        id: 1,
        name: "leaks".into(),
    }];
    Bundle::new(TAG, sites, records, vec![]).unwrap()
}

fn keyset_record(
    role: Role,
    version: u32,
    members: &[usize],
    threshold: u32,
    sign: u32,
    signers: &[usize],
) -> Record {
    let set = crate::testkeys::key_set(members, threshold, sign);
    crate::testkeys::signed(
        SystemName::key_set(TAG, role, version),
        NOW,
        Payload::Body(set.to_body()),
        signers,
    )
}

fn release(version: u32, signers: &[&PrivateKey]) -> Record {
    let name = SystemName::new(TAG, 0x1000, 1, version);
    let mut r = Record::new(
        name,
        NOW,
        Payload::Torrent {
            ih: [version as u8; 20],
            size: 1000,
        },
    )
    .unwrap();
    for k in signers {
        r.sign(k);
    }
    r
}

fn store() -> TrustStore {
    TrustStore::from_bundle(&bundle_with(1))
}

#[test]
fn a_signed_release_is_accepted_once() {
    let mut t = store();
    let v = t.accept(&release(1, &[key(0)]), NOW).unwrap();
    assert_eq!(v.signers, vec![key(0).kid()]);
    assert!(
        v.to_string().contains("site release v1 accepted: 1 of 1"),
        "{v}"
    );
    assert_eq!(
        t.accept(&release(1, &[key(0)]), NOW),
        Err(Refusal::NotNewer { have: 1, got: 1 })
    );
}

#[test]
fn an_accepted_release_is_still_authentic_but_a_forged_one_is_not() {
    let mut t = store();
    let v1 = release(1, &[key(0)]);
    t.accept(&v1, NOW).unwrap();
    // What a node serving the accepted version shows: authentic, not newer.
    assert!(t.check_authentic(&v1, NOW).is_ok());
    assert!(t.check(&v1, NOW).is_err());
    let forged = release(2, &[key(3)]);
    assert_eq!(
        t.check_authentic(&forged, NOW).unwrap_err().code(),
        "not-enough-signatures"
    );
    let mut tampered = v1.clone();
    tampered.time += 1;
    assert_eq!(
        t.check_authentic(&tampered, NOW),
        Err(Refusal::BadSignature(key(0).kid()))
    );
}

#[test]
fn every_tampered_field_is_refused() {
    let t = store();
    let good = release(1, &[key(0)]);
    let bad_sig = Err(Refusal::BadSignature(key(0).kid()));

    let mut r = good.clone();
    r.name = SystemName::new(TAG, 0x1000, 1, 2);
    assert_eq!(t.check(&r, NOW), bad_sig, "version");
    let mut r = good.clone();
    r.name = SystemName::new(TAG, 0x1000, 2, 1);
    assert_eq!(t.check(&r, NOW), bad_sig, "id");
    let mut r = good.clone();
    r.time -= 1;
    assert_eq!(t.check(&r, NOW), bad_sig, "time");
    let mut r = good.clone();
    r.payload = Payload::Torrent {
        ih: [9; 20],
        size: 1000,
    };
    assert_eq!(t.check(&r, NOW), bad_sig, "ih");
    let mut r = good.clone();
    r.payload = Payload::Torrent {
        ih: [1; 20],
        size: 1001,
    };
    assert_eq!(t.check(&r, NOW), bad_sig, "size");
    let mut r = good.clone();
    r.sigs[0].sig[100] ^= 1;
    assert_eq!(t.check(&r, NOW), bad_sig, "signature bytes");
    let mut r = good.clone();
    r.sigs[0].kid = key(1).kid();
    assert_eq!(
        t.check(&r, NOW),
        Err(Refusal::BadSignature(key(1).kid())),
        "kid of another signer"
    );
    let mut r = good.clone();
    r.sigs[0].kid = key(11).kid();
    assert!(
        matches!(
            t.check(&r, NOW),
            Err(Refusal::NotEnoughSignatures { valid: 0, .. })
        ),
        "unknown kid"
    );

    let mut body = Record::new(
        SystemName::new(TAG, 0x1111, 2, 1),
        NOW,
        Payload::Body(b"hello".to_vec()),
    )
    .unwrap();
    body.sign(key(3));
    assert!(t.check(&body, NOW).is_ok());
    body.payload = Payload::Body(b"hellO".to_vec());
    assert_eq!(
        t.check(&body, NOW),
        Err(Refusal::BadSignature(key(3).kid())),
        "body"
    );

    // Tampering with the encoded bytes: any flipped bit is refused, as malformed or forged.
    let bytes = good.encode().unwrap();
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        let mut t = store();
        assert!(
            t.accept_bytes(&b, NOW).is_err(),
            "byte {i} flipped was accepted"
        );
    }
}

#[test]
fn rollback_replay_and_future_are_refused() {
    let mut t = store();
    t.accept(&release(2, &[key(0)]), NOW).unwrap();
    assert_eq!(
        t.check(&release(1, &[key(0)]), NOW),
        Err(Refusal::NotNewer { have: 2, got: 1 })
    );
    assert_eq!(
        t.check(&release(2, &[key(0)]), NOW),
        Err(Refusal::NotNewer { have: 2, got: 2 })
    );
    let mut future = release(3, &[]);
    future.time = NOW + MAX_CLOCK_SKEW_SECS + 1;
    future.sign(key(0));
    assert_eq!(
        t.check(&future, NOW),
        Err(Refusal::FromTheFuture {
            time: future.time,
            now: NOW
        })
    );
    let mut edge = release(3, &[]);
    edge.time = NOW + MAX_CLOCK_SKEW_SECS;
    edge.sign(key(0));
    assert!(
        t.check(&edge, NOW).is_ok(),
        "exactly one hour ahead is allowed"
    );
    assert!(!Refusal::NotNewer { have: 2, got: 1 }.is_forgery());
    assert!(Refusal::BadSignature(key(0).kid()).is_forgery());
}

#[test]
fn signature_counting() {
    let t = TrustStore::from_bundle(&bundle_with(2));
    assert!(matches!(
        t.check(&release(1, &[key(0)]), NOW),
        Err(Refusal::NotEnoughSignatures {
            valid: 1,
            required: 2,
            ..
        })
    ));
    assert!(t.check(&release(1, &[key(0), key(2)]), NOW).is_ok());
    let mut dup = release(1, &[key(0)]);
    let again = dup.sigs[0].clone();
    dup.sigs.push(Signature {
        kid: again.kid,
        sig: key(0).sign(&dup.signed_message()),
    });
    assert_eq!(
        t.check(&dup, NOW),
        Err(Refusal::DuplicateSigner(key(0).kid()))
    );
    // A key of another role does not count.
    assert!(matches!(
        t.check(&release(1, &[key(3), key(4)]), NOW),
        Err(Refusal::NotEnoughSignatures { valid: 0, .. })
    ));
    // Kinds without a governing role are never accepted.
    let mut upload = Record::new(
        SystemName::new(TAG, 0x1010, 1, 1),
        NOW,
        Payload::Body(vec![]),
    )
    .unwrap();
    upload.sign(key(0));
    assert!(matches!(
        t.check(&upload, NOW),
        Err(Refusal::NoGoverningRole { .. })
    ));
    let other = SystemName::new("OTHERNET1".parse().unwrap(), 0x1000, 1, 1);
    let mut r = release(1, &[]);
    r.name = other;
    assert!(matches!(
        t.check(&r, NOW),
        Err(Refusal::WrongNetwork { .. })
    ));
}

#[test]
fn rotation_needs_the_threshold_and_retires_old_keys() {
    let mut t = store();
    let one_of_three = keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[0]);
    assert!(matches!(
        t.check(&one_of_three, NOW),
        Err(Refusal::NotEnoughSignatures {
            valid: 1,
            required: 2,
            ..
        })
    ));
    let by_new_keys = keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[6, 7, 8]);
    assert!(matches!(
        t.check(&by_new_keys, NOW),
        Err(Refusal::NotEnoughSignatures { valid: 0, .. })
    ));
    let v2 = keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[0, 2]);
    let verdict = t.accept(&v2, NOW).unwrap();
    assert!(
        verdict.rotation && verdict.to_string().contains("threshold rule"),
        "{verdict}"
    );
    assert_eq!(t.current_set(Role::SITE).unwrap().0, 2);

    // Content signed only by a rotated-out key is refused, and the reason says so; it
    // is not a forgery (a node that missed the rotation still holds such records).
    let err = t.check(&release(1, &[key(0)]), NOW).unwrap_err();
    assert!(matches!(err, Refusal::RetiredKeys { current: 2, .. }));
    assert!(!err.is_forgery());
    assert!(err.to_string().contains("retired"), "{err}");
    // Mixed with an unknown key, it still counts as not enough signatures.
    let err = t.check(&release(1, &[key(0), key(9)]), NOW).unwrap_err();
    assert!(matches!(err, Refusal::NotEnoughSignatures { valid: 0, .. }));
    assert!(err.to_string().contains("retired, key set v1"), "{err}");
    assert!(t.check(&release(1, &[key(7)]), NOW).is_ok());
    // Replaying the old rotation, or one that skips a version, is refused.
    assert!(matches!(
        t.check(&v2, NOW),
        Err(Refusal::NotNewer { have: 2, got: 2 })
    ));
    let v4 = keyset_record(Role::SITE, 4, &[9, 10, 11], 2, 1, &[6, 7]);
    assert_eq!(
        t.check(&v4, NOW),
        Err(Refusal::ChainGap { next: 3, got: 4 })
    );
}

/// Rotation v2 of the site role, signed by keys 0 and 2, listing `current`.
fn rotation_listing(current: &[&Record]) -> Record {
    let set = crate::testkeys::key_set(&[6, 7, 8], 2, 1)
        .with_current(
            current
                .iter()
                .map(|r| crate::keyset::Vouched {
                    slot: r.name.slot(),
                    version: r.name.version(),
                    digest: record_digest(r),
                })
                .collect(),
        )
        .unwrap();
    crate::testkeys::signed(
        SystemName::key_set(TAG, Role::SITE, 2),
        NOW,
        Payload::Body(set.to_body()),
        &[0, 2],
    )
}

#[test]
fn a_retired_key_cannot_pin_a_slot() {
    // Issue 20: a fresh node whose first peer held a retired site key.
    let mut fresh = store();
    assert_eq!(
        fresh.check(&release(u32::MAX - 1, &[key(1)]), NOW),
        Err(Refusal::VersionJump {
            floor: 0,
            got: u32::MAX - 1
        }),
        "no pin near u32::MAX"
    );
    let forged = release(MAX_VERSION_STEP, &[key(1)]);
    fresh.accept(&forged, NOW).unwrap();
    assert_eq!(fresh.highest((0x1000, 1)), MAX_VERSION_STEP);

    // The publisher rotated key 1 out while release 5 (signed by key 0) was current.
    let honest = release(5, &[key(0)]);
    let v2 = rotation_listing(&[&honest]);
    let verdict = fresh.accept(&v2, NOW).unwrap();
    assert_eq!(verdict.dropped, vec![forged.name], "the pin is dropped");
    assert_eq!(
        fresh.highest((0x1000, 1)),
        4,
        "down to just below the listed one"
    );
    // The listed release counts although a retired key signed it; nothing else does.
    let taken = fresh.accept(&honest, NOW).unwrap();
    assert!(taken.vouched, "{taken}");
    assert!(taken.to_string().contains("listed as current"), "{taken}");
    assert!(matches!(
        fresh.check(&release(6, &[key(0)]), NOW),
        Err(Refusal::RetiredKeys { .. })
    ));
    let mut altered = release(5, &[key(0)]);
    altered.time += 1;
    altered.sigs.clear();
    altered.sign(key(0));
    assert!(matches!(
        store_at(&v2, 4).check(&altered, NOW),
        Err(Refusal::RetiredKeys { .. })
    ));
    assert!(fresh.accept(&release(6, &[key(7)]), NOW).is_ok());
}

/// A store that learned `rotation` with the site slot at `version`.
fn store_at(rotation: &Record, version: u32) -> TrustStore {
    let mut t = store();
    t.accept(rotation, NOW).unwrap();
    t.highest.insert(
        (0x1000, 1),
        Accepted {
            version,
            set: 2,
            digest: None,
        },
    );
    t
}

#[test]
fn what_the_rotation_lists_survives_it_and_nothing_else_does() {
    let honest = release(5, &[key(0)]);
    let mut t = store();
    t.accept(&honest, NOW).unwrap();
    let v2 = rotation_listing(&[&honest]);
    let verdict = t.accept(&v2, NOW).unwrap();
    assert!(verdict.dropped.is_empty(), "{:?}", verdict.dropped);
    assert_eq!(t.highest((0x1000, 1)), 5);
    assert!(matches!(
        t.check(&honest, NOW),
        Err(Refusal::NotNewer { have: 5, got: 5 })
    ));
    // A node that held an older release keeps nothing of it either: it takes release 5.
    let mut behind = store();
    let old = release(3, &[key(0)]);
    behind.accept(&old, NOW).unwrap();
    assert_eq!(behind.accept(&v2, NOW).unwrap().dropped, vec![old.name]);
    assert!(behind.accept(&honest, NOW).unwrap().vouched);
    // A rotation that lists nothing drops everything its retired keys signed.
    let mut empty = store();
    empty.accept(&honest, NOW).unwrap();
    let bare = keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[0, 2]);
    assert_eq!(empty.accept(&bare, NOW).unwrap().dropped, vec![honest.name]);
    assert_eq!(empty.highest((0x1000, 1)), 0);
}

#[test]
fn a_fresh_client_follows_a_chain_of_rotations() {
    let v2 = keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[0, 1]);
    let v3 = keyset_record(Role::SITE, 3, &[9, 10, 11], 2, 1, &[7, 8]);
    let mut fresh = store();
    assert_eq!(
        fresh.check(&v3, NOW),
        Err(Refusal::ChainGap { next: 2, got: 3 })
    );
    assert_eq!(
        fresh.accept_chain(&[v3.clone(), v2.clone()], NOW).unwrap(),
        2
    );
    assert_eq!(fresh.current_set(Role::SITE).unwrap().0, 3);
    assert!(fresh.check(&release(1, &[key(10)]), NOW).is_ok());
    assert!(
        fresh.check(&release(1, &[key(7)]), NOW).is_err(),
        "v2 key retired by v3"
    );
    // v3 signed by v1 keys (skipping v2's authority) is refused.
    let mut other = store();
    other.accept(&v2, NOW).unwrap();
    let forged_v3 = keyset_record(Role::SITE, 3, &[9, 10, 11], 2, 1, &[0, 1]);
    assert!(matches!(
        other.check(&forged_v3, NOW),
        Err(Refusal::NotEnoughSignatures { .. })
    ));
}

#[test]
fn weak_keys_in_a_key_set_are_refused() {
    use rsa::pkcs8::EncodePublicKey;
    let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let der = small.to_public_key().to_public_key_der().unwrap();
    let body = crate::bencode::encode(&crate::bencode::dict([
        (
            "keys",
            crate::bencode::Value::List(vec![crate::bencode::Value::Bytes(
                der.as_bytes().to_vec(),
            )]),
        ),
        ("sign", crate::bencode::Value::Int(1)),
        ("threshold", crate::bencode::Value::Int(1)),
    ]));
    let mut r = Record::new(
        SystemName::key_set(TAG, Role::SITE, 2),
        NOW,
        Payload::Body(body),
    )
    .unwrap();
    r.sign(key(0));
    r.sign(key(1));
    let err = store().check(&r, NOW).unwrap_err();
    assert!(err.to_string().contains("2048 bits is too small"), "{err}");
}

#[test]
fn saved_form_round_trip_and_tamper_detection() {
    let bundle = bundle_with(1);
    let mut t = TrustStore::from_bundle(&bundle);
    t.accept(
        &keyset_record(Role::SITE, 2, &[6, 7, 8], 2, 1, &[0, 1]),
        NOW,
    )
    .unwrap();
    t.accept(&release(5, &[key(6)]), NOW).unwrap();
    let saved = String::from_utf8(t.to_saved()).unwrap();

    let back = TrustStore::from_saved(&saved, &bundle).unwrap();
    assert_eq!(back.current_set(Role::SITE).unwrap().0, 2);
    assert_eq!(back.highest((0x1000, 1)), 5);
    assert_eq!(
        back.check(&release(5, &[key(6)]), NOW),
        Err(Refusal::NotNewer { have: 5, got: 5 })
    );
    assert_eq!(
        back.highest, t.highest,
        "which set vouched, and the digest, kept"
    );

    // A file of an older build (no `vouched_by`): the digest comes from the held record.
    let mut old: serde_json::Value = serde_json::from_str(&saved).unwrap();
    old.as_object_mut().unwrap().remove("vouched_by");
    let mut upgraded = TrustStore::from_saved(&old.to_string(), &bundle).unwrap();
    assert_ne!(upgraded.highest, t.highest);
    upgraded.note_held(&release(5, &[key(6)]));
    assert_eq!(upgraded.highest, t.highest);

    // A key set slipped into the file without valid signatures is caught on load.
    let forged = keyset_record(Role::SITE, 3, &[9, 10, 11], 2, 1, &[9, 10]);
    let mut file: serde_json::Value = serde_json::from_str(&saved).unwrap();
    file["keysets"]["1"]
        .as_array_mut()
        .unwrap()
        .push(hex::encode(forged.encode().unwrap()).into());
    assert!(matches!(
        TrustStore::from_saved(&file.to_string(), &bundle),
        Err(SavedTrustError::Chain { .. })
    ));

    // A store made from another bundle is not silently mixed in.
    let records = Role::ALL
        .iter()
        .map(|&r| keyset_record(r, 1, &[9, 10, 11], 2, 1, &[9, 10]))
        .collect();
    let other = Bundle::new(
        TAG,
        vec![Site {
            id: 1,
            name: "leaks".into(),
        }],
        records,
        vec![],
    )
    .unwrap();
    assert!(matches!(
        TrustStore::from_saved(&saved, &other),
        Err(SavedTrustError::OtherBundle { .. })
    ));
    assert!(matches!(
        TrustStore::from_saved("{not json", &bundle),
        Err(SavedTrustError::Format(_))
    ));
}
