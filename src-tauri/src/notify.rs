//! Desktop notifications (notify-rust): a new version served, a new version of swarmsite
//! ready to install (or its install failed), a blacklist applied, a problem that needs
//! the user. Rate-limited, and off when the settings say so.

use std::collections::HashMap;

use swarmsite_node::node::{Health, NodeEvent, TrayState};
use swarmsite_node::update::UpdatePhase;

/// One notification to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub kind: &'static str,
    pub summary: String,
    pub body: String,
}

/// Decides what deserves a notification; pure, so it is tested without a desktop.
pub struct Notifier {
    /// When each kind last showed (ms).
    last: HashMap<&'static str, u64>,
    /// Recent notifications of any kind (ms), for the overall cap.
    recent: Vec<u64>,
    /// Problems already told about, so a lasting one is told once.
    told: Vec<String>,
    /// The newest blacklist version told about (its event comes again once BitTorrent
    /// applies it too).
    blacklist_told: u32,
    /// The release of swarmsite told as ready to install, and the last install error
    /// told (the update event comes at every change of the download).
    update_told: Option<String>,
    update_error_told: Option<String>,
    /// This computer's uploads told as receipted (an entry's event may come again).
    receipts_told: Vec<String>,
}

/// At most one notification of a kind a minute, and five in ten minutes overall.
const PER_KIND_MS: u64 = 60_000;
const WINDOW_MS: u64 = 600_000;
const PER_WINDOW: usize = 5;

impl Notifier {
    pub fn new() -> Self {
        Notifier {
            last: HashMap::new(),
            recent: Vec::new(),
            told: Vec::new(),
            blacklist_told: 0,
            update_told: None,
            update_error_told: None,
            receipts_told: Vec::new(),
        }
    }

    /// What `ev` is worth telling, if anything and if the limits allow.
    pub fn on_event(&mut self, ev: &NodeEvent, site: &str, now_ms: u64) -> Option<Note> {
        let note = match ev {
            NodeEvent::Switched { version } => Note {
                kind: "version",
                summary: format!("Now serving version {version}"),
                body: format!("{site} was updated and verified; visitors get the new version."),
            },
            NodeEvent::Blacklist {
                version, entries, ..
            } if *version > self.blacklist_told => Note {
                kind: "blacklist",
                summary: format!("Blacklist version {version} applied"),
                body: format!("{entries} addresses are now refused."),
            },
            NodeEvent::Update(u) if u.installable && u.newest != self.update_told => {
                self.update_told = u.newest.clone();
                let notes = u.notes.as_deref().and_then(|n| n.lines().next());
                Note {
                    kind: "update",
                    summary: format!(
                        "swarmsite {} is ready to install",
                        u.newest.as_deref().unwrap_or("?")
                    ),
                    body: format!(
                        "Choose “Restart to update” in the tray menu or on the Status page (you run {}).{}",
                        u.running,
                        notes.map(|n| format!(" {n}")).unwrap_or_default()
                    ),
                }
            }
            NodeEvent::Update(u)
                if u.phase == UpdatePhase::Failed
                    && u.error.is_some()
                    && u.error != self.update_error_told =>
            {
                self.update_error_told = u.error.clone();
                Note {
                    kind: "update-failed",
                    summary: "The update was not installed".into(),
                    body: u.error.clone().unwrap_or_default(),
                }
            }
            _ => return None,
        };
        if let NodeEvent::Blacklist { version, .. } = ev {
            self.blacklist_told = *version;
        }
        self.allow(note, now_ms)
    }

    /// A problem that was not there before (once per problem while it lasts).
    pub fn on_health(&mut self, health: &Health, now_ms: u64) -> Option<Note> {
        if health.state != TrayState::Attention {
            self.told.clear();
            return None;
        }
        let new = health
            .problems
            .iter()
            .find(|p| !self.told.contains(p))?
            .clone();
        self.told = health.problems.clone();
        self.allow(
            Note {
                kind: "problem",
                summary: "swarmsite needs your attention".into(),
                body: new,
            },
            now_ms,
        )
    }

    /// An upload from this computer (`ih`; `label`: what was chosen) listed in a signed
    /// intake receipt: it arrived, and nothing of it is kept here any longer than needed.
    pub fn on_receipt(&mut self, ih: &str, label: Option<&str>, now_ms: u64) -> Option<Note> {
        if self.receipts_told.iter().any(|t| t == ih) {
            return None;
        }
        self.receipts_told.push(ih.to_string());
        self.allow(
            Note {
                kind: "upload",
                summary: "Your upload reached the intake".into(),
                body: format!(
                    "{} is listed in the intake's signed receipt.",
                    label.unwrap_or("An upload from this computer")
                ),
            },
            now_ms,
        )
    }

    fn allow(&mut self, note: Note, now_ms: u64) -> Option<Note> {
        if self
            .last
            .get(note.kind)
            .is_some_and(|t| now_ms.saturating_sub(*t) < PER_KIND_MS)
        {
            return None;
        }
        self.recent
            .retain(|t| now_ms.saturating_sub(*t) < WINDOW_MS);
        if self.recent.len() >= PER_WINDOW {
            return None;
        }
        self.recent.push(now_ms);
        self.last.insert(note.kind, now_ms);
        Some(note)
    }
}

/// Shows `note` (blocking: D-Bus on Linux); a desktop without a notification server
/// just logs it.
pub fn show(note: &Note) {
    let r = notify_rust::Notification::new()
        .appname("swarmsite")
        .summary(&note.summary)
        .body(&note.body)
        .icon("swarmsite-app")
        .show();
    if let Err(e) = r {
        tracing::info!("notification not shown ({e}): {}", note.summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_blacklists_are_told_within_the_limits() {
        let mut n = Notifier::new();
        let v = |version| NodeEvent::Switched { version };
        assert!(n.on_event(&v(2), "site", 0).is_some());
        assert!(n.on_event(&v(3), "site", 1_000).is_none(), "one a minute");
        let bl = NodeEvent::Blacklist {
            version: 1,
            entries: 3,
            closed: 0,
        };
        assert_eq!(n.on_event(&bl, "site", 2_000).unwrap().kind, "blacklist");
        assert!(
            n.on_event(&bl, "site", 200_000).is_none(),
            "the same version again (now in BitTorrent too) is not news"
        );
        assert!(
            n.on_event(&NodeEvent::PeerUp { addr: "x".into() }, "site", 3_000)
                .is_none()
        );
        // One a minute for the next nine minutes: the overall cap stops it at five.
        let mut shown = 2;
        for i in 1..10u64 {
            if n.on_event(&v(3 + i as u32), "site", i * PER_KIND_MS)
                .is_some()
            {
                shown += 1;
            }
        }
        assert_eq!(shown, PER_WINDOW, "at most {PER_WINDOW} in ten minutes");
    }

    #[test]
    fn a_lasting_problem_is_told_once() {
        let mut n = Notifier::new();
        let mut h = Health {
            state: TrayState::Attention,
            summary: String::new(),
            problems: vec!["HTTP 0.0.0.0:18880 is not bound".into()],
            local_url: None,
        };
        assert!(n.on_health(&h, 0).is_some());
        assert!(n.on_health(&h, 120_000).is_none(), "told already");
        h.problems.push("2 forged messages".into());
        assert_eq!(n.on_health(&h, 240_000).unwrap().body, "2 forged messages");
        h.state = TrayState::Serving;
        assert!(n.on_health(&h, 300_000).is_none());
    }

    #[test]
    fn a_receipted_upload_is_told_once() {
        let mut n = Notifier::new();
        let note = n.on_receipt("ab12", Some("leak.txt"), 0).unwrap();
        assert_eq!(note.summary, "Your upload reached the intake");
        assert!(note.body.starts_with("leak.txt is listed"), "{}", note.body);
        assert!(n.on_receipt("ab12", Some("leak.txt"), 120_000).is_none());
        assert!(n.on_receipt("cd34", None, 180_000).is_some());
    }

    #[test]
    fn a_ready_release_is_told_once() {
        let mut n = Notifier::new();
        let mut u = swarmsite_node::update::UpdateStatus {
            running: "0.1.0".into(),
            newest: Some("0.2.0".into()),
            notes: Some("Faster sync.\nMore.".into()),
            phase: UpdatePhase::Downloading,
            ..Default::default()
        };
        let ev = |u: &swarmsite_node::update::UpdateStatus| NodeEvent::Update(Box::new(u.clone()));
        assert!(
            n.on_event(&ev(&u), "site", 0).is_none(),
            "still downloading"
        );
        u.phase = UpdatePhase::Ready;
        u.installable = true;
        let note = n.on_event(&ev(&u), "site", 1_000).unwrap();
        assert_eq!(note.summary, "swarmsite 0.2.0 is ready to install");
        assert!(note.body.contains("Restart to update") && note.body.contains("Faster sync."));
        assert!(
            n.on_event(&ev(&u), "site", 120_000).is_none(),
            "told already"
        );
        u.installable = false;
        u.phase = UpdatePhase::Failed;
        u.error = Some("installing swarmsite 0.2.0 failed".into());
        assert_eq!(
            n.on_event(&ev(&u), "site", 130_000).unwrap().kind,
            "update-failed"
        );
        assert!(n.on_event(&ev(&u), "site", 300_000).is_none());
    }
}
