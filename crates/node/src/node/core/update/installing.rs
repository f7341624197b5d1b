//! A checked package ready: shown, installed on the user's word or (auto-install) once
//! the manifest is confirmed, and what the installation did.

use super::*;

impl Updater {
    pub(super) fn package_ready(&mut self, ctx: &mut Ctx<'_>, version: u32, path: PathBuf) {
        let Some(current) = self.current.take() else {
            return;
        };
        // The superseded release's package is no longer needed.
        if let Some(old) = self.ready.take()
            && old.manifest.ih != current.manifest.ih
            && !ctx.local_payloads.contains_key(&old.manifest.ih)
        {
            self.drop_package(ctx, old.manifest.ih);
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
                self.status.phase = UpdatePhase::UpToDate;
            }
            Offer::Install if self.cfg.installation.is_some() => {
                tracing::info!(
                    "swarmsite {v} is downloaded and checked{}",
                    if self.cfg.auto_install {
                        ""
                    } else {
                        "; install it with `swarmsite update --install` (or run with --auto-update)"
                    }
                );
                self.status.phase = UpdatePhase::Ready;
            }
            Offer::Install => {
                tracing::info!("swarmsite {v} is downloaded and checked (seeded only here)");
                self.status.phase = UpdatePhase::Ready;
            }
            Offer::TooOld { min } => {
                let why = format!(
                    "swarmsite {v} updates {min} and later, not {}: install it by hand from {}",
                    self.cfg.running,
                    ready.path.display()
                );
                tracing::warn!("{why}");
                self.status.phase = UpdatePhase::Ready;
                self.status.error = Some(why);
            }
        }
        self.ready = Some(ready);
        self.show_ready(ctx);
        self.auto_install_when_confirmed(ctx);
    }

    /// With `--auto-update`: installs the checked package once, and only after the
    /// software role's newest key set is confirmed current (SPEC §3): a package a
    /// retired key vouched for must have a chance to be dropped first.
    pub(crate) fn auto_install_when_confirmed(&mut self, ctx: &mut Ctx<'_>) {
        let due = self.cfg.auto_install
            && self.status.installable
            && self
                .ready
                .as_ref()
                .is_some_and(|r| self.saved.attempted != Some(r.version));
        if due && ctx.gossip.key_set_confirmed(crate::name::Role::SOFTWARE) {
            self.install(ctx, None);
        }
    }

    /// Updates the status's package and `installable` from the checked package.
    pub(super) fn show_ready(&mut self, ctx: &mut Ctx<'_>) {
        self.status.package = self.ready.as_ref().map(|r| PackageStatus {
            version: r.manifest.version.to_string(),
            path: r.path.display().to_string(),
            kind: r.file.kind.to_string(),
            size: r.file.size,
            sha256: hex::encode(r.file.sha256),
        });
        self.status.installable = !self.installing
            && self.cfg.installation.is_some()
            && self
                .ready
                .as_ref()
                .is_some_and(|r| r.offer == Offer::Install);
        self.show(ctx);
    }

    /// Stops seeding a release's torrent and removes its files.
    pub(super) fn drop_package(&self, ctx: &mut Ctx<'_>, ih: [u8; 20]) {
        let torrents = Arc::clone(&ctx.shared.torrents);
        let dir = self.dir.clone();
        tokio::spawn(async move {
            let _ = torrents.remove(&ih).await;
            let name = hex::encode(ih);
            let _ = std::fs::remove_dir_all(dir.join(&name));
            let _ = std::fs::remove_file(dir.join(format!("{name}.torrent")));
        });
    }

    /// Installs the checked package (`reply`: the caller waiting for the outcome).
    pub(crate) fn install(&mut self, ctx: &mut Ctx<'_>, reply: Option<InstallReply>) {
        let refuse = |reply: Option<InstallReply>, why: String| {
            if let Some(r) = reply {
                let _ = r.send(Err(why));
            }
        };
        if self.installing {
            return refuse(reply, "an install is already under way".into());
        }
        let Some(installation) = self.cfg.installation.clone() else {
            return refuse(
                reply,
                "this node does not know which binary to replace (no installation given)".into(),
            );
        };
        if !ctx.gossip.key_set_confirmed(crate::name::Role::SOFTWARE) {
            return refuse(
                reply,
                "the software role's newest key set is not confirmed yet (waiting for peers); try again in a few seconds".into(),
            );
        }
        let Some(ready) = self.ready.as_ref() else {
            return refuse(
                reply,
                format!(
                    "no newer release is downloaded and checked (running {})",
                    self.cfg.running
                ),
            );
        };
        if ready.offer != Offer::Install {
            let why = match &ready.offer {
                Offer::TooOld { min } => format!(
                    "swarmsite {} cannot update {} in place (it needs {min} or later)",
                    ready.manifest.version, self.cfg.running
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
        self.installing = true;
        self.status.phase = UpdatePhase::Installing;
        self.status.error = None;
        self.show_ready(ctx);
        let commands = ctx.shared.commands.clone();
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

    pub(super) fn installed(
        &mut self,
        ctx: &mut Ctx<'_>,
        version: u32,
        result: Result<(), String>,
        reply: Option<InstallReply>,
    ) {
        self.installing = false;
        self.saved.attempted = Some(version);
        self.save();
        let semver = self
            .ready
            .as_ref()
            .map_or_else(String::new, |r| r.manifest.version.to_string());
        let outcome = match result {
            Ok(()) => {
                tracing::info!(
                    "installed swarmsite {semver}; restarting into it after a clean shutdown"
                );
                self.status.phase = UpdatePhase::Restarting;
                Ok(())
            }
            Err(e) => {
                let why = format!(
                    "installing swarmsite {semver} failed; {} keeps running: {e}",
                    self.cfg.running
                );
                tracing::error!("{why}");
                self.status.phase = UpdatePhase::Failed;
                self.status.error = Some(why.clone());
                Err(why)
            }
        };
        self.show_ready(ctx);
        let restart = outcome.is_ok();
        if let Some(r) = reply {
            let _ = r.send(outcome.map(|_| self.status.clone()));
        }
        // After the answer, so the caller hears of the install before the shutdown.
        if restart {
            ctx.shared.restart.send_replace(true);
        }
    }
}
