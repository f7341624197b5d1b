//! One package download, off the core task: metainfo, file check against the manifest,
//! the one file, its SHA-256.

use super::*;

/// One package download: metainfo, file check against the manifest, the one file, its
/// SHA-256.
pub(super) struct PackageFetch {
    pub(super) version: u32,
    pub(super) manifest: Manifest,
    pub(super) file: PackageFile,
    pub(super) dir: PathBuf,
    pub(super) torrents: Arc<Torrents>,
    pub(super) peers: watch::Receiver<Vec<SocketAddr>>,
    pub(super) commands: mpsc::Sender<Command>,
}

impl PackageFetch {
    pub(super) fn refused(&self, code: &'static str, detail: String) -> UpdateReport {
        UpdateReport::Refused {
            version: self.version,
            code,
            detail,
        }
    }

    /// Runs until the package is checked or refused (`local`: this node's own
    /// publication folder, already seeded).
    pub(super) async fn run(self, local: Option<PathBuf>) -> UpdateReport {
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
    pub(super) async fn download(&self) -> Result<PathBuf, UpdateReport> {
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
            Ok(b) if crate::metainfo_file::info_hash_of(&b).is_ok_and(|h| h == ih) => b.into(),
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
        let index = crate::metainfo_file::file_paths(&bytes)
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
