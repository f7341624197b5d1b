//! What a node reports: a snapshot for `swarmsite status` and the control API, and
//! events for the live stream.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub network: String,
    pub site_id: u32,
    pub site_name: String,
    /// Version of the release being served.
    pub served_version: Option<u32>,
    /// Its publish time (unix seconds).
    pub served_time: Option<u64>,
    pub sync: Option<SyncStatus>,
    /// The last completed download, as it ended.
    pub last_sync: Option<SyncStatus>,
    pub peers: Vec<PeerStatus>,
    pub http: Vec<HttpPortStatus>,
    pub wire_addr: String,
    /// The rendezvous DHT node: UDP port and node id (hex), when it runs.
    pub dht: Option<(u16, String)>,
    pub bt_addr: Option<String>,
    pub bytes_served: u64,
    pub requests: u64,
    /// Newest accepted record per slot: (name hex, what, version).
    pub records: Vec<RecordStatus>,
    pub evidence: u64,
    /// The last signed notice.
    pub notice: Option<String>,
    /// Every signed notice held (the newest of each channel), newest first.
    pub notices: Vec<NoticeStatus>,
    /// The archive of published documents, in short (`/api/documents` has it all).
    pub documents: DocumentsSummary,
    /// The blacklist in force.
    pub blacklist: Option<BlacklistStatus>,
    /// UPnP port mapping and mDNS announcement.
    pub reach: crate::reach::ReachStatus,
    /// Software updates: running and newest versions, download, release notes.
    pub update: crate::update::UpdateStatus,
    /// Sharing paused by the user (tray menu, control API).
    pub paused: bool,
    /// The tray's word for all of the above (filled in by `NodeHandle::status`).
    pub health: Health,
    /// Anonymous uploads held (counts only: which ones this node made is never here).
    pub uploads: UploadsStatus,
}

/// The upload queue in numbers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UploadsStatus {
    pub entries: usize,
    /// Waiting for a stem hop or being handed on.
    pub in_stem: usize,
    /// Held and seeded until receipted.
    pub cached: usize,
    pub fetching: usize,
    pub receipted: usize,
    /// Bytes held (and promised to transfers under way), and the quota.
    pub used_bytes: u64,
    pub quota_bytes: u64,
    /// Containers refused (no room, over the cap), and the last reason.
    pub refused: u64,
    pub last_refusal: Option<String>,
    /// The newest intake receipt applied.
    pub receipts_version: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BlacklistStatus {
    pub version: u32,
    pub entries: Vec<BlacklistEntryStatus>,
    /// Connections refused or closed because of it since the node started.
    pub refused: u64,
    /// True once librqbit runs with it too (its session restarted with the list).
    pub in_bittorrent: bool,
    /// The connections it closed or refused, newest last (the last
    /// [`BlacklistStatus::CLOSED_KEPT`]).
    pub closed: Vec<String>,
}

impl BlacklistStatus {
    pub const CLOSED_KEPT: usize = 32;

    /// Counts a connection closed or refused because of the list.
    pub fn note_closed(&mut self, addr: std::net::SocketAddr) {
        self.refused += 1;
        if self.closed.len() >= Self::CLOSED_KEPT {
            self.closed.remove(0);
        }
        self.closed.push(addr.to_string());
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BlacklistEntryStatus {
    pub addr: String,
    pub reason: String,
    pub since: u64,
}

/// A signed notice, as nodes show it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NoticeStatus {
    /// Its channel (the record's id, 2 and up).
    pub id: u32,
    pub version: u32,
    /// Publish time, unix seconds.
    pub time: u64,
    pub severity: String,
    pub text: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DocumentsSummary {
    pub known: usize,
    pub held: usize,
    pub fetching: usize,
    pub quota: u64,
    pub used: u64,
    pub evicted: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordStatus {
    pub name: String,
    pub class: String,
    pub version: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SyncStatus {
    pub version: u32,
    pub have_bytes: u64,
    pub total_bytes: u64,
    pub peers: u32,
    pub bytes_per_sec: u64,
    /// Bytes received from peers: less than the release's size when files were reused.
    pub fetched_bytes: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub addr: String,
    pub client: Option<String>,
    pub outgoing: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpPortStatus {
    pub addr: String,
    pub bound: bool,
    pub error: Option<String>,
}

/// Something that happened, for the event stream (SSE) and notifications.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum NodeEvent {
    RecordAccepted {
        name: String,
        class: String,
        version: u32,
    },
    /// A rotation's new key set does not vouch for this record: forgotten.
    RecordDropped {
        name: String,
        class: String,
        version: u32,
    },
    SyncProgress(SyncStatus),
    Switched {
        version: u32,
    },
    Evidence {
        peer: Option<String>,
        reason: String,
        detail: String,
    },
    PeerUp {
        addr: String,
    },
    PeerDown {
        addr: String,
    },
    Notice(NoticeStatus),
    /// A published document changed here: `learned` (a new record or version),
    /// `fetching`, `held`, `evicted` or `unusable` (with the reason).
    Document {
        id: u32,
        version: u32,
        name: String,
        title: String,
        change: String,
        reason: Option<String>,
    },
    Blacklist {
        version: u32,
        entries: usize,
        closed: usize,
    },
    /// The DNS front (`swarmsite dns`) answers with this volunteer now.
    DnsHealthy {
        addr: String,
        version: u32,
    },
    /// The DNS front no longer answers with it, and why.
    DnsDropped {
        addr: String,
        why: String,
    },
    /// UPnP or mDNS changed (mapped, lost, renamed, withdrawn …).
    Reach(Box<crate::reach::ReachStatus>),
    /// The software update state changed (the whole state, as `GET /api/update`).
    Update(Box<crate::update::UpdateStatus>),
    Paused {
        paused: bool,
    },
    /// An upload joined the queue or changed state.
    Upload {
        ih: String,
        state: crate::upload::queue::UploadState,
        size: u64,
    },
    /// A container was refused (no room, over the cap).
    UploadRefused {
        reason: String,
    },
    /// (Intake) an upload was opened, or kept sealed, or refused.
    UploadOpened {
        ih: String,
        outcome: String,
    },
}

/// One word for how a node is doing ([`Health::of`] in `health.rs`): the tray icon's
/// state and the dashboard's header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrayState {
    /// No verified release yet, or no peer to share with.
    #[default]
    Offline,
    /// Downloading a new release.
    Syncing,
    /// Serving a release, with peers.
    Serving,
    /// The user paused sharing.
    Paused,
    /// Something needs the user: see `problems`.
    Attention,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    pub state: TrayState,
    /// One line, e.g. "Syncing v3: 45%" or "Serving v2 · 5 peers".
    pub summary: String,
    /// What needs the user, one sentence each.
    pub problems: Vec<String>,
    /// The site on this computer (the first bound HTTP address; a wildcard address is
    /// shown as `localhost`), for "Open site".
    pub local_url: Option<String>,
}
