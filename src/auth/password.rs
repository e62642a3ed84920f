//! Password hashing: bcrypt at cost 12 over a SHA-256 pre-hash (so every byte of a long
//! password counts; bcrypt alone reads only the first 72), run off the async executor.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::sha256;
use crate::web::FieldErrors;

pub const BCRYPT_COST: u32 = 12;
pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;

fn prehash(password: &str) -> String {
    STANDARD.encode(sha256(password.as_bytes()))
}

pub fn hash_blocking(password: &str) -> String {
    bcrypt::hash(prehash(password), BCRYPT_COST).expect("bcrypt accepts a 44-byte input")
}

pub fn verify_blocking(password: &str, hash: &str) -> bool {
    bcrypt::verify(prehash(password), hash).unwrap_or(false)
}

pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .expect("bcrypt hashing does not panic")
}

pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Length rules only (NIST SP 800-63B): no composition rules, no maximum below 1024.
pub fn check_new(password: &str, field: &str, errors: &mut FieldErrors) {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        errors.add(field, format!("must be at least {MIN_LENGTH} characters"));
    } else if length > MAX_LENGTH {
        errors.add(field, format!("must be at most {MAX_LENGTH} characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_passwords_count_every_byte() {
        let a = "x".repeat(100);
        let b = format!("{}y", "x".repeat(99));
        let hash = hash_blocking(&a);
        assert!(hash.starts_with("$2b$12$"));
        assert!(verify_blocking(&a, &hash));
        assert!(!verify_blocking(&b, &hash));
    }
}
