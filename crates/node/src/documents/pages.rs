//! The `/documents/` pages on the HTTP ports.
//!
//! - `/documents/`: the index (title, size, date, magnet link, local link when held),
//!   and the site's own files of its `documents/` folder, if it has one;
//! - `/documents/?q=words`: the same for the documents matching the words;
//! - `/documents/<name>`: the file itself when this node holds it (Range, conditional
//!   requests: `serve`'s machinery), else a page with the magnet link and the nearest
//!   nodes known to hold it.
//!
//! Coexistence with a site that has its own `documents/` folder: the release's own
//! files and folders under `documents/` are served as the site has them (the site wins
//! for every path it has); the archive answers the folder URL itself and every other
//! name. Every text of a record is HTML-escaped; the pages forbid scripts (CSP), and a
//! document is served sandboxed, since a leaked file is not the publisher's code.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytesize::ByteSize;

use super::view::{DocumentStatus, DocumentsView, nearest};
use crate::http_file::{PATH_SET, html_escape, html_page, serve_file};
use crate::http_server::HttpConn;

/// Results shown for one search.
const MAX_RESULTS: usize = 200;
/// Peers named in one magnet link.
const MAX_PEER_HINTS: usize = 8;
/// Holders listed on a document's page.
const MAX_HOLDERS_SHOWN: usize = 10;

/// What the archive needs from a request.
pub struct Request<'a> {
    /// Cleaned path without the leading `/` (see `http_file::clean_path`).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub conn: Option<HttpConn>,
    pub head: bool,
}

/// What the archive needs to know of the site served beside it: the site's own files
/// under `documents/` win over the archive's (the router passes the served release).
pub trait SiteFiles: Sync {
    /// True when `path` (no leading `/`) names a file or folder of the site.
    fn has(&self, path: &str) -> bool;
    /// The names in folder `dir` of the site: files, and folders with a trailing `/`.
    fn children(&self, dir: &str) -> BTreeSet<String>;
}

/// Answers `req` from the archive, or `None` when the site should answer it.
pub async fn respond(
    view: &DocumentsView,
    release: Option<&dyn SiteFiles>,
    req: Request<'_>,
) -> Option<Response> {
    if req.path == "documents" {
        let location = match req.query {
            Some(q) => format!("/documents/?{q}"),
            None => "/documents/".into(),
        };
        let mut r = html_page(StatusCode::MOVED_PERMANENTLY, String::new(), req.head);
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return Some(r);
    }
    if req.path == "documents/" {
        return Some(index(view, release, &req));
    }
    let name = req.path.strip_prefix("documents/")?;
    if name.contains('/') || release.is_some_and(|r| r.has(req.path)) {
        return None;
    }
    let doc = view.by_name(name)?;
    Some(match &doc.file {
        Some(file) => {
            let mut r = serve_file(file, &doc.modified, req.headers, req.head).await;
            let h = r.headers_mut();
            // A leaked file is not the publisher's code: no scripts, no sniffing, and
            // active types are downloaded rather than shown.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            let disposition = if is_passive(&doc.media_type) {
                "inline"
            } else {
                "attachment"
            };
            let encoded = percent_encoding::utf8_percent_encode(
                &doc.name,
                percent_encoding::NON_ALPHANUMERIC,
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("{disposition}; filename*=UTF-8''{encoded}"))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        None => document_page(view, doc, &req),
    })
}

/// Types a browser shows without running anything.
fn is_passive(media_type: &str) -> bool {
    media_type == "application/pdf"
        || media_type == "text/plain"
        || media_type == "text/csv"
        || (media_type.starts_with("image/") && media_type != "image/svg+xml")
        || media_type.starts_with("audio/")
        || media_type.starts_with("video/")
}

/// The `q` parameter of a query string, decoded (`+` is a space).
fn query_words(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("q=")?;
        let value = value.replace('+', " ");
        Some(
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned(),
        )
    })
}

/// The magnet link for `doc`, naming this node (when it holds it) and the holders
/// nearest the client.
fn magnet(view: &DocumentsView, doc: &DocumentStatus, req: &Request<'_>) -> String {
    let mut peers: Vec<SocketAddr> = Vec::new();
    if doc.seeding
        && let Some(bt) = view.bt_addr
    {
        let ip = if bt.ip().is_unspecified() {
            req.conn.map(|c| c.local.ip())
        } else {
            Some(bt.ip())
        };
        peers.extend(ip.map(|ip| SocketAddr::new(ip, bt.port())));
    }
    let client = client_ip(req);
    for a in nearest(&doc.holders, client)
        .iter()
        .filter_map(|h| h.bt_addr())
    {
        if !peers.contains(&a) {
            peers.push(a);
        }
    }
    peers.truncate(MAX_PEER_HINTS);
    doc.document.magnet(&peers)
}

fn client_ip(req: &Request<'_>) -> IpAddr {
    req.conn
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.remote.ip()
        })
}

fn date(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
        + " UTC"
}

fn local_link(doc: &DocumentStatus) -> String {
    format!(
        "/documents/{}",
        percent_encoding::utf8_percent_encode(&doc.name, PATH_SET)
    )
}

const STYLE: &str = "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4em;border-bottom:1px solid #ddd;vertical-align:top}\
.d{color:#555;font-size:.9em}.n{white-space:nowrap}</style>";

fn page(title: &str, body: &str, head: bool) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title>{STYLE}</head><body>{body}</body></html>\n",
        html_escape(title)
    );
    let mut r = html_page(StatusCode::OK, html, head);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A document's texts, escaped for HTML.
struct Shown {
    title: String,
    desc: String,
    name: String,
    mime: String,
    size: String,
    date: String,
    magnet: String,
}

fn shown(view: &DocumentsView, doc: &DocumentStatus, req: &Request<'_>) -> Shown {
    Shown {
        title: html_escape(&doc.title),
        desc: html_escape(&doc.description),
        name: html_escape(&doc.name),
        mime: html_escape(&doc.media_type),
        size: ByteSize(doc.size).display().iec().to_string(),
        date: date(doc.time),
        magnet: html_escape(&magnet(view, doc, req)),
    }
}

fn row(view: &DocumentsView, doc: &DocumentStatus, req: &Request<'_>) -> String {
    let here = if doc.held {
        format!(
            "<a href=\"{}\">download (HTTP)</a>",
            html_escape(&local_link(doc))
        )
    } else {
        format!(
            "<a href=\"{}\">not on this node</a>",
            html_escape(&local_link(doc))
        )
    };
    let Shown {
        title,
        desc,
        name,
        mime,
        size,
        date,
        magnet,
    } = shown(view, doc, req);
    format!(
        "<tr><td><b>{title}</b><div class=\"d\">{desc}</div><div class=\"d\">{name} · {mime}</div></td>\
         <td class=\"n\">{size}</td><td class=\"n\">{date}</td>\
         <td class=\"n\">{here}<br><a href=\"{magnet}\">magnet link</a></td></tr>\n",
    )
}

fn index(view: &DocumentsView, release: Option<&dyn SiteFiles>, req: &Request<'_>) -> Response {
    let q = query_words(req.query).filter(|q| !q.trim().is_empty());
    let (docs, heading): (Vec<&DocumentStatus>, String) = match &q {
        Some(q) => {
            let ids = view.index.search(q, MAX_RESULTS);
            let found: Vec<&DocumentStatus> = ids.iter().filter_map(|id| view.by_id(*id)).collect();
            let heading = format!(
                "{} {} for “{}”",
                found.len(),
                if found.len() == 1 {
                    "document"
                } else {
                    "documents"
                },
                html_escape(q)
            );
            (found, heading)
        }
        None => (
            view.documents.iter().collect(),
            format!("{} published documents", view.documents.len()),
        ),
    };
    let rows: String = docs.iter().map(|d| row(view, d, req)).collect();
    let table = if docs.is_empty() {
        "<p>No document matches.</p>".to_string()
    } else {
        format!(
            "<table><tr><th>document</th><th>size</th><th>published</th><th>get it</th></tr>\n{rows}</table>"
        )
    };
    let own: String = release
        .map(|r| r.children("documents"))
        .unwrap_or_default()
        .iter()
        .map(|n| {
            format!(
                "<li><a href=\"/documents/{}\">{}</a></li>",
                html_escape(&percent_encoding::utf8_percent_encode(n, PATH_SET).to_string()),
                html_escape(n)
            )
        })
        .collect();
    let own = if own.is_empty() {
        String::new()
    } else {
        format!("<h2>Files of this site's documents folder</h2><ul>{own}</ul>")
    };
    let body = format!(
        "<h1>Documents</h1>\
         <form action=\"/documents/\" method=\"get\"><input name=\"q\" value=\"{qv}\" placeholder=\"words of a title or description\"> <button>Search</button></form>\
         <p>{heading}. Every entry is signed by the publisher; a magnet link works in any BitTorrent client.</p>{table}{own}\
         <p class=\"d\"><a href=\"/\">Front page</a></p>",
        qv = html_escape(q.as_deref().unwrap_or("")),
    );
    page("Documents", &body, req.head)
}

fn document_page(view: &DocumentsView, doc: &DocumentStatus, req: &Request<'_>) -> Response {
    let holders: String = nearest(&doc.holders, client_ip(req))
        .iter()
        .filter_map(|h| h.http_addr())
        .take(MAX_HOLDERS_SHOWN)
        .map(|a| {
            let url = format!("http://{a}{}", local_link(doc));
            format!("<li><a href=\"{u}\">{u}</a></li>", u = html_escape(&url))
        })
        .collect();
    let holders = if holders.is_empty() {
        "<p>This node knows no other node holding it right now; the magnet link finds them through the BitTorrent network.</p>".to_string()
    } else {
        format!("<p>Nodes known to hold it, nearest first:</p><ul>{holders}</ul>")
    };
    let progress = match doc.state {
        super::choice::Local::Fetching => format!(
            "<p>This node is fetching it: {} of {}.</p>",
            ByteSize(doc.have_bytes).display().iec(),
            ByteSize(doc.size).display().iec()
        ),
        _ => String::new(),
    };
    let Shown {
        title,
        desc,
        name,
        mime,
        size,
        date,
        magnet,
    } = shown(view, doc, req);
    let body = format!(
        "<h1>{title}</h1><p>{desc}</p>\
         <p class=\"d\">{name} · {mime} · {size} · published {date}</p>\
         <p>This node does not hold this document. Get it with any BitTorrent client: \
         <a href=\"{magnet}\">magnet link</a></p>\
         <p class=\"d\"><code>{magnet}</code></p>{progress}{holders}\
         <p class=\"d\"><a href=\"/documents/\">All documents</a></p>",
    );
    page(&doc.title, &body, req.head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_types() {
        assert_eq!(
            query_words(Some("x=1&q=war+logs%21")).as_deref(),
            Some("war logs!")
        );
        assert_eq!(query_words(Some("x=1")), None);
        assert!(is_passive("application/pdf"));
        assert!(!is_passive("text/html"));
        assert!(!is_passive("image/svg+xml"));
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
    }
}
