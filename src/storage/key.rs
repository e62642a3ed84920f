//! Object keys carry ids and fixed names only — never a customer URL or anything a scanned page
//! chose — so a key reveals nothing and cannot escape its folder.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("`{0}` is not a valid artifact name (lower-case letters, digits, '-', '_', '.'; 1–64)")]
    BadName(String),
}

/// `org/<org id>/…`: the only way to name a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl ObjectKey {
    /// `org/<org>/snapshot/<snapshot>/<artifact>`, e.g. `fullpage.png`.
    pub fn snapshot_artifact(
        org_id: i64,
        snapshot_id: i64,
        artifact: &str,
    ) -> Result<ObjectKey, KeyError> {
        if !valid_name(artifact) {
            return Err(KeyError::BadName(artifact.to_string()));
        }
        Ok(ObjectKey(format!(
            "org/{org_id}/snapshot/{snapshot_id}/{artifact}"
        )))
    }

    /// `org/<org>/checkout-run/<run>/<artifact>`, e.g. `step-3.png`.
    pub fn checkout_artifact(
        org_id: i64,
        run_id: i64,
        artifact: &str,
    ) -> Result<ObjectKey, KeyError> {
        if !valid_name(artifact) {
            return Err(KeyError::BadName(artifact.to_string()));
        }
        Ok(ObjectKey(format!(
            "org/{org_id}/checkout-run/{run_id}/{artifact}"
        )))
    }

    /// The organization the blob belongs to.
    pub fn org_id(&self) -> i64 {
        self.0
            .split('/')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap_or(0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ids_and_plain_names_only() {
        let key = ObjectKey::snapshot_artifact(7, 42, "fullpage.png").unwrap();
        assert_eq!(key.as_str(), "org/7/snapshot/42/fullpage.png");
        assert_eq!(key.org_id(), 7);
        for bad in [
            "../x",
            "a/b",
            "",
            ".hidden",
            "Shop.example.com",
            "x y",
            &"a".repeat(65),
        ] {
            assert!(ObjectKey::snapshot_artifact(7, 42, bad).is_err(), "{bad:?}");
        }
    }
}
