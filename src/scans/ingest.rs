//! Taking a runner's results in: checking that a request comes from the attempt that holds the
//! job, storing artifacts sealed, and turning a snapshot into its metadata and inventory rows in
//! the same transaction that completes the job — so a retried or duplicated upload never makes
//! a second snapshot, and an attempt that lost its lease changes nothing.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scanner::Snapshot;
use scanner::snapshot::{Party, SameSite, Script};

use crate::crypto::token_hash;
use crate::db::schema::{
    scan_artifacts, snapshot_blocked, snapshot_cookies, snapshot_hosts, snapshot_scripts, snapshots,
};
use crate::queue;
use crate::runner::protocol::CrawlPageResult;
use crate::storage::{EnvelopeError, ObjectKey, SealedBlobs, Uploader};
use crate::web::AppError;

/// The scan an attempt works on.
#[derive(Debug, Clone, QueryableByName)]
pub struct Attempt {
    #[diesel(sql_type = BigInt)]
    pub job_id: i64,
    #[diesel(sql_type = BigInt)]
    pub scan_id: i64,
    #[diesel(sql_type = BigInt)]
    pub org_id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    #[diesel(sql_type = BigInt)]
    pub snapshot_id: i64,
    /// The compliance scan this scan is a visit of, and which visit.
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    pub compliance_scan_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub visit: Option<String>,
    /// The crawl this scan is a page of, and the page.
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    pub crawl_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub page_key: Option<String>,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Text)]
    job_state: String,
    #[diesel(sql_type = Bool)]
    current: bool,
    #[diesel(sql_type = Bool)]
    leased: bool,
}

/// Where an attempt stands.
pub enum Standing {
    /// It holds the job: it may upload and finish.
    Holds(Attempt),
    /// It already completed the job (a repeated request).
    Completed(Attempt),
}

const STALE: &str = "this attempt no longer holds the job (its lease lapsed or another attempt took over); drop its results";

/// Reads where the attempt with `token` stands on job `job_id`.
pub async fn standing(
    conn: &mut AsyncPgConnection,
    job_id: i64,
    token: &str,
) -> Result<Standing, AppError> {
    let attempt: Option<Attempt> = diesel::sql_query(
        "SELECT j.id AS job_id, s.id AS scan_id, s.org_id, s.target_id, s.snapshot_id,
                s.compliance_scan_id, s.visit, s.crawl_id, cp.url AS page_key,
                j.attempts AS attempt, j.state AS job_state,
                coalesce(j.attempt_token_hash = $2, false) AS current,
                coalesce(j.lease_expires_at > clock_timestamp(), false) AS leased
         FROM jobs j JOIN scans s ON s.job_id = j.id
         LEFT JOIN crawl_pages cp ON cp.scan_id = s.id
         WHERE j.id = $1",
    )
    .bind::<BigInt, _>(job_id)
    .bind::<Bytea, _>(token_hash(token))
    .get_result(conn)
    .await
    .optional()?;
    let attempt = attempt.ok_or(AppError::NotFound)?;
    match (attempt.job_state.as_str(), attempt.current) {
        ("running", true) if attempt.leased => Ok(Standing::Holds(attempt)),
        ("done", true) => Ok(Standing::Completed(attempt)),
        _ => Err(AppError::Conflict(STALE.into())),
    }
}

/// Whether job `job_id` still has its scan (deleting a target deletes its scans, not their jobs).
pub async fn scan_exists(conn: &mut AsyncPgConnection, job_id: i64) -> QueryResult<bool> {
    use crate::db::schema::scans;
    diesel::select(diesel::dsl::exists(
        scans::table.filter(scans::job_id.eq(job_id)),
    ))
    .get_result(conn)
    .await
}

/// Maps a blob-store failure: the store being down is worth retrying, anything else is ours.
pub fn blob_error(error: EnvelopeError) -> AppError {
    match error {
        EnvelopeError::Store(detail) => {
            tracing::warn!(%detail, "blob store unavailable");
            AppError::Unavailable
        }
        EnvelopeError::Tampered { key } => {
            tracing::error!(%key, "blob failed authentication");
            AppError::Integrity
        }
        other => AppError::internal(other),
    }
}

/// Seals and stores one artifact of the attempt, then records it — only if the attempt still
/// holds the job. Storing the same artifact twice overwrites it with the same content.
pub async fn store_artifact(
    conn: &mut AsyncPgConnection,
    blobs: &SealedBlobs,
    attempt: &Attempt,
    token: &str,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<String, AppError> {
    let upload = ArtifactUpload {
        key: ObjectKey::snapshot_artifact(
            attempt.org_id,
            attempt.snapshot_id,
            Uploader::Attempt(attempt.attempt),
            name,
        )
        .map_err(|e| AppError::BadRequest(e.to_string()))?,
        table: "scan_artifacts",
        owner_column: "scan_id",
        owner_id: attempt.scan_id,
        org_id: attempt.org_id,
        job_id: attempt.job_id,
        attempt: attempt.attempt,
        token,
        name,
        content_type,
    };
    store_attempt_artifact(conn, blobs, upload, bytes).await
}

/// One artifact a runner's attempt uploads: where it is sealed, and where it is recorded.
pub struct ArtifactUpload<'a> {
    pub key: ObjectKey,
    /// The table recording artifacts and its column naming their owner (a scan, a checkout run).
    pub table: &'static str,
    pub owner_column: &'static str,
    pub owner_id: i64,
    pub org_id: i64,
    pub job_id: i64,
    /// The attempt the key was made for; the row is written only if it still holds the job.
    pub attempt: i32,
    pub token: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
}

/// Seals and stores `bytes` under the attempt's own key, then points the upload's table at them
/// only while the attempt holds the job; returns their SHA-256. A second upload of the same name
/// replaces the first. A refused (stale) attempt's blob is removed again and never read.
pub async fn store_attempt_artifact(
    conn: &mut AsyncPgConnection,
    blobs: &SealedBlobs,
    upload: ArtifactUpload<'_>,
    bytes: &[u8],
) -> Result<String, AppError> {
    let sha256 = hex::encode(crate::crypto::sha256(bytes));
    blobs
        .put(conn, &upload.key, bytes)
        .await
        .map_err(blob_error)?;
    let (table, owner) = (upload.table, upload.owner_column);
    let recorded = diesel::sql_query(format!(
        "INSERT INTO {table} ({owner}, name, org_id, content_type, size_bytes, sha256, attempt,
             keyed_by_attempt)
         SELECT $1, $2, $3, $4, $5, $6, j.attempts, true FROM jobs j
         WHERE j.id = $7 AND j.state = 'running' AND j.attempt_token_hash = $8
             AND j.attempts = $9
         ON CONFLICT ({owner}, name) DO UPDATE SET content_type = excluded.content_type,
             size_bytes = excluded.size_bytes, sha256 = excluded.sha256,
             attempt = excluded.attempt, keyed_by_attempt = true, uploaded_at = now()"
    ))
    .bind::<BigInt, _>(upload.owner_id)
    .bind::<Text, _>(upload.name)
    .bind::<BigInt, _>(upload.org_id)
    .bind::<Text, _>(upload.content_type)
    .bind::<BigInt, _>(bytes.len() as i64)
    .bind::<Text, _>(&sha256)
    .bind::<BigInt, _>(upload.job_id)
    .bind::<Bytea, _>(token_hash(upload.token))
    .bind::<Integer, _>(upload.attempt)
    .execute(conn)
    .await?;
    if recorded == 0 {
        if let Err(error) = blobs.delete(&upload.key).await {
            tracing::warn!(key = %upload.key, %error, "could not remove a stale attempt's blob");
        }
        return Err(AppError::Conflict(STALE.into()));
    }
    Ok(sha256)
}

/// The uploaded screenshots must be this attempt's and match the snapshot's hashes.
pub async fn check_screenshots(
    conn: &mut AsyncPgConnection,
    attempt: &Attempt,
    snapshot: &Snapshot,
) -> Result<(), AppError> {
    let uploaded: Vec<(String, String, i32)> = scan_artifacts::table
        .filter(scan_artifacts::scan_id.eq(attempt.scan_id))
        .select((
            scan_artifacts::name,
            scan_artifacts::sha256,
            scan_artifacts::attempt,
        ))
        .load(conn)
        .await?;
    let expected = [
        ("viewport.png", &snapshot.screenshots.viewport.sha256),
        ("fullpage.png", &snapshot.screenshots.full_page.sha256),
    ];
    for (name, sha256) in expected {
        match uploaded.iter().find(|(n, _, _)| n == name) {
            Some((_, stored, by)) if *by == attempt.attempt && stored == sha256 => {}
            Some((_, _, by)) if *by == attempt.attempt => {
                return Err(AppError::BadRequest(format!(
                    "{name} as uploaded does not match the snapshot's sha256"
                )));
            }
            _ => {
                return Err(AppError::BadRequest(format!(
                    "upload {name} for this attempt before completing"
                )));
            }
        }
    }
    Ok(())
}

/// Completes the job and records the snapshot in one transaction (for a crawl's page, with
/// its links taken in: `crawl_page` is the page's whole result). Returns `None` when the
/// attempt no longer holds the job at the moment of completing (nothing is written).
pub async fn record_snapshot(
    conn: &mut AsyncPgConnection,
    attempt: &Attempt,
    token: &str,
    runner_id: i64,
    snapshot: &Snapshot,
    crawl_page: Option<&CrawlPageResult>,
) -> Result<Option<i64>, AppError> {
    let attempt = attempt.clone();
    let token = token.to_string();
    let snapshot = snapshot.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        if !queue::complete(conn, attempt.job_id, &token).await? {
            return Ok(None);
        }
        insert_rows(conn, &attempt, runner_id, &snapshot).await?;
        super::analysis::enqueue(conn, attempt.snapshot_id).await?;
        if let Some(compliance_scan_id) = attempt.compliance_scan_id {
            crate::compliance::queries::visit_finished(conn, compliance_scan_id).await?;
        }
        if let (Some(crawl_id), Some(result)) = (attempt.crawl_id, crawl_page) {
            crate::crawls::progress::page_visited(conn, crawl_id, attempt.scan_id, result).await?;
        }
        Ok(Some(attempt.snapshot_id))
    })
    .await
}

/// Text from a scanned page, made storable: no NUL (PostgreSQL refuses it), bounded length.
pub(crate) fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

fn party(party: Party) -> &'static str {
    match party {
        Party::First => "first",
        Party::Third => "third",
    }
}

fn same_site(value: SameSite) -> &'static str {
    match value {
        SameSite::Strict => "strict",
        SameSite::Lax => "lax",
        SameSite::None => "none",
        SameSite::Unspecified => "unspecified",
    }
}

/// Rows per insert statement, well under PostgreSQL's 65,535 bind parameters.
const CHUNK: usize = 1_000;

async fn insert_rows(
    conn: &mut AsyncPgConnection,
    attempt: &Attempt,
    runner_id: i64,
    snapshot: &Snapshot,
) -> Result<(), AppError> {
    let id = attempt.snapshot_id;
    let org = attempt.org_id;
    let limits = serde_json::to_value(&snapshot.limits_hit).unwrap_or_default();
    diesel::insert_into(snapshots::table)
        .values((
            snapshots::id.eq(id),
            snapshots::org_id.eq(org),
            snapshots::target_id.eq(attempt.target_id),
            snapshots::scan_id.eq(attempt.scan_id),
            snapshots::visit.eq(&attempt.visit),
            snapshots::page_key.eq(&attempt.page_key),
            snapshots::attempt.eq(attempt.attempt),
            snapshots::runner_id.eq(runner_id),
            snapshots::requested_url.eq(clean(&snapshot.requested_url, 8192)),
            snapshots::final_url.eq(clean(&snapshot.final_url, 8192)),
            snapshots::http_status.eq(snapshot.status.map(i32::from)),
            snapshots::title.eq(clean(&snapshot.title, 1000)),
            snapshots::scan_ms.eq(i64::try_from(snapshot.timings.total_ms).unwrap_or(i64::MAX)),
            snapshots::request_count.eq(i32::try_from(snapshot.requests.len()).unwrap_or(i32::MAX)),
            snapshots::console_error_count
                .eq(i32::try_from(snapshot.console_errors.len()).unwrap_or(i32::MAX)),
            snapshots::limits_hit.eq(limits),
        ))
        .execute(conn)
        .await?;

    let cookies: Vec<_> = snapshot
        .cookies
        .iter()
        .map(|c| {
            (
                snapshot_cookies::snapshot_id.eq(id),
                snapshot_cookies::org_id.eq(org),
                snapshot_cookies::name.eq(clean(&c.name, 512)),
                snapshot_cookies::domain.eq(clean(&c.domain, 512)),
                snapshot_cookies::path.eq(clean(&c.path, 1024)),
                snapshot_cookies::party.eq(party(c.party)),
                snapshot_cookies::session.eq(c.session),
                snapshot_cookies::expires.eq(c.expires.as_deref().map(|e| clean(e, 64))),
                snapshot_cookies::secure.eq(c.secure),
                snapshot_cookies::http_only.eq(c.http_only),
                snapshot_cookies::same_site.eq(same_site(c.same_site)),
                snapshot_cookies::set_by_host.eq(c.set_by_host.as_deref().map(|h| clean(h, 512))),
                snapshot_cookies::category
                    .eq(c.classification.as_ref().map(|k| clean(&k.category, 100))),
            )
        })
        .collect();
    for chunk in cookies.chunks(CHUNK) {
        diesel::insert_into(snapshot_cookies::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }

    let scripts: Vec<_> = snapshot
        .scripts
        .iter()
        .enumerate()
        .map(|(position, script)| {
            let (url, host, script_party, size) = match script {
                Script::External {
                    url,
                    host,
                    party: p,
                    size_bytes,
                    ..
                } => (
                    Some(clean(url, 8192)),
                    Some(clean(host, 512)),
                    Some(party(*p)),
                    *size_bytes,
                ),
                Script::Inline { size_bytes, .. } => (None, None, None, *size_bytes),
            };
            (
                snapshot_scripts::snapshot_id.eq(id),
                snapshot_scripts::position.eq(position as i32),
                snapshot_scripts::org_id.eq(org),
                snapshot_scripts::url.eq(url),
                snapshot_scripts::host.eq(host),
                snapshot_scripts::party.eq(script_party),
                snapshot_scripts::sha256.eq(clean(script.sha256(), 64)),
                snapshot_scripts::size_bytes.eq(i64::try_from(size).unwrap_or(i64::MAX)),
            )
        })
        .collect();
    for chunk in scripts.chunks(CHUNK) {
        diesel::insert_into(snapshot_scripts::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }

    // Every host the page talked to, with how often and whose it is.
    let mut hosts: BTreeMap<String, (Party, i32)> = BTreeMap::new();
    for request in &snapshot.requests {
        let entry = hosts
            .entry(clean(&request.host.to_ascii_lowercase(), 512))
            .or_insert((request.party, 0));
        entry.1 += 1;
    }
    for host in &snapshot.third_party_hosts {
        hosts
            .entry(clean(&host.to_ascii_lowercase(), 512))
            .or_insert((Party::Third, 0));
    }
    hosts.remove("");
    let listed: BTreeMap<&str, &str> = snapshot
        .listed_hosts
        .iter()
        .map(|h| (h.host.as_str(), h.category.as_str()))
        .collect();
    let host_rows: Vec<_> = hosts
        .iter()
        .map(|(host, (host_party, count))| {
            (
                snapshot_hosts::snapshot_id.eq(id),
                snapshot_hosts::host.eq(host.clone()),
                snapshot_hosts::org_id.eq(org),
                snapshot_hosts::party.eq(party(*host_party)),
                snapshot_hosts::requests.eq(*count),
                snapshot_hosts::category.eq(listed.get(host.as_str()).map(|c| clean(c, 100))),
            )
        })
        .collect();
    for chunk in host_rows.chunks(CHUNK) {
        diesel::insert_into(snapshot_hosts::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }

    let blocked: Vec<_> = snapshot
        .blocked
        .iter()
        .enumerate()
        .map(|(position, b)| {
            (
                snapshot_blocked::snapshot_id.eq(id),
                snapshot_blocked::position.eq(position as i32),
                snapshot_blocked::org_id.eq(org),
                snapshot_blocked::host.eq(clean(&b.host, 512)),
                snapshot_blocked::port.eq(i32::from(b.port)),
                snapshot_blocked::address.eq(b.address.as_deref().map(|a| clean(a, 64))),
                snapshot_blocked::reason.eq(clean(&b.reason, 500)),
            )
        })
        .collect();
    for chunk in blocked.chunks(CHUNK) {
        diesel::insert_into(snapshot_blocked::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn page_text_loses_nul_bytes_and_excess_length() {
        assert_eq!(clean("a\0b", 10), "a\u{FFFD}b");
        assert_eq!(clean("abcdef", 3), "abc");
    }
}
