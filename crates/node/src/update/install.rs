//! Installing a verified package, and restarting into it.
//!
//! - A `.deb` goes to the package manager (`apt-get install ./x.deb`, or `dpkg -i` where
//!   apt is missing), which replaces the files and leaves the old version installed
//!   when it fails.
//! - A plain binary replaces the running one atomically: written beside it and fsynced,
//!   asked for `--version` there, then renamed over it, with the old one kept (a hard
//!   link) until the new one answered from its place; if it does not, the old one is put
//!   back.
//!
//! Either way the new binary must answer `--version` with the release's version before
//! the install counts: whatever fails, the running version stays in place and the error
//! says why.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use semver::Version;
use wait_timeout::ChildExt;

use super::manifest::PackageKind;
use crate::fsutil;

/// How long a new binary may take to answer `--version`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the package manager may take (it may wait for another one's lock).
const PACKAGE_MANAGER_TIMEOUT: Duration = Duration::from_secs(600);

/// How this copy of swarmsite was installed, which decides the package it takes and
/// how that package is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installation {
    /// By the Debian package manager, as `package`; `exe` is the binary it put in place.
    Deb { package: String, exe: PathBuf },
    /// A plain executable at `exe`, replaced in place.
    Binary { exe: PathBuf },
}

impl Installation {
    /// Finds out how the binary at `exe` was installed: owned by a Debian package
    /// (`dpkg-query -S`), or a plain file.
    pub fn detect(exe: &Path) -> Installation {
        let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
        // On merged-/usr systems dpkg may know the file under /bin rather than /usr/bin.
        let mut candidates = vec![exe.clone()];
        if let Ok(rest) = exe.strip_prefix("/usr") {
            candidates.push(Path::new("/").join(rest));
        }
        for path in candidates {
            let Ok(out) = Command::new("dpkg-query")
                .env_remove(PASSPHRASE_VAR)
                .arg("-S")
                .arg(&path)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            else {
                break; // no dpkg here
            };
            if !out.status.success() {
                continue;
            }
            if let Some(package) = owner(&String::from_utf8_lossy(&out.stdout), &path) {
                return Installation::Deb { package, exe };
            }
        }
        Installation::Binary { exe }
    }

    /// The package kind this installation takes, as the command-line program's
    /// ([`super::Program::package_kind`] gives the tray app's).
    pub fn kind(&self) -> PackageKind {
        match self {
            Installation::Deb { .. } => PackageKind::Deb,
            Installation::Binary { .. } => PackageKind::Bin,
        }
    }

    /// The binary that runs, and that a restart runs again.
    pub fn exe(&self) -> &Path {
        match self {
            Installation::Deb { exe, .. } | Installation::Binary { exe } => exe,
        }
    }
}

impl fmt::Display for Installation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Installation::Deb { package, exe } => {
                write!(f, "Debian package {package} ({})", exe.display())
            }
            Installation::Binary { exe } => write!(f, "plain binary {}", exe.display()),
        }
    }
}

/// The package owning `path` in `dpkg-query -S` output (`pkg[:arch][, pkg2]: /path`).
fn owner(output: &str, path: &Path) -> Option<String> {
    output
        .lines()
        .filter(|l| !l.starts_with("diversion by"))
        .filter_map(|l| l.rsplit_once(": "))
        .find(|(_, p)| Path::new(p.trim()) == path)
        .and_then(|(pkgs, _)| pkgs.split(", ").next())
        .map(|p| p.split(':').next().unwrap_or(p).trim().to_string())
        .filter(|p| !p.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the new binary {path} does not answer as version {version}: {why}")]
    NoAnswer {
        path: PathBuf,
        version: Version,
        why: String,
    },
    #[error(
        "the new binary answered beside {path} but not in its place ({why}); the old one was put back"
    )]
    RolledBack { path: PathBuf, why: String },
    #[error("`{command}` failed ({status}); the installed version is unchanged:\n{output}")]
    PackageManager {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "the package manager installed it, but {path} does not answer as version {version}: {why}"
    )]
    NotInPlace {
        path: PathBuf,
        version: Version,
        why: String,
    },
    #[error("a {package} package cannot update a {installation}")]
    Mismatch {
        package: PackageKind,
        installation: String,
    },
    #[error(
        "{path} is the Debian package {found:?}, not {installed:?} that is installed: refused, so that one program never replaces the other"
    )]
    OtherPackage {
        path: PathBuf,
        found: String,
        installed: String,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The environment variable a key passphrase may come in (`swarmsite --help`).
const PASSPHRASE_VAR: &str = "SWARMSITE_PASSPHRASE";

/// Installs `package` (of `kind`, release `version`) over `installation`.
pub fn install(
    installation: &Installation,
    kind: &PackageKind,
    package: &Path,
    version: &Version,
) -> Result<(), InstallError> {
    match (installation, kind) {
        (Installation::Binary { exe }, PackageKind::Bin | PackageKind::AppBin) => {
            replace_binary(exe, package, version)
        }
        (Installation::Deb { exe, package: name }, PackageKind::Deb | PackageKind::AppDeb) => {
            // The package manager would install whatever the file names itself; only
            // the package that owns this binary may come in.
            let found = deb_name(package)?;
            if found != *name {
                return Err(InstallError::OtherPackage {
                    path: package.to_path_buf(),
                    found,
                    installed: name.clone(),
                });
            }
            install_deb(package, exe, version)
        }
        _ => Err(InstallError::Mismatch {
            package: kind.clone(),
            installation: installation.to_string(),
        }),
    }
}

/// Runs `cmd` to its end or `timeout`, with its output captured.
fn run(mut cmd: Command, timeout: Duration) -> Result<(std::process::ExitStatus, String), String> {
    // The key passphrase is the node's alone: the package manager and its scripts, and
    // a binary asked its version, get no copy.
    cmd.env_remove(PASSPHRASE_VAR);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut cmd).map_err(|e| format!("cannot run it: {e}"))?;
    // Read both pipes on their own threads so a chatty child never blocks on a full pipe.
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    })
    .collect();
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no answer within {} s", timeout.as_secs()));
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut text = String::new();
    for r in readers {
        text.push_str(&String::from_utf8_lossy(&r.join().unwrap_or_default()));
    }
    Ok((status, text))
}

/// Spawns `cmd`, retrying briefly on "text file busy": a file just written may still be
/// open in a child another thread forked before it was closed.
fn spawn_retrying(cmd: &mut Command) -> io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Runs `exe --version` and checks that it names `version`.
pub fn answers(exe: &Path, version: &Version) -> Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("--version");
    let (status, out) = run(cmd, ANSWER_TIMEOUT)?;
    if !status.success() {
        return Err(format!("`--version` ended with {status}"));
    }
    let wanted = version.to_string();
    let named = out
        .split_whitespace()
        .any(|w| w.trim_start_matches('v') == wanted);
    if named {
        Ok(())
    } else {
        Err(format!("it answered {:?}", out.trim()))
    }
}

/// Removes what an interrupted replacement of `target` left beside it.
fn sweep_leftovers(dir: &Path, name: &str) {
    let prefixes = [format!(".{name}.update-"), format!(".{name}.previous-")];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| n.starts_with(p.as_str())) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes a file when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Replaces the plain binary `target` by `package` (release `version`) atomically: at
/// every moment `target` is either the old binary or a new one that answered
/// `--version`.
pub fn replace_binary(
    target: &Path,
    package: &Path,
    version: &Version,
) -> Result<(), InstallError> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io_err("binary", target)(io::ErrorKind::InvalidInput.into()))?;
    let meta = std::fs::metadata(target).map_err(io_err("reading", target))?;
    sweep_leftovers(&dir, &name);
    let nonce: u64 = rand::random();

    // 1. Write it beside the old one and flush it to disk.
    let staged = dir.join(format!(".{name}.update-{nonce:016x}"));
    let mut guard = RemoveOnDrop(Some(staged.clone()));
    {
        let mut src = std::fs::File::open(package).map_err(io_err("reading", package))?;
        let mode = executable_mode(&meta);
        let mut dst = fsutil::open_new(&staged, mode).map_err(io_err("writing", &staged))?;
        io::copy(&mut src, &mut dst).map_err(io_err("writing", &staged))?;
        dst.sync_all().map_err(io_err("writing", &staged))?;
    }
    // 2. It must run before it goes anywhere.
    answers(&staged, version).map_err(|why| InstallError::NoAnswer {
        path: staged.clone(),
        version: version.clone(),
        why,
    })?;
    // 3. Keep the old one until the new one answered from its place.
    let previous = dir.join(format!(".{name}.previous-{nonce:016x}"));
    std::fs::hard_link(target, &previous)
        .or_else(|_| std::fs::copy(target, &previous).map(|_| ()))
        .map_err(io_err("keeping the old binary as", &previous))?;
    let mut keep = RemoveOnDrop(Some(previous.clone()));
    // 4. Rename over, and make the rename durable.
    std::fs::rename(&staged, target).map_err(io_err("replacing", target))?;
    guard.0 = None;
    // From here on the old binary is only a rename away: a folder that will not sync
    // is no reason to leave the new one unchecked.
    if let Err(e) = fsutil::sync_dir(&dir) {
        tracing::warn!("syncing {}: {e}", dir.display());
    }
    // 5. Answering from its place, it stays; otherwise the old one goes back.
    if let Err(why) = answers(target, version) {
        keep.0 = None;
        std::fs::rename(&previous, target).map_err(io_err("putting back", target))?;
        let _ = fsutil::sync_dir(&dir);
        return Err(InstallError::RolledBack {
            path: target.to_path_buf(),
            why,
        });
    }
    drop(keep);
    let _ = fsutil::sync_dir(&dir);
    Ok(())
}

#[cfg(unix)]
fn executable_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    (meta.permissions().mode() & 0o7777) | 0o111
}

#[cfg(not(unix))]
fn executable_mode(_: &std::fs::Metadata) -> u32 {
    0o755
}

/// The package name a `.deb` file declares (`dpkg-deb --field FILE Package`).
pub fn deb_name(package: &Path) -> Result<String, InstallError> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("--field").arg(package).arg("Package");
    match run(cmd, ANSWER_TIMEOUT) {
        Ok((status, out)) if status.success() && !out.trim().is_empty() => {
            Ok(out.trim().to_string())
        }
        Ok((status, out)) => Err(InstallError::PackageManager {
            command: format!("dpkg-deb --field {} Package", package.display()),
            status: status.to_string(),
            output: tail(&out, 20),
        }),
        Err(why) => Err(InstallError::PackageManager {
            command: format!("dpkg-deb --field {} Package", package.display()),
            status: why,
            output: String::new(),
        }),
    }
}

/// Installs the Debian package `package` with the package manager, then checks that
/// `exe` answers as `version`.
pub fn install_deb(package: &Path, exe: &Path, version: &Version) -> Result<(), InstallError> {
    // apt takes a local file only as a path (`./x.deb` or absolute).
    let abs = std::path::absolute(package).map_err(io_err("finding", package))?;
    let apt = Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let mut cmd;
    if apt {
        cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"])
            .env("DEBIAN_FRONTEND", "noninteractive");
    } else {
        cmd = Command::new("dpkg");
        cmd.arg("-i");
    }
    cmd.arg(&abs);
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let result = run(cmd, PACKAGE_MANAGER_TIMEOUT);
    match result {
        Ok((status, _)) if status.success() => {}
        Ok((status, output)) => {
            return Err(InstallError::PackageManager {
                command,
                status: status.to_string(),
                output: tail(&output, 20),
            });
        }
        Err(why) => {
            return Err(InstallError::PackageManager {
                command,
                status: why,
                output: String::new(),
            });
        }
    }
    answers(exe, version).map_err(|why| InstallError::NotInPlace {
        path: exe.to_path_buf(),
        version: version.clone(),
        why,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Replaces this process by `exe` run with `args` (the arguments after the program
/// name). Returns only when that failed.
#[cfg(unix)]
pub fn restart(exe: &Path, args: &[OsString]) -> io::Error {
    use std::os::unix::process::CommandExt;
    Command::new(exe).args(args).exec()
}

/// Starts `exe` with `args` and exits this process (no `exec` on this platform).
#[cfg(not(unix))]
pub fn restart(exe: &Path, args: &[OsString]) -> io::Error {
    match Command::new(exe).args(args).spawn() {
        Ok(_) => std::process::exit(0),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passphrase_is_not_handed_to_what_the_installer_runs() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ${SWARMSITE_PASSPHRASE:-unset}"])
            .env(PASSPHRASE_VAR, "secret");
        let (status, out) = run(cmd, Duration::from_secs(10)).unwrap();
        assert!(status.success());
        assert_eq!(out.trim(), "unset");
    }

    #[test]
    fn dpkg_owner_lines() {
        let p = Path::new("/usr/bin/swarmsite");
        assert_eq!(
            owner("swarmsite: /usr/bin/swarmsite\n", p).as_deref(),
            Some("swarmsite")
        );
        assert_eq!(
            owner("swarmsite:amd64: /usr/bin/swarmsite\n", p).as_deref(),
            Some("swarmsite")
        );
        assert_eq!(
            owner(
                "diversion by x from: /usr/bin/swarmsite\nfoo, bar: /usr/bin/swarmsite\n",
                p
            )
            .as_deref(),
            Some("foo")
        );
        assert_eq!(owner("other: /usr/bin/other\n", p), None);
    }
}
