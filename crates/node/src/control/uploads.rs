//! The upload queue on the control API: list it, queue files by path (the CLI, the
//! tray app) or by sending their bytes (a browser drop zone: multipart, or a raw body
//! with `?name=`). What this node made itself is shown here, to the token holder only.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Ctl, PathBuf};

/// Most bytes of files received for one upload (the container cap applies after
/// compression).
const MAX_RECEIVED: u64 = 4 * crate::upload::container::DEFAULT_MAX_SIZE;

/// The status of a refusal: 507 when the quota is full, 422 otherwise.
fn refusal(e: String) -> Response {
    let status = if e.starts_with("storage quota full") {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, format!("{e}\n")).into_response()
}

pub(super) async fn list(State(ctl): State<Ctl>) -> Response {
    match ctl.node.uploads().await {
        Ok(list) => Json(list).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct QueueBody {
    paths: Vec<PathBuf>,
}

/// `POST /api/uploads {"paths": [...]}`: files and folders on this machine.
pub(super) async fn queue(State(ctl): State<Ctl>, Json(body): Json<QueueBody>) -> Response {
    if let Some(p) = body.paths.iter().find(|p| !p.is_absolute()) {
        return (
            StatusCode::BAD_REQUEST,
            format!("{}: give absolute paths\n", p.display()),
        )
            .into_response();
    }
    match ctl.node.upload(body.paths, None).await {
        Ok(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
        Err(e) => refusal(e),
    }
}

#[derive(Deserialize)]
pub(super) struct FilesQuery {
    name: Option<String>,
}

/// A file name a browser sent, as a path inside the upload: relative, no `.` or `..`,
/// no empty part, no backslash or NUL (a folder drop sends `folder/sub/file`).
fn safe_relative(name: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = !parts.is_empty()
        && parts.len() <= 32
        && parts.iter().all(|p| {
            !p.is_empty() && *p != "." && *p != ".." && p.len() <= 255 && !p.contains(['\\', '\0'])
        });
    ok.then(|| parts.iter().collect())
}

/// `POST /api/uploads/files`: the files themselves, received into a private folder
/// of the data folder, packed, then removed.
pub(super) async fn files(
    State(ctl): State<Ctl>,
    Query(q): Query<FilesQuery>,
    req: Request,
) -> Response {
    let folder = ctl
        .node
        .data_dir()
        .join("uploads")
        .join("packing")
        .join(format!("in-{}", hex::encode(rand::random::<[u8; 8]>())));
    if let Err(e) = crate::fsutil::create_dir(&folder, 0o700) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let received = if multipart {
        receive_multipart(req, &folder).await
    } else {
        match q.name.as_deref().and_then(safe_relative) {
            Some(rel) => receive_body(req.into_body(), &folder.join(rel))
                .await
                .map(|_| ()),
            None => Err((
                StatusCode::BAD_REQUEST,
                "send multipart/form-data, or the file as the body with ?name=FILE\n".into(),
            )),
        }
    };
    if let Err((status, msg)) = received {
        let _ = tokio::fs::remove_dir_all(&folder).await;
        return (status, msg).into_response();
    }
    let mut tops = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&folder) {
        tops.extend(rd.flatten().map(|e| e.path()));
    }
    tops.sort();
    // The node removes the folder once packed (or refused).
    match ctl.node.upload(tops, Some(folder)).await {
        Ok(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
        Err(e) => refusal(e),
    }
}

type Failure = (StatusCode, String);

/// Streams `body` into the new file `path`; returns its size.
async fn receive_body(body: Body, path: &std::path::Path) -> Result<u64, Failure> {
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(|e| e.to_string()));
    write_stream(path, stream, 0).await
}

/// Writes the chunks of `stream` into the new file `path`, keeping the running total
/// of the request (`before` bytes so far) under the limit; returns the bytes written.
async fn write_stream(
    path: &std::path::Path,
    mut stream: impl futures::Stream<Item = Result<bytes::Bytes, String>> + Unpin,
    before: u64,
) -> Result<u64, Failure> {
    let io = |e: std::io::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}\n", path.display()),
        )
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                (
                    StatusCode::BAD_REQUEST,
                    format!("{} was sent twice\n", path.display()),
                )
            } else {
                io(e)
            }
        })?;
    let mut total = before;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("reading the request: {e}\n"),
            )
        })?;
        total += chunk.len() as u64;
        if total > MAX_RECEIVED {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {MAX_RECEIVED} bytes in one upload\n"),
            ));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(total - before)
}

async fn receive_multipart(req: Request, folder: &std::path::Path) -> Result<(), Failure> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, format!("{e}\n"));
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(e.to_string()))?;
    let mut total = 0u64;
    let mut count = 0;
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.to_string()))? {
        let Some(name) = field.file_name().map(str::to_string) else {
            continue; // a form field that is no file
        };
        let rel =
            safe_relative(&name).ok_or_else(|| bad(format!("{name:?} is not a file name")))?;
        let stream = field.map(|r| r.map_err(|e| e.to_string()));
        total += write_stream(&folder.join(rel), stream, total).await?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("the form holds no file".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_names_stay_inside_the_upload() {
        assert_eq!(safe_relative("a.txt"), Some(PathBuf::from("a.txt")));
        assert_eq!(
            safe_relative("folder/sub/b.bin"),
            Some(PathBuf::from("folder/sub/b.bin"))
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a\0",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
    }
}
