//! The publisher tools end to end, through the real binary, in temporary folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarmsite"));
    c.env("SWARMSITE_PASSPHRASE", PASS)
        .env_remove("SWARMSITE_NETWORK")
        .env_remove("SWARMSITE_DATA_DIR");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run swarmsite")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "swarmsite {args:?} failed:\n{}",
        text(&o)
    );
    text(&o)
}

fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        !o.status.success(),
        "swarmsite {args:?} should fail:\n{}",
        text(&o)
    );
    text(&o)
}

/// One network made once per test binary (key generation is the slow part); each test
/// works on its own copy.
fn network_copy(dir: &Path) -> PathBuf {
    static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_keep, template) = TEMPLATE.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        let net = t.path().join("net");
        ok(&[
            "keys",
            "init-network",
            "--network",
            net.to_str().unwrap(),
            "--tag",
            "TESTLEAKS",
            "--site",
            "testleaks",
        ]);
        (t, net)
    });
    let dest = dir.join("net");
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    dest
}

fn site(dir: &Path, version: u32) -> PathBuf {
    let s = dir.join(format!("site{version}"));
    std::fs::create_dir_all(s.join("docs")).unwrap();
    std::fs::write(s.join("index.html"), format!("<h1>release {version}</h1>")).unwrap();
    std::fs::write(s.join("docs/report.txt"), "a document").unwrap();
    s
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn publish_site_then_verify_and_detect_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let bundle = net.join("bundle.json");
    let s1 = site(tmp.path(), 1);
    let out = ok(&["publish", "site", p(&s1), "--network", p(&net)]);
    assert!(out.contains("site release v1 accepted"), "{out}");

    let rel = net.join("published/1000-1-v1");
    let record = rel.join("record.rec");
    let torrent = rel.join("payload.torrent");
    let out = ok(&[
        "verify",
        p(&record),
        "--bundle",
        p(&bundle),
        "--torrent",
        p(&torrent),
        "--content",
        p(&s1),
    ]);
    assert!(out.contains("ACCEPTED: site release v1"), "{out}");
    assert!(
        out.contains("key 1 of current key set v1 of role site"),
        "{out}"
    );
    assert!(
        out.contains("content") && out.contains("matches the torrent"),
        "{out}"
    );
    // The published folder carries the content itself, identical to the source.
    assert_eq!(
        std::fs::read(rel.join("payload/index.html")).unwrap(),
        std::fs::read(s1.join("index.html")).unwrap()
    );

    // Flip each byte in turn: verification fails with a non-zero exit every time.
    let bytes = std::fs::read(&record).unwrap();
    let tampered = tmp.path().join("tampered.rec");
    for i in [
        0,
        10,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 50,
        bytes.len() - 2,
    ] {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        std::fs::write(&tampered, &b).unwrap();
        let o = run(&["verify", p(&tampered), "--bundle", p(&bundle)]);
        assert_eq!(o.status.code(), Some(1), "byte {i}: {}", text(&o));
        assert!(text(&o).contains("REFUSED"), "byte {i}: {}", text(&o));
    }

    // Changed content is caught against the torrent.
    std::fs::write(s1.join("index.html"), "<h1>evil</h1>").unwrap();
    let out = fails(&[
        "verify",
        p(&record),
        "--bundle",
        p(&bundle),
        "--torrent",
        p(&torrent),
        "--content",
        p(&s1),
    ]);
    assert!(out.contains("wrong-content"), "{out}");

    // The next publish is version 2.
    let s2 = site(tmp.path(), 2);
    let out = ok(&["publish", "site", p(&s2), "--network", p(&net)]);
    assert!(out.contains("site release v2 accepted"), "{out}");
    let out = fails(&[
        "publish",
        "site",
        p(&s2),
        "--network",
        p(&net),
        "--version",
        "2",
    ]);
    assert!(
        out.contains("not newer") || out.contains("already exists"),
        "{out}"
    );
}

#[test]
fn rotation_by_separate_holders_then_old_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let bundle = net.join("bundle.json");
    let k = |v: u32, i: u32, ext: &str| net.join(format!("keys/site/v{v}/key-{i}.{ext}"));

    // Key 1 is stolen: holder 2 starts the rotation alone (a draft), holder 3 signs
    // separately, and combine publishes it.
    let out = ok(&[
        "keys",
        "rotate",
        "site",
        "--network",
        p(&net),
        "--signer",
        p(&k(1, 2, "pem")),
        "--only-given",
        "--keep",
        p(&k(1, 2, "pub")),
        "--keep",
        p(&k(1, 3, "pub")),
        "--new",
        "1",
    ]);
    assert!(out.contains("1 of 2 signatures"), "{out}");
    let draft = net.join("drafts/0001-1-v2");
    let sig = tmp.path().join("holder3.sig");
    ok(&[
        "keys",
        "sign",
        p(&draft),
        "--key",
        p(&k(1, 3, "pem")),
        "-o",
        p(&sig),
    ]);
    let out = ok(&["keys", "combine", p(&draft), p(&sig), "--network", p(&net)]);
    assert!(
        out.contains("key set of role site (0x0001) v2 accepted: 2 of 2"),
        "{out}"
    );
    assert!(!draft.exists(), "draft removed once published");

    // The stolen key can no longer publish; a kept key can.
    let s1 = site(tmp.path(), 1);
    let out = fails(&[
        "publish",
        "site",
        p(&s1),
        "--network",
        p(&net),
        "--key",
        p(&k(1, 1, "pem")),
    ]);
    assert!(out.contains("is not in key set v2"), "{out}");
    ok(&[
        "publish",
        "site",
        p(&s1),
        "--network",
        p(&net),
        "--key",
        p(&k(2, 1, "pem")),
    ]);

    // A fresh client with only the bundle needs the chain to accept it.
    let record = net.join("published/1000-1-v1/record.rec");
    let out = fails(&["verify", p(&record), "--bundle", p(&bundle)]);
    assert!(out.contains("REFUSED (not-enough-signatures)"), "{out}");
    let out = ok(&[
        "verify",
        p(&record),
        "--bundle",
        p(&bundle),
        "--chain",
        p(&net.join("published")),
    ]);
    assert!(out.contains("by key set v2 of role site"), "{out}");

    // One signature alone cannot rotate.
    let out = ok(&[
        "keys",
        "rotate",
        "site",
        "--network",
        p(&net),
        "--signer",
        p(&k(2, 1, "pem")),
        "--only-given",
    ]);
    assert!(out.contains("draft") && out.contains("1 of 2"), "{out}");
}

#[test]
fn notices_files_and_blacklists() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let bundle = net.join("bundle.json");
    ok(&[
        "publish",
        "notice",
        "Keys rotated; update",
        "--severity",
        "critical",
        "--network",
        p(&net),
    ]);
    let out = ok(&[
        "verify",
        p(&net.join("published/1111-2-v1/record.rec")),
        "--bundle",
        p(&bundle),
    ]);
    assert!(
        out.contains("notice [critical]: Keys rotated; update"),
        "{out}"
    );

    let list = tmp.path().join("bl.txt");
    std::fs::write(
        &list,
        "# forgers\n192.0.2.0/24 forged releases\n2001:db8::7 spam\n",
    )
    .unwrap();
    ok(&["publish", "blacklist", p(&list), "--network", p(&net)]);
    let out = ok(&[
        "verify",
        p(&net.join("published/8080-1-v1/record.rec")),
        "--bundle",
        p(&bundle),
    ]);
    assert!(
        out.contains("blacklisted 192.0.2.0/24") && out.contains("2001:db8::7/128"),
        "{out}"
    );
    std::fs::write(&list, "192.0.2.300 nope\n").unwrap();
    let out = fails(&["publish", "blacklist", p(&list), "--network", p(&net)]);
    assert!(out.contains("bl.txt:1"), "{out}");

    let doc = tmp.path().join("leak.pdf");
    std::fs::write(&doc, vec![7u8; 100_000]).unwrap();
    let out = ok(&[
        "publish",
        "document",
        p(&doc),
        "--title",
        "The leak",
        "--description",
        "What they hid",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("document 256 (leak.pdf)"), "{out}");
    let rel = net.join("published/8080-256-v1");
    let out = ok(&[
        "verify",
        p(&rel.join("record.rec")),
        "--bundle",
        p(&bundle),
        "--torrent",
        p(&rel.join("payload.torrent")),
        "--content",
        p(&doc),
    ]);
    assert!(out.contains("ACCEPTED: published document v1"), "{out}");
    assert!(
        out.contains("document \"The leak\" (leak.pdf, application/pdf, 100000 bytes"),
        "{out}"
    );
    assert!(
        out.contains("content") && out.contains("matches the torrent"),
        "{out}"
    );
    // The same file name again: the next version of the same id; another file: a new id.
    ok(&[
        "publish",
        "document",
        p(&doc),
        "--title",
        "The leak, fixed",
        "--network",
        p(&net),
    ]);
    assert!(net.join("published/8080-256-v2/record.rec").is_file());
    let other = tmp.path().join("other.txt");
    std::fs::write(&other, "second").unwrap();
    let out = ok(&[
        "publish",
        "document",
        p(&other),
        "--title",
        "Second",
        "--network",
        p(&net),
    ]);
    assert!(
        out.contains("document 257 (other.txt): 6 bytes, text/plain"),
        "{out}"
    );
    let out = fails(&[
        "publish",
        "document",
        p(&other),
        "--title",
        "",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("title must be"), "{out}");
    let out = fails(&[
        "publish",
        "file",
        p(&doc),
        "--id",
        "256",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("publish document"), "{out}");
    let out = fails(&[
        "publish",
        "file",
        p(&doc),
        "--id",
        "7",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("not an authorized file"), "{out}");
    let out = fails(&[
        "publish",
        "file",
        p(&doc),
        "--id",
        "2",
        "--inline",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("too large for --inline"), "{out}");
    let out = fails(&[
        "publish",
        "file",
        p(&doc),
        "--id",
        "3",
        "--network",
        p(&net),
    ]);
    assert!(out.contains("publish software"), "{out}");
}

#[test]
fn bad_inputs_get_one_line_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let s1 = site(tmp.path(), 1);
    let published = net.join("published");
    let count = || std::fs::read_dir(&published).unwrap().count();

    let o = bin()
        .env("SWARMSITE_PASSPHRASE", "wrong")
        .args(["publish", "site", p(&s1), "--network", p(&net)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("key-1.pem: wrong passphrase"),
        "{}",
        text(&o)
    );
    assert_eq!(count(), 0);

    let out = fails(&[
        "publish",
        "site",
        p(&tmp.path().join("missing")),
        "--network",
        p(&net),
    ]);
    assert!(out.contains("missing"), "{out}");
    let out = fails(&["publish", "site", p(&s1), "--network", p(tmp.path())]);
    assert!(out.contains("not a network folder"), "{out}");
    assert_eq!(count(), 0);

    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let out = fails(&[
        "publish",
        "site",
        p(&s1),
        "--network",
        p(&net),
        "--key",
        p(&garbage),
    ]);
    assert!(
        out.contains("garbage.pem: not an encrypted PKCS#8 PEM private key"),
        "{out}"
    );

    let bad_bundle = tmp.path().join("bundle.json");
    std::fs::write(
        &bad_bundle,
        "{\"format\":\"swarmsite-bundle/1\",\"network\":\"SHORT\",\"sites\":[],\"keysets\":[]}",
    )
    .unwrap();
    let out = fails(&[
        "bundle",
        "add",
        p(&bad_bundle),
        "--data-dir",
        p(&tmp.path().join("data")),
    ]);
    assert!(
        out.contains("bundle.json") && out.contains("SHORT"),
        "{out}"
    );
    assert!(!tmp.path().join("data/bundles").exists());

    let rec = tmp.path().join("x.rec");
    std::fs::write(&rec, b"d4:name3:abce").unwrap();
    let o = run(&["verify", p(&rec), "--bundle", p(&net.join("bundle.json"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("REFUSED (malformed)"), "{}", text(&o));
    let out = fails(&["keys", "init-network", "--network", p(&net)]);
    assert!(out.contains("not empty"), "{out}");
    let out = fails(&[
        "keys",
        "init-network",
        "--network",
        p(&tmp.path().join("n2")),
        "--tag",
        "TOOLONGTAG",
    ]);
    assert!(out.contains("TOOLONGTAG"), "{out}");
    let out = fails(&[
        "keys",
        "init-network",
        "--network",
        p(&tmp.path().join("n3")),
        "--bits",
        "2048",
    ]);
    assert!(out.contains("2048 bits is too small"), "{out}");
    assert!(!tmp.path().join("n3").exists());
    let errors = out.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{out}");
}

#[test]
fn a_publish_killed_half_way_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let big = tmp.path().join("big");
    std::fs::create_dir(&big).unwrap();
    std::fs::write(big.join("index.html"), "<h1>big</h1>").unwrap();
    // Large enough that copying and re-hashing take a while, so the kill lands mid-way.
    let f = std::fs::File::create(big.join("archive.bin")).unwrap();
    f.set_len(512 << 20).unwrap();
    drop(f);
    let published = net.join("published");
    let mut child = bin()
        .args(["publish", "site", p(&big), "--network", p(&net)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let staged = loop {
        let staging = std::fs::read_dir(&published)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".staging-"));
        if staging
            || start.elapsed() > Duration::from_secs(120)
            || child.try_wait().unwrap().is_some()
        {
            break staging;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(staged, "publish never reached its staging phase");
    let visible: Vec<_> = std::fs::read_dir(&published)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "half-published: {visible:?}");

    // The next run sweeps the leftovers and publishes normally.
    let s = site(tmp.path(), 1);
    ok(&["publish", "site", p(&s), "--network", p(&net)]);
    let names: Vec<_> = std::fs::read_dir(&published)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("1000-1-v1")]);
}

#[test]
fn bundles_can_be_added_listed_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let data = tmp.path().join("data");
    let out = ok(&["bundle", "list", "--data-dir", p(&data)]);
    assert!(out.contains("WIKILEAKS (built in)"), "{out}");
    ok(&[
        "bundle",
        "add",
        p(&net.join("bundle.json")),
        "--data-dir",
        p(&data),
    ]);
    let out = ok(&["bundle", "list", "--data-dir", p(&data)]);
    assert!(out.contains("TESTLEAKS (added) sites testleaks"), "{out}");
    let out = fails(&["bundle", "remove", "WIKILEAKS", "--data-dir", p(&data)]);
    assert!(out.contains("built in"), "{out}");
    ok(&["bundle", "remove", "TESTLEAKS", "--data-dir", p(&data)]);
    let out = ok(&["keys", "show", p(&net.join("keys/site/v1/key-1.pub"))]);
    assert!(out.contains("3072 bits"), "{out}");
}

#[test]
fn help_is_there_for_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["keys", "init-network", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["keys", "sign", "--help"],
        vec!["keys", "combine", "--help"],
        vec!["publish", "site", "--help"],
        vec!["publish", "notice", "--help"],
        vec!["publish", "file", "--help"],
        vec!["publish", "document", "--help"],
        vec!["documents", "--help"],
        vec!["notices", "--help"],
        vec!["publish", "blacklist", "--help"],
        vec!["verify", "--help"],
        vec!["bundle", "add", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = ok(&cmd);
        assert!(out.contains("Usage:"), "{cmd:?}: {out}");
    }
}

#[test]
fn evidence_is_listed_from_the_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = ok(&["evidence", "--data-dir", p(&data)]);
    assert!(out.contains("no evidence recorded"), "{out}");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("evidence.jsonl"),
        "{\"time\":1795572600,\"peer\":\"127.0.0.66:6881\",\"reason\":\"bad-signature\",\"detail\":\"forged v3\"}\n{torn",
    )
    .unwrap();
    let out = ok(&["evidence", "--data-dir", p(&data)]);
    assert!(
        out.contains("127.0.0.66:6881 bad-signature: forged v3"),
        "{out}"
    );
    let out = ok(&["evidence", "--json", "--data-dir", p(&data)]);
    assert!(out.starts_with("{\"time\":1795572600"), "{out}");
}

#[test]
fn a_listing_cut_short_by_its_reader_ends_quietly() {
    // `swarmsite evidence | head -0`: the pipe's reading end is closed before anything
    // is written, so the listing meets a broken pipe on its first line.
    let tmp = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(["evidence", "--data-dir", p(&tmp.path().join("data"))])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn a_long_blacklist_travels_as_a_torrent() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network_copy(tmp.path());
    let list = tmp.path().join("long.txt");
    let lines: String = (0..300)
        .map(|i| format!("10.{}.{}.0/24 scanner range {i}\n", i / 256, i % 256))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let out = ok(&["publish", "blacklist", p(&list), "--network", p(&net)]);
    assert!(out.contains("blacklist of 300 entries"), "{out}");
    let rel = net.join("published/8080-1-v1");
    let out = ok(&[
        "verify",
        p(&rel.join("record.rec")),
        "--bundle",
        p(&net.join("bundle.json")),
        "--torrent",
        p(&rel.join("payload.torrent")),
    ]);
    assert!(
        out.contains("ACCEPTED: blacklist v1") && out.contains("torrent"),
        "{out}"
    );
    assert!(rel.join("payload/blacklist.bencode").is_file());
}
