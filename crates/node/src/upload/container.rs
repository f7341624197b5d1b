//! The sealed upload container (SPEC §7): tar → zstd → random padding to a size bucket →
//! ChaCha20-Poly1305 in the STREAM construction → the key wrapped by RSA-OAEP-SHA-256 to
//! an intake key.
//!
//! ```text
//! header (4096 bytes, zero-padded):
//!   "swarmsite-upload" | version u8 = 1 | kid (32) | wrapped-key length u16 BE |
//!   wrapped key | stream nonce (7)
//! body: 64 KiB ciphertext chunks (65,520 bytes of plaintext + 16-byte tag each), the
//!   last one shorter and sealed as last; every chunk's associated data is SHA-256 of
//!   the header
//! plaintext: one zstd frame of a tar stream, then random bytes up to the bucket, a
//!   power of two of at least 64 KiB; so the container's size depends on the bucket alone
//! ```
//!
//! What an observer learns is the bucket and the intake key's id, nothing else: file
//! names, sizes and tar metadata are inside, and tar headers are written in
//! deterministic mode (no owner, no times). Packing and opening stream: memory stays
//! at a few chunks whatever the size.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{Kid, PrivateKey, PublicKey};

pub const MAGIC: &[u8; 16] = b"swarmsite-upload";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 4096;
/// Ciphertext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// Plaintext bytes per full chunk.
const PLAIN: usize = CHUNK - TAG;
const NONCE: usize = 7;
/// The smallest container.
pub const MIN_BUCKET: u64 = 64 * 1024;
/// Default cap on a container's size.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{path}: {source}")]
    Input { path: PathBuf, source: io::Error },
    #[error("writing the container: {0}")]
    Output(io::Error),
    #[error("reading the container: {0}")]
    Read(io::Error),
    #[error("the upload needs a container of more than the {max}-byte limit")]
    TooLarge { max: u64 },
    #[error("not an upload container: {0}")]
    Malformed(&'static str),
    #[error("sealed to intake key {0}, which is not held here")]
    UnknownKey(String),
    #[error("the wrapped key does not open with the intake key")]
    BadWrappedKey,
    #[error("chunk {0} does not authenticate: tampered or truncated")]
    Tampered(u64),
    #[error("the contents are not a valid archive: {0}")]
    BadArchive(String),
    #[error("the archive unpacks to more than {0} bytes or files")]
    Bomb(u64),
    #[error("{path}: {source}")]
    Unpack { path: PathBuf, source: io::Error },
}

/// Settings for packing and opening.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest container (bytes).
    pub max_size: u64,
    /// Most bytes an archive may unpack to.
    pub max_unpacked: u64,
    /// Most entries an archive may hold.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: DEFAULT_MAX_SIZE,
            max_unpacked: 4 * DEFAULT_MAX_SIZE,
            max_entries: 1_000_000,
        }
    }
}

/// At the intake, an upload may unpack to this many times its container's size (and
/// at least [`MIN_UNPACK_CAP`], at most `Limits::default().max_unpacked`): text-heavy
/// leaks compress 5 to 20 times, a decompression bomb thousands of times.
pub const UNPACK_RATIO: u64 = 64;
/// See [`UNPACK_RATIO`]: the cap of the smallest containers.
pub const MIN_UNPACK_CAP: u64 = 64 * 1024 * 1024;

/// The most bytes a container of `size` bytes may unpack to at the intake.
pub fn unpack_cap(size: u64) -> u64 {
    size.saturating_mul(UNPACK_RATIO)
        .clamp(MIN_UNPACK_CAP, Limits::default().max_unpacked)
}

/// The bucket (padded plaintext size) for `plain` bytes of compressed archive.
pub fn bucket_for(plain: u64) -> u64 {
    plain.max(MIN_BUCKET).next_power_of_two()
}

/// The size of a container whose bucket is `bucket`.
pub fn container_size(bucket: u64) -> u64 {
    HEADER_LEN as u64 + bucket + bucket.div_ceil(PLAIN as u64) * TAG as u64
}

/// True when `size` is the size of some container (a power-of-two bucket ≥ 64 KiB):
/// what a node that cannot open a container can still check.
pub fn valid_size(size: u64) -> bool {
    let mut b = MIN_BUCKET;
    while container_size(b) < size && b < 1 << 50 {
        b *= 2;
    }
    container_size(b) == size
}

/// The checks a node without the intake key can make on a container it is handed: a
/// header that parses, sealed to a key of the intake role (`known`), a size that is a
/// container size within `max_size`.
pub fn check(
    header: &Header,
    size: u64,
    known: &[Kid],
    max_size: u64,
) -> Result<(), ContainerError> {
    if size > max_size {
        return Err(ContainerError::TooLarge { max: max_size });
    }
    if !valid_size(size) {
        return Err(ContainerError::Malformed("not a container size"));
    }
    if !known.contains(&header.kid) {
        return Err(ContainerError::UnknownKey(header.kid.short()));
    }
    Ok(())
}

/// The largest bucket whose container fits in `max_size` (0 if none does).
fn largest_bucket(max_size: u64) -> u64 {
    let mut b = MIN_BUCKET;
    if container_size(b) > max_size {
        return 0;
    }
    while container_size(b * 2) <= max_size {
        b *= 2;
    }
    b
}

/// The header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kid: Kid,
    pub wrapped: Vec<u8>,
    pub nonce: [u8; NONCE],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let mut at = 0;
        for part in [
            &MAGIC[..],
            &[VERSION],
            &self.kid.0,
            &(self.wrapped.len() as u16).to_be_bytes(),
            &self.wrapped,
            &self.nonce,
        ] {
            h[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        h
    }

    pub fn decode(h: &[u8; HEADER_LEN]) -> Result<Self, ContainerError> {
        if &h[..16] != MAGIC {
            return Err(ContainerError::Malformed("no upload magic"));
        }
        if h[16] != VERSION {
            return Err(ContainerError::Malformed("unknown container version"));
        }
        let kid = Kid::from_slice(&h[17..49]).ok_or(ContainerError::Malformed("kid"))?;
        let len = u16::from_be_bytes([h[49], h[50]]) as usize;
        if !(256..=1024).contains(&len) {
            return Err(ContainerError::Malformed("wrapped key length"));
        }
        let wrapped = h[51..51 + len].to_vec();
        let nonce: [u8; NONCE] = h[51 + len..51 + len + NONCE].try_into().expect("7");
        if h[51 + len + NONCE..].iter().any(|b| *b != 0) {
            return Err(ContainerError::Malformed("header padding"));
        }
        Ok(Header {
            kid,
            wrapped,
            nonce,
        })
    }
}

/// What a pack produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Container size (the bucket).
    pub size: u64,
    /// Bytes of the files packed.
    pub input_bytes: u64,
    /// Compressed bytes before padding.
    pub compressed: u64,
}

/// Packs `inputs` (files and folders, each under its own name) into a container sealed
/// to `intake`, written to `out`.
pub fn pack(
    inputs: &[PathBuf],
    intake: &PublicKey,
    out: impl Write,
    limits: &Limits,
) -> Result<Packed, ContainerError> {
    pack_with_progress(inputs, intake, out, limits, &mut |_| {})
}

/// [`pack`], telling `progress` the input bytes read so far as it goes.
pub fn pack_with_progress(
    inputs: &[PathBuf],
    intake: &PublicKey,
    out: impl Write,
    limits: &Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Packed, ContainerError> {
    let mut sealer = Sealer::to(intake, out, limits.max_size)?;
    let input_bytes = {
        let zstd =
            zstd::stream::write::Encoder::new(&mut sealer, 3).map_err(ContainerError::Output)?;
        let mut tar = tar::Builder::new(zstd);
        tar.mode(tar::HeaderMode::Deterministic);
        let mut total = 0u64;
        for input in inputs {
            append(&mut tar, input, &mut total, progress)?;
        }
        let zstd = tar.into_inner().map_err(map_out)?;
        zstd.finish().map_err(map_out)?;
        total
    };
    let compressed = sealer.written;
    let size = sealer.finish()?;
    Ok(Packed {
        size,
        input_bytes,
        compressed,
    })
}

/// Seals `payload` as it stands (it should be a zstd-compressed tar, but nothing checks):
/// what any sender holding the intake's public key can do. For tests and fuzzing, which
/// hand the opener archives [`pack`] would never make. Returns the container size.
pub fn seal(
    payload: &[u8],
    intake: &PublicKey,
    out: impl Write,
    limits: &Limits,
) -> Result<u64, ContainerError> {
    let mut sealer = Sealer::to(intake, out, limits.max_size)?;
    sealer.write_all(payload).map_err(map_out)?;
    sealer.finish()
}

/// How the sealer tells the layers above it (zstd, tar) that the size limit is reached.
#[derive(Debug)]
struct LimitReached(u64);

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "over the {}-byte container limit", self.0)
    }
}

impl std::error::Error for LimitReached {}

fn map_out(e: io::Error) -> ContainerError {
    match e.get_ref().and_then(|i| i.downcast_ref::<LimitReached>()) {
        Some(LimitReached(max)) => ContainerError::TooLarge { max: *max },
        None => ContainerError::Output(e),
    }
}

/// Counts the bytes read through it, telling `progress` the running total.
struct Counting<'a, R> {
    inner: R,
    total: &'a mut u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.total += n as u64;
        (self.progress)(*self.total);
        Ok(n)
    }
}

/// Appends `input` (a file, or a folder with every file below it) under its own name.
/// The folder is listed once, by the project's own lister: regular files only, links
/// refused. Adds the bytes appended to `total`.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    input: &Path,
    total: &mut u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ContainerError> {
    let err = |source| ContainerError::Input {
        path: input.to_path_buf(),
        source,
    };
    let name = Path::new(
        input
            .file_name()
            .ok_or_else(|| err(io::Error::other("has no file name")))?,
    );
    let meta = std::fs::symlink_metadata(input).map_err(err)?;
    let files: Vec<(PathBuf, PathBuf, u64)> = if meta.is_dir() {
        crate::metainfo_file::list_files(input)
            .map_err(|e| err(io::Error::other(e.to_string())))?
            .into_iter()
            .map(|f| {
                let rel: PathBuf = f.path.iter().collect();
                (input.join(&rel), name.join(&rel), f.length)
            })
            .collect()
    } else if meta.is_file() {
        vec![(input.to_path_buf(), name.to_path_buf(), meta.len())]
    } else {
        return Err(err(io::Error::other("neither a file nor a folder")));
    };
    for (path, archived, len) in files {
        let input_err = |source| ContainerError::Input {
            path: path.clone(),
            source,
        };
        let f = std::fs::File::open(&path).map_err(input_err)?;
        let meta = f.metadata().map_err(input_err)?;
        if meta.len() != len {
            return Err(input_err(io::Error::other(
                "changed while it was being packed",
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        let data = Counting {
            inner: f.take(len),
            total,
            progress,
        };
        tar.append_data(&mut header, archived, data)
            .map_err(|e| match map_out(e) {
                ContainerError::Output(source) => input_err(source),
                other => other,
            })?;
    }
    Ok(())
}

/// Encrypts plaintext written to it into chunks; `finish` pads to the bucket.
struct Sealer<W: Write> {
    out: W,
    enc: Option<EncryptorBE32<ChaCha20Poly1305>>,
    aad: [u8; 32],
    buf: Vec<u8>,
    written: u64,
    max_plain: u64,
    max_size: u64,
}

impl<W: Write> Sealer<W> {
    /// A sealer to `intake` with a fresh random key and nonce, its header written.
    fn to(intake: &PublicKey, out: W, max_size: u64) -> Result<Self, ContainerError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(&mut key[..]);
        let wrapped = intake
            .rsa()
            .encrypt(
                &mut rand::thread_rng(),
                rsa::Oaep::new::<Sha256>(),
                &key[..],
            )
            .map_err(|_| ContainerError::Malformed("the intake key cannot wrap a key"))?;
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let header = Header {
            kid: intake.kid(),
            wrapped,
            nonce,
        };
        Sealer::new(out, &header, &key, max_size)
    }

    fn new(
        mut out: W,
        header: &Header,
        key: &[u8; 32],
        max_size: u64,
    ) -> Result<Self, ContainerError> {
        let bytes = header.encode();
        out.write_all(&bytes).map_err(ContainerError::Output)?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let enc = EncryptorBE32::from_aead(cipher, header.nonce.as_slice().into());
        Ok(Sealer {
            out,
            enc: Some(enc),
            aad: Sha256::digest(bytes).into(),
            buf: Vec::with_capacity(PLAIN),
            written: 0,
            max_plain: largest_bucket(max_size),
            max_size,
        })
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        let enc = self.enc.as_mut().expect("not finished");
        let ct = enc
            .encrypt_next(Payload {
                msg: &self.buf,
                aad: &self.aad,
            })
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.out.write_all(&ct)?;
        self.buf.clear();
        Ok(())
    }

    /// Adds plaintext; a chunk goes out only once more follows (the last is sealed as
    /// last in `finish`).
    fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.buf.len() == PLAIN {
                self.flush_chunk()?;
            }
            let n = data.len().min(PLAIN - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Pads with random bytes to the bucket and seals the last chunk; returns the size.
    fn finish(mut self) -> Result<u64, ContainerError> {
        let bucket = bucket_for(self.written);
        let mut pad = bucket - self.written;
        let mut noise = vec![0u8; PLAIN];
        while pad > 0 {
            let n = (pad as usize).min(PLAIN);
            rand::thread_rng().fill_bytes(&mut noise[..n]);
            self.push(&noise[..n]).map_err(ContainerError::Output)?;
            pad -= n as u64;
        }
        let enc = self.enc.take().expect("once");
        let ct = enc
            .encrypt_last(Payload {
                msg: &self.buf,
                aad: &self.aad,
            })
            .map_err(|_| ContainerError::Output(io::Error::other("encryption failed")))?;
        self.out.write_all(&ct).map_err(ContainerError::Output)?;
        self.out.flush().map_err(ContainerError::Output)?;
        Ok(container_size(bucket))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.written + data.len() as u64 > self.max_plain {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                LimitReached(self.max_size),
            ));
        }
        self.push(data)?;
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a container's header and finds the intake key it was sealed to.
pub fn read_header(r: &mut impl Read) -> Result<Header, ContainerError> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ContainerError::Malformed("shorter than a header"),
        _ => ContainerError::Read(e),
    })?;
    Header::decode(&h)
}

/// What opening produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub size: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Opens a container with whichever of `keys` it was sealed to and unpacks it into
/// `dest`, a folder that must not exist yet: it appears whole (moved in by one rename
/// from a staging folder beside it) or not at all.
pub fn open(
    mut r: impl Read,
    keys: &[&PrivateKey],
    dest: &Path,
    limits: &Limits,
) -> Result<Opened, ContainerError> {
    let mut raw = [0u8; HEADER_LEN];
    r.read_exact(&mut raw).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ContainerError::Malformed("shorter than a header"),
        _ => ContainerError::Read(e),
    })?;
    let header = Header::decode(&raw)?;
    let key = keys
        .iter()
        .find(|k| k.kid() == header.kid)
        .ok_or_else(|| ContainerError::UnknownKey(header.kid.short()))?;
    let sym = key
        .decrypt_oaep(&header.wrapped)
        .filter(|k| k.len() == 32)
        .ok_or(ContainerError::BadWrappedKey)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&sym));
    let opener = Opener {
        inner: r,
        dec: Some(DecryptorBE32::from_aead(
            cipher,
            header.nonce.as_slice().into(),
        )),
        aad: Sha256::digest(raw).into(),
        plain: Vec::new(),
        at: 0,
        ahead: None,
        plain_total: 0,
        chunk: 0,
        size: HEADER_LEN as u64,
        max_size: limits.max_size,
        error: Default::default(),
    };
    let cause = std::rc::Rc::clone(&opener.error);
    let staging =
        crate::fsutil::Staging::new(dest, 0o700).map_err(|source| ContainerError::Unpack {
            path: dest.to_path_buf(),
            source,
        })?;
    let (opened, mut opener) = unpack(opener, staging.path(), limits)
        .map_err(|e| cause.borrow_mut().take().unwrap_or(e))?;
    // Authenticate the rest (padding and the last chunk) before the result counts.
    io::copy(&mut opener, &mut io::sink()).map_err(|e| opener.take_error(e))?;
    let size = opener.size;
    if opener.plain_total < MIN_BUCKET || !opener.plain_total.is_power_of_two() {
        return Err(ContainerError::Malformed("padded to no bucket"));
    }
    staging.commit().map_err(|source| ContainerError::Unpack {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(Opened { size, ..opened })
}

/// Unpacks a decrypted payload (one zstd frame holding a tar archive) into `dest`,
/// which must not exist yet, with the checks [`open`] makes after decryption: only files
/// and folders, nothing outside `dest`, within `limits`; `dest` appears whole or not at
/// all. For the fuzzer, which reaches zstd and tar here without an RSA decryption per
/// input (`fuzz/fuzz_targets/container_plain.rs`).
pub fn unpack_plain(
    plain: impl Read,
    dest: &Path,
    limits: &Limits,
) -> Result<Opened, ContainerError> {
    let unpack_err = |source| ContainerError::Unpack {
        path: dest.to_path_buf(),
        source,
    };
    let staging = crate::fsutil::Staging::new(dest, 0o700).map_err(unpack_err)?;
    let (opened, _) = unpack(plain, staging.path(), limits)?;
    staging.commit().map_err(unpack_err)?;
    Ok(opened)
}

fn unpack<R: Read>(opener: R, dir: &Path, limits: &Limits) -> Result<(Opened, R), ContainerError> {
    let mut zstd = zstd::stream::read::Decoder::new(opener)
        .map_err(ContainerError::Read)?
        .single_frame();
    let (mut files, mut bytes) = (0u64, 0u64);
    {
        let mut archive = tar::Archive::new(&mut zstd);
        let entries = archive
            .entries()
            .map_err(|e| ContainerError::BadArchive(e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ContainerError::BadArchive(e.to_string()))?;
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_dir()) {
                return Err(ContainerError::BadArchive(format!(
                    "entry of type {kind:?}: only files and folders are accepted"
                )));
            }
            files += 1;
            bytes += entry.size();
            if files > limits.max_entries || bytes > limits.max_unpacked {
                return Err(ContainerError::Bomb(limits.max_unpacked));
            }
            let ok = entry
                .unpack_in(dir)
                .map_err(|e| ContainerError::BadArchive(e.to_string()))?;
            if !ok {
                return Err(ContainerError::BadArchive(
                    "an entry points outside the upload".into(),
                ));
            }
        }
    }
    let opener = zstd.finish().into_inner();
    Ok((
        Opened {
            size: 0,
            files,
            bytes,
        },
        opener,
    ))
}

/// Decrypts chunk by chunk as it is read; the last chunk is the one followed by EOF.
struct Opener<R: Read> {
    inner: R,
    dec: Option<DecryptorBE32<ChaCha20Poly1305>>,
    aad: [u8; 32],
    plain: Vec<u8>,
    at: usize,
    ahead: Option<u8>,
    plain_total: u64,
    chunk: u64,
    size: u64,
    max_size: u64,
    /// The real cause of a read failure, which the layers above (zstd, tar) would
    /// otherwise turn into a generic error.
    error: std::rc::Rc<std::cell::RefCell<Option<ContainerError>>>,
}

impl<R: Read> Opener<R> {
    fn take_error(&mut self, e: io::Error) -> ContainerError {
        self.error
            .borrow_mut()
            .take()
            .unwrap_or(ContainerError::Read(e))
    }

    fn fail(&mut self, e: ContainerError) -> io::Error {
        let msg = e.to_string();
        *self.error.borrow_mut() = Some(e);
        io::Error::other(msg)
    }

    /// Reads up to one chunk plus one byte, to know whether this chunk is the last.
    fn next_chunk(&mut self) -> io::Result<()> {
        let Some(mut dec) = self.dec.take() else {
            return Ok(()); // after the last chunk: EOF
        };
        let mut ct = Vec::with_capacity(CHUNK + 1);
        ct.extend(self.ahead.take());
        let want = (CHUNK + 1 - ct.len()) as u64;
        (&mut self.inner).take(want).read_to_end(&mut ct)?;
        let last = ct.len() <= CHUNK;
        if !last {
            // The byte read ahead starts the next chunk.
            self.ahead = ct.pop();
        }
        self.size += ct.len() as u64;
        if self.size > self.max_size {
            return Err(self.fail(ContainerError::TooLarge { max: self.max_size }));
        }
        let payload = Payload {
            msg: &ct,
            aad: &self.aad,
        };
        let plain = if last {
            dec.decrypt_last(payload)
        } else {
            let p = dec.decrypt_next(payload);
            self.dec = Some(dec);
            p
        };
        let plain = match plain {
            Ok(p) => p,
            Err(_) => return Err(self.fail(ContainerError::Tampered(self.chunk))),
        };
        self.chunk += 1;
        self.plain_total += plain.len() as u64;
        self.plain = plain;
        self.at = 0;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.plain.len() {
            self.next_chunk()?;
            if self.at == self.plain.len() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[..][self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;

    fn tree(dir: &Path) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir.join("folder/sub")).unwrap();
        std::fs::write(dir.join("folder/a.txt"), b"alpha").unwrap();
        let mut noise = vec![0u8; 300_000];
        rand::thread_rng().fill_bytes(&mut noise);
        std::fs::write(dir.join("folder/sub/b.bin"), noise).unwrap();
        std::fs::write(dir.join("note.txt"), b"read me").unwrap();
        vec![dir.join("folder"), dir.join("note.txt")]
    }

    fn seal(inputs: &[PathBuf], key: &PublicKey) -> Vec<u8> {
        let mut out = Vec::new();
        pack(inputs, key, &mut out, &Limits::default()).unwrap();
        out
    }

    #[test]
    fn a_folder_and_a_file_arrive_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let inputs = tree(&tmp.path().join("in"));
        let key = testkeys::key(0);
        let mut out = Vec::new();
        let mut seen = 0;
        let packed = pack_with_progress(
            &inputs,
            key.public(),
            &mut out,
            &Limits::default(),
            &mut |n| seen = n,
        )
        .unwrap();
        assert_eq!(packed.size, out.len() as u64);
        assert_eq!(packed.input_bytes, 5 + 300_000 + 7);
        assert_eq!(seen, packed.input_bytes, "progress reaches the whole input");
        assert!(valid_size(packed.size) && !valid_size(packed.size + 1));
        let header = read_header(&mut &out[..]).unwrap();
        check(&header, packed.size, &[key.kid()], DEFAULT_MAX_SIZE).unwrap();
        assert!(matches!(
            check(
                &header,
                packed.size,
                &[testkeys::key(1).kid()],
                DEFAULT_MAX_SIZE
            ),
            Err(ContainerError::UnknownKey(_))
        ));
        assert!(check(&header, packed.size - 1, &[key.kid()], DEFAULT_MAX_SIZE).is_err());
        assert!(check(&header, packed.size, &[key.kid()], MIN_BUCKET).is_err());
        let other = testkeys::key(1);
        let opened = open(
            &out[..],
            &[other, key],
            &tmp.path().join("out"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(opened.size, out.len() as u64);
        for f in ["folder/a.txt", "folder/sub/b.bin", "note.txt"] {
            assert_eq!(
                std::fs::read(tmp.path().join("out").join(f)).unwrap(),
                std::fs::read(tmp.path().join("in").join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn sizes_reveal_only_the_bucket() {
        let tmp = tempfile::tempdir().unwrap();
        let key = testkeys::key(0);
        let one = tmp.path().join("one");
        std::fs::write(&one, b"x").unwrap();
        let sixty = tmp.path().join("sixty");
        let mut noise = vec![0u8; 60 * 1024];
        rand::thread_rng().fill_bytes(&mut noise);
        std::fs::write(&sixty, &noise).unwrap();
        let a = seal(&[one], key.public());
        let b = seal(&[sixty], key.public());
        assert_eq!(a.len(), b.len());
        assert_eq!(a.len() as u64, container_size(MIN_BUCKET));
        // The same input twice: nothing in common past the magic and the key id.
        let c = seal(&[tmp.path().join("one")], key.public());
        assert_ne!(
            a[HEADER_LEN..HEADER_LEN + 64],
            c[HEADER_LEN..HEADER_LEN + 64]
        );
    }

    #[test]
    fn tampering_anywhere_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let inputs = tree(&tmp.path().join("in"));
        let key = testkeys::key(0);
        let sealed = seal(&inputs, key.public());
        let dest = tmp.path().join("out");
        let opens = |bytes: &[u8]| open(bytes, &[key], &dest, &Limits::default());
        // The wrapped key, a body byte, the last chunk, truncation, an extra chunk.
        let mut wrapped = sealed.clone();
        wrapped[60] ^= 1;
        assert!(matches!(
            opens(&wrapped),
            Err(ContainerError::BadWrappedKey)
        ));
        for at in [HEADER_LEN + 10, HEADER_LEN + CHUNK + 3, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[at] ^= 0x80;
            assert!(
                matches!(opens(&t), Err(ContainerError::Tampered(_))),
                "byte {at}"
            );
            assert!(!dest.exists());
        }
        let cut = &sealed[..sealed.len() - 100];
        assert!(opens(cut).is_err());
        let cut = &sealed[..HEADER_LEN + CHUNK];
        assert!(matches!(opens(cut), Err(ContainerError::Tampered(_))));
        let mut longer = sealed.clone();
        longer.extend_from_slice(&[0; 40]);
        assert!(opens(&longer).is_err());
        // Header tampering changes the associated data of every chunk.
        let mut nonce = sealed.clone();
        nonce[HEADER_LEN - 1] = 1;
        assert!(matches!(opens(&nonce), Err(ContainerError::Malformed(_))));
        assert!(matches!(
            opens(b"not a container"),
            Err(ContainerError::Malformed(_))
        ));
        assert!(!dest.exists(), "nothing half-unpacked");
        opens(&sealed).unwrap();
    }

    #[test]
    fn a_container_for_another_key_is_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let sealed = seal(&tree(&tmp.path().join("in")), testkeys::key(0).public());
        let e = open(
            &sealed[..],
            &[testkeys::key(1)],
            &tmp.path().join("out"),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ContainerError::UnknownKey(_)), "{e}");
    }

    #[test]
    fn limits_hold_on_both_sides() {
        let tmp = tempfile::tempdir().unwrap();
        let inputs = tree(&tmp.path().join("in"));
        let key = testkeys::key(0);
        let small = Limits {
            max_size: container_size(MIN_BUCKET),
            ..Limits::default()
        };
        let e = pack(&inputs, key.public(), io::sink(), &small).unwrap_err();
        assert!(matches!(e, ContainerError::TooLarge { .. }), "{e}");
        let sealed = seal(&inputs, key.public());
        let e = open(&sealed[..], &[key], &tmp.path().join("o1"), &small).unwrap_err();
        assert!(matches!(e, ContainerError::TooLarge { .. }), "{e}");
        let few = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let e = open(&sealed[..], &[key], &tmp.path().join("o2"), &few).unwrap_err();
        assert!(matches!(e, ContainerError::Bomb(_)), "{e}");
        assert!(!tmp.path().join("o2").exists());
    }

    #[test]
    fn a_bomb_is_refused_at_its_unpack_cap_with_nothing_written() {
        assert_eq!(unpack_cap(container_size(MIN_BUCKET)), MIN_UNPACK_CAP);
        assert_eq!(unpack_cap(128 << 20), 8 << 30);
        assert_eq!(unpack_cap(DEFAULT_MAX_SIZE), Limits::default().max_unpacked);
        let tmp = tempfile::tempdir().unwrap();
        let key = testkeys::key(0);
        // 65 MiB of zeros packs into the smallest container; its cap is 64 MiB.
        let zeros = vec![0u8; 65 << 20];
        let payload = hostile_payload(&[(b"bomb.bin", tar::EntryType::Regular, &zeros)]);
        drop(zeros);
        let mut sealed = Vec::new();
        super::seal(&payload, key.public(), &mut sealed, &Limits::default()).unwrap();
        assert_eq!(sealed.len() as u64, container_size(MIN_BUCKET));
        let limits = Limits {
            max_unpacked: unpack_cap(sealed.len() as u64),
            ..Limits::default()
        };
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let e = open(&sealed[..], &[key], &out.join("bomb"), &limits).unwrap_err();
        assert!(
            matches!(e, ContainerError::Bomb(c) if c == MIN_UNPACK_CAP),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing left");
        // The same archive within a cap that holds it opens (the cap is the reason).
        let roomy = Limits {
            max_unpacked: 128 << 20,
            ..Limits::default()
        };
        let o = open(&sealed[..], &[key], &out.join("fits"), &roomy).unwrap();
        assert_eq!(o.bytes, 65 << 20);
    }

    /// A zstd-compressed tar of `entries` (path bytes, type, content), written header by
    /// header so that paths `tar::Builder` would refuse get in, as an attacker's would.
    fn hostile_payload(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut raw = Vec::new();
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..path.len()].copy_from_slice(path);
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if kind.is_symlink() {
                h.set_link_name("/etc/passwd").unwrap();
            }
            h.set_cksum();
            raw.extend_from_slice(h.as_bytes());
            raw.extend_from_slice(data);
            raw.resize(raw.len().div_ceil(512) * 512, 0);
        }
        raw.extend_from_slice(&[0u8; 1024]);
        zstd::encode_all(&raw[..], 3).unwrap()
    }

    #[test]
    fn hostile_archives_sealed_to_the_intake_are_refused_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let key = testkeys::key(0);
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let open_payload = |payload: Vec<u8>, dest: &str| {
            let mut out = Vec::new();
            super::seal(&payload, key.public(), &mut out, &limits).unwrap();
            open(&out[..], &[key], &tmp.path().join(dest), &limits)
        };
        let file = tar::EntryType::Regular;
        let escape = hostile_payload(&[(b"ok.txt", file, b"fine"), (b"../evil", file, b"x")]);
        assert!(matches!(
            open_payload(escape, "a"),
            Err(ContainerError::BadArchive(_))
        ));
        assert!(!tmp.path().join("evil").exists() && !tmp.path().join("a").exists());
        let link = hostile_payload(&[(b"passwd", tar::EntryType::Symlink, b"")]);
        assert!(matches!(
            open_payload(link, "b"),
            Err(ContainerError::BadArchive(_))
        ));
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let many: Vec<(&[u8], tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_bytes(), file, &b"x"[..]))
            .collect();
        assert!(matches!(
            open_payload(hostile_payload(&many), "c"),
            Err(ContainerError::Bomb(_))
        ));
        assert!(matches!(
            open_payload(b"not zstd at all".to_vec(), "d"),
            Err(ContainerError::Read(_) | ContainerError::BadArchive(_))
        ));
        // The same made well opens.
        let fine = hostile_payload(&[(b"ok.txt", file, b"fine")]);
        assert_eq!(open_payload(fine, "e").unwrap().files, 1);
        assert_eq!(std::fs::read(tmp.path().join("e/ok.txt")).unwrap(), b"fine");
    }

    #[test]
    fn the_decrypted_inside_unpacks_with_the_same_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = Limits::default();
        let file = tar::EntryType::Regular;
        let escape = hostile_payload(&[(b"ok.txt", file, b"fine"), (b"../evil", file, b"x")]);
        let dest = tmp.path().join("a");
        assert!(matches!(
            unpack_plain(&escape[..], &dest, &limits),
            Err(ContainerError::BadArchive(_))
        ));
        assert!(!dest.exists() && !tmp.path().join("evil").exists());
        let fine = hostile_payload(&[(b"ok.txt", file, b"fine")]);
        let dest = tmp.path().join("b");
        assert_eq!(unpack_plain(&fine[..], &dest, &limits).unwrap().files, 1);
        assert_eq!(std::fs::read(dest.join("ok.txt")).unwrap(), b"fine");
    }
}
