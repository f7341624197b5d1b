//! The dashboard's files, compiled into the binary from `ui/dist`.
//!
//! Why the built files are committed and embedded: `cargo build` and
//! `cargo run -- demo` must work on a machine with Rust alone, no Node.js, and the
//! dashboard is a few small files. `scripts/test` rebuilds `ui/` from its sources and
//! fails when the committed `ui/dist` differs, and a unit test below fails when `dist`
//! holds a file this list does not serve. Vite is told to emit fixed names
//! (`ui/vite.config.ts`), so the list stays put.
//!
//! The files carry no secret: the page asks for the token (or takes it from the
//! `#token=` fragment of the link `swarmsite dashboard` prints, which browsers never
//! send to a server), then talks to `/api/` with it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

macro_rules! dist {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../ui/dist/",
            $path
        ))
    };
}

/// (URL path, file under `ui/dist`, content type, bytes).
const FILES: &[(&str, &str, &str, &[u8])] = &[
    (
        "/",
        "index.html",
        "text/html; charset=utf-8",
        dist!("index.html"),
    ),
    (
        "/assets/app.js",
        "assets/app.js",
        "text/javascript; charset=utf-8",
        dist!("assets/app.js"),
    ),
    (
        "/assets/app.css",
        "assets/app.css",
        "text/css; charset=utf-8",
        dist!("assets/app.css"),
    ),
    ("/icon.svg", "icon.svg", "image/svg+xml", dist!("icon.svg")),
];

/// The page may load only its own files and talk only to its own server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

pub(super) fn routes() -> axum::Router {
    let mut router = axum::Router::new();
    for &(path, _, kind, bytes) in FILES {
        router = router.route(path, get(move || async move { file(kind, bytes) }));
    }
    router
}

fn file(kind: &'static str, bytes: &'static [u8]) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Small files; a new binary must show its own dashboard at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn every_built_file_is_served() {
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist");
        let mut built = Vec::new();
        let mut stack = vec![dist.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&dist).unwrap();
                    built.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        built.sort();
        let mut served: Vec<String> = super::FILES.iter().map(|f| f.1.to_string()).collect();
        served.sort();
        assert_eq!(
            built, served,
            "ui/dist and control/dashboard.rs FILES must list the same files"
        );
    }
}
