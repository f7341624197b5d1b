//! Publishing: a record signed now (site releases, documents, any payload) or left as a
//! draft for more signers, and drafts combined once enough have signed.

use super::*;

impl NetworkDir {
    /// What `publish document` signs for the file at `path`: the document payload
    /// (title, description, media type — guessed from the extension when `None` —,
    /// the torrent's info hash and size) and the metainfo file that goes with it.
    pub fn document_payload(
        path: &Path,
        title: String,
        description: String,
        media_type: Option<String>,
    ) -> Result<DocumentPayload, PublishError> {
        if !path.is_file() {
            return Err(PublishError::Usage(format!(
                "{}: not a file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                PublishError::Usage(format!("{}: file name is not UTF-8", path.display()))
            })?
            .to_string();
        let media_type = media_type.unwrap_or_else(|| {
            mime_guess::from_path(path)
                .first_or_octet_stream()
                .essence_str()
                .to_string()
        });
        crate::documents::check_name(&name)?;
        let t = crate::metainfo_file::make(path, &name)?;
        let meta = crate::documents::DocumentMeta {
            title,
            description,
            name,
            media_type,
            ih: t.info_hash,
            size: t.total_size,
        };
        meta.validate()?;
        Ok((
            meta.clone(),
            Payload::Body(meta.to_body()),
            vec![(TORRENT_FILE.to_string(), t.bytes)],
        ))
    }

    /// The id for a document file named `name`: that of the newest published document
    /// with this file name (its next version replaces it), else one past the highest
    /// document id published (the first is `0x100`).
    pub fn document_id_for(&self, name: &str) -> Result<u32, PublishError> {
        let mut newest: Option<(u32, u32)> = None;
        let mut highest = crate::name::file_id::FIRST_DOCUMENT - 1;
        for e in self.published()? {
            let Ok(doc) = crate::documents::Document::from_record(&e.record) else {
                continue;
            };
            highest = highest.max(doc.id);
            if doc.meta.name == name && newest.is_none_or(|(_, v)| doc.version > v) {
                newest = Some((doc.id, doc.version));
            }
        }
        match newest {
            Some((id, _)) => Ok(id),
            None => highest
                .checked_add(1)
                .ok_or_else(|| PublishError::Usage("no document id left".into())),
        }
    }

    /// Publishes the folder `site_dir` as release `version` (default: the next one) of
    /// site `site_id`: makes its torrent, signs the record with `keys`, stores it.
    pub fn publish_site(
        &self,
        site_dir: &Path,
        site_id: u32,
        version: Option<u32>,
        keys: &[PrivateKey],
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let site = self
            .bundle
            .site(site_id)
            .ok_or_else(|| PublishError::Usage(format!("the bundle has no site {site_id}")))?;
        let t = crate::metainfo_file::make(site_dir, &site.name)?;
        let version = match version {
            Some(v) => v,
            None => self.next_version((crate::name::kind::SITE_RELEASE, site_id))?,
        };
        let name = SystemName::new(
            self.bundle.network(),
            crate::name::kind::SITE_RELEASE,
            site_id,
            version,
        );
        let record = Record::new(
            name,
            now,
            Payload::Torrent {
                ih: t.info_hash,
                size: t.total_size,
            },
        )?;
        self.publish(
            record,
            keys,
            &[(TORRENT_FILE.to_string(), t.bytes)],
            Some(site_dir),
            now,
        )
    }

    /// Signs `record` with `keys` and stores it with its `files` (name, bytes) — in
    /// `published/` when it carries enough signatures, else in `drafts/`.
    pub fn publish(
        &self,
        mut record: Record,
        keys: &[PrivateKey],
        files: &[(String, Vec<u8>)],
        payload_dir: Option<&Path>,
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let role = record.name.class().governing_role();
        let trust = self.trust()?;
        let current = role.and_then(|r| trust.current_set(r));
        for k in keys {
            match current {
                Some((_, set)) if set.get(&k.kid()).is_some() => record.sign(k),
                Some((version, _)) => {
                    return Err(PublishError::Usage(format!(
                        "key {} is not in key set v{version} of role {}, the current one",
                        k.kid().short(),
                        role.expect("current set implies a role")
                    )));
                }
                None => {
                    return Err(PublishError::Refused(
                        trust.check(&record, now).unwrap_err(),
                    ));
                }
            }
        }
        self.store(record, files, payload_dir, now)
    }

    fn store(
        &self,
        record: Record,
        files: &[(String, Vec<u8>)],
        payload_dir: Option<&Path>,
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let trust = self.trust()?;
        let dir_name = slot_dir_name(&record.name);
        let (target, draft) = match trust.check(&record, now) {
            Ok(verdict) => (
                self.published_dir().join(&dir_name),
                Dest::Published(verdict),
            ),
            Err(Refusal::NotEnoughSignatures {
                valid, required, ..
            }) => (
                self.drafts_dir().join(&dir_name),
                Dest::Draft {
                    have: valid,
                    need: required,
                },
            ),
            Err(refusal) => return Err(PublishError::Refused(refusal)),
        };
        if target.exists() {
            return Err(PublishError::Usage(format!(
                "{} already exists; choose another version",
                target.display()
            )));
        }
        let staging = Staging::new(&target, 0o755).map_err(io(&target))?;
        for (name, bytes) in files {
            staging
                .write(name, bytes, fsutil::PUBLIC)
                .map_err(io(&target))?;
        }
        if let Some(src) = payload_dir {
            // The payload folder is what librqbit seeds from: a folder torrent's files
            // sit directly in it, a single-file torrent's file under its own name.
            let name = crate::metainfo_file::name_of(&files_torrent(files)?)?;
            let root = staging.path().join(PAYLOAD_DIR);
            let copy = if src.is_file() {
                root.join(&name)
            } else {
                root
            };
            fsutil::copy_missing(src, &copy).map_err(io(src))?;
            // What is published must be what was signed (the torrent the record names),
            // even if the source changed while we were working.
            let ih = crate::metainfo_file::info_hash_of(&files_torrent(files)?)?;
            if crate::metainfo_file::make(&copy, &name)?.info_hash != ih {
                return Err(PublishError::BadFile {
                    path: src.to_path_buf(),
                    why: "changed while it was being published; try again".into(),
                });
            }
        }
        staging
            .write(RECORD_FILE, &record.encode()?, fsutil::PUBLIC)
            .map_err(io(&target))?;
        let dir = staging.commit().map_err(io(&target))?;
        *self.trust.lock().expect("trust cache lock") = None;
        Ok(match draft {
            Dest::Published(verdict) => Outcome::Published {
                dir,
                record,
                verdict,
            },
            Dest::Draft { have, need } => Outcome::Draft {
                dir,
                record,
                have,
                need,
            },
        })
    }

    /// Adds detached signatures to the draft in `draft_dir`; when enough, moves it to
    /// `published/` (the draft is removed only after the published copy is in place).
    pub fn combine(
        &self,
        draft_dir: &Path,
        sigs: &[Signature],
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let mut record = read_record(&draft_dir.join(RECORD_FILE))?;
        let message = record.signed_message();
        let trust = self.trust()?;
        let role = record.name.class().governing_role();
        for s in sigs {
            let known = role
                .and_then(|r| trust.current_set(r))
                .and_then(|(_, set)| set.get(&s.kid).cloned());
            match known {
                Some(key) if key.verify(&message, &s.sig) => record.add_signature(s.clone()),
                Some(_) => return Err(PublishError::Refused(Refusal::BadSignature(s.kid))),
                None => {
                    return Err(PublishError::Usage(format!(
                        "signature by {} is not from the current key set of the record's role",
                        s.kid.short()
                    )));
                }
            }
        }
        let mut files = Vec::new();
        let mut payload = None;
        for e in std::fs::read_dir(draft_dir).map_err(io(draft_dir))? {
            let e = e.map_err(io(draft_dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == RECORD_FILE {
                continue;
            }
            if name == PAYLOAD_DIR && e.path().is_dir() {
                payload = Some(e.path());
            } else {
                files.push((name, std::fs::read(e.path()).map_err(io(draft_dir))?));
            }
        }
        match trust.check(&record, now) {
            Ok(_) => {
                let outcome = self.store(record, &files, payload.as_deref(), now)?;
                std::fs::remove_dir_all(draft_dir).map_err(io(draft_dir))?;
                Ok(outcome)
            }
            Err(Refusal::NotEnoughSignatures {
                valid, required, ..
            }) => {
                // Rewrite the draft in place, atomically.
                fsutil::write_atomic(
                    &draft_dir.join(RECORD_FILE),
                    &record.encode()?,
                    fsutil::PUBLIC,
                )
                .map_err(io(draft_dir))?;
                Ok(Outcome::Draft {
                    dir: draft_dir.to_path_buf(),
                    record,
                    have: valid,
                    need: required,
                })
            }
            Err(refusal) => Err(PublishError::Refused(refusal)),
        }
    }
}
