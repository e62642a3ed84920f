//! Reading back every blob the database points at — snapshot artifacts, checkout run artifacts,
//! compliance reports, client reports and their PDFs — opening it with its organization's data key and checking the
//! plaintext's SHA-256 against the one recorded when it was stored. What a restored backup, a
//! migrated bucket or a rotated master key must pass (`siteward admin verify-blobs`).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

use super::{ObjectKey, SealedBlobs, Uploader};

/// One blob the database names, with the hash its plaintext must have.
#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    org_id: i64,
    /// The snapshot, checkout run or report.
    #[diesel(sql_type = BigInt)]
    owner_id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sha256: String,
    #[diesel(sql_type = Integer)]
    attempt: i32,
    #[diesel(sql_type = Bool)]
    keyed_by_attempt: bool,
}

const RECORDED: &str = "
    SELECT 'snapshot' AS kind, sn.org_id, sn.id AS owner_id, a.name, a.sha256, a.attempt,
           a.keyed_by_attempt
      FROM scan_artifacts a JOIN snapshots sn ON sn.scan_id = a.scan_id AND sn.attempt = a.attempt
    UNION ALL
    SELECT 'checkout-run', org_id, run_id, name, sha256, attempt, keyed_by_attempt
      FROM checkout_run_artifacts
    UNION ALL
    SELECT 'report', org_id, id, 'report.html', sha256, 0, false FROM reports
    UNION ALL
    SELECT 'report-pdf', org_id, id, 'report.pdf', pdf_sha256, pdf_attempt, true
      FROM reports WHERE pdf_sha256 IS NOT NULL AND pdf_attempt IS NOT NULL
    UNION ALL
    SELECT 'compliance', org_id, id, 'report.json', report_sha256, 0, false
      FROM compliance_scans WHERE report_sha256 IS NOT NULL
    UNION ALL
    SELECT 'crawl', org_id, id, 'site.json', site_sha256, 0, false
      FROM crawls WHERE site_sha256 IS NOT NULL
    ORDER BY 1, 2, 3, 4";

impl Recorded {
    fn key(&self) -> Result<ObjectKey, super::KeyError> {
        let uploader = Uploader::of_row(self.attempt, self.keyed_by_attempt);
        match self.kind.as_str() {
            "snapshot" => {
                ObjectKey::snapshot_artifact(self.org_id, self.owner_id, uploader, &self.name)
            }
            "checkout-run" => {
                ObjectKey::checkout_artifact(self.org_id, self.owner_id, uploader, &self.name)
            }
            "report" => Ok(ObjectKey::client_report(self.org_id, self.owner_id)),
            "compliance" => Ok(ObjectKey::compliance_report(self.org_id, self.owner_id)),
            "crawl" => Ok(ObjectKey::crawl_site(self.org_id, self.owner_id)),
            _ => ObjectKey::client_report_pdf(self.org_id, self.owner_id, uploader),
        }
    }
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Verified {
    /// Blobs read, opened and matching their hash.
    pub intact: usize,
    /// Plaintext bytes of the intact ones.
    pub bytes: u64,
    /// One line per blob missing, unreadable or not matching its hash.
    pub problems: Vec<String>,
}

/// Reads every recorded blob; never stops at the first problem.
pub async fn verify_all(
    conn: &mut AsyncPgConnection,
    blobs: &SealedBlobs,
) -> Result<Verified, diesel::result::Error> {
    let recorded: Vec<Recorded> = diesel::sql_query(RECORDED).load(conn).await?;
    let mut verified = Verified::default();
    for blob in recorded {
        let key = match blob.key() {
            Ok(key) => key,
            Err(error) => {
                verified.problems.push(format!(
                    "{} {} `{}`: {error}",
                    blob.kind, blob.owner_id, blob.name
                ));
                continue;
            }
        };
        match blobs.get(conn, &key).await {
            Ok(plain) => {
                let hash = hex::encode(Sha256::digest(&plain[..]));
                if hash == blob.sha256 {
                    verified.intact += 1;
                    verified.bytes += plain.len() as u64;
                } else {
                    verified.problems.push(format!(
                        "{key}: SHA-256 {hash}, but {} was recorded",
                        blob.sha256
                    ));
                }
            }
            Err(error) => verified.problems.push(format!("{key}: {error}")),
        }
    }
    Ok(verified)
}
