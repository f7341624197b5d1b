//! Crash-safe file writes: nothing this crate persists is ever seen half-written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

/// File mode for secrets and private state.
pub const PRIVATE: u32 = 0o600;
/// File mode for public files.
pub const PUBLIC: u32 = 0o644;

fn temp_sibling(path: &Path, prefix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::thread_rng().r#gen();
    path.with_file_name(format!(".{prefix}-{name}-{nonce:016x}"))
}

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename,
/// fsync of the folder. Readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path);
    let tmp = temp_sibling(path, "tmp");
    let result = (|| {
        let mut file = open_new(&tmp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a new file that must not exist yet, with `mode` from the start (no window
/// in which a secret is world-readable).
pub fn open_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
}

/// Creates `path` and its parents; the last folder gets `mode` (e.g. 0o700, 0o755).
pub fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(path)?;
    #[cfg(unix)]
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a folder's entries (the rename itself) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A folder filled under a temporary name and moved into place in one rename.
/// Dropped before [`Staging::commit`], it removes itself: an interrupted job leaves
/// nothing behind (a kill -9 leaves only a `.staging-*` folder, which
/// [`sweep_staging`] removes on the next run).
pub struct Staging {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Prepares to create `target` (which must not exist yet).
    pub fn new(target: &Path, mode: u32) -> io::Result<Self> {
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", target.display()),
            ));
        }
        let parent = parent_of(target);
        fs::create_dir_all(&parent)?;
        let path = temp_sibling(target, "staging");
        create_dir(&path, mode)?;
        Ok(Staging {
            path,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one file inside the staging folder (fsynced).
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut file = open_new(&path, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(path)
    }

    /// Moves the folder into place.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        sync_dir(&self.path)?;
        if self.target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", self.target.display()),
            ));
        }
        fs::rename(&self.path, &self.target)?;
        sync_dir(&parent_of(&self.target))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Copies the file or folder `src` to `dst`, leaving files that already exist at the
/// destination alone (a fresh destination gets everything).
pub fn copy_missing(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.is_file() {
        if !dst.exists() {
            if let Some(p) = dst.parent() {
                fs::create_dir_all(p)?;
            }
            fs::copy(src, dst)?;
        }
        return Ok(());
    }
    fs::create_dir_all(dst)?;
    for e in fs::read_dir(src)? {
        let e = e?;
        copy_missing(&e.path(), &dst.join(e.file_name()))?;
    }
    Ok(())
}

/// SHA-256 of a file, read in a stream.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// Removes leftovers of interrupted writes (`.staging-*`, `.tmp-*`) in `dir`.
pub fn sweep_staging(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".staging-") || name.starts_with(".tmp-") {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_staging() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        write_atomic(&f, b"one", PRIVATE).unwrap();
        write_atomic(&f, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let target = dir.path().join("out");
        {
            let s = Staging::new(&target, 0o755).unwrap();
            s.write("x", b"1", PUBLIC).unwrap();
        }
        assert!(!target.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "dropped staging removed"
        );
        let s = Staging::new(&target, 0o755).unwrap();
        s.write("x", b"1", PUBLIC).unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read(target.join("x")).unwrap(), b"1");
        assert!(Staging::new(&target, 0o755).is_err());
    }
}
