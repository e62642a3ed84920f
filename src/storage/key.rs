//! Object keys carry ids and fixed names only — never a customer URL or anything a scanned page
//! chose — so a key reveals nothing and cannot escape its folder.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("`{0}` is not a valid artifact name (lower-case letters, digits, '-', '_', '.'; 1–64)")]
    BadName(String),
    #[error("`{0}` is not an object key or folder siteward makes")]
    BadKey(String),
}

/// `org/<digits>/` followed by plain segments; a folder ends in `/`, an object does not.
fn well_formed(text: &str, folder: bool) -> bool {
    let Some(rest) = text.strip_prefix("org/") else {
        return false;
    };
    let body = if folder {
        match rest.strip_suffix('/') {
            Some(body) => body,
            None => return false,
        }
    } else {
        rest
    };
    let mut segments = body.split('/');
    let org_ok = segments.next().is_some_and(|id| {
        !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit())
    });
    let rest: Vec<&str> = segments.collect();
    org_ok && (folder || !rest.is_empty()) && rest.iter().all(|s| valid_name(s))
}

/// A folder of objects, deleted as one: everything an organization, a snapshot, a checkout run,
/// a compliance scan or a report keeps. Ends in `/`, so `org/1/snapshot/2/` never covers
/// `org/1/snapshot/20/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectFolder(String);

impl ObjectFolder {
    /// `org/<org>/`: all of an organization's blobs.
    pub fn org(org_id: i64) -> ObjectFolder {
        ObjectFolder(format!("org/{org_id}/"))
    }

    /// `org/<org>/snapshot/<snapshot>/`: a snapshot's artifacts and the comparisons kept in it.
    pub fn snapshot(org_id: i64, snapshot_id: i64) -> ObjectFolder {
        ObjectFolder(format!("org/{org_id}/snapshot/{snapshot_id}/"))
    }

    /// `org/<org>/export/<export>/`: an export's parts.
    pub fn export(org_id: i64, export_id: i64) -> ObjectFolder {
        ObjectFolder(format!("org/{org_id}/export/{export_id}/"))
    }

    /// A folder read back from the deletion queue, checked like [`ObjectKey::parse`].
    pub fn parse(text: &str) -> Result<ObjectFolder, KeyError> {
        if !well_formed(text, true) {
            return Err(KeyError::BadKey(text.to_string()));
        }
        Ok(ObjectFolder(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

    /// `org/<org>/snapshot/<older>/comparison/<from>-<to>/<name>`: a comparison computed on
    /// request and kept, in the folder of the older snapshot, so it goes when that one does.
    pub fn comparison(org_id: i64, from: i64, to: i64, name: &str) -> Result<ObjectKey, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::BadName(name.to_string()));
        }
        let older = from.min(to);
        Ok(ObjectKey(format!(
            "org/{org_id}/snapshot/{older}/comparison/{from}-{to}/{name}"
        )))
    }

    /// `org/<org>/compliance/<id>/report.json`: a compliance scan's report, built once.
    pub fn compliance_report(org_id: i64, compliance_scan_id: i64) -> ObjectKey {
        ObjectKey(format!(
            "org/{org_id}/compliance/{compliance_scan_id}/report.json"
        ))
    }

    /// `org/<org>/crawl/<id>/site.json`: a crawl's site snapshot, built once.
    pub fn crawl_site(org_id: i64, crawl_id: i64) -> ObjectKey {
        ObjectKey(format!("org/{org_id}/crawl/{crawl_id}/site.json"))
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

    /// `org/<org>/export/<export>/attempt-<a>/part-<n>`: part n (from 0) of an export's archive
    /// as job attempt a wrote it (an attempt whose lease lapsed cannot overwrite the winner's).
    pub fn export_part(org_id: i64, export_id: i64, attempt: i32, part: u32) -> ObjectKey {
        ObjectKey(format!(
            "org/{org_id}/export/{export_id}/attempt-{attempt}/part-{part:05}"
        ))
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

    /// A key read back from the deletion queue: it must be one these constructors can make
    /// (`org/<id>/` then plain segments), so no stored text can name a blob outside an
    /// organization's folder.
    pub fn parse(text: &str) -> Result<ObjectKey, KeyError> {
        if !well_formed(text, false) {
            return Err(KeyError::BadKey(text.to_string()));
        }
        Ok(ObjectKey(text.to_string()))
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

    #[test]
    fn only_keys_and_folders_siteward_makes_parse_back() {
        let key = ObjectKey::comparison(7, 50, 42, "changes-0a.json").unwrap();
        assert_eq!(
            key.as_str(),
            "org/7/snapshot/42/comparison/50-42/changes-0a.json"
        );
        assert_eq!(ObjectKey::parse(key.as_str()).unwrap(), key);
        let folder = ObjectFolder::snapshot(7, 42);
        assert_eq!(ObjectFolder::parse(folder.as_str()).unwrap(), folder);
        assert_eq!(ObjectFolder::parse("org/7/").unwrap(), ObjectFolder::org(7));
        for bad in [
            "org/7/snapshot/42/",
            "org/7",
            "org/x/snapshot",
            "org//snapshot/1",
            "org/7/../8/snapshot",
            "org/7/snapshot//x",
            "/org/7/x",
            "tmp/7/x",
            "org/7/Snapshot",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "key {bad:?}");
        }
        for bad in [
            "org/7",
            "org/7/snapshot/42",
            "org//",
            "org/7/../",
            "org/7/a b/",
            "/",
        ] {
            assert!(ObjectFolder::parse(bad).is_err(), "folder {bad:?}");
        }
    }
}
