//! Software updates through the swarm (issue 12): a signed release reaches every node,
//! each fetches and checks its platform's package alone; wrong roles, wrong digests and
//! downgrades are refused as evidence; the installers replace a plain binary atomically
//! and go through the package manager for a `.deb`; a node process with
//! `--auto-update` installs and restarts into the new binary with nothing but the
//! swarm involved.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::node::{NodeEvent, NodeHandle};
use swarmsite_node::publisher::{InitOptions, NetworkDir};
use swarmsite_node::update::install::{self, InstallError, Installation};
use swarmsite_node::update::manifest::parse_version;
use swarmsite_node::update::release::{self, PackageSpec};
use swarmsite_node::update::{PackageKind, Platform, UpdatePhase};

const PASS: &str = "update test";

fn platform() -> String {
    Platform::current().to_string()
}

fn noise(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
        .collect()
}

fn new_network(dir: &Path, tag: &str) -> NetworkDir {
    let mut opts = InitOptions::one_site(tag.parse().unwrap(), "updates");
    // Two keys per role keep key generation short; nothing here rotates.
    opts.keys_per_role = 2;
    NetworkDir::init(dir, &opts, PASS.as_bytes(), now()).unwrap()
}

/// The packages of release `version` in `dir`: this platform's plain binary (a
/// stand-in of about 1 MB), a `.deb` and a Windows installer nobody here fetches.
fn packages(dir: &Path, version: &str) -> Vec<PackageSpec> {
    std::fs::create_dir_all(dir).unwrap();
    let bin = dir.join(format!("swarmsite-{version}-{}", platform()));
    write_exe(&bin, &stand_in(version, 1_000_000));
    let deb = dir.join(format!("swarmsite_{version}_all.deb"));
    std::fs::write(&deb, noise(300_000, 1)).unwrap();
    let msi = dir.join(format!("swarmsite_{version}_x64.msi"));
    std::fs::write(&msi, noise(700_000, 2)).unwrap();
    vec![
        format!("{}:bin={}", platform(), bin.display())
            .parse()
            .unwrap(),
        format!("{}:deb={}", platform(), deb.display())
            .parse()
            .unwrap(),
        format!("windows-x86_64:msi={}", msi.display())
            .parse()
            .unwrap(),
    ]
}

fn evidence(data: &Path) -> String {
    std::fs::read_to_string(data.join("evidence.jsonl")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_reaches_five_nodes_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let net = new_network(&tmp.path().join("net"), "UPDLEAKS1");
    let v = |s| parse_version(s).unwrap();

    let publisher = OwnRuntime::spawn(node_config(
        &tmp.path().join("p"),
        &net,
        "127.0.12.1",
        vec![],
    ))
    .await;
    let p = publisher.handle.clone();
    let p_wire = p.status().wire_addr.parse().unwrap();
    let mut nodes = Vec::new();
    for i in 0..5 {
        let ip = format!("127.0.12.{}", 2 + i);
        let cfg = node_config(&tmp.path().join(format!("n{i}")), &net, &ip, vec![p_wire]);
        nodes.push(OwnRuntime::spawn(cfg).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("every node connected", 30, || {
        handles.iter().all(|h| !h.status().peers.is_empty())
    })
    .await;
    let running = handles[0].update_status().running;
    assert_eq!(running, env!("CARGO_PKG_VERSION"));

    // An older release than the one running: learned, nothing fetched.
    let old = release::prepare(
        &packages(&tmp.path().join("pkg-old"), "0.0.9"),
        v("0.0.9"),
        v("0.0.1"),
        "old".into(),
        None,
    )
    .unwrap();
    let (dir, rec) = publish_release(&net, PASS, &old, 1, |_| {});
    p.submit(rec, Some(dir)).await.unwrap();
    wait_for("the old manifest everywhere", 30, || {
        handles
            .iter()
            .all(|h| h.update_status().manifest_version == Some(1))
    })
    .await;
    for h in &handles {
        let u = h.update_status();
        assert_eq!(u.phase, UpdatePhase::UpToDate, "{u:?}");
        assert_eq!((u.package, u.progress), (None, None), "nothing fetched");
    }

    // A newer release: every node fetches its platform's package alone and checks it.
    let mut events = handles[0].subscribe();
    let specs = packages(&tmp.path().join("pkg-new"), "0.2.0");
    let new =
        release::prepare(&specs, v("0.2.0"), v("0.1.0"), "Faster sync.".into(), None).unwrap();
    let bin = new
        .manifest
        .package(&Platform::current(), &PackageKind::Bin)
        .unwrap()
        .clone();
    let (dir, rec) = publish_release(&net, PASS, &new, 2, |_| {});
    p.submit(rec, Some(dir)).await.unwrap();
    wait_for("0.2.0 ready on every node", 60, || {
        handles
            .iter()
            .all(|h| h.update_status().phase == UpdatePhase::Ready)
    })
    .await;
    let bin_bytes = std::fs::read(&specs[0].path).unwrap();
    let msi = &new
        .manifest
        .files
        .iter()
        .find(|f| f.kind == PackageKind::Msi)
        .unwrap();
    for (i, h) in handles.iter().enumerate() {
        let u = h.update_status();
        assert_eq!(u.newest.as_deref(), Some("0.2.0"));
        assert_eq!(u.notes.as_deref(), Some("Faster sync."));
        assert!(!u.installable, "an in-process node has nothing to replace");
        let pkg = u.package.clone().unwrap();
        assert_eq!(pkg.sha256, hex::encode(bin.sha256));
        assert_eq!(std::fs::read(&pkg.path).unwrap(), bin_bytes, "node {i}");
        // Only this platform's file crossed the network (and the pieces it shares).
        let fetched = u.progress.as_ref().map_or(0, |p| p.fetched_bytes);
        assert!(
            fetched <= bin.size + 2 * 16_384,
            "node {i} fetched {fetched} bytes for a {}-byte package",
            bin.size
        );
        let other = Path::new(&pkg.path).with_file_name(&msi.path);
        assert!(
            std::fs::metadata(&other).map_or(true, |m| m.len() < msi.size / 2),
            "node {i} holds no other platform's package"
        );
    }
    let mut saw_ready = false;
    while let Ok(ev) = events.try_recv() {
        if let NodeEvent::Update(u) = ev {
            saw_ready |= u.phase == UpdatePhase::Ready && u.package.is_some();
        }
    }
    assert!(saw_ready, "the event stream told of the ready package");

    // Signed by the site role: refused by every node it is pushed to, and recorded.
    let rendezvous = *SystemName::new(net.bundle().network(), kind::NOTICE, 1, 0).as_bytes();
    let next = release::prepare(
        &packages(&tmp.path().join("pkg-next"), "0.3.0"),
        v("0.3.0"),
        v("0.1.0"),
        String::new(),
        None,
    )
    .unwrap();
    let wrong_role = manifest_record(&net, PASS, &next.manifest, 3, "site");
    for h in &handles {
        let wire = h.status().wire_addr.parse().unwrap();
        hostile_push(
            "127.0.12.99",
            wire,
            rendezvous,
            vec![wrong_role.encode().unwrap()],
        )
        .await;
    }
    wait_for("the wrong role recorded everywhere", 30, || {
        (0..5).all(|i| {
            let e = evidence(&tmp.path().join(format!("n{i}")));
            e.contains("127.0.12.99") && e.contains("not-enough-signatures")
        })
    })
    .await;
    assert!(
        handles
            .iter()
            .all(|h| h.update_status().manifest_version == Some(2))
    );

    // Signed by the software role, but its package's SHA-256 is wrong: fetched, found
    // out, recorded, and the checked 0.2.0 package stays.
    let (dir, rec) = publish_release(&net, PASS, &next, 3, |m| {
        m.files.iter_mut().for_each(|f| f.sha256[0] ^= 0xff);
    });
    p.submit(rec, Some(dir)).await.unwrap();
    wait_for("the wrong digest refused everywhere", 60, || {
        handles
            .iter()
            .all(|h| h.update_status().phase == UpdatePhase::Failed)
    })
    .await;
    for (i, h) in handles.iter().enumerate() {
        let u = h.update_status();
        assert!(
            u.error.as_deref().unwrap_or("").contains("SHA-256"),
            "{u:?}"
        );
        assert_eq!(u.package.unwrap().version, "0.2.0", "node {i}");
        // Written by the evidence thread a moment after the status.
        wait_for("the evidence of the bad package", 10, || {
            evidence(&tmp.path().join(format!("n{i}"))).contains("update-bad-sha256")
        })
        .await;
    }

    // A properly signed release below one announced before: a downgrade, refused.
    let back = release::prepare(
        &packages(&tmp.path().join("pkg-back"), "0.1.5"),
        v("0.1.5"),
        v("0.1.0"),
        String::new(),
        None,
    )
    .unwrap();
    let (dir, rec) = publish_release(&net, PASS, &back, 4, |_| {});
    p.submit(rec, Some(dir)).await.unwrap();
    wait_for("the downgrade refused everywhere", 30, || {
        (0..5).all(|i| evidence(&tmp.path().join(format!("n{i}"))).contains("update-downgrade"))
    })
    .await;
    for h in &handles {
        assert_eq!(h.update_status().package.unwrap().version, "0.2.0");
    }

    for n in nodes {
        n.shutdown().await;
    }
    publisher.shutdown().await;
}

/// A copy of the real binary in a folder of its own.
fn copy_of_swarmsite(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let exe = dir.join("swarmsite");
    std::fs::copy(env!("CARGO_BIN_EXE_swarmsite"), &exe).unwrap();
    exe
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_plain_binary_is_replaced_atomically_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let v = |s| parse_version(s).unwrap();
    let running = env!("CARGO_PKG_VERSION");
    let pkg = |name: &str, body: &str| {
        let p = tmp.path().join(name);
        write_exe(&p, body.as_bytes());
        p
    };

    // It answers as the new version: it replaces the copy of the real binary.
    let dir = tmp.path().join("ok");
    let exe = copy_of_swarmsite(&dir);
    install::answers(&exe, &v(running)).unwrap();
    let new = tmp.path().join("new");
    write_exe(&new, &stand_in("0.2.0", 0));
    // A leftover of an interrupted install is swept on the way.
    std::fs::write(dir.join(".swarmsite.update-00000000deadbeef"), b"half").unwrap();
    let installation = Installation::detect(&exe);
    assert_eq!(
        installation,
        Installation::Binary {
            exe: exe.canonicalize().unwrap()
        }
    );
    install::install(&installation, &PackageKind::Bin, &new, &v("0.2.0")).unwrap();
    assert_eq!(std::fs::read(&exe).unwrap(), std::fs::read(&new).unwrap());
    install::answers(&exe, &v("0.2.0")).unwrap();
    assert_eq!(listing(&dir), ["swarmsite"], "nothing left beside it");

    // Failures leave the old binary in place, answering as before, and nothing beside.
    let original = std::fs::read(env!("CARGO_BIN_EXE_swarmsite")).unwrap();
    let fails = |name: &str, package: &Path| {
        let dir = tmp.path().join(format!("install-{name}"));
        let exe = copy_of_swarmsite(&dir);
        let err = install::replace_binary(&exe, package, &v("0.2.0")).unwrap_err();
        assert!(
            std::fs::read(&exe).unwrap() == original,
            "{name}: the old binary stays"
        );
        install::answers(&exe, &v(running)).unwrap();
        assert_eq!(
            listing(&dir),
            ["swarmsite"],
            "{name}: nothing left beside it"
        );
        err
    };
    let wrong = pkg("wrong", "#!/bin/sh\necho swarmsite 0.1.9\n");
    let err = fails("wrong-version", &wrong);
    assert!(matches!(err, InstallError::NoAnswer { .. }), "{err}");
    assert!(err.to_string().contains("0.1.9"), "{err}");
    let broken = pkg("broken", "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n");
    let err = fails("broken", &broken);
    assert!(err.to_string().contains("exit status: 3"), "{err}");
    // Answers beside the old one, not in its place (a failure mid-way, after the
    // rename): the old one goes back.
    let midway = pkg(
        "midway",
        "#!/bin/sh\ncase \"$0\" in *.update-*) echo swarmsite 0.2.0 ;; *) exit 4 ;; esac\n",
    );
    let err = fails("midway", &midway);
    assert!(matches!(err, InstallError::RolledBack { .. }), "{err}");
    let missing = tmp.path().join("no-such-package");
    let err = fails("missing", &missing);
    assert!(err.to_string().contains("no-such-package"), "{err}");
}

/// Builds a Debian package `name` of `version` holding `exe` (a stand-in answering
/// `version`); `preinst_fails` adds a pre-install script that refuses.
fn build_deb(dir: &Path, name: &str, version: &str, exe: &Path, preinst_fails: bool) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    let debian = root.join("DEBIAN");
    std::fs::create_dir_all(&debian).unwrap();
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: swarmsite tests <tests@example.invalid>\n\
             Description: test package of the swarmsite updater\n"
        ),
    )
    .unwrap();
    if preinst_fails {
        write_exe(
            &debian.join("preinst"),
            b"#!/bin/sh\necho 'this package refuses to install' >&2\nexit 1\n",
        );
    }
    let inside = root.join(exe.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    write_exe(&inside, &stand_in(version, 0));
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// Removes the test package, whatever happened.
struct Purge(String);

impl Drop for Purge {
    fn drop(&mut self) {
        // apt waits for another package manager's lock; dpkg is the fallback.
        let apt = Command::new("apt-get")
            .args([
                "purge",
                "-y",
                "-q",
                "-o",
                "DPkg::Lock::Timeout=120",
                &self.0,
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !apt.is_ok_and(|s| s.success()) {
            let _ = Command::new("dpkg")
                .args(["--purge", &self.0])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn a_deb_is_installed_by_the_package_manager() {
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if String::from_utf8_lossy(&uid).trim() != "0" {
        eprintln!("SKIPPED: installing a .deb needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = |s| parse_version(s).unwrap();
    let name = format!("swarmsite-updtest-{}", std::process::id());
    let exe = PathBuf::from(format!("/usr/local/lib/{name}/swarmsite"));
    let _purge = Purge(name.clone());

    let first = build_deb(tmp.path(), &name, "0.1.0", &exe, false);
    install::install_deb(&first, &exe, &v("0.1.0")).unwrap();
    let installation = Installation::detect(&exe);
    assert_eq!(
        installation,
        Installation::Deb {
            package: name.clone(),
            exe: exe.clone()
        }
    );

    let second = build_deb(tmp.path(), &name, "0.2.0", &exe, false);
    install::install(&installation, &PackageKind::Deb, &second, &v("0.2.0")).unwrap();
    install::answers(&exe, &v("0.2.0")).unwrap();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0.2.0");

    // A package the package manager refuses: the installed version stays, and why.
    let third = build_deb(tmp.path(), &name, "0.3.0", &exe, true);
    let err = install::install(&installation, &PackageKind::Deb, &third, &v("0.3.0")).unwrap_err();
    assert!(matches!(err, InstallError::PackageManager { .. }), "{err}");
    assert!(err.to_string().contains("refuses to install"), "{err}");
    install::answers(&exe, &v("0.2.0")).unwrap();

    // A .deb of another package (the tray app's for the command line's, or the
    // reverse) is refused before the package manager sees it.
    let other_name = format!("{name}-other");
    let _purge_other = Purge(other_name.clone());
    let other = build_deb(tmp.path(), &other_name, "0.3.0", &exe, false);
    let err = install::install(&installation, &PackageKind::Deb, &other, &v("0.3.0")).unwrap_err();
    assert!(matches!(err, InstallError::OtherPackage { .. }), "{err}");
    assert!(err.to_string().contains(&other_name), "{err}");
    let out = Command::new("dpkg-query")
        .args(["-W", &other_name])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the other package was not installed");
    install::answers(&exe, &v("0.2.0")).unwrap();

    // A plain binary package cannot update a .deb installation.
    let err = install::install(&installation, &PackageKind::Bin, &second, &v("0.2.0")).unwrap_err();
    assert!(matches!(err, InstallError::Mismatch { .. }), "{err}");
}

/// The arguments of a loopback node process on `ip` (wire peer `peer`).
fn node_args(
    data: &Path,
    bundle: &Path,
    ip: &str,
    peer: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let mut more = vec!["--no-rendezvous"];
    more.extend(extra);
    node_process_args(data, bundle, ip, 7200, peer.as_slice(), &more)
}

/// A node process, killed by its pid when dropped (also when a test fails).
struct NodeProc(Child);

impl NodeProc {
    fn start(exe: &Path, data: &Path, args: &[String]) -> Self {
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "info,librqbit=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProc(child)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ok(args: &[&str]) -> String {
    swarmsite_ok(PASS, args)
}

#[test]
fn node_processes_install_the_release_and_restart_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let net = new_network(&tmp.path().join("net"), "UPDLEAKS2");
    let bundle = net.root().join("bundle.json");
    let (pdata, adata, bdata) = (
        tmp.path().join("p"),
        tmp.path().join("a"),
        tmp.path().join("b"),
    );
    // The publisher's node runs the real binary and never installs anything.
    let _publisher = NodeProc::start(
        Path::new(env!("CARGO_BIN_EXE_swarmsite")),
        &pdata,
        &node_args(&pdata, &bundle, "127.0.12.20", None, &[]),
    );
    // Two volunteers, each from a copy of the binary in a folder of its own: one
    // installs by itself, the other when told.
    let a_exe = copy_of_swarmsite(&tmp.path().join("a-bin"));
    let b_exe = copy_of_swarmsite(&tmp.path().join("b-bin"));
    let a_args = node_args(
        &adata,
        &bundle,
        "127.0.12.21",
        Some("127.0.12.20"),
        &["--auto-update"],
    );
    let b_args = node_args(&bdata, &bundle, "127.0.12.22", Some("127.0.12.20"), &[]);
    let mut a = NodeProc::start(&a_exe, &adata, &a_args);
    let mut b = NodeProc::start(&b_exe, &bdata, &b_args);
    wait_until("the control APIs", 30, || {
        [&pdata, &adata, &bdata]
            .iter()
            .all(|d| d.join("control.json").exists())
    });
    // What the stand-in writes: the arguments it was started with, one a line.
    let lines = |args: &[String]| args.join("\n") + "\n";

    // Releases need two of the software role's holders from now on: a rotation signed by
    // both (the threshold), sent through the publisher's node like any record.
    let (pd, nd) = (pdata.to_str().unwrap(), net.root().to_str().unwrap());
    let keys = net.root().join("keys/software/v1");
    let key = |f: &str| keys.join(f).to_str().unwrap().to_string();
    let out = ok(&[
        "--data-dir",
        pd,
        "keys",
        "rotate",
        "software",
        "--network",
        nd,
        "--keep",
        &key("key-1.pub"),
        "--keep",
        &key("key-2.pub"),
        "--new",
        "0",
        "--sign",
        "2",
        "--push",
    ]);
    assert!(out.contains("pushed to the local node"), "{out}");

    // Holder 1 ships 0.2.0: one signature of two, so a draft, not sent.
    let package = tmp.path().join("swarmsite-0.2.0");
    write_exe(&package, &stand_in("0.2.0", 200_000));
    let out = ok(&[
        "--data-dir",
        pd,
        "publish",
        "software",
        "--version",
        "0.2.0",
        "--notes",
        "The swarm carries its own software now.",
        &format!("{}:bin={}", platform(), package.display()),
        "--network",
        nd,
        "--key",
        &key("key-1.pem"),
        "--push",
    ]);
    assert!(
        out.contains("1 of 2 signatures") && out.contains("not pushed"),
        "{out}"
    );
    // Holder 2 signs on their own, the signatures are combined, and the publisher's
    // node seeds the packages and sends the manifest: nothing but the swarm carries it.
    let draft = net.root().join("drafts/8080-3-v1");
    let sig = tmp.path().join("holder2.sig");
    let (draft_s, sig_s) = (draft.to_str().unwrap(), sig.to_str().unwrap());
    ok(&[
        "keys",
        "sign",
        draft_s,
        "--key",
        &key("key-2.pem"),
        "-o",
        sig_s,
    ]);
    let out = ok(&[
        "--data-dir",
        pd,
        "keys",
        "combine",
        draft_s,
        sig_s,
        "--network",
        nd,
        "--push",
    ]);
    assert!(out.contains("pushed to the local node"), "{out}");

    // A installs at once and restarts into the new binary with the same arguments.
    let a_dir = a_exe.parent().unwrap();
    wait_until("A restarted into 0.2.0", 60, || {
        a_dir.join("restarted-with").exists()
    });
    assert_eq!(
        std::fs::read_to_string(a_dir.join("restarted-with")).unwrap(),
        lines(&a_args)
    );
    assert_eq!(
        std::fs::read(&a_exe).unwrap(),
        std::fs::read(&package).unwrap()
    );
    assert!(
        a.0.wait().unwrap().success(),
        "the stand-in ran in the node's process"
    );
    assert_eq!(listing(a_dir), ["restarted-with", "swarmsite"]);
    let log = std::fs::read_to_string(adata.with_extension("log")).unwrap();
    for line in ["installed swarmsite 0.2.0", "shutting down", "restarting:"] {
        assert!(log.contains(line), "{line:?} missing from A's log:\n{log}");
    }

    // B waits: `swarmsite update` shows the release, `update --install` installs it.
    let show = |data: &Path| ok(&["--data-dir", data.to_str().unwrap(), "update"]);
    wait_until("B has 0.2.0 ready", 60, || {
        show(&bdata).contains("0.2.0 ready to install")
    });
    let text = show(&bdata);
    assert!(
        text.contains("The swarm carries its own software now."),
        "{text}"
    );
    let status = ok(&["--data-dir", bdata.to_str().unwrap(), "status"]);
    assert!(status.contains("software: running"), "{status}");
    let out = ok(&["--data-dir", bdata.to_str().unwrap(), "update", "--install"]);
    assert!(out.contains("restarting"), "{out}");
    let b_dir = b_exe.parent().unwrap();
    wait_until("B restarted into 0.2.0", 30, || {
        b_dir.join("restarted-with").exists()
    });
    assert_eq!(
        std::fs::read_to_string(b_dir.join("restarted-with")).unwrap(),
        lines(&b_args)
    );
    assert!(b.0.wait().unwrap().success());

    // The publisher's node learned it too, and installed nothing.
    let p = show(&pdata);
    assert!(p.contains("0.2.0 ready to install"), "{p}");
    install::answers(
        Path::new(env!("CARGO_BIN_EXE_swarmsite")),
        &parse_version(env!("CARGO_PKG_VERSION")).unwrap(),
    )
    .unwrap();
}
