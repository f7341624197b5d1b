//! swarmsite-app: the tray app. A thin shell: it runs the node in-process (the core
//! library), shows its state in the tray, and opens a window on the dashboard, which
//! talks to the node through the local control API like any browser would.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod node;
mod notify;
mod tray;

use std::path::PathBuf;
use std::sync::Mutex;

use clap::Parser;
use swarmsite_node::node::{NodeEvent, NodeHandle, Status, TrayState};
use swarmsite_node::upload::queue::UploadState;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_dialog::DialogExt as _;
use tauri_plugin_opener::OpenerExt as _;

use tray::{MenuAction, Shell, TrayView};

/// The swarmsite tray app: serve a signed website from this computer.
#[derive(Parser, Debug)]
#[command(name = "swarmsite-app", version, about)]
struct Args {
    /// The node's data folder.
    #[arg(long, env = "SWARMSITE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Start in the tray without opening the window (as at login).
    #[arg(long)]
    hidden: bool,
}

/// The menu items whose text or state follows the node.
struct Items {
    line: MenuItem<tauri::Wry>,
    open: MenuItem<tauri::Wry>,
    pause: MenuItem<tauri::Wry>,
    update: MenuItem<tauri::Wry>,
}

struct AppState {
    rt: tokio::runtime::Runtime,
    node: Mutex<Option<node::RunningNode>>,
    /// Why the node is not running, when it could not start.
    start_error: Mutex<Option<String>>,
    items: Items,
    tray: TrayIcon,
    shown: Mutex<Option<TrayView>>,
}

impl AppState {
    fn handle(&self) -> Option<NodeHandle> {
        self.node
            .lock()
            .expect("node lock")
            .as_ref()
            .map(|n| n.handle.clone())
    }

    fn status(&self) -> Option<Status> {
        self.handle().map(|h| h.status())
    }

    /// Shows `view` unless it is already shown (sync progress events are frequent).
    fn show(&self, view: TrayView) {
        let mut shown = self.shown.lock().expect("tray lock");
        if shown.as_ref() == Some(&view) {
            return;
        }
        if shown.as_ref().map(|v| v.icon) != Some(view.icon)
            && let Ok(img) = Image::from_bytes(tray::icon_png(view.icon))
        {
            let _ = self.tray.set_icon(Some(img));
        }
        let _ = self
            .tray
            .set_tooltip(Some(format!("swarmsite: {}", view.line)));
        let _ = self.items.line.set_text(&view.line);
        let _ = self.items.pause.set_text(view.pause_label);
        let _ = self.items.open.set_enabled(view.open_enabled);
        let _ = self.items.update.set_text(&view.update_line);
        let _ = self.items.update.set_enabled(view.update_enabled);
        *shown = Some(view);
    }

    fn refresh(&self) {
        let status = self.status();
        let error = self.start_error.lock().expect("error lock").clone();
        self.show(TrayView::of(status.as_ref(), error.as_deref()));
    }
}

impl Shell for AppHandle {
    fn open_url(&self, url: &str) {
        if let Err(e) = self.opener().open_url(url, None::<&str>) {
            tracing::warn!("opening {url}: {e}");
        }
    }

    fn show_page(&self, page: &str) {
        if let Err(e) = show_window(self, page) {
            tracing::warn!("showing the window: {e}");
        }
    }

    fn set_paused(&self, paused: bool) {
        let state = self.state::<AppState>();
        if let Some(h) = state.handle() {
            let app = self.clone();
            state.rt.spawn(async move {
                if let Err(e) = h.set_paused(paused).await {
                    tracing::warn!("pause: {e}");
                }
                app.state::<AppState>().refresh();
            });
        }
    }

    fn install_update(&self) {
        let state = self.state::<AppState>();
        if let Some(h) = state.handle() {
            let app = self.clone();
            state.rt.spawn(async move {
                // On success the node asks for the restart (see `restart_when_asked`);
                // a failure shows in the window's banner, the menu and a notification.
                if let Err(e) = h.install_update().await {
                    tracing::warn!("update: {e}");
                    app.show_page("status");
                }
            });
        }
    }

    fn quit(&self) {
        let state = self.state::<AppState>();
        let node = state.node.lock().expect("node lock").take();
        if let Some(node) = node {
            state.rt.block_on(node.stop());
        }
        self.exit(0);
    }
}

/// Opens (or brings forward) the dashboard window on `page`. The page gets the control
/// API's address and token from a script run before it loads, never from its URL.
fn show_window(app: &AppHandle, page: &str) -> tauri::Result<()> {
    let hash = serde_json::to_string(page).expect("json");
    if let Some(w) = app.get_webview_window("main") {
        w.eval(format!("location.hash = {hash}"))?;
        w.show()?;
        w.unminimize()?;
        return w.set_focus();
    }
    let state = app.state::<AppState>();
    let injected = match state.node.lock().expect("node lock").as_ref() {
        Some(n) => {
            serde_json::json!({ "api": n.control.url, "token": n.control.token, "page": page })
        }
        None => serde_json::json!({
            "error": state.start_error.lock().expect("error lock").clone()
                .unwrap_or_else(|| "the node is not running".into())
        }),
    };
    WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
        .title("swarmsite")
        .inner_size(1000.0, 760.0)
        .initialization_script(format!("window.__SWARMSITE__ = {injected};"))
        // Dropped files reach the page as in a browser (one upload path: the control API).
        .disable_drag_drop_handler()
        .build()?;
    Ok(())
}

#[tauri::command]
fn open_site(app: AppHandle) {
    let status = app.state::<AppState>().status();
    tray::run(MenuAction::OpenSite, status.as_ref(), &app);
}

/// "Upload files…" (the tray menu, the Uploads page): the desktop's own file chooser.
/// The page then queues the paths through the control API (`POST /api/uploads`), so
/// the node reads the files where they are; an empty list when nothing was chosen.
#[tauri::command]
async fn pick_uploads(app: AppHandle) -> Vec<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title("Upload files")
        .pick_files(move |picked| {
            let _ = tx.send(picked);
        });
    let picked = rx.await.ok().flatten().unwrap_or_default();
    picked
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

#[tauri::command]
fn autostart_get(app: AppHandle) -> Result<bool, String> {
    app.autolaunch().is_enabled().map_err(|e| e.to_string())
}

#[tauri::command]
fn autostart_set(app: AppHandle, enabled: bool) -> Result<(), String> {
    // The plugin (auto-launch) creates ~/.config/autostart but not ~/.config, which a
    // fresh account may not have yet.
    if enabled && let Some(home) = std::env::home_dir() {
        let dir = home.join(".config/autostart");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let l = app.autolaunch();
    if enabled { l.enable() } else { l.disable() }.map_err(|e| e.to_string())
}

fn on_menu(app: &AppHandle, id: &str) {
    if let Some(action) = MenuAction::from_id(id) {
        let status = app.state::<AppState>().status();
        tray::run(action, status.as_ref(), app);
    }
}

/// Once an installed update asks for it: stops the node cleanly (the install's answer
/// out, its ports free), then restarts the app, which runs the new binary with the same
/// arguments (Tauri releases the single-instance name first).
async fn restart_when_asked(app: AppHandle, handle: NodeHandle) {
    handle.restart_requested().await;
    tracing::info!("update installed: restarting");
    let node = app
        .state::<AppState>()
        .node
        .lock()
        .expect("node lock")
        .take();
    if let Some(node) = node {
        let data = node.data_dir();
        node.stop().await;
        swarmsite_node::control::wait_stopped(&data, std::time::Duration::from_secs(5)).await;
    }
    app.request_restart();
}

/// Follows the node's events: the tray, and notifications.
async fn follow(app: AppHandle, handle: NodeHandle) {
    let mut rx = handle.subscribe();
    let mut notifier = notify::Notifier::new();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        app.state::<AppState>().refresh();
        let status = handle.status();
        let now = swarmsite_node::clock::unix_ms();
        let mut notes = vec![
            notifier.on_event(&ev, &status.site_name, now),
            notifier.on_health(&status.health, now),
        ];
        if let NodeEvent::Upload {
            ih,
            state: UploadState::Receipted,
            ..
        } = &ev
        {
            // Told only for this computer's own uploads (the queue holds relayed ones).
            let list = handle
                .uploads()
                .await
                .map(|l| l.entries)
                .unwrap_or_default();
            if let Some(e) = list.iter().find(|e| &e.ih == ih && e.originated) {
                notes.push(notifier.on_receipt(ih, e.label.as_deref(), now));
            }
        }
        for note in notes.into_iter().flatten() {
            let on = swarmsite_node::settings::Settings::load(handle.data_dir())
                .map(|s| s.notifications())
                .unwrap_or(true);
            if on {
                tokio::task::spawn_blocking(move || notify::show(&note));
            }
        }
        if matches!(ev, NodeEvent::Paused { .. }) {
            app.state::<AppState>().refresh();
        }
    }
}

fn setup(app: &mut tauri::App, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let h = app.handle();
    let item = |a: MenuAction, enabled: bool| {
        MenuItem::with_id(h, a.id(), a.label(), enabled, None::<&str>)
    };
    let line = MenuItem::with_id(h, "status-line", "Starting…", false, None::<&str>)?;
    let open = item(MenuAction::OpenSite, false)?;
    let pause = item(MenuAction::TogglePause, true)?;
    let update = item(MenuAction::InstallUpdate, false)?;
    let menu = Menu::with_items(
        h,
        &[
            &line,
            &PredefinedMenuItem::separator(h)?,
            &open,
            &item(MenuAction::ShowWindow, true)?,
            &item(MenuAction::Upload, true)?,
            &pause,
            &PredefinedMenuItem::separator(h)?,
            &update,
            &item(MenuAction::Quit, true)?,
        ],
    )?;
    let tray = TrayIconBuilder::with_id("swarmsite")
        .icon(Image::from_bytes(tray::icon_png(TrayState::Offline))?)
        .tooltip("swarmsite")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, ev| on_menu(app, ev.id().as_ref()))
        .build(h)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = rt.block_on(node::RunningNode::start(args.data_dir.as_deref()));
    let (running, error) = match started {
        Ok(n) => {
            tracing::info!(
                "node running, data in {}, control API {}",
                n.data_dir().display(),
                n.control.url
            );
            (Some(n), None)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            (None, Some(format!("{e:#}")))
        }
    };
    let follower = running.as_ref().map(|n| n.handle.clone());
    app.manage(AppState {
        rt,
        node: Mutex::new(running),
        start_error: Mutex::new(error.clone()),
        items: Items {
            line,
            open,
            pause,
            update,
        },
        tray,
        shown: Mutex::new(None),
    });
    let state = app.state::<AppState>();
    state.refresh();
    // SIGTERM (a logout, `systemctl stop`, `kill`) or Ctrl-C quits like the menu's Quit:
    // the node stops cleanly (UPnP leases removed, mDNS goodbye, state saved).
    let on_signal = app.handle().clone();
    state.rt.spawn(async move {
        swarmsite_node::node::shutdown_signal().await;
        tracing::info!("stopping on a signal");
        let app = on_signal.clone();
        // Quit blocks on the runtime, so it runs on the main thread, not in a task.
        let _ = on_signal.run_on_main_thread(move || app.quit());
    });
    if let Some(handle) = follower {
        state
            .rt
            .spawn(restart_when_asked(app.handle().clone(), handle.clone()));
        state.rt.spawn(follow(app.handle().clone(), handle));
    }
    if !args.hidden || error.is_some() {
        show_window(app.handle(), "status")?;
    }
    Ok(())
}

fn main() {
    swarmsite_node::node::raise_open_files_limit();
    let args = Args::parse();
    let app = tauri::Builder::default()
        // First: a second start only brings the running app's window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            app.show_page("status");
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler(tauri::generate_handler![
            open_site,
            pick_uploads,
            autostart_get,
            autostart_set
        ])
        .setup(move |app| setup(app, &args))
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    app.run(|_, event| {
        // Closing the window leaves the app in the tray; only Quit ends it.
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}
