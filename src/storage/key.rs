//! Object keys carry ids and fixed names only — never a customer URL or anything a scanned page
//! chose — so a key reveals nothing and cannot escape its folder.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("`{0}` is not a valid artifact name (lower-case letters, digits, '-', '_', '.'; 1–64)")]
    BadName(String),
}

/// Which attempt's blob an artifact row points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader {
    /// Uploaded by attempt `n` of its job, under a key of that attempt.
    Attempt(i32),
    /// Uploaded before keys carried the attempt (rows with `keyed_by_attempt = false`).
    Legacy,
}

impl Uploader {
    /// The uploader a recorded row names.
    pub fn of_row(attempt: i32, keyed_by_attempt: bool) -> Uploader {
        if keyed_by_attempt {
            Uploader::Attempt(attempt)
        } else {
            Uploader::Legacy
        }
    }
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
    /// `org/<org>/snapshot/<snapshot>/attempt-<n>/<artifact>`, e.g. `fullpage.png`: each attempt
    /// writes its own blobs, so one whose lease lapsed cannot overwrite the winner's.
    pub fn snapshot_artifact(
        org_id: i64,
        snapshot_id: i64,
        attempt: Uploader,
        artifact: &str,
    ) -> Result<ObjectKey, KeyError> {
        Self::artifact(
            format!("org/{org_id}/snapshot/{snapshot_id}"),
            attempt,
            artifact,
        )
    }

    /// `org/<org>/checkout-run/<run>/attempt-<n>/<artifact>`, e.g. `step-3.png`.
    pub fn checkout_artifact(
        org_id: i64,
        run_id: i64,
        attempt: Uploader,
        artifact: &str,
    ) -> Result<ObjectKey, KeyError> {
        Self::artifact(
            format!("org/{org_id}/checkout-run/{run_id}"),
            attempt,
            artifact,
        )
    }

    /// `org/<org>/comparison/<from>-<to>/<name>`: a comparison computed on request and kept.
    pub fn comparison(org_id: i64, from: i64, to: i64, name: &str) -> Result<ObjectKey, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::BadName(name.to_string()));
        }
        Ok(ObjectKey(format!(
            "org/{org_id}/comparison/{from}-{to}/{name}"
        )))
    }

    /// `org/<org>/compliance/<id>/report.json`: a compliance scan's report, built once.
    pub fn compliance_report(org_id: i64, compliance_scan_id: i64) -> ObjectKey {
        ObjectKey(format!(
            "org/{org_id}/compliance/{compliance_scan_id}/report.json"
        ))
    }

    /// `org/<org>/report/<id>/report.html`: a client report as it was made.
    pub fn client_report(org_id: i64, report_id: i64) -> ObjectKey {
        ObjectKey(format!("org/{org_id}/report/{report_id}/report.html"))
    }

    /// `org/<org>/report/<id>/attempt-<n>/report.pdf`: a report's PDF as a runner printed it.
    pub fn client_report_pdf(
        org_id: i64,
        report_id: i64,
        attempt: Uploader,
    ) -> Result<ObjectKey, KeyError> {
        Self::artifact(
            format!("org/{org_id}/report/{report_id}"),
            attempt,
            "report.pdf",
        )
    }

    fn artifact(folder: String, attempt: Uploader, artifact: &str) -> Result<ObjectKey, KeyError> {
        if !valid_name(artifact) {
            return Err(KeyError::BadName(artifact.to_string()));
        }
        Ok(ObjectKey(match attempt {
            Uploader::Attempt(n) => format!("{folder}/attempt-{n}/{artifact}"),
            Uploader::Legacy => format!("{folder}/{artifact}"),
        }))
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
        let key =
            ObjectKey::snapshot_artifact(7, 42, Uploader::Attempt(2), "fullpage.png").unwrap();
        assert_eq!(key.as_str(), "org/7/snapshot/42/attempt-2/fullpage.png");
        assert_eq!(key.org_id(), 7);
        let legacy = ObjectKey::snapshot_artifact(7, 42, Uploader::Legacy, "fullpage.png").unwrap();
        assert_eq!(legacy.as_str(), "org/7/snapshot/42/fullpage.png");
        let run = ObjectKey::checkout_artifact(7, 9, Uploader::Attempt(1), "step-1.png").unwrap();
        assert_eq!(run.as_str(), "org/7/checkout-run/9/attempt-1/step-1.png");
        for bad in [
            "../x",
            "a/b",
            "",
            ".hidden",
            "Shop.example.com",
            "x y",
            &"a".repeat(65),
        ] {
            assert!(
                ObjectKey::snapshot_artifact(7, 42, Uploader::Attempt(1), bad).is_err(),
                "{bad:?}"
            );
        }
    }
}
