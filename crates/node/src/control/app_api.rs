//! The control API the dashboard needs beyond status and events: pause and resume
//! sharing, the saved settings, and the networks (bundles) this node trusts.
//!
//! `POST /api/pause {"paused": bool}`; `GET`/`PUT /api/settings` (the `Settings`
//! JSON; applies at the next start); `GET /api/networks`, `POST /api/networks` (the
//! body is a bundle file's content), `DELETE /api/networks/{tag}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::Ctl;
use crate::bundle::{Bundle, Site};
use crate::datadir::{DataDir, DataDirError, builtin_bundles};
use crate::settings::Settings;

pub(super) fn routes() -> axum::Router<Ctl> {
    axum::Router::new()
        .route("/api/pause", post(pause))
        .route("/api/settings", get(get_settings).put(put_settings))
        .route("/api/networks", get(networks).post(add_network))
        .route("/api/networks/{tag}", delete(remove_network))
}

fn error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, format!("{e}\n")).into_response()
}

#[derive(Deserialize)]
struct PauseBody {
    paused: bool,
}

async fn pause(State(ctl): State<Ctl>, Json(body): Json<PauseBody>) -> Response {
    match ctl.node.set_paused(body.paused).await {
        Ok(()) => Json(serde_json::json!({ "paused": body.paused })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[derive(Serialize)]
struct SettingsReply {
    settings: Settings,
    /// The data folder (moved only by starting with `--data-dir`).
    data_dir: String,
}

async fn get_settings(State(ctl): State<Ctl>) -> Response {
    match Settings::load(ctl.node.data_dir()) {
        Ok(settings) => Json(SettingsReply {
            settings,
            data_dir: ctl.node.data_dir().display().to_string(),
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn put_settings(State(ctl): State<Ctl>, Json(settings): Json<Settings>) -> Response {
    match settings.save(ctl.node.data_dir()) {
        Ok(()) => get_settings(State(ctl)).await,
        Err(e @ crate::settings::SettingsError::Invalid(_)) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Serialize)]
struct NetworkInfo {
    tag: String,
    sites: Vec<Site>,
    fingerprint: String,
    /// Shipped with the client: cannot be removed.
    builtin: bool,
    /// The network this node runs now.
    running: bool,
}

async fn networks(State(ctl): State<Ctl>) -> Response {
    let dd = DataDir::resolve(Some(ctl.node.data_dir())).expect("a given folder");
    let running = ctl.node.status().network;
    match dd.bundles() {
        Ok(all) => {
            let builtin: Vec<_> = builtin_bundles().iter().map(Bundle::fingerprint).collect();
            let list: Vec<NetworkInfo> = all
                .iter()
                .map(|b| NetworkInfo {
                    tag: b.network().to_string(),
                    sites: b.sites().to_vec(),
                    fingerprint: b.fingerprint(),
                    builtin: builtin.contains(&b.fingerprint()),
                    running: b.network().to_string() == running,
                })
                .collect();
            Json(list).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn add_network(State(ctl): State<Ctl>, body: String) -> Response {
    let bundle = match Bundle::parse(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a bundle: {e}"),
            );
        }
    };
    let dd = DataDir::resolve(Some(ctl.node.data_dir())).expect("a given folder");
    match dd.add_bundle(&bundle) {
        Ok(_) => Json(serde_json::json!({
            "tag": bundle.network().to_string(),
            "fingerprint": bundle.fingerprint(),
        }))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn remove_network(State(ctl): State<Ctl>, Path(tag): Path<String>) -> Response {
    let tag: crate::name::NetworkTag = match tag.parse() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{tag:?}: {e}")),
    };
    if ctl.node.status().network == tag.to_string() {
        return error(
            StatusCode::CONFLICT,
            format!("{tag} is the network this node runs; choose another in Settings first"),
        );
    }
    let dd = DataDir::resolve(Some(ctl.node.data_dir())).expect("a given folder");
    match dd.remove_bundle(tag) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e @ (DataDirError::Builtin(_) | DataDirError::Unknown(_))) => {
            error(StatusCode::CONFLICT, e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
