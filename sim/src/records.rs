//! The signed records of a simulated network, and the [`Acceptor`] its nodes judge
//! them with.
//!
//! Every record here is a real one: encoded, signed with a real RSA-3072 key of a real
//! bundle, and judged by the real trust check (`TrustStore::check`). What the simulator
//! saves is repetition: a million nodes receive the same bytes, so each distinct record
//! is decoded and verified once, and every node holds the one shared copy. What stays
//! per node is what differs per node: the highest version accepted per slot (no
//! rollback).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use rand::Rng;
use rand::rngs::StdRng;
use rustc_hash::FxHashMap;
use swarmsite_protocol::bundle::{Bundle, Site};
use swarmsite_protocol::content::Blacklist;
use swarmsite_protocol::gossip::Acceptor;
use swarmsite_protocol::keys::{MIN_BITS, PrivateKey};
use swarmsite_protocol::keyset::KeySet;
use swarmsite_protocol::name::{NetworkTag, ObjectClass, Role, Slot, SystemName, file_id, kind};
use swarmsite_protocol::record::{Payload, Record, RecordError, Signature};
use swarmsite_protocol::trust::{Refusal, TrustStore, Verdict};

/// The site every simulated node serves.
pub const SITE: u32 = 1;

/// A record's index in [`Records`].
pub type RecId = u32;

struct Entry {
    record: Arc<Record>,
    bytes: Arc<[u8]>,
    verdict: Option<Result<Verdict, Refusal>>,
}

/// The one throwaway key of every simulated network (all six roles): RSA key
/// generation takes seconds, so a process makes it once.
fn network_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(MIN_BITS).expect("RSA key generation"))
}

/// Every record the run has seen, shared by all nodes (the run is single-threaded).
pub struct Records {
    trust: TrustStore,
    bundle: Bundle,
    entries: Vec<Entry>,
    by_bytes: FxHashMap<Arc<[u8]>, RecId>,
    by_ptr: FxHashMap<usize, RecId>,
    /// Decodes and verifications done (each distinct record once).
    pub verified: u64,
}

pub type SharedRecords = Rc<RefCell<Records>>;

impl Records {
    /// A network with tag `SIMULATED` and one site, whose roles all trust one key.
    pub fn new(now_secs: u64) -> Self {
        let tag: NetworkTag = "SIMULATED".parse().expect("tag");
        let key = network_key();
        let set = KeySet::new(vec![key.public().clone()], 1, 1).expect("key set");
        let keysets = Role::ALL
            .iter()
            .map(|&role| {
                let mut r = Record::new(
                    SystemName::key_set(tag, role, 1),
                    now_secs,
                    Payload::Body(set.to_body()),
                )
                .expect("key set record");
                r.sign(key);
                r
            })
            .collect();
        let site = Site {
            id: SITE,
            name: "simulated".into(),
        };
        let bundle = Bundle::new(tag, vec![site], keysets, vec![]).expect("bundle");
        Records {
            trust: TrustStore::from_bundle(&bundle),
            bundle,
            entries: Vec::new(),
            by_bytes: FxHashMap::default(),
            by_ptr: FxHashMap::default(),
            verified: 0,
        }
    }

    pub fn shared(self) -> SharedRecords {
        Rc::new(RefCell::new(self))
    }

    pub fn tag(&self) -> NetworkTag {
        self.bundle.network()
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The id of `bytes`, adding them (decoded) when new.
    pub fn intern(&mut self, bytes: &[u8]) -> Result<RecId, RecordError> {
        if let Some(&id) = self.by_bytes.get(bytes) {
            return Ok(id);
        }
        let record = Arc::new(Record::decode(bytes)?);
        self.verified += 1;
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let id = self.entries.len() as RecId;
        self.by_ptr.insert(Arc::as_ptr(&record) as usize, id);
        self.by_bytes.insert(bytes.clone(), id);
        self.entries.push(Entry {
            record,
            bytes,
            verdict: None,
        });
        Ok(id)
    }

    pub fn bytes(&self, id: RecId) -> &Arc<[u8]> {
        &self.entries[id as usize].bytes
    }

    pub fn record(&self, id: RecId) -> &Arc<Record> {
        &self.entries[id as usize].record
    }

    pub fn name(&self, id: RecId) -> SystemName {
        self.entries[id as usize].record.name
    }

    /// The shared decoded copy of `bytes` (see [`Acceptor::decode`]).
    fn decode(&mut self, bytes: &[u8]) -> Result<(Arc<Record>, Arc<[u8]>), RecordError> {
        let id = self.intern(bytes)?;
        let e = &self.entries[id as usize];
        Ok((e.record.clone(), e.bytes.clone()))
    }

    /// The trust check of record `id` (signatures, role, clock), made once. It does not
    /// know what any one node holds: no-rollback is the node's own, in [`SimAcceptor`].
    pub fn verdict(&mut self, id: RecId, now_secs: u64) -> Result<Verdict, Refusal> {
        let e = &mut self.entries[id as usize];
        if e.verdict.is_none() {
            e.verdict = Some(self.trust.check(&e.record, now_secs));
        }
        e.verdict.clone().expect("set")
    }

    /// True when the trust check counts record `id` as forged.
    pub fn is_forgery(&mut self, id: RecId, now_secs: u64) -> bool {
        let e = &mut self.entries[id as usize];
        if e.verdict.is_none() {
            e.verdict = Some(self.trust.check(&e.record, now_secs));
        }
        matches!(&e.verdict, Some(Err(r)) if r.is_forgery())
    }

    fn verdict_of(&mut self, record: &Record, now_secs: u64) -> Result<Verdict, Refusal> {
        match self.by_ptr.get(&(record as *const Record as usize)) {
            Some(&id) => self.verdict(id, now_secs),
            None => self.trust.check(record, now_secs),
        }
    }

    fn add(&mut self, record: Record) -> RecId {
        let bytes = record.encode().expect("simulated records fit");
        self.intern(&bytes).expect("simulated records decode")
    }

    /// Release `version` of the site, signed: a torrent of `size` bytes.
    pub fn release(&mut self, version: u32, now_secs: u64, size: u64) -> RecId {
        let name = SystemName::new(self.tag(), kind::SITE_RELEASE, SITE, version);
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&version.to_be_bytes());
        let mut r = Record::new(name, now_secs, Payload::Torrent { ih, size }).expect("record");
        r.sign(network_key());
        self.add(r)
    }

    /// A forgery of `name`: well formed, claiming the real key, with a signature that
    /// does not verify (the trust check refuses it as `bad-signature`).
    pub fn forgery(&mut self, name: SystemName, now_secs: u64, rng: &mut StdRng) -> RecId {
        let mut ih = [0u8; 20];
        rng.fill(&mut ih);
        let mut r =
            Record::new(name, now_secs, Payload::Torrent { ih, size: 1 << 20 }).expect("record");
        let mut sig = vec![0u8; MIN_BITS / 8];
        rng.fill(&mut sig[..]);
        r.add_signature(Signature {
            kid: network_key().kid(),
            sig,
        });
        self.add(r)
    }

    /// Blacklist `version` carrying `list`, signed (what an auto-blacklist node makes).
    pub fn blacklist(&mut self, version: u32, list: &Blacklist, now_secs: u64) -> RecId {
        let name = SystemName::new(
            self.tag(),
            kind::AUTHORIZED_FILE,
            file_id::BLACKLIST,
            version,
        );
        let mut r = Record::new(name, now_secs, Payload::Body(list.encode())).expect("record");
        r.sign(network_key());
        self.add(r)
    }

    /// Version-1 key-set certificate of `role`, as shipped.
    fn key_set_v1(&self, role: Role) -> Option<Arc<[u8]>> {
        self.trust
            .chain_records(role)
            .first()
            .map(|b| Arc::from(*b))
    }
}

/// A node's judge: the shared verdicts, and its own highest version per slot.
pub struct SimAcceptor {
    records: SharedRecords,
    highest: Vec<(Slot, u32)>,
}

impl SimAcceptor {
    pub fn new(records: SharedRecords) -> Self {
        SimAcceptor {
            records,
            highest: Vec::new(),
        }
    }
}

impl Acceptor for SimAcceptor {
    fn accept(&mut self, record: &Record, _bytes: &[u8], now: u64) -> Result<Verdict, Refusal> {
        let name = record.name;
        if let ObjectClass::KeySet(_) = name.class() {
            // No rotation happens in a simulated run: every node holds version 1, and
            // the shared store (which holds just that) judges as each node would.
            return self.records.borrow().trust.check(record, now);
        }
        let (slot, got) = (name.slot(), name.version());
        let have = Acceptor::highest(self, slot);
        if got <= have {
            return Err(Refusal::NotNewer { have, got });
        }
        let verdict = self.records.borrow_mut().verdict_of(record, now)?;
        match self.highest.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, v)) => *v = got,
            None => self.highest.push((slot, got)),
        }
        Ok(verdict)
    }

    fn highest(&self, slot: Slot) -> u32 {
        if let ObjectClass::KeySet(_) = ObjectClass::of(slot.0, slot.1, 1) {
            return 1;
        }
        self.highest
            .iter()
            .find(|(s, _)| *s == slot)
            .map_or(0, |(_, v)| *v)
    }

    fn key_set_record(&self, role: Role, version: u32) -> Option<Arc<[u8]>> {
        (version == 1)
            .then(|| self.records.borrow().key_set_v1(role))
            .flatten()
    }

    fn decode(&mut self, bytes: Arc<[u8]>) -> Result<(Arc<Record>, Arc<[u8]>), RecordError> {
        self.records.borrow_mut().decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn records_are_judged_by_the_real_trust_check_and_shared() {
        let now = crate::engine::T0 / 1000;
        let mut recs = Records::new(now);
        let v1 = recs.release(1, now, 1000);
        let v2 = recs.release(2, now, 1000);
        let mut rng = StdRng::seed_from_u64(1);
        let forged = recs.forgery(recs.name(v2).with_version(3), now, &mut rng);
        assert!(recs.verdict(v1, now).is_ok());
        assert_eq!(
            recs.verdict(forged, now).unwrap_err().code(),
            "bad-signature"
        );
        assert!(recs.is_forgery(forged, now));
        let shared = recs.shared();
        let mut a = SimAcceptor::new(shared.clone());
        let mut b = SimAcceptor::new(shared.clone());
        let bytes = shared.borrow().bytes(v2).to_vec();
        let (ra, _) = a.decode(bytes.clone().into()).unwrap();
        let (rb, _) = b.decode(bytes.into()).unwrap();
        assert!(Arc::ptr_eq(&ra, &rb), "one decoded copy for every node");
        assert!(a.accept(&ra, &[], now).is_ok());
        assert_eq!(
            a.accept(&ra, &[], now).unwrap_err().code(),
            "not-newer",
            "no rollback, per node"
        );
        assert!(b.accept(&rb, &[], now).is_ok());
        let v1r = shared.borrow().record(v1).clone();
        assert_eq!(a.accept(&v1r, &[], now).unwrap_err().code(), "not-newer");
        let fr = shared.borrow().record(forged).clone();
        assert_eq!(a.accept(&fr, &[], now).unwrap_err().code(), "bad-signature");
        assert_eq!(Acceptor::highest(&a, recs_slot()), 2);
        let list = Blacklist::from_text("10.0.0.9 forger\n", now).unwrap();
        let bl = shared.borrow_mut().blacklist(1, &list, now);
        assert!(shared.borrow_mut().verdict(bl, now).is_ok());
    }

    fn recs_slot() -> Slot {
        (kind::SITE_RELEASE, SITE)
    }
}
