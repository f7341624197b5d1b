//! One word for how a node is doing, for the tray icon and the dashboard's header: the
//! same rules in both, computed here once from the status (`Health::of`; the types are
//! the status's).

use super::status::{Health, Status, TrayState};

fn local_url(s: &Status) -> Option<String> {
    let addr: std::net::SocketAddr = s.http.iter().find(|h| h.bound)?.addr.parse().ok()?;
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    Some(match addr.port() {
        80 => format!("http://{host}/"),
        port => format!("http://{host}:{port}/"),
    })
}

impl Health {
    pub fn of(s: &Status) -> Health {
        let mut problems = Vec::new();
        let serving_http = s.http.iter().any(|h| h.bound);
        for h in s.http.iter().filter(|h| !h.bound) {
            // Port 80 needs privileges most users lack; 18880 is its planned fallback
            // (SPEC §9), so a failed 80 alone is shown on the Status page, not raised.
            let port80 = h.addr.ends_with(":80");
            if !port80 || !serving_http {
                problems.push(format!(
                    "HTTP {} is not bound: {}",
                    h.addr,
                    h.error.as_deref().unwrap_or("unknown error")
                ));
            }
        }
        if s.evidence > 0 {
            problems.push(format!(
                "{} forged or malformed messages refused since start (Peers & blacklist)",
                s.evidence
            ));
        }
        let d = &s.documents;
        let missing = d.known.saturating_sub(d.held + d.fetching);
        if d.quota > 0 && d.used >= d.quota && missing > 0 {
            problems.push(format!(
                "the storage quota is full: {missing} documents are not kept here (raise it in Settings)"
            ));
        }
        let u = &s.uploads;
        let smallest =
            crate::upload::container::container_size(crate::upload::container::MIN_BUCKET);
        if u.quota_bytes > 0 && u.used_bytes.saturating_add(smallest) > u.quota_bytes {
            problems.push(format!(
                "the upload storage is full: new uploads are refused until the intake receipts what is held ({} refused; raise --upload-quota)",
                u.refused
            ));
        }
        if let Some(e) = s.sync.as_ref().and_then(|y| y.error.as_deref()) {
            problems.push(format!("the download is stuck: {e}"));
        }
        let (state, summary) = if s.paused {
            (TrayState::Paused, "Sharing paused".to_string())
        } else if let Some(first) = problems.first() {
            (TrayState::Attention, format!("Needs attention: {first}"))
        } else if let Some(y) = &s.sync {
            let pct = (y.have_bytes * 100).checked_div(y.total_bytes).unwrap_or(0);
            (
                TrayState::Syncing,
                format!("Syncing v{}: {pct}% · {} peers", y.version, y.peers),
            )
        } else if let Some(v) = s.served_version {
            if s.peers.is_empty() {
                (TrayState::Offline, format!("Serving v{v} · no peers"))
            } else {
                (
                    TrayState::Serving,
                    format!("Serving v{v} · {} peers", s.peers.len()),
                )
            }
        } else {
            (TrayState::Offline, "No verified release yet".to_string())
        };
        Health {
            state,
            summary,
            problems,
            local_url: local_url(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::{HttpPortStatus, PeerStatus, SyncStatus};

    fn port(addr: &str, bound: bool) -> HttpPortStatus {
        HttpPortStatus {
            addr: addr.into(),
            bound,
            error: (!bound).then(|| "Permission denied".into()),
        }
    }

    fn peer() -> PeerStatus {
        PeerStatus {
            addr: "127.0.0.2:6880".into(),
            client: None,
            outgoing: true,
        }
    }

    #[test]
    fn states_follow_the_status() {
        let mut s = Status {
            http: vec![port("0.0.0.0:80", false), port("0.0.0.0:18880", true)],
            ..Status::default()
        };
        assert_eq!(Health::of(&s).state, TrayState::Offline);
        s.sync = Some(SyncStatus {
            version: 3,
            have_bytes: 45,
            total_bytes: 100,
            peers: 2,
            bytes_per_sec: 0,
            fetched_bytes: 45,
            error: None,
        });
        let h = Health::of(&s);
        assert_eq!(
            (h.state, h.summary.as_str()),
            (TrayState::Syncing, "Syncing v3: 45% · 2 peers")
        );
        s.sync = None;
        s.served_version = Some(3);
        assert_eq!(Health::of(&s).summary, "Serving v3 · no peers");
        s.peers = vec![peer()];
        let h = Health::of(&s);
        assert_eq!(
            (h.state, h.problems.len()),
            (TrayState::Serving, 0),
            "80 alone is no problem"
        );
        assert_eq!(h.local_url.as_deref(), Some("http://localhost:18880/"));
        s.evidence = 2;
        assert_eq!(Health::of(&s).state, TrayState::Attention);
        s.paused = true;
        assert_eq!(Health::of(&s).state, TrayState::Paused);
    }

    #[test]
    fn a_full_quota_that_leaves_documents_out_needs_the_user() {
        let mut s = Status {
            served_version: Some(1),
            peers: vec![peer()],
            ..Status::default()
        };
        s.documents.known = 5;
        s.documents.held = 3;
        s.documents.quota = 100;
        s.documents.used = 100;
        let h = Health::of(&s);
        assert_eq!(h.state, TrayState::Attention);
        assert!(h.problems[0].contains("2 documents"), "{h:?}");
        s.documents.held = 5;
        assert_eq!(
            Health::of(&s).state,
            TrayState::Serving,
            "full, but all kept"
        );
    }

    #[test]
    fn a_full_upload_storage_needs_the_user() {
        let mut s = Status {
            served_version: Some(1),
            peers: vec![peer()],
            ..Status::default()
        };
        s.uploads.quota_bytes = 1 << 30;
        s.uploads.used_bytes = 1 << 20;
        assert_eq!(Health::of(&s).state, TrayState::Serving);
        s.uploads.used_bytes = (1 << 30) - 1000;
        s.uploads.refused = 2;
        let h = Health::of(&s);
        assert_eq!(h.state, TrayState::Attention);
        assert!(h.problems[0].contains("upload storage is full"), "{h:?}");
    }

    #[test]
    fn a_missing_fallback_port_needs_the_user() {
        let s = Status {
            http: vec![port("0.0.0.0:80", true), port("0.0.0.0:18880", false)],
            served_version: Some(1),
            peers: vec![peer()],
            ..Status::default()
        };
        let h = Health::of(&s);
        assert_eq!(h.state, TrayState::Attention);
        assert!(h.problems[0].contains("18880"), "{h:?}");
    }
}
