//! Upload container benchmark: pack and open throughput (MiB/s of input) for a 256 MiB
//! folder, next to `tar -c | zstd -3 | openssl enc -chacha20` (and back) on the same
//! machine and the same files; then the peak memory of a process packing 1 GiB.
//!
//! `bench/uploads.sh` (figures in docs/PERFORMANCE.md). Needs tar, zstd and openssl.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use swarmsite_node::keys::{MIN_BITS, PrivateKey};
use swarmsite_node::upload::container::{self, Limits};

const MIB: u64 = 1 << 20;

/// `total` bytes in 4 MiB files under `dir`: half random (like already compressed
/// scans and archives), half text (like documents and mail), as a leak might be.
fn make_input(dir: &Path, total: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let text: Vec<u8> = (0..)
        .map(|i| {
            format!(
                "{i:08} Memo to the board: the figures in annex {} were revised.\n",
                i % 97
            )
        })
        .take((4 * MIB / 64) as usize)
        .collect::<String>()
        .into_bytes();
    for i in 0..total / (4 * MIB) {
        let mut data = vec![0u8; (4 * MIB) as usize];
        if i % 2 == 0 {
            rng.fill_bytes(&mut data);
        } else {
            let n = data.len().min(text.len());
            data[..n].copy_from_slice(&text[..n]);
        }
        let path = dir.join(format!("part{}/file{i:03}.bin", i % 8));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

fn sh(script: &str) -> f64 {
    let t = Instant::now();
    let ok = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
    t.elapsed().as_secs_f64()
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn pack(key: &PrivateKey, inputs: &[PathBuf], out: &Path) -> container::Packed {
    let file = std::fs::File::create(out).unwrap();
    let mut w = BufWriter::new(file);
    let packed = container::pack(inputs, key.public(), &mut w, &Limits::default()).unwrap();
    w.flush().unwrap();
    w.into_inner().unwrap().sync_all().unwrap();
    packed
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The child process that packs 1 GiB and reports its own peak memory.
    if let Some(i) = args.iter().position(|a| a == "--pack-only") {
        let (dir, out) = (PathBuf::from(&args[i + 1]), PathBuf::from(&args[i + 2]));
        let key = PrivateKey::generate(MIN_BITS).unwrap();
        let base = peak_rss_mib();
        let packed = pack(&key, &[dir], &out);
        println!("{} {:.1} {:.1}", packed.input_bytes, base, peak_rss_mib());
        return;
    }
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let root = tmp.path();
    let input = root.join("leak");
    // Both sides read the same files, warm in the page cache.
    make_input(&input, 256 * MIB);
    let key = PrivateKey::generate(MIN_BITS).unwrap();
    let inputs = vec![input.clone()];
    let size = 256 * MIB;

    println!("input: 256 MiB in 64 files, half random, half text");
    let mut rows = Vec::new();
    for run in 1..=3 {
        let sealed = root.join("sealed.ssu");
        let t = Instant::now();
        let packed = pack(&key, &inputs, &sealed);
        let pack_s = t.elapsed().as_secs_f64();
        let dest = root.join(format!("opened{run}"));
        let t = Instant::now();
        let file = std::fs::File::open(&sealed).unwrap();
        container::open(BufReader::new(file), &[&key], &dest, &Limits::default()).unwrap();
        let open_s = t.elapsed().as_secs_f64();
        std::fs::remove_dir_all(&dest).unwrap();

        let enc = root.join("ref.tzst.enc");
        let (i, e) = (input.display(), enc.display());
        let ref_pack = sh(&format!(
            "tar -cf - -C {i}/.. leak | zstd -3 -q -c | \
             openssl enc -chacha20 -pbkdf2 -pass pass:bench -out {e}"
        ));
        let refdest = root.join(format!("ref{run}"));
        std::fs::create_dir_all(&refdest).unwrap();
        let ref_open = sh(&format!(
            "openssl enc -d -chacha20 -pbkdf2 -pass pass:bench -in {e} | zstd -d -q -c | \
             tar -xf - -C {}",
            refdest.display()
        ));
        std::fs::remove_dir_all(&refdest).unwrap();
        let ref_size = std::fs::metadata(&enc).unwrap().len();
        println!(
            "run {run}: container {} bytes (compressed {}), reference {} bytes",
            packed.size, packed.compressed, ref_size
        );
        rows.push((pack_s, open_s, ref_pack, ref_open));
    }
    println!(
        "| run | pack (swarmsite) | open (swarmsite) | tar, zstd -3, openssl chacha20 | openssl -d, zstd -d, tar -x |"
    );
    println!("|---|---|---|---|---|");
    for (n, (p, o, rp, ro)) in rows.iter().enumerate() {
        println!(
            "| {} | {:.0} MiB/s ({p:.2} s) | {:.0} MiB/s ({o:.2} s) | {:.0} MiB/s ({rp:.2} s) | {:.0} MiB/s ({ro:.2} s) |",
            n + 1,
            mib_s(size, *p),
            mib_s(size, *o),
            mib_s(size, *rp),
            mib_s(size, *ro)
        );
    }

    // Peak memory packing 1 GiB, in a process of its own.
    std::fs::remove_dir_all(&input).unwrap();
    make_input(&input, 1024 * MIB);
    let out = root.join("big.ssu");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--pack-only",
            &input.display().to_string(),
            &out.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(child.status.success(), "{child:?}");
    let line = String::from_utf8_lossy(&child.stdout);
    let parts: Vec<&str> = line.split_whitespace().collect();
    println!(
        "packing 1 GiB ({} input bytes, container {} bytes): peak RSS {} MiB (before packing {} MiB)",
        parts[0],
        std::fs::metadata(&out).unwrap().len(),
        parts[2],
        parts[1]
    );
}
