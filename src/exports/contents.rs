//! What an export holds: JSON documents of the organization's (or one client's) records, each
//! with an explicit list of columns — nothing sealed, no secret value, no key or token hash is
//! ever selected — and the artifacts recorded for its snapshots and checkout runs.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::storage::{KeyError, ObjectKey, Uploader};

/// Who the export is for: `$1` is the organization, `$2` the client (NULL for all).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub org_id: i64,
    pub client_id: Option<i64>,
}

/// (file, ordering column, query). Every query selects the scope's rows only.
const DOCUMENTS: &[(&str, &str, &str)] = &[
    (
        "data/clients.json",
        "id",
        "SELECT c.id, c.name, c.notes, c.contact_name, c.contact_email, c.report_schedule,
                c.report_attach_pdf, c.created_at, c.updated_at
         FROM clients c WHERE c.org_id = $1 AND ($2::BIGINT IS NULL OR c.id = $2)",
    ),
    (
        "data/targets.json",
        "id",
        "SELECT t.id, t.client_id, t.name, t.url, t.page_kind, t.viewport_width, t.viewport_height,
                t.device, t.languages, t.timezone, t.consent_mode, t.capture_policy_pages, t.wait_ms,
                t.dwell_ms, t.schedule, t.enabled, t.visual_threshold, t.ignore_selectors,
                t.ignore_regions, t.compliance_schedule, t.compliance_gpc, t.created_at, t.updated_at
         FROM targets t WHERE t.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    (
        "data/scans.json",
        "id",
        "SELECT s.id, s.target_id, s.trigger, s.created_at, s.compliance_scan_id, s.visit,
                n.id AS snapshot_id, n.requested_url, n.final_url, n.http_status, n.title,
                n.scan_ms, n.request_count, n.console_error_count, n.limits_hit, n.captured_at
         FROM scans s JOIN targets t ON t.id = s.target_id
         LEFT JOIN snapshots n ON n.id = s.snapshot_id
         WHERE s.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    (
        "data/changes.json",
        "snapshot_id",
        "SELECT d.snapshot_id, d.target_id, d.previous_snapshot_id, d.change_count, d.changes,
                d.visual, d.computed_at
         FROM snapshot_diffs d JOIN targets t ON t.id = d.target_id
         WHERE d.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    (
        "data/alerts.json",
        "id",
        "SELECT a.id, a.target_id, a.rule, a.severity, a.title, a.detail, a.state,
                a.first_snapshot_id, a.last_snapshot_id, a.occurrences, a.reopened, a.opened_at,
                a.last_seen_at, a.acknowledged_at, a.resolved_at, a.resolution
         FROM alerts a JOIN targets t ON t.id = a.target_id
         WHERE a.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    (
        "data/checkout_tests.json",
        "id",
        "SELECT k.id, k.target_id, k.name, k.script, k.schedule, k.enabled, k.created_at,
                k.updated_at,
                (SELECT coalesce(json_agg(json_build_object('name', s.name, 'hosts', s.hosts,
                                                            'updated_at', s.updated_at)
                                          ORDER BY s.name), '[]')
                 FROM checkout_secrets s WHERE s.test_id = k.id) AS secrets_by_name
         FROM checkout_tests k JOIN targets t ON t.id = k.target_id
         WHERE k.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    (
        "data/checkout_runs.json",
        "id",
        "SELECT r.id, r.test_id, r.target_id, r.trigger, r.script, r.outcome, r.failed_step,
                r.failure, r.stopped_at, r.duration_ms, r.created_at, r.finished_at,
                (SELECT coalesce(json_agg(json_build_object(
                            'number', p.number, 'line', p.line, 'kind', p.kind, 'name', p.name,
                            'description', p.description, 'status', p.status,
                            'duration_ms', p.duration_ms, 'url', p.url, 'error', p.error,
                            'console_errors', p.console_errors,
                            'failed_requests', p.failed_requests, 'screenshot', p.screenshot,
                            'page_says', p.page_says, 'refused_requests', p.refused_requests)
                          ORDER BY p.number), '[]')
                 FROM checkout_run_steps p WHERE p.run_id = r.id) AS steps
         FROM checkout_runs r JOIN targets t ON t.id = r.target_id
         WHERE r.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)",
    ),
    // The organization's own record of what happened, with everything its hashes cover (so it
    // can be verified outside siteward): only in a whole-organization export.
    (
        "data/audit_log.json",
        "seq",
        "SELECT l.org_id, l.seq, l.created_at, l.actor_user_id, l.actor_key_id, l.actor,
                l.action, l.subject, l.detail, l.ip, l.version,
                encode(l.personal_salt, 'hex') AS personal_salt,
                encode(l.personal_digest, 'hex') AS personal_digest, l.erased_by,
                encode(l.prev_hash, 'hex') AS prev_hash, encode(l.hash, 'hex') AS hash
         FROM audit_log l WHERE l.org_id = $1 AND $2::BIGINT IS NULL",
    ),
];

#[derive(QueryableByName)]
struct Document {
    #[diesel(sql_type = Text)]
    json: String,
}

/// Every JSON document of the scope, as (path, bytes).
pub async fn documents(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> QueryResult<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::with_capacity(DOCUMENTS.len());
    for (path, order, query) in DOCUMENTS {
        if scope.client_id.is_some() && *path == "data/audit_log.json" {
            continue;
        }
        let document: Document = diesel::sql_query(format!(
            "SELECT coalesce(json_agg(x ORDER BY x.{order}), '[]')::TEXT AS json FROM ({query}) x"
        ))
        .bind::<BigInt, _>(scope.org_id)
        .bind::<Nullable<BigInt>, _>(scope.client_id)
        .get_result(conn)
        .await?;
        out.push((*path, document.json.into_bytes()));
    }
    Ok(out)
}

/// An artifact to put in the archive, with what its row says of it.
#[derive(Debug, Clone, QueryableByName)]
pub struct ArtifactRow {
    /// `snapshot` or `checkout-run`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The snapshot's or run's id.
    #[diesel(sql_type = BigInt)]
    pub owner_id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub sha256: String,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Bool)]
    pub keyed_by_attempt: bool,
}

impl ArtifactRow {
    /// Where it is stored.
    pub fn key(&self, org_id: i64) -> Result<ObjectKey, KeyError> {
        let uploader = Uploader::of_row(self.attempt, self.keyed_by_attempt);
        if self.kind == "snapshot" {
            ObjectKey::snapshot_artifact(org_id, self.owner_id, uploader, &self.name)
        } else {
            ObjectKey::checkout_artifact(org_id, self.owner_id, uploader, &self.name)
        }
    }

    /// Where it goes in the archive.
    pub fn path(&self) -> String {
        let folder = if self.kind == "snapshot" {
            "snapshots"
        } else {
            "checkout-runs"
        };
        format!("artifacts/{folder}/{}/{}", self.owner_id, self.name)
    }
}

/// Every artifact recorded in the scope, snapshots first, oldest first.
pub async fn artifacts(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> QueryResult<Vec<ArtifactRow>> {
    diesel::sql_query(
        "SELECT 'snapshot' AS kind, s.snapshot_id AS owner_id, a.name, a.sha256, a.attempt,
                a.keyed_by_attempt
         FROM scan_artifacts a JOIN scans s ON s.id = a.scan_id JOIN targets t ON t.id = s.target_id
         WHERE a.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)
         UNION ALL
         SELECT 'checkout-run', r.id, a.name, a.sha256, a.attempt, a.keyed_by_attempt
         FROM checkout_run_artifacts a JOIN checkout_runs r ON r.id = a.run_id
         JOIN targets t ON t.id = r.target_id
         WHERE a.org_id = $1 AND ($2::BIGINT IS NULL OR t.client_id = $2)
         ORDER BY kind DESC, owner_id, name",
    )
    .bind::<BigInt, _>(scope.org_id)
    .bind::<Nullable<BigInt>, _>(scope.client_id)
    .load(conn)
    .await
}
