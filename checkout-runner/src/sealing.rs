//! Sealed test data: secrets sealed to the runners' public key with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM). The app holds only the public key, so
//! it can seal a secret but never read one back; runners hold the private key.
//!
//! A sealed secret is `SWS1 ‖ key id (8) ‖ encapsulated key (32) ‖ ciphertext ‖ tag (16)`, and is
//! bound to where it belongs (the caller's associated data: test and secret name), so a sealed
//! value cannot be moved to another test or field.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use sha2::Digest;
use zeroize::{Zeroize, Zeroizing};

type Kem = X25519HkdfSha256;
const MAGIC: &[u8; 4] = b"SWS1";
const INFO: &[u8] = b"siteward checkout secret v1";
const PUBLIC_PREFIX: &str = "swrk1-public:";
const PRIVATE_PREFIX: &str = "swrk1-private:";
const KEY_ID_BYTES: usize = 8;
const ENCAPPED_BYTES: usize = 32;
/// The longest secret value accepted.
pub const MAX_SECRET_BYTES: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a siteward runner key: {0}")]
    BadKey(&'static str),
    #[error("the sealed value is damaged or was not sealed for this place")]
    Damaged,
    #[error(
        "the sealed value was sealed to runner key {sealed_to}, but this runner holds key {held}"
    )]
    WrongKey { sealed_to: String, held: String },
    #[error("a secret may be at most {MAX_SECRET_BYTES} bytes")]
    TooLong,
}

fn key_id(public: &[u8]) -> [u8; KEY_ID_BYTES] {
    let digest = sha2::Sha256::digest(public);
    let mut id = [0u8; KEY_ID_BYTES];
    id.copy_from_slice(&digest[..KEY_ID_BYTES]);
    id
}

/// The runners' public key, as the app stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct RunnerPublicKey {
    key: <Kem as hpke::Kem>::PublicKey,
    id: [u8; KEY_ID_BYTES],
}

impl fmt::Debug for RunnerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunnerPublicKey({})", self.id())
    }
}

impl RunnerPublicKey {
    /// A short fingerprint naming the key pair.
    pub fn id(&self) -> String {
        hex_of(&self.id)
    }

    pub fn encode(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(self.key.to_bytes()))
    }

    pub fn decode(text: &str) -> Result<Self, SealError> {
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(SealError::BadKey("a public key starts with swrk1-public:"))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| SealError::BadKey("the public key is not base64"))?;
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| SealError::BadKey("the public key is not 32 bytes"))?;
        Ok(Self {
            id: key_id(&bytes),
            key,
        })
    }

    /// Seals `secret` for the place named by `bound_to` (e.g. `checkout-test/7/secret/cvc`).
    pub fn seal(&self, bound_to: &str, secret: &[u8]) -> Result<Vec<u8>, SealError> {
        if secret.len() > MAX_SECRET_BYTES {
            return Err(SealError::TooLong);
        }
        let mut rng = rand_core::TryRngCore::unwrap_err(rand_core::OsRng);
        let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &self.key,
            INFO,
            secret,
            bound_to.as_bytes(),
            &mut rng,
        )
        .map_err(|_| SealError::Damaged)?;
        let mut out = Vec::with_capacity(4 + KEY_ID_BYTES + ENCAPPED_BYTES + ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&encapped.to_bytes());
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }
}

/// The runners' key pair. Only runners hold it; its private half zeroizes when dropped.
pub struct RunnerKeyPair {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: RunnerPublicKey,
}

impl fmt::Debug for RunnerKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunnerKeyPair({}, private key hidden)", self.public.id())
    }
}

impl RunnerKeyPair {
    pub fn generate() -> Self {
        let mut rng = rand_core::TryRngCore::unwrap_err(rand_core::OsRng);
        let (private, public) = Kem::gen_keypair(&mut rng);
        let id = key_id(&public.to_bytes());
        Self {
            private,
            public: RunnerPublicKey { key: public, id },
        }
    }

    pub fn public(&self) -> &RunnerPublicKey {
        &self.public
    }

    /// The private key as text for the runner's key file. Handle with care.
    pub fn encode_private(&self) -> Zeroizing<String> {
        let mut bytes = self.private.to_bytes();
        let text = Zeroizing::new(format!("{PRIVATE_PREFIX}{}", STANDARD.encode(bytes)));
        bytes.as_mut_slice().zeroize();
        text
    }

    pub fn decode_private(text: &str) -> Result<Self, SealError> {
        let b64 = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(SealError::BadKey(
                "a private key starts with swrk1-private:",
            ))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| SealError::BadKey("the private key is not base64"))?,
        );
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map_err(|_| SealError::BadKey("the private key is not 32 bytes"))?;
        let public = Kem::sk_to_pk(&private);
        let id = key_id(&public.to_bytes());
        Ok(Self {
            private,
            public: RunnerPublicKey { key: public, id },
        })
    }

    /// Opens a sealed secret bound to `bound_to`. The plaintext zeroizes when dropped.
    pub fn open(&self, bound_to: &str, sealed: &[u8]) -> Result<SecretValue, SealError> {
        let header = 4 + KEY_ID_BYTES + ENCAPPED_BYTES;
        if sealed.len() < header + 16 || &sealed[..4] != MAGIC {
            return Err(SealError::Damaged);
        }
        let sealed_to = &sealed[4..4 + KEY_ID_BYTES];
        if sealed_to != self.public.id {
            return Err(SealError::WrongKey {
                sealed_to: hex_of(sealed_to),
                held: self.public.id(),
            });
        }
        let encapped =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[4 + KEY_ID_BYTES..header])
                .map_err(|_| SealError::Damaged)?;
        let plaintext = hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &encapped,
            INFO,
            &sealed[header..],
            bound_to.as_bytes(),
        )
        .map_err(|_| SealError::Damaged)?;
        let plaintext = Zeroizing::new(plaintext);
        let text = std::str::from_utf8(&plaintext).map_err(|_| SealError::Damaged)?;
        Ok(SecretValue(Zeroizing::new(text.to_owned())))
    }
}

/// Where a secret of a checkout test belongs, and so what its seal is bound to: the test, the
/// secret's name and the hosts the test may open (`host_binding`). A value sealed for one test,
/// name or set of hosts does not open for another, so widening a test's `allowed_hosts` (or
/// moving its target) cannot send its secrets to a new site: they must be entered again.
pub fn secret_place(test_id: i64, name: &str, hosts: &str) -> String {
    format!("checkout-test/{test_id}/secret/{name}/hosts/{hosts}")
}

/// The hosts a test may open, in one canonical form (sorted, no repeats).
pub fn host_binding(hosts: &[crate::plan::HostPattern]) -> String {
    let mut hosts: Vec<&str> = hosts.iter().map(|h| h.0.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.join(",")
}

/// The key id a sealed value was sealed to, if it looks like one.
pub fn sealed_key_id(sealed: &[u8]) -> Option<String> {
    (sealed.len() > 4 + KEY_ID_BYTES && &sealed[..4] == MAGIC)
        .then(|| hex_of(&sealed[4..4 + KEY_ID_BYTES]))
}

/// An opened secret. Zeroized on drop; its `Debug` never shows the value.
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// A secret given to this process directly rather than sealed: `siteward checkout` reads
    /// them from the environment or a file on the machine of the person writing the test.
    pub fn local(value: Zeroizing<String>) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(hidden)")
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_the_key_and_in_its_place() {
        let keys = RunnerKeyPair::generate();
        let public = RunnerPublicKey::decode(&keys.public().encode()).expect("round trip");
        assert_eq!(public.id(), keys.public().id());
        let sealed = public
            .seal("test/1/secret/card", b"4242424242424242")
            .expect("seal");
        assert!(!sealed.windows(16).any(|w| w == b"4242424242424242"));
        assert_eq!(sealed_key_id(&sealed), Some(keys.public().id()));
        let opened = keys.open("test/1/secret/card", &sealed).expect("open");
        assert_eq!(opened.expose(), "4242424242424242");
        assert_eq!(format!("{opened:?}"), "SecretValue(hidden)");

        // Moved to another place, flipped, or opened by another key: refused.
        assert_eq!(
            keys.open("test/2/secret/card", &sealed).unwrap_err(),
            SealError::Damaged
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert_eq!(
            keys.open("test/1/secret/card", &flipped).unwrap_err(),
            SealError::Damaged
        );
        let other = RunnerKeyPair::generate();
        assert!(matches!(
            other.open("test/1/secret/card", &sealed),
            Err(SealError::WrongKey { .. })
        ));
        // Sealing twice gives different bytes.
        assert_ne!(
            sealed,
            public
                .seal("test/1/secret/card", b"4242424242424242")
                .expect("seal")
        );
    }

    #[test]
    fn private_keys_round_trip_and_bad_keys_are_refused() {
        let keys = RunnerKeyPair::generate();
        let text = keys.encode_private();
        let again = RunnerKeyPair::decode_private(&text).expect("decode");
        assert_eq!(again.public().id(), keys.public().id());
        assert!(!format!("{keys:?}").contains(text.as_str()));
        assert!(RunnerKeyPair::decode_private("swrk1-private:AAAA").is_err());
        assert!(RunnerPublicKey::decode("nonsense").is_err());
        assert!(
            keys.public()
                .seal("x", &vec![b'a'; MAX_SECRET_BYTES + 1])
                .is_err()
        );
    }
}
