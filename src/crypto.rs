//! Small cryptographic building blocks: random tokens and their hashes, keyed MACs, and the
//! master keys that seal secrets kept in the database (AES-256-GCM behind a versioned header).

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Fresh random bytes from the thread's CSPRNG (ChaCha, seeded from the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A random 256-bit token as URL-safe base64 (43 characters): session cookies, reset links,
/// invitation links, API key secrets.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What we store of a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master_keys: `{0}` is not `id:base64` with a 32-byte key")]
    Malformed(String),
    #[error("master_keys: key id `{0}` must be 1–32 letters, digits, '-' or '_'")]
    BadId(String),
    #[error("master_keys: the id `{0}` appears twice")]
    Duplicate(String),
    #[error("master_key_current: no master key has the id `{0}`")]
    UnknownCurrent(String),
    #[error("master_keys: none given")]
    Empty,
    #[error("cannot keep generated master keys in {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed value is malformed or of an unknown format version")]
    Malformed,
    #[error("sealed value names master key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication: it was altered or belongs elsewhere")]
    Tampered,
}

/// Master keys by id; one is current and seals new values, all can open.
#[derive(Clone)]
pub struct MasterKeys {
    keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
    current: String,
}

const SEALED_VERSION: u8 = 1;

impl MasterKeys {
    /// `id1:base64,id2:base64`; the current one is `current` or else the last listed.
    pub fn parse(text: &str, current: Option<&str>) -> Result<MasterKeys, MasterKeyError> {
        let mut keys = BTreeMap::new();
        let mut last = None;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, encoded) = item
                .split_once(':')
                .ok_or_else(|| MasterKeyError::Malformed(redact_item(item)))?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(MasterKeyError::BadId(id.to_string()));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| MasterKeyError::Malformed(redact_item(item)))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::Malformed(redact_item(item)))?;
            if keys.insert(id.to_string(), Zeroizing::new(key)).is_some() {
                return Err(MasterKeyError::Duplicate(id.to_string()));
            }
            last = Some(id.to_string());
        }
        let current = match current {
            Some(id) if keys.contains_key(id) => id.to_string(),
            Some(id) => return Err(MasterKeyError::UnknownCurrent(id.to_string())),
            None => last.ok_or(MasterKeyError::Empty)?,
        };
        Ok(MasterKeys { keys, current })
    }

    /// Reads the generated key file, creating it (mode 0600) with one fresh key the first time.
    pub fn load_or_generate(path: &Path) -> Result<MasterKeys, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKeys::parse(&text, None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let line = Zeroizing::new(format!(
                    "generated-1:{}\n",
                    STANDARD.encode(random_bytes::<32>())
                ));
                write_private(path, line.as_bytes()).map_err(io)?;
                MasterKeys::parse(&line, None)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A key for a purpose, derived from the current master key (HMAC-SHA256 as a KDF).
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(
            self.keys[&self.current].as_slice(),
            format!("siteward derive v1 {purpose}").as_bytes(),
        ))
    }

    /// Seals `plain` so that it opens only with the same `context` (the row and column it
    /// belongs to), under the current master key.
    ///
    /// Layout: version (1) | key-id length (1) | key id | nonce (12) | AES-256-GCM ciphertext+tag.
    /// The header is authenticated along with `context`.
    pub fn seal(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let id = self.current.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + 12 + plain.len() + 16);
        out.push(SEALED_VERSION);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        let nonce = random_bytes::<12>();
        out.extend_from_slice(&nonce);
        let aad = associated_data(&out, context);
        let cipher =
            Aes256Gcm::new_from_slice(self.keys[&self.current].as_slice()).expect("32-byte key");
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&sealed);
        out
    }

    /// `sealed` sealed again under the current master key, or `None` when it already is.
    pub fn reseal(&self, sealed: &[u8], context: &str) -> Result<Option<Vec<u8>>, OpenError> {
        let id = sealed
            .get(2..2 + *sealed.get(1).ok_or(OpenError::Malformed)? as usize)
            .ok_or(OpenError::Malformed)?;
        if id == self.current.as_bytes() {
            return Ok(None);
        }
        let plain = self.open(sealed, context)?;
        Ok(Some(self.seal(&plain, context)))
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError::Malformed)?;
        if version != SEALED_VERSION {
            return Err(OpenError::Malformed);
        }
        let (&id_len, rest) = rest.split_first().ok_or(OpenError::Malformed)?;
        let id_len = id_len as usize;
        if rest.len() < id_len + 12 + 16 {
            return Err(OpenError::Malformed);
        }
        let id = std::str::from_utf8(&rest[..id_len]).map_err(|_| OpenError::Malformed)?;
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let header_len = 2 + id_len + 12;
        let nonce = &sealed[2 + id_len..header_len];
        let aad = associated_data(&sealed[..header_len], context);
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("32-byte key");
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &sealed[header_len..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Tampered)
    }
}

fn associated_data(header: &[u8], context: &str) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// Never echo key material in an error: keep only the id part.
fn redact_item(item: &str) -> String {
    match item.split_once(':') {
        Some((id, _)) => format!("{id}:…"),
        None => "(key without id)".into(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> MasterKeys {
        MasterKeys::parse(
            &format!(
                "old:{},new:{}",
                STANDARD.encode([1u8; 32]),
                STANDARD.encode([2u8; 32])
            ),
            None,
        )
        .unwrap()
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let keys = keys();
        assert_eq!(keys.current_id(), "new");
        let sealed = keys.seal(b"JBSWY3DPEHPK3PXP", "users.totp_secret:7");
        assert_eq!(
            keys.open(&sealed, "users.totp_secret:7")
                .unwrap()
                .as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            keys.open(&sealed, "users.totp_secret:8").unwrap_err(),
            OpenError::Tampered
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            keys.open(&flipped, "users.totp_secret:7").unwrap_err(),
            OpenError::Tampered
        );
        assert_eq!(
            keys.open(&sealed[..10], "x").unwrap_err(),
            OpenError::Malformed
        );
    }

    #[test]
    fn values_sealed_under_an_old_key_still_open() {
        let old_only =
            MasterKeys::parse(&format!("old:{}", STANDARD.encode([1u8; 32])), None).unwrap();
        let sealed = old_only.seal(b"secret", "ctx");
        assert_eq!(keys().open(&sealed, "ctx").unwrap().as_slice(), b"secret");
        let other =
            MasterKeys::parse(&format!("other:{}", STANDARD.encode([3u8; 32])), None).unwrap();
        assert_eq!(
            other.open(&sealed, "ctx").unwrap_err(),
            OpenError::UnknownKey("old".into())
        );
    }

    #[test]
    fn malformed_keys_are_rejected_without_echoing_them() {
        let err = MasterKeys::parse("k1:c2VjcmV0", None)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(MasterKeys::parse("", None).is_err());
        assert!(
            MasterKeys::parse(&format!("a:{}", STANDARD.encode([1u8; 32])), Some("b")).is_err()
        );
    }

    #[test]
    fn generated_keys_are_kept_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master-keys");
        let first = MasterKeys::load_or_generate(&path).unwrap();
        let again = MasterKeys::load_or_generate(&path).unwrap();
        let sealed = first.seal(b"x", "c");
        assert_eq!(again.open(&sealed, "c").unwrap().as_slice(), b"x");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
