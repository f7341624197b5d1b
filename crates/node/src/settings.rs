//! What a person sets from the dashboard's Settings page, kept in `<data>/settings.json`:
//! the network and site to serve, ports, bandwidth caps, notifications. A node reads it
//! when it starts (the tray app and `swarmsite node`, whose flags win), so a change
//! applies at the next start; the control API reads and writes it (`/api/settings`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datadir::{DataDir, DataDirError};
use crate::fsutil;
use crate::name::NetworkTag;
use crate::node::NodeConfig;

pub const SETTINGS_FILE: &str = "settings.json";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    DataDir(#[from] DataDirError),
}

/// Unset fields keep the built-in defaults (`NodeConfig::new`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Network tag to join (default `WIKILEAKS`).
    pub network: Option<String>,
    /// Bundle site id to serve (default: the bundle's first site).
    pub site: Option<u32>,
    /// Wire protocol address (TCP); the rendezvous DHT takes the same port on UDP.
    pub wire: Option<SocketAddr>,
    /// BitTorrent address.
    pub bt: Option<SocketAddr>,
    /// HTTP addresses, tried in order (empty: port 80, then 18880).
    pub http: Vec<SocketAddr>,
    /// Control API address (loopback; port 0 picks a free one).
    pub control: Option<SocketAddr>,
    /// BitTorrent caps, bytes per second.
    pub download_limit: Option<u32>,
    pub upload_limit: Option<u32>,
    /// Desktop notifications from the tray app (default on).
    pub notifications: Option<bool>,
    /// The public DHTs (default on); off: peers come only from `peers` (a private
    /// network, or a test on loopback).
    pub dht: Option<bool>,
    /// Wire peers to keep connections to.
    pub peers: Vec<SocketAddr>,
}

impl Settings {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(SETTINGS_FILE)
    }

    /// The saved settings, or the defaults when none were saved.
    pub fn load(data_dir: &Path) -> Result<Self, SettingsError> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let s: Settings = serde_json::from_slice(&bytes)
                    .map_err(|source| SettingsError::Parse { path, source })?;
                s.validate()?;
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(source) => Err(SettingsError::Io { path, source }),
        }
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), SettingsError> {
        self.validate()?;
        let path = Self::path(data_dir);
        let io = |source| SettingsError::Io {
            path: path.clone(),
            source,
        };
        fsutil::create_dir(data_dir, 0o700).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).expect("settings serialise");
        fsutil::write_atomic(&path, &json, fsutil::PRIVATE).map_err(io)
    }

    /// Refuses what could never start a node, so a bad save is caught at once, not at
    /// the next start.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(tag) = &self.network {
            tag.parse::<NetworkTag>()
                .map_err(|e| SettingsError::Invalid(format!("network {tag:?}: {e}")))?;
        }
        if let Some(c) = self.control
            && !c.ip().is_loopback()
        {
            return Err(SettingsError::Invalid(format!(
                "the control API listens on loopback only, not {c}"
            )));
        }
        if self.http.len() > 8 {
            return Err(SettingsError::Invalid("at most 8 HTTP addresses".into()));
        }
        Ok(())
    }

    pub fn network_tag(&self) -> NetworkTag {
        self.network
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| "WIKILEAKS".parse().expect("default tag"))
    }

    pub fn notifications(&self) -> bool {
        self.notifications.unwrap_or(true)
    }

    /// The control API address these settings ask for.
    pub fn control_addr(&self) -> SocketAddr {
        self.control
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr"))
    }

    /// A node configuration for the public network: the defaults, then these settings.
    pub fn node_config(&self, dd: &DataDir) -> Result<NodeConfig, SettingsError> {
        self.node_config_for(dd.root(), dd.bundle(self.network_tag())?)
    }

    /// The same for a given bundle (`swarmsite node --bundle`).
    pub fn node_config_for(
        &self,
        data_dir: &Path,
        bundle: crate::bundle::Bundle,
    ) -> Result<NodeConfig, SettingsError> {
        let mut cfg = NodeConfig::new(data_dir.to_path_buf(), bundle.clone());
        if let Some(site) = self.site {
            if bundle.site(site).is_none() {
                return Err(SettingsError::Invalid(format!(
                    "the bundle of {} has no site {site}",
                    bundle.network()
                )));
            }
            cfg.site = site;
        }
        if let Some(w) = self.wire {
            cfg.wire_listen = w;
            cfg.rendezvous = Some(w);
        }
        if let Some(b) = self.bt {
            cfg.bt_listen = b;
        }
        if !self.http.is_empty() {
            cfg.http = self.http.clone();
        }
        cfg.download_limit = self.download_limit;
        cfg.upload_limit = self.upload_limit;
        cfg.peers = self.peers.clone();
        if self.dht == Some(false) {
            cfg.content_dht = None;
            cfg.rendezvous = None;
        } else {
            cfg.content_dht = Some(bundle.bootstrap().to_vec());
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_settings_load_back_and_defaults_stand_in_for_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(tmp.path()).unwrap(), Settings::default());
        let s = Settings {
            wire: Some("0.0.0.0:7000".parse().unwrap()),
            http: vec!["0.0.0.0:8080".parse().unwrap()],
            notifications: Some(false),
            ..Settings::default()
        };
        s.save(tmp.path()).unwrap();
        assert_eq!(Settings::load(tmp.path()).unwrap(), s);
        let cfg = s
            .node_config(&DataDir::resolve(Some(tmp.path())).unwrap())
            .unwrap();
        assert_eq!(cfg.wire_listen.port(), 7000);
        assert_eq!(cfg.rendezvous.unwrap().port(), 7000);
        assert_eq!(cfg.http.len(), 1);
        assert_eq!(cfg.bt_listen.port(), 6881);
    }

    #[test]
    fn what_could_never_start_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = Settings {
            control: Some("0.0.0.0:9000".parse().unwrap()),
            ..Settings::default()
        };
        assert!(matches!(
            bad.save(tmp.path()),
            Err(SettingsError::Invalid(_))
        ));
        let bad = Settings {
            network: Some("no spaces allowed here".into()),
            ..Settings::default()
        };
        assert!(bad.save(tmp.path()).is_err());
        std::fs::write(Settings::path(tmp.path()), b"{\"colour\": 1}").unwrap();
        assert!(matches!(
            Settings::load(tmp.path()),
            Err(SettingsError::Parse { .. })
        ));
    }
}
