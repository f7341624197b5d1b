//! HTTP behaviour of a node's site server, over real sockets on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use swarmsite_node::serve::{Served, SiteRelease, router};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end.
fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let r = Reply {
        status,
        headers,
        body: vec![],
    };
    if r.header("transfer-encoding") == Some("chunked") {
        body = dechunk(&body);
    }
    Reply { body, ..r }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

struct Site {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn start() -> Site {
    let dir = tempfile::tempdir().unwrap();
    swarmsite_node::demo_site::write(dir.path(), 1).unwrap();
    std::fs::write(
        dir.path().join("big.bin"),
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("empty-dir")).unwrap();
    std::fs::write(dir.path().join("empty-dir/a b.txt"), "spaced").unwrap();
    let served = Served::new();
    served.switch(SiteRelease::index(dir.path(), 1, 1_795_000_000, b"d4:fake6:recorde").unwrap());
    let (addr, rt) = serve(&served);
    Site { addr, dir, _rt: rt }
}

/// Serves `served` on a loopback port, from a runtime of its own.
fn serve(served: &Arc<Served>) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::clone(served));
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rt)
}

#[test]
fn get_head_types_and_index() {
    let s = start();
    let r = request(s.addr, "GET", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.body,
        std::fs::read(s.dir.path().join("index.html")).unwrap()
    );
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert_eq!(
        r.header("last-modified"),
        Some("Wed, 18 Nov 2026 11:06:40 GMT")
    );

    let h = request(s.addr, "HEAD", "/", &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), r.header("content-length"));
    assert_eq!(h.header("etag"), r.header("etag"));

    assert_eq!(
        request(s.addr, "GET", "/style.css", &[]).header("content-type"),
        Some("text/css; charset=utf-8")
    );
    let moved = request(s.addr, "GET", "/documents", &[]);
    assert_eq!(
        (moved.status, moved.header("location")),
        (301, Some("/documents/"))
    );
    let listing = request(s.addr, "GET", "/empty-dir/", &[]);
    assert_eq!(listing.status, 200);
    assert!(String::from_utf8_lossy(&listing.body).contains("a%20b.txt"));
    assert_eq!(
        request(s.addr, "GET", "/empty-dir/a%20b.txt", &[]).body,
        b"spaced"
    );
    let missing = request(s.addr, "GET", "/nope.html", &[]);
    assert_eq!(missing.status, 404);
    assert!(String::from_utf8_lossy(&missing.body).contains("Not found"));
    assert_eq!(request(s.addr, "POST", "/", &[]).status, 405);

    let rec = request(s.addr, "GET", "/.well-known/swarmsite/release", &[]);
    assert_eq!(
        (rec.status, rec.body.as_slice()),
        (200, b"d4:fake6:recorde".as_slice())
    );
}

#[test]
fn conditional_requests() {
    let s = start();
    let r = request(s.addr, "GET", "/about.html", &[]);
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    let c = request(s.addr, "GET", "/about.html", &[("If-None-Match", &etag)]);
    assert_eq!(c.status, 304);
    assert!(c.body.is_empty());
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/about.html",
            &[("If-None-Match", "\"other\"")]
        )
        .status,
        200
    );
    assert_eq!(
        request(s.addr, "GET", "/about.html", &[("If-Modified-Since", &lm)]).status,
        304
    );
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/about.html",
            &[("If-Modified-Since", "Wed, 18 Nov 2026 11:06:39 GMT")]
        )
        .status,
        200
    );
}

#[test]
fn ranges_single_and_multi() {
    let s = start();
    let full = std::fs::read(s.dir.path().join("big.bin")).unwrap();
    let r = request(s.addr, "GET", "/big.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/3000000"));
    assert_eq!(r.body, &full[100..200]);
    let tail = request(s.addr, "GET", "/big.bin", &[("Range", "bytes=-10")]);
    assert_eq!(tail.body, &full[full.len() - 10..]);
    let small = request(s.addr, "GET", "/about.html", &[("Range", "bytes=0-4")]);
    assert_eq!(
        (small.status, small.body.as_slice()),
        (206, b"<!doc".as_slice())
    );

    let m = request(
        s.addr,
        "GET",
        "/big.bin",
        &[("Range", "bytes=0-9, 2000000-2000009")],
    );
    assert_eq!(m.status, 206);
    let ct = m.header("content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let body = String::from_utf8_lossy(&m.body);
    assert!(body.contains("Content-Range: bytes 0-9/3000000"));
    assert!(body.contains("Content-Range: bytes 2000000-2000009/3000000"));
    assert!(m.body.windows(10).any(|w| w == &full[2_000_000..2_000_010]));
    let declared: usize = m.header("content-length").unwrap().parse().unwrap();
    assert_eq!(
        declared,
        m.body.len(),
        "streamed parts add up to the length"
    );
    // The same from a file small enough to be cached in memory.
    let about = std::fs::read(s.dir.path().join("about.html")).unwrap();
    let c = request(s.addr, "GET", "/about.html", &[("Range", "bytes=0-1, 5-6")]);
    assert_eq!(c.status, 206);
    assert!(c.body.windows(2).any(|w| w == &about[5..7]));
    assert_eq!(
        c.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        c.body.len()
    );
    // HEAD says the length and sends nothing.
    let head = request(
        s.addr,
        "HEAD",
        "/big.bin",
        &[("Range", "bytes=0-9, 2000000-2000009")],
    );
    assert_eq!((head.status, head.body.len()), (206, 0));
    assert_eq!(
        head.header("content-length"),
        Some(declared.to_string().as_str())
    );
    // Overlapping ranges (the same bytes over and over) and too many parts: refused.
    let many = (0..40)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect::<Vec<_>>()
        .join(",");
    for range in [
        "bytes=0-,0-".to_string(),
        "bytes=0-99, 50-149".to_string(),
        format!("bytes={many}"),
    ] {
        let r = request(s.addr, "GET", "/big.bin", &[("Range", range.as_str())]);
        assert_eq!(
            (r.status, r.header("content-range")),
            (416, Some("bytes */3000000")),
            "{range}"
        );
    }

    let bad = request(s.addr, "GET", "/big.bin", &[("Range", "bytes=5000000-")]);
    assert_eq!(
        (bad.status, bad.header("content-range")),
        (416, Some("bytes */3000000"))
    );
    // A stale If-Range gets the whole file.
    let stale = request(
        s.addr,
        "GET",
        "/big.bin",
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!((stale.status, stale.body.len()), (200, full.len()));
}

#[test]
fn compression_is_negotiated() {
    let s = start();
    let plain = request(s.addr, "GET", "/index.html", &[]);
    let gz = request(s.addr, "GET", "/index.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("accept-encoding"));
    let mut d = flate2::read::GzDecoder::new(gz.body.as_slice());
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    assert_eq!(out, plain.body);
    let br = request(
        s.addr,
        "GET",
        "/index.html",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut out = Vec::new();
    brotli::Decompressor::new(br.body.as_slice(), 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain.body);
    assert_ne!(br.header("etag"), plain.header("etag"));
    let no = request(
        s.addr,
        "GET",
        "/index.html",
        &[("Accept-Encoding", "br;q=0, gzip;q=0")],
    );
    assert_eq!(no.header("content-encoding"), None);
    // A tag of any encoding validates the cached copy.
    let etag = br.header("etag").unwrap().to_string();
    assert_eq!(
        request(s.addr, "GET", "/index.html", &[("If-None-Match", &etag)]).status,
        304
    );
}

#[test]
fn traversal_is_refused() {
    let s = start();
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/documents/..%2f..%2fetc%2fpasswd",
        "/a/%2E%2E/b",
        "//etc/passwd",
        "/documents/%00",
    ] {
        let r = request(s.addr, "GET", path, &[]);
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("root:"),
            "{path}"
        );
    }
    // An absolute-form request target is answered from the release too.
    let abs = request(s.addr, "GET", "http://test/etc/passwd", &[]);
    assert_eq!(abs.status, 404);
}

#[test]
fn switching_releases_is_atomic_and_before_any_release_the_node_says_so() {
    let served = Served::new();
    let (addr, _rt) = serve(&served);
    assert_eq!(request(addr, "GET", "/", &[]).status, 503);
    let d1 = tempfile::tempdir().unwrap();
    swarmsite_node::demo_site::write(d1.path(), 1).unwrap();
    let d2 = tempfile::tempdir().unwrap();
    swarmsite_node::demo_site::write(d2.path(), 2).unwrap();
    served.switch(SiteRelease::index(d1.path(), 1, 1, b"v1").unwrap());
    assert!(String::from_utf8_lossy(&request(addr, "GET", "/", &[]).body).contains("Release 1"));
    served.switch(SiteRelease::index(d2.path(), 2, 2, b"v2").unwrap());
    assert!(String::from_utf8_lossy(&request(addr, "GET", "/", &[]).body).contains("Release 2"));
    assert_eq!(served.current().unwrap().version(), 2);
}
