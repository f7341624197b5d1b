//! (Intake node) every upload held whole is opened with the intake keys, and a receipt
//! listing them is signed and published.

use super::*;

/// Uploads opened at once, at most: each is a core's work (RSA, ChaCha20, zstd) and a
/// stream of writes; more wait their turn.
pub(super) const MAX_OPENING: usize = 2;
/// Disk space left beyond an upload's unpack cap (`container::unpack_cap`) before it is
/// opened: a bomb, or many honest uploads, never fill the intake's disk.
const DISK_RESERVE: u64 = 512 * 1024 * 1024;

impl Uploads {
    /// (Intake) opens the upload `ih` once it is held whole, or queues it while
    /// [`MAX_OPENING`] are being opened or the disk is short.
    pub(super) fn intake_open(&mut self, ih: &InfoHash) {
        let Some(intake) = &mut self.intake else {
            return;
        };
        if intake.held.contains(ih) || intake.opening.contains(ih) {
            return;
        }
        if intake.opening.len() >= MAX_OPENING || intake.disk_short {
            if !intake.waiting.contains(ih) {
                intake.waiting.push_back(*ih);
            }
            return;
        }
        intake.waiting.retain(|w| w != ih);
        let Some(e) = self.queue.get(ih).filter(|e| self.copy_of(e).is_some()) else {
            return;
        };
        // Both places, in case the copy moves (stem to fluff) before it is opened.
        let mut files = vec![self.fluff_dir(ih).join(TORRENT_NAME)];
        files.extend(e.id.map(|id| self.stem_dir(&id).join(TORRENT_NAME)));
        let limits = container::Limits {
            max_size: container::DEFAULT_MAX_SIZE,
            max_unpacked: container::unpack_cap(e.size),
            ..container::Limits::default()
        };
        let Some(intake) = &mut self.intake else {
            return;
        };
        let cfg = Arc::clone(&intake.cfg);
        intake.opening.insert(*ih);
        let (ih, tx) = (*ih, self.tx.clone());
        tokio::task::spawn_blocking(move || {
            let opened = open_upload(&cfg, &ih, &files, &limits);
            let _ = tx.blocking_send(UploadReport::Opened { ih, opened });
        });
    }

    /// (Intake) opens waiting uploads while slots are free; `retry_disk`: the tick,
    /// when one that found the disk short is tried again.
    pub(super) fn intake_open_waiting(&mut self, retry_disk: bool) {
        loop {
            let Some(intake) = &mut self.intake else {
                return;
            };
            if retry_disk {
                intake.disk_short = false;
            }
            if intake.opening.len() >= MAX_OPENING || intake.disk_short {
                return;
            }
            let Some(ih) = intake.waiting.pop_front() else {
                return;
            };
            self.intake_open(&ih);
        }
    }

    pub(super) fn on_opened(&mut self, ctx: &mut Ctx<'_>, ih: InfoHash, opened: Opened) {
        let path = self.intake_file();
        let Some(intake) = &mut self.intake else {
            return;
        };
        intake.opening.remove(&ih);
        let Opened {
            outcome,
            held,
            evidence,
            disk_short,
        } = opened;
        if disk_short {
            tracing::warn!("intake: upload {}: {outcome}", hex::encode(ih));
            intake.disk_short = true;
            intake.waiting.push_back(ih);
            return;
        }
        self.intake_open_waiting(false);
        let Some(intake) = &mut self.intake else {
            return;
        };
        if !held {
            // Not readable now (it moved, the disk failed): tried again when it is
            // held again, or at the next start.
            tracing::warn!("intake: upload {}: {outcome}", hex::encode(ih));
            return;
        }
        if !intake.held.contains(&ih) {
            intake.held.push(ih);
        }
        let list: Vec<String> = intake.held.iter().map(hex::encode).collect();
        if let Err(e) =
            crate::fsutil::write_atomic(&path, &serde_json::to_vec(&list).expect("json"), 0o600)
        {
            tracing::error!("{}: {e}", path.display());
        }
        tracing::info!("intake: upload {}: {outcome}", hex::encode(ih));
        if let Some(detail) = evidence {
            ctx.evidence(
                None,
                None,
                "bad-upload",
                format!("upload {}: {detail}", hex::encode(ih)),
            );
        }
        ctx.emit(NodeEvent::UploadOpened {
            ih: hex::encode(ih),
            outcome,
        });
    }

    /// (Intake) signs and sends a receipt listing every upload held, when that grew.
    pub(super) fn publish_receipts(&mut self, ctx: &mut Ctx<'_>) {
        let Some(intake) = &self.intake else {
            return;
        };
        if intake.held.len() <= intake.published {
            return;
        }
        let skip = intake.held.len().saturating_sub(receipt::MAX_RECEIPTS);
        let receipts = Receipts {
            ihs: intake.held[skip..].to_vec(),
        };
        let (count, signer) = (intake.held.len(), Arc::clone(&intake.cfg));
        let slot = (kind::AUTHORIZED_FILE, file_id::INTAKE_RECEIPTS);
        let version = ctx.gossip.acceptor().highest(slot) + 1;
        let name = SystemName::new(ctx.cfg.bundle.network(), slot.0, slot.1, version);
        let body = receipts.encode();
        let now = unix_ms();
        let sign = |payload| {
            Record::new(name, now / 1000, payload)
                .map(|mut r| {
                    r.sign(&signer.signer);
                    r
                })
                .and_then(|r| r.encode())
        };
        if receipts.fits_inline() {
            match sign(Payload::Body(body)) {
                Ok(bytes) => match ctx.gossip.submit(bytes.into(), now) {
                    Ok(v) => {
                        tracing::info!("intake: receipts v{version} ({count} uploads): {v}");
                        if let Some(i) = &mut self.intake {
                            i.published = count;
                        }
                    }
                    Err(e) => tracing::error!("intake: receipts v{version} refused: {e}"),
                },
                Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
            }
            return;
        }
        let dir = self.dir.join("receipts").join(format!("own-v{version}"));
        match sync::prepare_single_file(&dir, "receipts.bencode", &body) {
            Ok((ih, size)) => match sign(Payload::Torrent { ih, size }) {
                Ok(bytes) => {
                    if let Some(i) = &mut self.intake {
                        i.published = count;
                    }
                    ctx.submit_own(bytes, dir, format!("intake: receipts v{version}"));
                }
                Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
            },
            Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
        }
    }
}

/// (Intake) opens the container (the first of `files` there) into `<out>/<ih>/`, never
/// over an existing folder. One sealed to an intake key not given is kept whole as
/// `<ih>.sealed`; one that fails to open is kept as `refused/<ih>`, with the reason as
/// evidence.
fn open_upload(
    cfg: &IntakeConfig,
    ih: &InfoHash,
    files: &[PathBuf],
    limits: &container::Limits,
) -> Opened {
    let name = hex::encode(ih);
    let dest = cfg.out.join(&name);
    let done = |outcome: String, held, evidence| Opened {
        outcome,
        held,
        evidence,
        disk_short: false,
    };
    if dest.exists() {
        return done("opened before".into(), true, None);
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.out) {
        return done(format!("{}: {e}", cfg.out.display()), false, None);
    }
    let needed = limits.max_unpacked.saturating_add(DISK_RESERVE);
    match fs4::available_space(&cfg.out) {
        Ok(free) if free < needed => {
            return Opened {
                outcome: format!(
                    "not opened yet: {free} bytes free in {}, {needed} needed (its unpack \
                     cap and a reserve)",
                    cfg.out.display()
                ),
                held: false,
                evidence: None,
                disk_short: true,
            };
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("intake: free space of {}: {e}", cfg.out.display()),
    }
    // Once open, the copy may move or go (a receipt) without harm.
    let Some(file) = files.iter().find_map(|p| std::fs::File::open(p).ok()) else {
        return done("its copy is gone".into(), false, None);
    };
    let keys: Vec<&crate::keys::PrivateKey> = cfg.keys.iter().collect();
    let opened = container::open(std::io::BufReader::new(&file), &keys, &dest, limits);
    let keep = |to: PathBuf| {
        let _ = std::fs::create_dir_all(to.parent().unwrap_or(&cfg.out));
        if !to.exists() {
            let copied = (&file)
                .seek(SeekFrom::Start(0))
                .and_then(|_| crate::fsutil::open_new(&to, crate::fsutil::PRIVATE))
                .and_then(|mut out| std::io::copy(&mut &file, &mut out));
            if let Err(e) = copied {
                tracing::error!("intake: keeping {}: {e}", to.display());
            }
        }
    };
    match opened {
        Ok(o) => done(
            format!(
                "opened into {} ({} files, {} bytes)",
                dest.display(),
                o.files,
                o.bytes
            ),
            true,
            None,
        ),
        Err(ContainerError::UnknownKey(kid)) => {
            keep(cfg.out.join(format!("{name}.sealed")));
            done(
                format!(
                    "sealed to intake key {kid}, not given to this intake: kept as {name}.sealed"
                ),
                true,
                None,
            )
        }
        Err(ContainerError::Read(e)) => done(format!("cannot read it: {e}"), false, None),
        Err(e) => {
            keep(cfg.out.join("refused").join(&name));
            done(format!("refused: {e}"), true, Some(e.to_string()))
        }
    }
}
