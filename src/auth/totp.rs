//! TOTP two-factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew) and recovery
//! codes. Secrets are sealed with the master keys in the database; a code is accepted once.

use base64::Engine;
use totp_rs::{Builder, Secret, Totp};

use crate::crypto::{MasterKeys, random_bytes, token_hash};

pub const RECOVERY_CODES: usize = 10;

/// The sealing context binds a secret to its user's row.
pub fn seal_context(user_id: i64) -> String {
    format!("users.totp_secret:{user_id}")
}

pub fn new_secret() -> [u8; 20] {
    random_bytes::<20>()
}

pub fn seal(keys: &MasterKeys, user_id: i64, secret: &[u8]) -> Vec<u8> {
    keys.seal(secret, &seal_context(user_id))
}

/// Seals every two-factor secret not sealed by the current master key under it (part of
/// `siteward admin rotate-master-key`); returns how many.
pub async fn reseal_all(
    conn: &mut diesel_async::AsyncPgConnection,
    keys: &MasterKeys,
) -> Result<usize, String> {
    use crate::db::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let sealed: Vec<(i64, Vec<u8>)> = users::table
        .filter(users::totp_secret.is_not_null())
        .select((users::id, users::totp_secret.assume_not_null()))
        .load(conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut resealed = 0;
    for (user_id, secret) in sealed {
        let fresh = keys
            .reseal(&secret, &seal_context(user_id))
            .map_err(|e| format!("user {user_id}'s two-factor secret: {e}"))?;
        if let Some(fresh) = fresh {
            // Only if unchanged meanwhile (re-enrolled, disabled).
            resealed += diesel::update(
                users::table
                    .filter(users::id.eq(user_id))
                    .filter(users::totp_secret.eq(&secret)),
            )
            .set(users::totp_secret.eq(fresh))
            .execute(conn)
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(resealed)
}

fn totp(secret: &[u8]) -> Option<Totp> {
    Builder::new().with_secret(secret.to_vec()).build().ok()
}

/// Base32 for manual entry in an authenticator app.
pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// The `otpauth://` URI authenticator apps import.
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("siteward:{account}").as_bytes()).collect();
    format!(
        "otpauth://totp/{label}?secret={}&issuer=siteward&algorithm=SHA1&digits=6&period=30",
        base32(secret)
    )
}

/// The time step a valid code belongs to, if the code is valid now.
pub fn check(secret: &[u8], code: &str, unix_time: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    totp(secret)?
        .check(&code, unix_time)
        .map(|step| step as i64)
}

/// The code for a time: for tests and for showing the current code nowhere else.
pub fn code_at(secret: &[u8], unix_time: u64) -> Option<String> {
    totp(secret).map(|t| t.generate(unix_time).to_string())
}

/// Ten fresh recovery codes like `k3f9-x2mq-7hpd`, and what we store of them.
pub fn new_recovery_codes() -> Vec<(String, Vec<u8>)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<9>());
            let alphabet: String = raw
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { 'x' })
                .collect();
            let code = format!(
                "{}-{}-{}",
                &alphabet[0..4],
                &alphabet[4..8],
                &alphabet[8..12]
            );
            let hash = recovery_hash(&code);
            (code, hash)
        })
        .collect()
}

/// Recovery codes are compared case- and dash-insensitively.
pub fn recovery_hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    token_hash(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 → 94287082 (8 digits); the 6-digit code is its tail.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59).unwrap(), "287082");
        assert_eq!(check(secret, "287082", 59), Some(1));
        assert_eq!(check(secret, "287 082", 89), Some(1), "one step of skew");
        assert_eq!(check(secret, "287082", 150), None);
        assert_eq!(check(secret, "abcdef", 59), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(&recovery_hash(&code.to_uppercase().replace('-', "")), hash);
        assert_ne!(codes[0].1, codes[1].1);
    }
}
