//! What both upload targets check of an opened upload: the limits they open with, and a
//! walk of what came out (no symlinks, only files and folders, counted).

use std::path::Path;

use swarmsite_node::upload::container::Limits;

pub const LIMITS: Limits = Limits {
    max_size: 1 << 20,
    max_unpacked: 1 << 20,
    max_entries: 256,
};

/// Every path under `dir`: no symlinks, every regular file counted.
pub fn walk(dir: &Path, files: &mut u64, bytes: &mut u64) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        assert!(!t.is_symlink(), "a symlink came out: {:?}", e.path());
        if t.is_dir() {
            walk(&e.path(), files, bytes);
        } else {
            assert!(t.is_file(), "{:?} is neither file nor folder", e.path());
            *files += 1;
            *bytes += e.metadata().unwrap().len();
        }
    }
}

/// After opening into `tmp/upload`: an accepted upload holds what `opened` says, within
/// the limits; a refused one left nothing; nothing was written beside it.
pub fn check_outcome<E>(tmp: &Path, outcome: Result<swarmsite_node::upload::container::Opened, E>) {
    let dest = tmp.join("upload");
    match outcome {
        Ok(opened) => {
            let (mut files, mut bytes) = (0, 0);
            walk(&dest, &mut files, &mut bytes);
            assert!(files <= opened.files && opened.files <= LIMITS.max_entries);
            assert!(bytes <= opened.bytes && opened.bytes <= LIMITS.max_unpacked);
        }
        Err(_) => assert!(!dest.exists(), "a refused upload left {dest:?} behind"),
    }
    assert!(
        std::fs::read_dir(tmp)
            .unwrap()
            .all(|e| e.unwrap().file_name() == "upload"),
        "something was written beside the upload"
    );
}
