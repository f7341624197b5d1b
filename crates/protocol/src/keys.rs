//! RSA keys: validated public keys with their key id, and private keys that sign.
//!
//! Signatures are RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (SPEC §2).
//! Keys are parsed, generated and used for signing with RustCrypto's `rsa`; signatures
//! are verified with `ring` (already in the tree through librqbit), which is about ten
//! times faster at it (docs/PERFORMANCE.md) and touches only public values. The `rsa`
//! crate's timing advisory (RUSTSEC-2023-0071) concerns private-key operations, see
//! docs/SECURITY.md.

use std::fmt;

use rand::rngs::OsRng;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Smallest accepted modulus (SPEC §2).
pub const MIN_BITS: usize = 3072;
/// Largest accepted modulus: bounds the cost an attacker can make a verifier pay.
pub const MAX_BITS: usize = 4096;
/// The only public exponent accepted; everything sane uses it.
pub const PUBLIC_EXPONENT: u32 = 65537;

/// Key id: SHA-256 of the DER SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(pub [u8; 32]);

impl Kid {
    /// The key id of a public key given as DER SubjectPublicKeyInfo bytes.
    pub fn of_der(der: &[u8]) -> Kid {
        Kid(Sha256::digest(der).into())
    }

    /// Reads a key id from raw bytes; `None` unless exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Kid> {
        bytes.try_into().ok().map(Kid)
    }

    /// The first 16 hex digits, enough for people to tell keys apart.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({})", self.short())
    }
}

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bytes do not parse as a DER SubjectPublicKeyInfo holding an RSA key.
    #[error("not a DER RSA SubjectPublicKeyInfo")]
    BadPublicDer,
    /// The key parses but re-encodes to different bytes, which would give it a second kid.
    #[error("public key DER is not in canonical form")]
    NonCanonicalDer,
    /// The modulus has fewer than [`MIN_BITS`] bits (the size is carried).
    #[error("RSA key of {0} bits is too small (at least {MIN_BITS})")]
    TooSmall(usize),
    /// The modulus has more than [`MAX_BITS`] bits (the size is carried).
    #[error("RSA key of {0} bits is too large (at most {MAX_BITS})")]
    TooLarge(usize),
    /// The public exponent is not [`PUBLIC_EXPONENT`].
    #[error("RSA public exponent must be {PUBLIC_EXPONENT}")]
    BadExponent,
    /// The text has no `BEGIN ENCRYPTED PRIVATE KEY` PEM block.
    #[error("not an encrypted PKCS#8 PEM private key")]
    NotEncryptedPem,
    /// Decrypting or parsing the encrypted PEM failed: wrong passphrase or damaged file.
    #[error("wrong passphrase, or the key file is damaged")]
    Decrypt,
    /// The private key's components fail RSA consistency checks.
    #[error("private key is inconsistent")]
    Inconsistent,
    /// Encoding a key failed, or so did key generation; carries the `rsa` crate's message.
    #[error("key encoding failed: {0}")]
    Encode(String),
}

/// A public key that passed every check: RSA, 3072..=4096 bits, e = 65537, canonical DER.
#[derive(Clone)]
pub struct PublicKey {
    key: RsaPublicKey,
    /// PKCS#1 RSAPublicKey, the form `ring` verifies with.
    pkcs1: Vec<u8>,
    der: Vec<u8>,
    kid: Kid,
}

impl PublicKey {
    /// Parses and checks a DER SubjectPublicKeyInfo; only the canonical encoding is accepted.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = RsaPublicKey::from_public_key_der(der).map_err(|_| KeyError::BadPublicDer)?;
        let this = Self::from_rsa(key)?;
        // The kid hashes these exact bytes: another encoding of the same key would be
        // another kid, so only the canonical one is accepted.
        if this.der != der {
            return Err(KeyError::NonCanonicalDer);
        }
        Ok(this)
    }

    fn from_rsa(key: RsaPublicKey) -> Result<Self, KeyError> {
        let bits = key.n().bits();
        if bits < MIN_BITS {
            return Err(KeyError::TooSmall(bits));
        }
        if bits > MAX_BITS {
            return Err(KeyError::TooLarge(bits));
        }
        if *key.e() != BigUint::from(PUBLIC_EXPONENT) {
            return Err(KeyError::BadExponent);
        }
        let der = key
            .to_public_key_der()
            .map_err(|e| KeyError::Encode(e.to_string()))?
            .as_bytes()
            .to_vec();
        let kid = Kid::of_der(&der);
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&key)
            .map_err(|e| KeyError::Encode(e.to_string()))?
            .as_bytes()
            .to_vec();
        Ok(PublicKey {
            key,
            pkcs1,
            der,
            kid,
        })
    }

    /// The canonical DER SubjectPublicKeyInfo, the bytes the kid hashes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// This key's id.
    pub fn kid(&self) -> Kid {
        self.kid
    }

    /// Size of the modulus, in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// The underlying `rsa` crate key, e.g. for OAEP encryption.
    pub fn rsa(&self) -> &RsaPublicKey {
        &self.key
    }

    /// Checks an RSASSA-PSS-SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.key.size() {
            return false;
        }
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA256,
            &self.pkcs1,
        )
        .verify(message, signature)
        .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} bits, {})", self.bits(), self.kid.short())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for PublicKey {}

/// A private signing key.
pub struct PrivateKey {
    key: RsaPrivateKey,
    public: PublicKey,
}

impl PrivateKey {
    /// Generates a fresh key from the operating system's randomness.
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        if bits < MIN_BITS {
            return Err(KeyError::TooSmall(bits));
        }
        if bits > MAX_BITS {
            return Err(KeyError::TooLarge(bits));
        }
        let key =
            RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| KeyError::Encode(e.to_string()))?;
        Self::from_rsa(key)
    }

    fn from_rsa(key: RsaPrivateKey) -> Result<Self, KeyError> {
        key.validate().map_err(|_| KeyError::Inconsistent)?;
        let public = PublicKey::from_rsa(key.to_public_key())?;
        Ok(PrivateKey { key, public })
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The id of the matching public key.
    pub fn kid(&self) -> Kid {
        self.public.kid
    }

    /// Signs `message` with RSASSA-PSS-SHA-256 (blinded).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        rsa::pss::BlindedSigningKey::<Sha256>::new(self.key.clone())
            .sign_with_rng(&mut OsRng, message)
            .to_vec()
    }

    /// Decrypts an RSA-OAEP-SHA-256 ciphertext (used by the intake node).
    pub fn decrypt_oaep(&self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.key
            .decrypt(rsa::Oaep::new::<Sha256>(), ciphertext)
            .ok()
            .map(Zeroizing::new)
    }

    /// Encrypted PKCS#8 PEM (PBES2: scrypt + AES-256-CBC).
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<Zeroizing<String>, KeyError> {
        self.key
            .to_pkcs8_encrypted_pem(OsRng, passphrase, LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Decrypts and validates a key written by [`PrivateKey::to_encrypted_pem`].
    pub fn from_encrypted_pem(pem: &str, passphrase: &[u8]) -> Result<Self, KeyError> {
        if !pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(KeyError::NotEncryptedPem);
        }
        let key = RsaPrivateKey::from_pkcs8_encrypted_pem(pem, passphrase)
            .map_err(|_| KeyError::Decrypt)?;
        Self::from_rsa(key)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?})", self.public)
    }
}

/// Generates `n` keys using every core.
pub fn generate_keys(n: usize, bits: usize) -> Result<Vec<PrivateKey>, KeyError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .min(n.max(1));
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                s.spawn(move || {
                    (w..n)
                        .step_by(threads)
                        .map(|_| PrivateKey::generate(bits))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("keygen thread"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;

    #[test]
    fn sign_verify_and_pem_round_trip() {
        let k = testkeys::key(0);
        let sig = k.sign(b"hello");
        assert_eq!(sig.len(), 384);
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellO", &sig));
        assert!(!testkeys::key(1).public().verify(b"hello", &sig));
        let pem = k.to_encrypted_pem(b"pass").unwrap();
        let back = PrivateKey::from_encrypted_pem(&pem, b"pass").unwrap();
        assert_eq!(back.kid(), k.kid());
        assert_eq!(
            PrivateKey::from_encrypted_pem(&pem, b"wrong").unwrap_err(),
            KeyError::Decrypt
        );
        assert_eq!(
            PublicKey::from_der(k.public().der()).unwrap().kid(),
            k.kid()
        );
    }

    #[test]
    fn small_keys_are_refused() {
        let small = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let der = small.to_public_key().to_public_key_der().unwrap();
        assert_eq!(
            PublicKey::from_der(der.as_bytes()).unwrap_err(),
            KeyError::TooSmall(2048)
        );
        assert_eq!(
            PrivateKey::generate(2048).unwrap_err(),
            KeyError::TooSmall(2048)
        );
        assert_eq!(
            PublicKey::from_der(b"garbage").unwrap_err(),
            KeyError::BadPublicDer
        );
    }
}
