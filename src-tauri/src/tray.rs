//! The tray icon and its menu. On Linux (AppIndicator) a tray icon shows no tooltip and
//! reports no clicks, and a menu's items can change but the menu cannot be replaced: so
//! the state is told by the icon and by the menu's first, disabled line, the menu is
//! built once, and every item stays in place with its text and enabled flag updated.

use swarmsite_node::node::{Status, TrayState};
use swarmsite_node::update::{UpdatePhase, UpdateStatus};

/// The page that opens the file chooser at once ("Upload files…"), then shows the queue.
pub const PICK_UPLOADS: &str = "uploads/pick";

/// The menu, by item id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MenuAction {
    OpenSite,
    ShowWindow,
    Upload,
    TogglePause,
    /// Install the downloaded release and restart into it.
    InstallUpdate,
    Quit,
}

impl MenuAction {
    pub const ALL: [MenuAction; 6] = [
        MenuAction::OpenSite,
        MenuAction::ShowWindow,
        MenuAction::Upload,
        MenuAction::TogglePause,
        MenuAction::InstallUpdate,
        MenuAction::Quit,
    ];

    pub fn id(self) -> &'static str {
        match self {
            MenuAction::OpenSite => "open-site",
            MenuAction::ShowWindow => "show-window",
            MenuAction::Upload => "upload",
            MenuAction::TogglePause => "pause",
            MenuAction::InstallUpdate => "install-update",
            MenuAction::Quit => "quit",
        }
    }

    pub fn from_id(id: &str) -> Option<MenuAction> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }

    pub fn label(self) -> &'static str {
        match self {
            MenuAction::OpenSite => "Open site in browser",
            MenuAction::ShowWindow => "Show window",
            MenuAction::Upload => "Upload files…",
            MenuAction::TogglePause => "Pause sharing",
            MenuAction::InstallUpdate => "Restart to update",
            MenuAction::Quit => "Quit",
        }
    }
}

/// What the menu's actions need from the app; a fake stands in for it in tests.
pub trait Shell {
    fn open_url(&self, url: &str);
    /// Shows the window on `page` (creating it when it was closed).
    fn show_page(&self, page: &str);
    fn set_paused(&self, paused: bool);
    /// Installs the checked release; the node then asks for the restart.
    fn install_update(&self);
    fn quit(&self);
}

/// Runs a menu action against the node's current status.
pub fn run(action: MenuAction, status: Option<&Status>, shell: &impl Shell) {
    match action {
        MenuAction::OpenSite => match status.and_then(|s| s.health.local_url.as_deref()) {
            Some(url) => shell.open_url(url),
            None => shell.show_page("status"),
        },
        MenuAction::ShowWindow => shell.show_page("status"),
        MenuAction::Upload => shell.show_page(PICK_UPLOADS),
        MenuAction::TogglePause => {
            if let Some(s) = status {
                shell.set_paused(!s.paused);
            }
        }
        MenuAction::InstallUpdate => {
            if status.is_some_and(|s| s.update.installable) {
                shell.install_update();
            }
        }
        MenuAction::Quit => shell.quit(),
    }
}

/// Everything the tray shows for one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayView {
    pub icon: TrayState,
    /// The tooltip (where the platform shows one) and the menu's first line.
    pub line: String,
    pub pause_label: &'static str,
    pub open_enabled: bool,
    /// The software update line, and whether choosing it installs.
    pub update_line: String,
    pub update_enabled: bool,
}

/// The menu's software update line: what is going on, and "Restart to update" (enabled)
/// once a newer release is downloaded, checked and installable.
pub fn update_line(u: &UpdateStatus) -> (String, bool) {
    let newest = u.newest.as_deref().unwrap_or("?");
    if u.installable {
        return (format!("Restart to update to {newest}"), true);
    }
    let line = match u.phase {
        UpdatePhase::Downloading => {
            let pct = u.progress.as_ref().map_or(0, |p| {
                (p.have_bytes * 100).checked_div(p.total_bytes).unwrap_or(0)
            });
            format!("Downloading swarmsite {newest}: {pct}%")
        }
        UpdatePhase::Installing => format!("Installing swarmsite {newest}…"),
        UpdatePhase::Restarting => format!("Restarting into swarmsite {newest}…"),
        UpdatePhase::Ready | UpdatePhase::Unavailable => {
            format!("swarmsite {newest} is out: install it by hand")
        }
        UpdatePhase::Failed => format!("Update to {newest} failed (see the window)"),
        UpdatePhase::UpToDate => format!("swarmsite {} · up to date", u.running),
    };
    (line, false)
}

impl TrayView {
    pub fn of(status: Option<&Status>, start_error: Option<&str>) -> TrayView {
        match (status, start_error) {
            (_, Some(e)) => TrayView {
                icon: TrayState::Attention,
                line: format!("Not running: {e}"),
                pause_label: "Pause sharing",
                open_enabled: false,
                update_line: format!("swarmsite {}", swarmsite_node::update::running_version()),
                update_enabled: false,
            },
            (None, None) => TrayView {
                icon: TrayState::Offline,
                line: "Starting…".into(),
                pause_label: "Pause sharing",
                open_enabled: false,
                update_line: format!("swarmsite {}", swarmsite_node::update::running_version()),
                update_enabled: false,
            },
            (Some(s), None) => {
                let (update_line, update_enabled) = update_line(&s.update);
                TrayView {
                    icon: s.health.state,
                    line: s.health.summary.clone(),
                    pause_label: if s.paused {
                        "Resume sharing"
                    } else {
                        "Pause sharing"
                    },
                    open_enabled: s.health.local_url.is_some() && s.served_version.is_some(),
                    update_line,
                    update_enabled,
                }
            }
        }
    }
}

/// The tray icon of each state (made by scripts/icons from icons/src/tray.svg.in).
pub fn icon_png(state: TrayState) -> &'static [u8] {
    match state {
        TrayState::Serving => include_bytes!("../../icons/tray-serving.png"),
        TrayState::Syncing => include_bytes!("../../icons/tray-syncing.png"),
        TrayState::Offline => include_bytes!("../../icons/tray-offline.png"),
        TrayState::Paused => include_bytes!("../../icons/tray-paused.png"),
        TrayState::Attention => include_bytes!("../../icons/tray-attention.png"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use swarmsite_node::node::{Health, HttpPortStatus};

    use super::*;

    #[derive(Default)]
    struct Fake(RefCell<Vec<String>>);

    impl Shell for Fake {
        fn open_url(&self, url: &str) {
            self.0.borrow_mut().push(format!("open {url}"));
        }
        fn show_page(&self, page: &str) {
            self.0.borrow_mut().push(format!("show {page}"));
        }
        fn set_paused(&self, paused: bool) {
            self.0.borrow_mut().push(format!("paused {paused}"));
        }
        fn install_update(&self) {
            self.0.borrow_mut().push("install".into());
        }
        fn quit(&self) {
            self.0.borrow_mut().push("quit".into());
        }
    }

    fn serving() -> Status {
        let mut s = Status {
            served_version: Some(2),
            http: vec![HttpPortStatus {
                addr: "0.0.0.0:18880".into(),
                bound: true,
                error: None,
            }],
            ..Status::default()
        };
        s.health = Health::of(&s);
        s
    }

    fn calls(action: MenuAction, status: Option<&Status>) -> Vec<String> {
        let fake = Fake::default();
        run(action, status, &fake);
        fake.0.into_inner()
    }

    #[test]
    fn every_item_id_maps_back_to_its_action() {
        for a in MenuAction::ALL {
            assert_eq!(MenuAction::from_id(a.id()), Some(a));
        }
        assert_eq!(MenuAction::from_id("status-line"), None);
    }

    #[test]
    fn menu_handlers_do_what_they_say() {
        let s = serving();
        assert_eq!(
            calls(MenuAction::OpenSite, Some(&s)),
            ["open http://localhost:18880/"]
        );
        assert_eq!(calls(MenuAction::OpenSite, None), ["show status"]);
        assert_eq!(calls(MenuAction::ShowWindow, Some(&s)), ["show status"]);
        assert_eq!(calls(MenuAction::Upload, Some(&s)), ["show uploads/pick"]);
        assert_eq!(calls(MenuAction::TogglePause, Some(&s)), ["paused true"]);
        let mut paused = s.clone();
        paused.paused = true;
        assert_eq!(
            calls(MenuAction::TogglePause, Some(&paused)),
            ["paused false"]
        );
        assert!(calls(MenuAction::TogglePause, None).is_empty());
        assert!(
            calls(MenuAction::InstallUpdate, Some(&s)).is_empty(),
            "nothing to install"
        );
        let mut ready = s.clone();
        ready.update.installable = true;
        assert_eq!(calls(MenuAction::InstallUpdate, Some(&ready)), ["install"]);
        assert_eq!(calls(MenuAction::Quit, None), ["quit"]);
    }

    #[test]
    fn the_view_tells_the_truth() {
        let s = serving();
        let v = TrayView::of(Some(&s), None);
        assert_eq!(v.icon, TrayState::Offline, "no peers yet");
        assert_eq!(v.line, "Serving v2 · no peers");
        assert!(v.open_enabled);
        let mut p = s.clone();
        p.paused = true;
        p.health = Health::of(&p);
        let v = TrayView::of(Some(&p), None);
        assert_eq!(
            (v.icon, v.pause_label),
            (TrayState::Paused, "Resume sharing")
        );
        let v = TrayView::of(None, Some("port 6880 in use"));
        assert_eq!(v.icon, TrayState::Attention);
        assert!(v.line.contains("6880"));
        assert!(!TrayView::of(Some(&s), None).update_enabled);
        for state in [
            TrayState::Serving,
            TrayState::Syncing,
            TrayState::Offline,
            TrayState::Paused,
            TrayState::Attention,
        ] {
            assert!(icon_png(state).starts_with(b"\x89PNG"));
        }
    }

    #[test]
    fn the_update_line_follows_the_download_and_offers_the_restart() {
        let mut u = UpdateStatus {
            running: "0.1.0".into(),
            ..UpdateStatus::default()
        };
        assert_eq!(
            update_line(&u),
            ("swarmsite 0.1.0 · up to date".into(), false)
        );
        u.newest = Some("0.2.0".into());
        u.phase = UpdatePhase::Downloading;
        u.progress = Some(swarmsite_node::update::UpdateProgress {
            have_bytes: 40,
            total_bytes: 100,
            ..Default::default()
        });
        assert_eq!(
            update_line(&u),
            ("Downloading swarmsite 0.2.0: 40%".into(), false)
        );
        u.phase = UpdatePhase::Ready;
        assert_eq!(
            update_line(&u),
            ("swarmsite 0.2.0 is out: install it by hand".into(), false),
            "ready, but not installable here"
        );
        u.installable = true;
        assert_eq!(update_line(&u), ("Restart to update to 0.2.0".into(), true));
        u.installable = false;
        u.phase = UpdatePhase::Installing;
        assert_eq!(
            update_line(&u),
            ("Installing swarmsite 0.2.0…".into(), false)
        );
    }
}
