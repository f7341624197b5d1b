//! Key rotation: a new key set of a role, certified by the current one, vouching for
//! the records the retired keys signed.

use super::*;

impl NetworkDir {
    /// The certificate of key set `version` of `role` made of `set`, listing as current
    /// the newest published record of each slot the role signs (SPEC §3: what the
    /// retired keys signed and nodes may keep). What does not fit in a record's body
    /// is left out, documents first (highest ids kept); nodes then drop those copies
    /// until they are published again with the new keys.
    fn vouching(
        &self,
        role: Role,
        version: u32,
        set: KeySet,
        now: u64,
    ) -> Result<(Record, Vec<SystemName>), PublishError> {
        let mut newest: BTreeMap<Slot, Record> = BTreeMap::new();
        for e in self.published()? {
            let name = e.record.name;
            if name.class().governing_role() != Some(role)
                || matches!(name.class(), ObjectClass::KeySet(_))
            {
                continue;
            }
            if newest
                .get(&name.slot())
                .is_none_or(|r| r.name.version() < name.version())
            {
                newest.insert(name.slot(), e.record);
            }
        }
        // Least important last: documents by id, after everything else.
        let mut listed: Vec<&Record> = newest.values().collect();
        listed.sort_by_key(|r| {
            (
                r.name.class() == ObjectClass::Document,
                std::cmp::Reverse(r.name.id()),
            )
        });
        let name = SystemName::key_set(self.bundle.network(), role, version);
        let mut left_out = Vec::new();
        loop {
            let current = listed
                .iter()
                .map(|r| Vouched {
                    slot: r.name.slot(),
                    version: r.name.version(),
                    digest: crate::trust::record_digest(r),
                })
                .collect();
            let body = set.clone().with_current(current)?.to_body();
            match Record::new(name, now, Payload::Body(body)) {
                Ok(record) => return Ok((record, left_out)),
                Err(RecordError::BodyTooLarge(_)) if !listed.is_empty() => {
                    left_out.push(listed.pop().expect("not empty").name);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes the next key set of `role`: `new_count` fresh keys (written for their
    /// holders) plus `kept` existing public keys, signed by `signers` of the current set.
    /// It lists the role's current records ([`NetworkDir::vouching`]).
    #[allow(clippy::too_many_arguments)]
    pub fn rotate(
        &self,
        role: Role,
        new_count: usize,
        kept: Vec<PublicKey>,
        threshold: u32,
        sign: u32,
        bits: usize,
        signers: &[PrivateKey],
        passphrase: &[u8],
        now: u64,
    ) -> Result<Rotation, PublishError> {
        let trust = self.trust()?;
        let (current, _) = trust
            .current_set(role)
            .ok_or_else(|| PublishError::Usage(format!("no key set for role {role}")))?;
        let version = current + 1;
        let key_dir = self
            .root
            .join("keys")
            .join(role.label())
            .join(format!("v{version}"));
        if key_dir.exists() {
            return Err(PublishError::Usage(format!(
                "{} exists: a rotation to v{version} was started; finish it with `keys sign` and `keys combine` on its draft, or remove the folder",
                key_dir.display()
            )));
        }
        let fresh = generate_keys(new_count, bits).map_err(|error| PublishError::Key {
            path: key_dir.clone(),
            error,
        })?;
        let mut public: Vec<PublicKey> = kept;
        public.extend(fresh.iter().map(|k| k.public().clone()));
        let set = KeySet::new(public, threshold, sign)?;
        let (record, left_out) = self.vouching(role, version, set, now)?;
        // Keys first (staged, then moved), so a published set never lacks its key files.
        let staging = Staging::new(&key_dir, 0o700).map_err(io(&key_dir))?;
        write_key_files(staging.path(), &fresh, 1, passphrase)?;
        staging.commit().map_err(io(&key_dir))?;
        match self.publish(record, signers, &[], None, now) {
            Ok(outcome) => Ok(Rotation { outcome, left_out }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&key_dir);
                Err(e)
            }
        }
    }
}
