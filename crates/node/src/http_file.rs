//! HTTP answers for one file, knowing nothing of sites or documents: validators (strong
//! ETags per encoding, Last-Modified), conditional requests, ranges (multipart streamed,
//! overlaps refused, at most [`MAX_RANGES`] parts), gzip and brotli for small text-like
//! files kept in memory, and the path and HTML hygiene every generated page needs. The
//! site (`serve`) and the archive (`documents::pages`) both answer through it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Files up to this size are kept in memory (with their compressed forms) once asked for.
const CACHE_MAX_FILE: u64 = 2 * 1024 * 1024;
/// Smaller bodies are not worth compressing.
const COMPRESS_MIN: u64 = 256;

/// One servable file with its validators, built once (per release, or per archive
/// snapshot for documents) and answered from by [`serve_file`].
#[derive(Debug)]
pub(crate) struct FileEntry {
    path: PathBuf,
    len: u64,
    /// Strong ETags of the identity, gzip and brotli forms, quotes included. Header
    /// values are built once here, not per request.
    etags: [HeaderValue; 3],
    content_type: HeaderValue,
    compressible: bool,
    cache: OnceLock<Cached>,
}

impl FileEntry {
    /// A file of `len` bytes at `path`, whose strong validator is `tag` (hex).
    pub(crate) fn new(path: PathBuf, len: u64, tag: &str, mime: &mime_guess::Mime) -> Self {
        let compressible = is_compressible(mime);
        let mut mime = mime.essence_str().to_string();
        if mime.starts_with("text/") || mime == "application/javascript" || mime == "image/svg+xml"
        {
            mime.push_str("; charset=utf-8");
        }
        let value = |t: String| HeaderValue::from_str(&t).expect("hex");
        FileEntry {
            path,
            len,
            etags: [
                value(format!("\"{tag}\"")),
                value(format!("\"{tag}-gz\"")),
                value(format!("\"{tag}-br\"")),
            ],
            content_type: HeaderValue::from_str(&mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            compressible,
            cache: OnceLock::new(),
        }
    }

    fn etag(&self, encoding: Encoding) -> &HeaderValue {
        &self.etags[encoding as usize]
    }
}

#[derive(Debug)]
struct Cached {
    identity: Bytes,
    gzip: Option<Bytes>,
    br: Option<Bytes>,
}

/// When content last changed, and the `Last-Modified` value saying so (built once).
#[derive(Debug, Clone)]
pub(crate) struct Modified {
    at: SystemTime,
    header: HeaderValue,
}

impl Modified {
    /// Unix time `secs`.
    pub(crate) fn at(secs: u64) -> Self {
        let at = UNIX_EPOCH + Duration::from_secs(secs);
        Modified {
            at,
            header: HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("date"),
        }
    }
}

fn is_compressible(mime: &mime_guess::Mime) -> bool {
    mime.type_() == "text"
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg" | "wasm"
        )
        || mime.suffix().is_some_and(|s| s == "xml" || s == "json")
}

/// Percent-decodes a URL path and refuses anything that could step outside the release
/// (`..`, `.`, NUL, backslashes, empty segments). Returns it without the leading `/`.
pub fn clean_path(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let trimmed = decoded.strip_prefix('/')?;
    if trimmed.contains('\0') || trimmed.contains('\\') {
        return None;
    }
    let body = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if !body.is_empty()
        && body
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return None;
    }
    Some(trimmed.to_string())
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn not_modified_since(headers: &HeaderMap, modified: SystemTime) -> bool {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return false; // RFC 9110: If-None-Match wins
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|since| modified <= since)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Identity = 0,
    Gzip = 1,
    Brotli = 2,
}

/// Picks br, then gzip, by the client's Accept-Encoding (q=0 refuses).
fn negotiate(headers: &HeaderMap) -> Encoding {
    let Some(accept) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Identity;
    };
    let mut br = false;
    let mut gzip = false;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        match coding.as_str() {
            "br" => br = true,
            "gzip" | "x-gzip" => gzip = true,
            _ => {}
        }
    }
    if br {
        Encoding::Brotli
    } else if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn load_cached(entry: &FileEntry) -> std::io::Result<&Cached> {
    if let Some(c) = entry.cache.get() {
        return Ok(c);
    }
    let identity = Bytes::from(std::fs::read(&entry.path)?);
    let (gzip, br) = if entry.compressible && entry.len >= COMPRESS_MIN {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&identity)?;
        let gz = gz.finish()?;
        let mut brv = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut brv, 64 * 1024, 9, 22);
            w.write_all(&identity)?;
        }
        // Keep a compressed form only when it actually saves bytes.
        let keep = |v: Vec<u8>| (v.len() < identity.len()).then(|| Bytes::from(v));
        (keep(gz), keep(brv))
    } else {
        (None, None)
    };
    Ok(entry.cache.get_or_init(|| Cached { identity, gzip, br }))
}

/// Answers GET/HEAD for one file: validators, conditional requests, ranges (multipart
/// too), and gzip/br for small text-like files.
pub(crate) async fn serve_file(
    entry: &FileEntry,
    modified: &Modified,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(header::CONTENT_TYPE, entry.content_type.clone());
    h.insert(header::LAST_MODIFIED, modified.header.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if entry.compressible {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }

    // Ranges are served from the identity encoding only.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds(headers, entry, modified));
    let encoding = if range.is_some()
        || !entry.compressible
        || entry.len < COMPRESS_MIN
        || entry.len > CACHE_MAX_FILE
    {
        Encoding::Identity
    } else {
        negotiate(headers)
    };
    let cached = if entry.len <= CACHE_MAX_FILE {
        match entry.cache.get() {
            Some(c) => Some(c),
            // Reading and compressing touch the disk and the CPU: off the async workers,
            // once per file.
            None => match tokio::task::block_in_place(|| load_cached(entry)) {
                Ok(c) => Some(c),
                Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "file unreadable\n"),
            },
        }
    } else {
        None
    };
    let (body_bytes, encoding) = match (cached, encoding) {
        (Some(c), Encoding::Brotli) if c.br.is_some() => (c.br.clone(), Encoding::Brotli),
        (Some(c), Encoding::Gzip | Encoding::Brotli) if c.gzip.is_some() => {
            (c.gzip.clone(), Encoding::Gzip)
        }
        (Some(c), _) => (Some(c.identity.clone()), Encoding::Identity),
        (None, _) => (None, Encoding::Identity),
    };
    h.insert(header::ETAG, entry.etag(encoding).clone());
    // Any encoding's tag of the same content validates a cached copy.
    let tag_matches = headers.contains_key(header::IF_NONE_MATCH)
        && entry
            .etags
            .iter()
            .any(|t| t.to_str().is_ok_and(|t| etag_matches(headers, t)));
    if tag_matches || not_modified_since(headers, modified.at) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    match encoding {
        Encoding::Gzip => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Encoding::Brotli => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        }
        Encoding::Identity => {}
    }

    if let Some(range) = range {
        return ranged(entry, cached.map(|c| &c.identity), range, h, head).await;
    }
    let len = body_bytes.as_ref().map_or(entry.len, |b| b.len() as u64);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if head {
        return (StatusCode::OK, h).into_response();
    }
    let body = match body_bytes {
        Some(b) => Body::from(b),
        None => match file_body(&entry.path, 0, entry.len).await {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "file unreadable\n"),
        },
    };
    (StatusCode::OK, h, body).into_response()
}

fn if_range_holds(headers: &HeaderMap, entry: &FileEntry, modified: &Modified) -> bool {
    let Some(v) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if v.starts_with('"') {
        return entry.etag(Encoding::Identity) == v;
    }
    httpdate::parse_http_date(v).is_ok_and(|d| modified.at <= d)
}

async fn file_body(path: &Path, start: u64, len: u64) -> std::io::Result<Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(start)).await?;
    Ok(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(f.take(len), 64 * 1024),
    ))
}

async fn slice(
    entry: &FileEntry,
    cached: Option<&Bytes>,
    r: &std::ops::RangeInclusive<u64>,
) -> std::io::Result<Body> {
    let (start, len) = (*r.start(), r.end() - r.start() + 1);
    match cached {
        Some(b) => Ok(Body::from(b.slice(start as usize..(start + len) as usize))),
        None => file_body(&entry.path, start, len).await,
    }
}

async fn ranged(
    entry: &FileEntry,
    cached: Option<&Bytes>,
    range: &str,
    mut h: HeaderMap,
    head: bool,
) -> Response {
    let Some(ranges) = satisfiable_ranges(range, entry.len) else {
        let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "");
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{}", entry.len)).expect("ascii"),
        );
        return r;
    };
    if let [r] = ranges.as_slice() {
        let cr = format!("bytes {}-{}/{}", r.start(), r.end(), entry.len);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&cr).expect("ascii"),
        );
        h.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(r.end() - r.start() + 1),
        );
        if head {
            return (StatusCode::PARTIAL_CONTENT, h).into_response();
        }
        return match slice(entry, cached, r).await {
            Ok(body) => (StatusCode::PARTIAL_CONTENT, h, body).into_response(),
            Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "file unreadable\n"),
        };
    }
    // multipart/byteranges (RFC 9110 §14.6), streamed part by part, so a request costs
    // a buffer, not its body, and HEAD reads nothing.
    let boundary = format!("swarmsite-{:016x}", rand::random::<u64>());
    let mime = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut total = 0u64;
    for r in &ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {mime}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
            r.start(),
            r.end(),
            entry.len
        );
        total += head.len() as u64 + (r.end() - r.start() + 1);
        pieces.push(Piece::Bytes(Bytes::from(head)));
        pieces.push(match cached {
            Some(b) => Piece::Bytes(b.slice(*r.start() as usize..=*r.end() as usize)),
            None => Piece::File {
                start: *r.start(),
                len: r.end() - r.start() + 1,
            },
        });
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    total += tail.len() as u64;
    pieces.push(Piece::Bytes(Bytes::from(tail)));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            .expect("ascii"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    if head {
        return (StatusCode::PARTIAL_CONTENT, h).into_response();
    }
    let body = Body::from_stream(stream_pieces(entry.path.clone(), pieces));
    (StatusCode::PARTIAL_CONTENT, h, body).into_response()
}

/// Parts of a multipart answer at most.
pub const MAX_RANGES: usize = 32;

/// The ranges of a `Range` header value that a file of `len` bytes answers, in the
/// order asked; `None` for 416. Each lies within the file. Several must not overlap
/// (`0-,0-`: the same bytes many times, a classic amplification) and be at most
/// [`MAX_RANGES`], so a multipart answer is never longer than the file plus its part
/// headers.
pub fn satisfiable_ranges(range: &str, len: u64) -> Option<Vec<std::ops::RangeInclusive<u64>>> {
    let ranges = http_range_header::parse_range_header(range)
        .and_then(|r| r.validate(len))
        .ok()
        .filter(|r| !r.is_empty())?;
    if ranges.len() > 1 {
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| *r.start());
        if ranges.len() > MAX_RANGES || sorted.windows(2).any(|w| w[1].start() <= w[0].end()) {
            return None;
        }
    }
    Some(ranges)
}

/// A piece of a streamed answer: bytes at hand, or a stretch of the file.
enum Piece {
    Bytes(Bytes),
    File { start: u64, len: u64 },
}

/// The pieces one after the other, a file stretch read 64 KiB at a time.
fn stream_pieces(
    path: PathBuf,
    pieces: Vec<Piece>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(pieces).flat_map(move |piece| match piece {
        Piece::Bytes(b) => futures::stream::once(async move { Ok(b) }).boxed(),
        Piece::File { start, len } => {
            let path = path.clone();
            futures::stream::once(async move {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(&path).await?;
                f.seek(std::io::SeekFrom::Start(start)).await?;
                Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(
                    f.take(len),
                    64 * 1024,
                ))
            })
            .try_flatten()
            .boxed()
        }
    })
}

/// Escapes text for HTML content and double-quoted attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A generated HTML page (listings, the 404 page, the archive's pages).
pub(crate) fn html_page(status: StatusCode, page: String, head: bool) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(page)
    };
    (status, h, body).into_response()
}

/// What is percent-encoded in a path segment of a generated link.
pub(crate) const PATH_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_within_the_file_without_overlap_or_excess() {
        assert_eq!(satisfiable_ranges("bytes=0-9", 100), Some(vec![0..=9]));
        assert_eq!(satisfiable_ranges("bytes=-10", 100), Some(vec![90..=99]));
        assert_eq!(satisfiable_ranges("bytes=90-200", 100), Some(vec![90..=99]));
        assert_eq!(
            satisfiable_ranges("bytes=50-59,0-9", 100),
            Some(vec![50..=59, 0..=9])
        );
        for refused in [
            "bytes=0-,0-",
            "bytes=0-9,5-20",
            "bytes=100-",
            "items=0-1",
            "",
        ] {
            assert_eq!(satisfiable_ranges(refused, 100), None, "{refused}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let header = format!("bytes={}", many.join(","));
        assert_eq!(satisfiable_ranges(&header, 100), None);
        assert_eq!(satisfiable_ranges("bytes=0-0", 0), None);
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("/"), Some(String::new()));
        assert_eq!(clean_path("/a/b.html"), Some("a/b.html".into()));
        assert_eq!(clean_path("/docs/"), Some("docs/".into()));
        assert_eq!(clean_path("/a%20b"), Some("a b".into()));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/a/%2E%2E/b",
            "/./a",
            "/a//b",
            "/a%00b",
            "/a%5c..%5cb",
            "relative",
            "/%ff",
        ] {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }
}
