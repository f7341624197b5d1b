//! Software updates on the node: learn the signed manifest, fetch this platform's
//! package alone (the other packages of the torrent stay where they are), check it
//! against the manifest's SHA-256, seed it, and install it: at once with
//! `--auto-update`, or when the user asks ([`NodeHandle::install_update`]). After an
//! install the node asks to be restarted ([`NodeHandle::restart_requested`]).
//!
//! ```text
//! <data>/networks/<TAG>/software/state.json     newest release seen, last install tried
//! <data>/networks/<TAG>/software/<ih>.torrent   the release torrent's metainfo
//! <data>/networks/<TAG>/software/<ih>/          its download (this platform's file)
//! ```

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::*;
use crate::node::NodeHandle;
use crate::torrents::Progress;
use crate::update::plan::{Offer, Plan, plan};
use crate::update::{
    Manifest, PackageFile, PackageStatus, UpdateConfig, UpdatePhase, UpdateProgress, UpdateStatus,
    install,
};

type InstallReply = oneshot::Sender<Result<UpdateStatus, String>>;

/// What the fetch and install tasks report to the core.
pub enum UpdateReport {
    Progress {
        version: u32,
        progress: Progress,
        error: Option<String>,
    },
    /// The package of manifest `version` is at `path` and matches its SHA-256.
    Fetched { version: u32, path: PathBuf },
    /// Something on this machine went wrong (not the release's fault).
    Failed { version: u32, error: String },
    /// The package of manifest `version` cannot be used: evidence `code` about it.
    Refused {
        version: u32,
        code: &'static str,
        detail: String,
    },
    Installed {
        version: u32,
        result: Result<(), String>,
        reply: Option<InstallReply>,
    },
}

/// Kept between runs.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    /// The highest release version accepted: a manifest below it is a downgrade.
    newest_seen: Option<String>,
    /// The manifest version whose install was last tried, so an install that failed
    /// (or installed something that still reports the old version) is not retried in a
    /// loop by `--auto-update`.
    attempted: Option<u32>,
}

/// The release a node acts on.
struct Current {
    name: SystemName,
    manifest: Manifest,
    file: PackageFile,
    offer: Offer,
    /// Its package came from this node's own publication.
    local: bool,
}

/// A checked package on disk.
struct Ready {
    version: u32,
    manifest: Manifest,
    file: PackageFile,
    offer: Offer,
    path: PathBuf,
}

/// The node's update state (a field of the core).
pub(super) struct Updater {
    cfg: UpdateConfig,
    dir: PathBuf,
    saved: Saved,
    current: Option<Current>,
    /// The fetch under way: manifest version and its cancel token.
    fetch: Option<(u32, CancellationToken)>,
    ready: Option<Ready>,
    installing: bool,
    status: UpdateStatus,
}

impl Updater {
    pub(super) fn new(cfg: UpdateConfig, store: &NodeStore) -> Self {
        let dir = store.root().join("software");
        let saved = std::fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let status = UpdateStatus {
            running: cfg.running.to_string(),
            platform: cfg.platform.to_string(),
            installation: cfg.installation.as_ref().map(|i| i.to_string()),
            package_kind: kind_of(&cfg).to_string(),
            auto_install: cfg.auto_install && cfg.installation.is_some(),
            ..UpdateStatus::default()
        };
        Updater {
            cfg,
            dir,
            saved,
            current: None,
            fetch: None,
            ready: None,
            installing: false,
            status,
        }
    }

    fn newest_seen(&self) -> Option<semver::Version> {
        self.saved
            .newest_seen
            .as_deref()
            .and_then(|v| crate::update::manifest::parse_version(v).ok())
    }

    fn save(&self) {
        let path = self.dir.join("state.json");
        let json = serde_json::to_vec_pretty(&self.saved).expect("json");
        if let Err(e) = std::fs::create_dir_all(&self.dir)
            .and_then(|_| crate::fsutil::write_atomic(&path, &json, crate::fsutil::PUBLIC))
        {
            tracing::error!("saving {}: {e}", path.display());
        }
    }
}

fn kind_of(cfg: &UpdateConfig) -> crate::update::PackageKind {
    cfg.program.package_kind(cfg.installation.as_ref())
}

impl Core {
    /// Shows the update state and tells the event stream.
    fn show_update(&self) {
        let status = self.update.status.clone();
        self.update_status(|s| s.update = status.clone());
        self.emit(NodeEvent::Update(Box::new(status)));
    }

    /// Acts on the manifest held from an earlier run (resumes or re-seeds its package).
    pub(super) fn restore_update(&mut self) {
        let slot = (
            kind::AUTHORIZED_FILE,
            crate::name::file_id::SOFTWARE_MANIFEST,
        );
        if let Some((record, _)) = self.gossip.held(slot) {
            let record = record.clone();
            self.on_manifest(&record);
        } else {
            self.show_update();
        }
    }

    /// A newer manifest was accepted (its signature checked by the trust store).
    pub(super) fn on_manifest(&mut self, record: &Record) {
        let name = record.name;
        let manifest = match Manifest::from_record(record) {
            Ok(m) => m,
            Err(e) => {
                self.record_evidence(
                    None,
                    Some(name),
                    "update-bad-manifest",
                    format!(
                        "signed software manifest v{} is unusable: {e}",
                        name.version()
                    ),
                );
                return;
            }
        };
        let u = &self.update;
        let kind = kind_of(&u.cfg);
        let seen = u.newest_seen();
        let decision = plan(
            &manifest,
            &u.cfg.running,
            &u.cfg.platform,
            &kind,
            seen.as_ref(),
        );
        let (file, offer) = match decision {
            Plan::Downgrade { newest_seen } => {
                self.record_evidence(
                    None,
                    Some(name),
                    "update-downgrade",
                    format!(
                        "software manifest v{} announces {}, below {newest_seen} accepted before; ignored",
                        name.version(),
                        manifest.version
                    ),
                );
                return;
            }
            Plan::Fetch { file, offer } => (Some(file.clone()), Some(offer)),
            Plan::Older | Plan::NoPackage => (None, None),
        };
        self.abandon_fetch(&manifest.ih);
        let u = &mut self.update;
        if seen.as_ref().is_none_or(|s| manifest.version > *s) {
            u.saved.newest_seen = Some(manifest.version.to_string());
            u.save();
        }
        let s = &mut u.status;
        s.newest = Some(manifest.version.to_string());
        s.manifest_version = Some(name.version());
        s.min_version = Some(manifest.min_version.to_string());
        s.notes = Some(manifest.notes.clone());
        s.error = None;
        s.progress = None;
        let (Some(file), Some(offer)) = (file, offer) else {
            u.current = None;
            if manifest.version > u.cfg.running {
                s.phase = UpdatePhase::Unavailable;
                s.error = Some(format!(
                    "swarmsite {} has no {kind} package for {}: install it by hand",
                    manifest.version, u.cfg.platform
                ));
                tracing::warn!("{}", s.error.as_deref().unwrap_or_default());
            } else {
                s.phase = UpdatePhase::UpToDate;
                tracing::info!(
                    "software release {} is not newer than the running {}; ignored",
                    manifest.version,
                    u.cfg.running
                );
            }
            self.show_update();
            return;
        };
        if offer != Offer::SeedOnly {
            tracing::info!(
                "swarmsite {} is out (this node runs {}); fetching its {} {kind} package {}. Release notes: {}",
                manifest.version,
                u.cfg.running,
                u.cfg.platform,
                file.path,
                manifest.notes.lines().next().unwrap_or("none")
            );
            s.phase = UpdatePhase::Downloading;
        }
        let local = self.local_payloads.get(&manifest.ih).cloned();
        self.update.current = Some(Current {
            name,
            manifest: manifest.clone(),
            file: file.clone(),
            offer,
            local: local.is_some(),
        });
        let cancel = self.shared.cancel.child_token();
        self.update.fetch = Some((name.version(), cancel.clone()));
        self.show_update();
        let commands = self.shared.commands.clone();
        let version = name.version();
        let task = PackageFetch {
            version,
            manifest,
            file,
            dir: self.update.dir.clone(),
            torrents: Arc::clone(&self.shared.torrents),
            peers: self.bt_peers.subscribe(),
            commands: commands.clone(),
        };
        tokio::spawn(async move {
            let report = tokio::select! {
                r = task.run(local) => r,
                _ = cancel.cancelled() => return,
            };
            let _ = commands.send(Command::Update(report)).await;
        });
    }

    /// The manifest `name` was dropped (a rotation does not vouch for it): no offer, no
    /// install, and the version it announced no longer counts as seen (else it would
    /// make every honest manifest after it look like a downgrade).
    pub(super) fn drop_manifest(&mut self, name: SystemName) {
        if self.update.current.as_ref().is_some_and(|c| c.name != name) {
            return;
        }
        self.abandon_fetch(&[0; 20]);
        if let Some(ready) = self.update.ready.take()
            && !self.update.installing
        {
            self.drop_package(ready.manifest.ih);
        }
        let u = &mut self.update;
        u.saved.newest_seen = None;
        u.save();
        u.status = UpdateStatus {
            running: u.status.running.clone(),
            platform: u.status.platform.clone(),
            installation: u.status.installation.clone(),
            package_kind: u.status.package_kind.clone(),
            auto_install: u.status.auto_install,
            ..UpdateStatus::default()
        };
        self.show_update();
    }

    /// Stops a fetch a newer manifest superseded, and drops what it fetched (unless it is
    /// the torrent of `keep`, the checked package, or this node's own publication).
    fn abandon_fetch(&mut self, keep: &[u8; 20]) {
        if let Some((_, cancel)) = self.update.fetch.take() {
            cancel.cancel();
        }
        let Some(old) = self.update.current.take() else {
            return;
        };
        let ih = old.manifest.ih;
        let checked = self.update.ready.as_ref().map(|r| r.manifest.ih);
        if ih != *keep && Some(ih) != checked && !old.local {
            self.drop_package(ih);
        }
    }

    pub(super) fn on_update(&mut self, report: UpdateReport) {
        let fetching = |u: &Updater, v: u32| u.fetch.as_ref().is_some_and(|(f, _)| *f == v);
        match report {
            UpdateReport::Progress {
                version,
                progress: p,
                error,
            } => {
                if !fetching(&self.update, version) {
                    return;
                }
                let s = &mut self.update.status;
                s.progress = Some(UpdateProgress {
                    have_bytes: p.have_bytes,
                    total_bytes: p.total_bytes,
                    peers: p.peers,
                    bytes_per_sec: p.down_bytes_per_sec,
                    fetched_bytes: p.fetched_bytes,
                });
                s.error = error;
                self.show_update();
            }
            UpdateReport::Fetched { version, path } => {
                if !fetching(&self.update, version) {
                    return;
                }
                self.update.fetch = None;
                self.package_ready(version, path);
            }
            UpdateReport::Failed { version, error } => {
                if !fetching(&self.update, version) {
                    return;
                }
                self.update.fetch = None;
                self.update.current = None;
                tracing::error!("software update: {error}");
                self.update.status.phase = UpdatePhase::Failed;
                self.update.status.error = Some(error);
                self.show_ready();
            }
            UpdateReport::Refused {
                version,
                code,
                detail,
            } => {
                if !fetching(&self.update, version) {
                    return;
                }
                self.update.fetch = None;
                let Some(current) = self.update.current.take() else {
                    return;
                };
                self.record_evidence(None, Some(current.name), code, detail.clone());
                if !current.local {
                    self.drop_package(current.manifest.ih);
                }
                let s = &mut self.update.status;
                s.phase = UpdatePhase::Failed;
                s.error = Some(format!(
                    "swarmsite {} refused: {detail}",
                    current.manifest.version
                ));
                self.show_ready();
            }
            UpdateReport::Installed {
                version,
                result,
                reply,
            } => self.installed(version, result, reply),
        }
    }

    fn package_ready(&mut self, version: u32, path: PathBuf) {
        let Some(current) = self.update.current.take() else {
            return;
        };
        // The superseded release's package is no longer needed.
        if let Some(old) = self.update.ready.take()
            && old.manifest.ih != current.manifest.ih
            && !self.local_payloads.contains_key(&old.manifest.ih)
        {
            self.drop_package(old.manifest.ih);
        }
        let ready = Ready {
            version,
            manifest: current.manifest,
            file: current.file,
            offer: current.offer,
            path,
        };
        let v = &ready.manifest.version;
        match &ready.offer {
            Offer::SeedOnly => {
                tracing::info!("seeding the swarmsite {v} package (the running version)");
                self.update.status.phase = UpdatePhase::UpToDate;
            }
            Offer::Install if self.update.cfg.installation.is_some() => {
                tracing::info!(
                    "swarmsite {v} is downloaded and checked{}",
                    if self.update.cfg.auto_install {
                        ""
                    } else {
                        "; install it with `swarmsite update --install` (or run with --auto-update)"
                    }
                );
                self.update.status.phase = UpdatePhase::Ready;
            }
            Offer::Install => {
                tracing::info!("swarmsite {v} is downloaded and checked (seeded only here)");
                self.update.status.phase = UpdatePhase::Ready;
            }
            Offer::TooOld { min } => {
                let why = format!(
                    "swarmsite {v} updates {min} and later, not {}: install it by hand from {}",
                    self.update.cfg.running,
                    ready.path.display()
                );
                tracing::warn!("{why}");
                self.update.status.phase = UpdatePhase::Ready;
                self.update.status.error = Some(why);
            }
        }
        self.update.ready = Some(ready);
        self.show_ready();
        self.auto_install_when_confirmed();
    }

    /// With `--auto-update`: installs the checked package once, and only after the
    /// software role's newest key set is confirmed current (SPEC §3): a package a
    /// retired key vouched for must have a chance to be dropped first.
    pub(super) fn auto_install_when_confirmed(&mut self) {
        let u = &self.update;
        let due = u.cfg.auto_install
            && u.status.installable
            && u.ready
                .as_ref()
                .is_some_and(|r| u.saved.attempted != Some(r.version));
        if due && self.gossip.key_set_confirmed(crate::name::Role::SOFTWARE) {
            self.install_update(None);
        }
    }

    /// Updates the status's package and `installable` from the checked package.
    fn show_ready(&mut self) {
        let u = &mut self.update;
        u.status.package = u.ready.as_ref().map(|r| PackageStatus {
            version: r.manifest.version.to_string(),
            path: r.path.display().to_string(),
            kind: r.file.kind.to_string(),
            size: r.file.size,
            sha256: hex::encode(r.file.sha256),
        });
        u.status.installable = !u.installing
            && u.cfg.installation.is_some()
            && u.ready.as_ref().is_some_and(|r| r.offer == Offer::Install);
        self.show_update();
    }

    /// Stops seeding a release's torrent and removes its files.
    fn drop_package(&self, ih: [u8; 20]) {
        let torrents = Arc::clone(&self.shared.torrents);
        let dir = self.update.dir.clone();
        tokio::spawn(async move {
            let _ = torrents.remove(&ih).await;
            let name = hex::encode(ih);
            let _ = std::fs::remove_dir_all(dir.join(&name));
            let _ = std::fs::remove_file(dir.join(format!("{name}.torrent")));
        });
    }

    /// Installs the checked package (`reply`: the caller waiting for the outcome).
    pub(super) fn install_update(&mut self, reply: Option<InstallReply>) {
        let refuse = |reply: Option<InstallReply>, why: String| {
            if let Some(r) = reply {
                let _ = r.send(Err(why));
            }
        };
        let u = &mut self.update;
        if u.installing {
            return refuse(reply, "an install is already under way".into());
        }
        let Some(installation) = u.cfg.installation.clone() else {
            return refuse(
                reply,
                "this node does not know which binary to replace (no installation given)".into(),
            );
        };
        if !self.gossip.key_set_confirmed(crate::name::Role::SOFTWARE) {
            return refuse(
                reply,
                "the software role's newest key set is not confirmed yet (waiting for peers); try again in a few seconds".into(),
            );
        }
        let u = &mut self.update;
        let Some(ready) = u.ready.as_ref() else {
            return refuse(
                reply,
                format!(
                    "no newer release is downloaded and checked (running {})",
                    u.cfg.running
                ),
            );
        };
        if ready.offer != Offer::Install {
            let why = match &ready.offer {
                Offer::TooOld { min } => format!(
                    "swarmsite {} cannot update {} in place (it needs {min} or later)",
                    ready.manifest.version, u.cfg.running
                ),
                _ => format!("swarmsite {} is running already", ready.manifest.version),
            };
            return refuse(reply, why);
        }
        let (version, kind, path, semver, sha256) = (
            ready.version,
            ready.file.kind.clone(),
            ready.path.clone(),
            ready.manifest.version.clone(),
            ready.file.sha256,
        );
        tracing::info!("installing swarmsite {semver} over the {installation}");
        u.installing = true;
        u.status.phase = UpdatePhase::Installing;
        u.status.error = None;
        self.show_ready();
        let commands = self.shared.commands.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || {
                // Checked again right before it is installed: the file sat on disk
                // since it was fetched, and anything that could write there had time.
                match crate::fsutil::sha256_file(&path) {
                    Ok(d) if d == sha256 => {}
                    Ok(_) => {
                        return Err(format!(
                            "{} changed on disk since it was checked (SHA-256 differs from \
                             the signed manifest); not installed",
                            path.display()
                        ));
                    }
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                }
                install::install(&installation, &kind, &path, &semver).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("install task: {e}")));
            let report = UpdateReport::Installed {
                version,
                result,
                reply,
            };
            let _ = commands.send(Command::Update(report)).await;
        });
    }

    fn installed(&mut self, version: u32, result: Result<(), String>, reply: Option<InstallReply>) {
        let u = &mut self.update;
        u.installing = false;
        u.saved.attempted = Some(version);
        u.save();
        let semver = u
            .ready
            .as_ref()
            .map_or_else(String::new, |r| r.manifest.version.to_string());
        let outcome = match result {
            Ok(()) => {
                tracing::info!(
                    "installed swarmsite {semver}; restarting into it after a clean shutdown"
                );
                u.status.phase = UpdatePhase::Restarting;
                Ok(())
            }
            Err(e) => {
                let why = format!(
                    "installing swarmsite {semver} failed; {} keeps running: {e}",
                    u.cfg.running
                );
                tracing::error!("{why}");
                u.status.phase = UpdatePhase::Failed;
                u.status.error = Some(why.clone());
                Err(why)
            }
        };
        self.show_ready();
        let restart = outcome.is_ok();
        if let Some(r) = reply {
            let _ = r.send(outcome.map(|_| self.update.status.clone()));
        }
        // After the answer, so the caller hears of the install before the shutdown.
        if restart {
            self.shared.restart.send_replace(true);
        }
    }
}

/// One package download: metainfo, file check against the manifest, the one file, its
/// SHA-256.
struct PackageFetch {
    version: u32,
    manifest: Manifest,
    file: PackageFile,
    dir: PathBuf,
    torrents: Arc<Torrents>,
    peers: watch::Receiver<Vec<SocketAddr>>,
    commands: mpsc::Sender<Command>,
}

impl PackageFetch {
    fn refused(&self, code: &'static str, detail: String) -> UpdateReport {
        UpdateReport::Refused {
            version: self.version,
            code,
            detail,
        }
    }

    /// Runs until the package is checked or refused (`local`: this node's own
    /// publication folder, already seeded).
    async fn run(self, local: Option<PathBuf>) -> UpdateReport {
        let path = match &local {
            Some(dir) => dir
                .join(crate::publisher::PAYLOAD_DIR)
                .join(&self.file.path),
            None => match self.download().await {
                Ok(p) => p,
                Err(report) => return report,
            },
        };
        let check = path.clone();
        let digest = tokio::task::spawn_blocking(move || crate::fsutil::sha256_file(&check)).await;
        match digest {
            Ok(Ok(d)) if d == self.file.sha256 => UpdateReport::Fetched {
                version: self.version,
                path,
            },
            Ok(Ok(d)) => self.refused(
                "update-bad-sha256",
                format!(
                    "package {} has SHA-256 {}, the signed manifest says {}",
                    self.file.path,
                    hex::encode(d),
                    hex::encode(self.file.sha256)
                ),
            ),
            Ok(Err(e)) => UpdateReport::Failed {
                version: self.version,
                error: format!("reading the package {}: {e}", path.display()),
            },
            Err(e) => UpdateReport::Failed {
                version: self.version,
                error: format!("hash task: {e}"),
            },
        }
    }

    /// Fetches the metainfo (or reads it back), checks the torrent's files against the
    /// manifest, and downloads this platform's file alone.
    async fn download(&self) -> Result<PathBuf, UpdateReport> {
        let ih = self.manifest.ih;
        let name = hex::encode(ih);
        let folder = self.dir.join(&name);
        let saved = self.dir.join(format!("{name}.torrent"));
        std::fs::create_dir_all(&folder).map_err(|e| UpdateReport::Failed {
            version: self.version,
            error: format!("{}: {e}", folder.display()),
        })?;
        let progress = |p: Progress, error: Option<String>| {
            let _ = self
                .commands
                .try_send(Command::Update(UpdateReport::Progress {
                    version: self.version,
                    progress: p,
                    error,
                }));
        };
        let bytes = match std::fs::read(&saved) {
            Ok(b) if crate::torrent::info_hash_of(&b).is_ok_and(|h| h == ih) => b.into(),
            _ => {
                let mut peers = self.peers.clone();
                let meta = loop {
                    let known = peers.borrow_and_update().clone();
                    let got = tokio::time::timeout(
                        Duration::from_secs(5),
                        self.torrents.fetch_metainfo(&ih, known),
                    )
                    .await;
                    match got {
                        Ok(Ok(m)) => break m,
                        Ok(Err(e)) => progress(Progress::default(), Some(e.to_string())),
                        Err(_) => progress(Progress::default(), Some("no peer has it yet".into())),
                    }
                    let _ = self.torrents.forget(&ih).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), peers.changed()).await;
                };
                let mut wanted: Vec<(PathBuf, u64)> = self
                    .manifest
                    .files
                    .iter()
                    .map(|f| (PathBuf::from(&f.path), f.size))
                    .collect();
                let mut got: Vec<(PathBuf, u64)> =
                    meta.files.iter().map(|f| (f.path.clone(), f.len)).collect();
                wanted.sort();
                got.sort();
                if wanted != got {
                    return Err(self.refused(
                        "update-bad-manifest",
                        format!(
                            "the release torrent holds {got:?}, the signed manifest lists {wanted:?}"
                        ),
                    ));
                }
                if let Err(e) =
                    crate::fsutil::write_atomic(&saved, &meta.bytes, crate::fsutil::PUBLIC)
                {
                    tracing::warn!("keeping {}: {e}", saved.display());
                }
                meta.bytes
            }
        };
        let index = crate::torrent::file_paths(&bytes)
            .ok()
            .and_then(|paths| paths.iter().position(|p| *p == [self.file.path.clone()]));
        let Some(index) = index else {
            return Err(self.refused(
                "update-bad-manifest",
                format!("the release torrent has no file {}", self.file.path),
            ));
        };
        let spec = sync::FetchSpec {
            ih: &ih,
            torrent: Some(bytes),
            dir: &folder,
            current_dir: None,
            only_files: Some(vec![index]),
        };
        sync::fetch(&self.torrents, spec, self.peers.clone(), progress).await;
        Ok(folder.join(&self.file.path))
    }
}

impl NodeHandle {
    /// Where the node is with software updates (also `status().update`).
    pub fn update_status(&self) -> UpdateStatus {
        self.status.read().expect("status lock").update.clone()
    }

    /// Installs the downloaded and checked newer release now. On success the node asks
    /// to be restarted ([`NodeHandle::restart_requested`]); on failure the running
    /// version stays and the error says why.
    pub async fn install_update(&self) -> Result<UpdateStatus, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::InstallUpdate { reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())?
    }

    /// Resolves once an installed update asks for a restart: the headless node shuts
    /// down and runs the new binary with the same arguments; the tray app restarts.
    pub async fn restart_requested(&self) {
        let mut rx = self.restart.clone();
        let _ = rx.wait_for(|wanted| *wanted).await;
    }
}
