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

mod fetch;

use fetch::PackageFetch;
mod installing;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::ctx::Ctx;
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

impl Updater {
    /// Shows the update state and tells the event stream.
    fn show(&self, ctx: &mut Ctx<'_>) {
        let status = self.status.clone();
        ctx.update_status(|s| s.update = status.clone());
        ctx.emit(NodeEvent::Update(Box::new(status)));
    }

    /// Acts on the manifest held from an earlier run (resumes or re-seeds its package).
    pub(crate) fn restore(&mut self, ctx: &mut Ctx<'_>) {
        let slot = (
            kind::AUTHORIZED_FILE,
            crate::name::file_id::SOFTWARE_MANIFEST,
        );
        if let Some((record, _)) = ctx.gossip.held(slot) {
            let record = record.clone();
            self.on_manifest(ctx, &record);
        } else {
            self.show(ctx);
        }
    }

    /// A newer manifest was accepted (its signature checked by the trust store).
    pub(crate) fn on_manifest(&mut self, ctx: &mut Ctx<'_>, record: &Record) {
        let name = record.name;
        let manifest = match Manifest::from_record(record) {
            Ok(m) => m,
            Err(e) => {
                ctx.evidence(
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
        let kind = kind_of(&self.cfg);
        let seen = self.newest_seen();
        let decision = plan(
            &manifest,
            &self.cfg.running,
            &self.cfg.platform,
            &kind,
            seen.as_ref(),
        );
        let (file, offer) = match decision {
            Plan::Downgrade { newest_seen } => {
                ctx.evidence(
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
        self.abandon_fetch(ctx, &manifest.ih);
        if seen.as_ref().is_none_or(|s| manifest.version > *s) {
            self.saved.newest_seen = Some(manifest.version.to_string());
            self.save();
        }
        let s = &mut self.status;
        s.newest = Some(manifest.version.to_string());
        s.manifest_version = Some(name.version());
        s.min_version = Some(manifest.min_version.to_string());
        s.notes = Some(manifest.notes.clone());
        s.error = None;
        s.progress = None;
        let (Some(file), Some(offer)) = (file, offer) else {
            self.current = None;
            if manifest.version > self.cfg.running {
                s.phase = UpdatePhase::Unavailable;
                s.error = Some(format!(
                    "swarmsite {} has no {kind} package for {}: install it by hand",
                    manifest.version, self.cfg.platform
                ));
                tracing::warn!("{}", s.error.as_deref().unwrap_or_default());
            } else {
                s.phase = UpdatePhase::UpToDate;
                tracing::info!(
                    "software release {} is not newer than the running {}; ignored",
                    manifest.version,
                    self.cfg.running
                );
            }
            self.show(ctx);
            return;
        };
        if offer != Offer::SeedOnly {
            tracing::info!(
                "swarmsite {} is out (this node runs {}); fetching its {} {kind} package {}. Release notes: {}",
                manifest.version,
                self.cfg.running,
                self.cfg.platform,
                file.path,
                manifest.notes.lines().next().unwrap_or("none")
            );
            s.phase = UpdatePhase::Downloading;
        }
        let local = ctx.local_payloads.get(&manifest.ih).cloned();
        self.current = Some(Current {
            name,
            manifest: manifest.clone(),
            file: file.clone(),
            offer,
            local: local.is_some(),
        });
        let cancel = ctx.shared.cancel.child_token();
        self.fetch = Some((name.version(), cancel.clone()));
        self.show(ctx);
        let commands = ctx.shared.commands.clone();
        let version = name.version();
        let task = PackageFetch {
            version,
            manifest,
            file,
            dir: self.dir.clone(),
            torrents: Arc::clone(&ctx.shared.torrents),
            peers: ctx.bt_peers.subscribe(),
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
    pub(crate) fn drop_manifest(&mut self, ctx: &mut Ctx<'_>, name: SystemName) {
        if self.current.as_ref().is_some_and(|c| c.name != name) {
            return;
        }
        self.abandon_fetch(ctx, &[0; 20]);
        if let Some(ready) = self.ready.take()
            && !self.installing
        {
            self.drop_package(ctx, ready.manifest.ih);
        }
        self.saved.newest_seen = None;
        self.save();
        self.status = UpdateStatus {
            running: self.status.running.clone(),
            platform: self.status.platform.clone(),
            installation: self.status.installation.clone(),
            package_kind: self.status.package_kind.clone(),
            auto_install: self.status.auto_install,
            ..UpdateStatus::default()
        };
        self.show(ctx);
    }

    /// Stops a fetch a newer manifest superseded, and drops what it fetched (unless it is
    /// the torrent of `keep`, the checked package, or this node's own publication).
    fn abandon_fetch(&mut self, ctx: &mut Ctx<'_>, keep: &[u8; 20]) {
        if let Some((_, cancel)) = self.fetch.take() {
            cancel.cancel();
        }
        let Some(old) = self.current.take() else {
            return;
        };
        let ih = old.manifest.ih;
        let checked = self.ready.as_ref().map(|r| r.manifest.ih);
        if ih != *keep && Some(ih) != checked && !old.local {
            self.drop_package(ctx, ih);
        }
    }

    pub(crate) fn on_report(&mut self, ctx: &mut Ctx<'_>, report: UpdateReport) {
        let fetching = |u: &Updater, v: u32| u.fetch.as_ref().is_some_and(|(f, _)| *f == v);
        match report {
            UpdateReport::Progress {
                version,
                progress: p,
                error,
            } => {
                if !fetching(self, version) {
                    return;
                }
                let s = &mut self.status;
                s.progress = Some(UpdateProgress {
                    have_bytes: p.have_bytes,
                    total_bytes: p.total_bytes,
                    peers: p.peers,
                    bytes_per_sec: p.down_bytes_per_sec,
                    fetched_bytes: p.fetched_bytes,
                });
                s.error = error;
                self.show(ctx);
            }
            UpdateReport::Fetched { version, path } => {
                if !fetching(self, version) {
                    return;
                }
                self.fetch = None;
                self.package_ready(ctx, version, path);
            }
            UpdateReport::Failed { version, error } => {
                if !fetching(self, version) {
                    return;
                }
                self.fetch = None;
                self.current = None;
                tracing::error!("software update: {error}");
                self.status.phase = UpdatePhase::Failed;
                self.status.error = Some(error);
                self.show_ready(ctx);
            }
            UpdateReport::Refused {
                version,
                code,
                detail,
            } => {
                if !fetching(self, version) {
                    return;
                }
                self.fetch = None;
                let Some(current) = self.current.take() else {
                    return;
                };
                ctx.evidence(None, Some(current.name), code, detail.clone());
                if !current.local {
                    self.drop_package(ctx, current.manifest.ih);
                }
                let s = &mut self.status;
                s.phase = UpdatePhase::Failed;
                s.error = Some(format!(
                    "swarmsite {} refused: {detail}",
                    current.manifest.version
                ));
                self.show_ready(ctx);
            }
            UpdateReport::Installed {
                version,
                result,
                reply,
            } => self.installed(ctx, version, result, reply),
        }
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
