//! The archive as a node shows it: one immutable snapshot, rebuilt by the node's driver
//! on every change and read by the HTTP pages and the control API alike.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::http_file::{FileEntry, Modified};
use swarmsite_protocol::documents::Document;
use swarmsite_protocol::documents::choice::{Local, Why};
use swarmsite_protocol::documents::search::SearchIndex;

impl DocumentStatus {
    /// The status of `document` as nothing more than its record says; the driver fills
    /// in this node's part.
    pub fn new(document: Document) -> Self {
        let m = &document.meta;
        DocumentStatus {
            id: document.id,
            version: document.version,
            time: document.time,
            title: m.title.clone(),
            description: m.description.clone(),
            name: m.name.clone(),
            media_type: m.media_type.clone(),
            size: m.size,
            ih: hex::encode(m.ih),
            state: Local::Absent,
            held: false,
            seeding: false,
            unusable: None,
            have_bytes: 0,
            uploaded: 0,
            ratio: 0.0,
            seen: 0,
            holders: Vec::new(),
            magnet: document.magnet(&[]),
            modified: Modified::at(document.time),
            file: None,
            document,
        }
    }

    /// Makes `path` (the complete file) servable.
    pub fn set_file(&mut self, path: PathBuf) {
        let mime: mime_guess::Mime = self
            .media_type
            .parse()
            .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM);
        // The content is fixed by the signed info hash: it is the strong validator.
        self.file = Some(Arc::new(FileEntry::new(path, self.size, &self.ih, &mime)));
    }
}

/// Another node known to hold a document: where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub ip: IpAddr,
    /// Its HTTP port, when it told us.
    pub http: Option<u16>,
    /// Its BitTorrent port.
    pub bt: Option<u16>,
}

impl Holder {
    pub fn bt_addr(&self) -> Option<SocketAddr> {
        self.bt.map(|p| SocketAddr::new(self.ip, p))
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.map(|p| SocketAddr::new(self.ip, p))
    }
}

/// One document and this node's part in keeping it.
#[derive(Clone, Debug, Serialize)]
pub struct DocumentStatus {
    pub id: u32,
    pub version: u32,
    /// Publish time, unix seconds.
    pub time: u64,
    pub title: String,
    pub description: String,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// Info hash, hex.
    pub ih: String,
    pub state: Local,
    /// Complete here (held or own).
    pub held: bool,
    /// Complete and in the BitTorrent session, so others can fetch it from here.
    pub seeding: bool,
    /// Why it will not be fetched (its torrent did not match the record).
    pub unusable: Option<String>,
    /// Bytes here (= size when held).
    pub have_bytes: u64,
    /// Bytes uploaded to others since this node started keeping it.
    pub uploaded: u64,
    /// `uploaded / size`.
    pub ratio: f64,
    /// Other nodes seen holding or fetching it.
    pub seen: u32,
    /// Other nodes holding it completely.
    pub holders: Vec<Holder>,
    /// A magnet link naming the holders this node knows.
    pub magnet: String,
    #[serde(skip)]
    pub document: Document,
    /// The complete file, when held, ready to serve.
    #[serde(skip)]
    pub(crate) file: Option<Arc<FileEntry>>,
    /// Publish time, as `Last-Modified`.
    #[serde(skip)]
    pub(crate) modified: Modified,
}

/// One eviction, kept for the status (never silent).
#[derive(Clone, Debug, Serialize)]
pub struct Eviction {
    /// Unix seconds.
    pub at: u64,
    pub id: u32,
    pub version: u32,
    pub name: String,
    pub size: u64,
    pub reason: String,
    #[serde(flatten)]
    pub why: Why,
}

/// The whole archive as this node sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DocumentsView {
    /// Bytes this node may keep (0: records only).
    pub quota: u64,
    /// Bytes held and being fetched.
    pub used: u64,
    /// Newest first.
    pub documents: Vec<DocumentStatus>,
    /// The last evictions, newest last.
    pub evicted: Vec<Eviction>,
    #[serde(skip)]
    pub index: Arc<SearchIndex>,
    /// This node's BitTorrent listen address (its IP may be unspecified).
    #[serde(skip)]
    pub bt_addr: Option<SocketAddr>,
}

impl DocumentsView {
    /// The document served at `/documents/<name>`: of several with one name (a
    /// publisher's slip), the highest id, so every node picks the same one.
    pub fn by_name(&self, name: &str) -> Option<&DocumentStatus> {
        self.documents
            .iter()
            .filter(|d| d.name == name)
            .max_by_key(|d| d.id)
    }

    pub fn by_id(&self, id: u32) -> Option<&DocumentStatus> {
        self.documents.iter().find(|d| d.id == id)
    }
}

/// Orders `holders` nearest to `client` first: the longest common address prefix,
/// then the smallest numeric distance (the rule of SPEC §10).
pub fn nearest(holders: &[Holder], client: IpAddr) -> Vec<Holder> {
    fn bits(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
            IpAddr::V6(a) => u128::from(a),
        }
    }
    let c = bits(client);
    let mut out: Vec<Holder> = holders
        .iter()
        .filter(|h| h.ip.is_ipv4() == client.is_ipv4())
        .cloned()
        .collect();
    out.sort_by_key(|h| {
        let b = bits(h.ip);
        (std::cmp::Reverse((b ^ c).leading_zeros()), b.abs_diff(c))
    });
    out.extend(
        holders
            .iter()
            .filter(|h| h.ip.is_ipv4() != client.is_ipv4())
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_holders_first() {
        let h = |ip: &str| Holder {
            ip: ip.parse().unwrap(),
            http: Some(80),
            bt: None,
        };
        let all = [
            h("10.0.0.1"),
            h("192.0.2.200"),
            h("192.0.2.9"),
            h("2001:db8::1"),
        ];
        let order: Vec<String> = nearest(&all, "192.0.2.10".parse().unwrap())
            .iter()
            .map(|h| h.ip.to_string())
            .collect();
        assert_eq!(
            order,
            ["192.0.2.9", "192.0.2.200", "10.0.0.1", "2001:db8::1"]
        );
    }
}
