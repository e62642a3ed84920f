//! Exports: an owner takes the organization's data — or one client's history, to hand to that
//! client — out as one `.tar.gz`: JSON for clients, targets, scans, changes, alerts, checkout
//! tests (secrets by name only) and runs, the audit log (whole-organization exports), and every
//! recorded artifact decrypted and checked against its recorded SHA-256, listed in
//! `manifest.json`.
//!
//! An `export` job, run by the app's workers (they hold the keys), builds the archive in parts of
//! 8 MiB, each sealed like any blob under `org/<o>/export/<id>/attempt-<n>/` (renewing its
//! job's lease as it goes), and mails whoever asked a link
//! that works once, for an owner of the organization signed in, for `LINK_LIFETIME`. Downloading
//! consumes the link and queues the parts for deletion; the purge expires links nobody used.
//! Asking, finishing and downloading are audited.

pub mod archive;
pub mod contents;
pub mod routes;
mod views;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Entry};
use crate::auth::OrgCtx;
use crate::lifecycle::blob_deletions;
use crate::queue;
use crate::state::AppState;
use crate::storage::{ObjectFolder, ObjectKey};
use crate::web::AppError;
use archive::ArchiveWriter;
use contents::Scope;

pub const EXPORT_JOB: &str = "export";

/// How long a download link works.
pub const LINK_LIFETIME: time::Duration = time::Duration::hours(24);

/// How long after a download its parts are deleted (the download streams them meanwhile).
pub const DELETE_AFTER_DOWNLOAD: Duration = Duration::from_secs(3600);

const LEASE: Duration = Duration::from_secs(900);

/// An export as listed.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct ExportRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub client_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub client_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = BigInt)]
    pub size_bytes: i64,
    #[diesel(sql_type = Integer)]
    pub artifacts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub sha256: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub expires_at: Option<OffsetDateTime>,
}

/// The organization's exports, newest first.
pub async fn list(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<Vec<ExportRow>> {
    diesel::sql_query(
        "SELECT e.id, e.client_id, c.name AS client_name, e.state, e.size_bytes, e.artifacts,
                e.sha256, e.error, e.created_at, e.expires_at
         FROM exports e LEFT JOIN clients c ON c.id = e.client_id
         WHERE e.org_id = $1 ORDER BY e.id DESC LIMIT 50",
    )
    .bind::<BigInt, _>(org_id)
    .load(conn)
    .await
}

/// Queues an export of the caller's organization (or of one of its clients), audited.
pub async fn request(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    client_id: Option<i64>,
) -> Result<i64, AppError> {
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        if let Some(client) = client_id {
            #[derive(QueryableByName)]
            struct Found {
                #[diesel(sql_type = BigInt)]
                #[allow(dead_code)]
                id: i64,
            }
            let found: Option<Found> =
                diesel::sql_query("SELECT id FROM clients WHERE id = $1 AND org_id = $2")
                    .bind::<BigInt, _>(client)
                    .bind::<BigInt, _>(ctx.org_id)
                    .get_result(conn)
                    .await
                    .optional()?;
            if found.is_none() {
                return Err(AppError::invalid("client_id", "is not a client of yours"));
            }
        }
        #[derive(QueryableByName)]
        struct Made {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let made: Made = diesel::sql_query(
            "INSERT INTO exports (org_id, client_id, requested_by) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind::<BigInt, _>(ctx.org_id)
        .bind::<Nullable<BigInt>, _>(client_id)
        .bind::<Nullable<BigInt>, _>(ctx.actor.user_id())
        .get_result(conn)
        .await?;
        let job = queue::enqueue(
            conn,
            EXPORT_JOB,
            &json!({ "export_id": made.id }),
            3,
            OffsetDateTime::now_utc(),
        )
        .await?;
        diesel::sql_query("UPDATE exports SET job_id = $2 WHERE id = $1")
            .bind::<BigInt, _>(made.id)
            .bind::<BigInt, _>(job)
            .execute(conn)
            .await?;
        audit::record(
            conn,
            Entry::by(&ctx, "export.requested", format!("export {}", made.id))
                .detail(json!({ "client_id": client_id })),
        )
        .await?;
        Ok(made.id)
    })
    .await
}

/// Claims and runs export jobs until the process ends.
pub async fn run_worker(state: actix_web::web::Data<AppState>) {
    let kinds = [EXPORT_JOB.to_string()];
    queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        LEASE,
        |job| {
            let state = state.clone();
            async move {
                let export_id = job.payload["export_id"].as_i64().unwrap_or(0);
                let last_try = job.attempt >= job.max_attempts;
                let attempt = JobAttempt {
                    job_id: job.id,
                    token: job.token.clone(),
                    attempt: job.attempt,
                };
                let built = build(&state, export_id, &attempt).await;
                if let Err(error) = &built
                    && last_try
                {
                    fail(&state, export_id, error).await;
                }
                built.map_err(|e| e.to_string())
            }
        },
    )
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("the database is unavailable: {0}")]
    Pool(String),
    #[error("the blob store: {0}")]
    Blob(#[from] crate::storage::EnvelopeError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("another attempt holds the job now")]
    LostLease,
}

#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = BigInt)]
    org_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    client_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    requested_by: Option<i64>,
    #[diesel(sql_type = Text)]
    org_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    client_name: Option<String>,
}

/// Builds an export's archive and makes its link (an export no longer pending is left alone, so
/// a retried job does nothing twice).
pub async fn build(state: &AppState, export_id: i64, job: &JobAttempt) -> Result<(), ExportError> {
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ExportError::Pool(e.to_string()))?;
    let pending: Option<Pending> = diesel::sql_query(
        "SELECT e.org_id, e.client_id, e.requested_by, o.name AS org_name, c.name AS client_name
         FROM exports e JOIN orgs o ON o.id = e.org_id LEFT JOIN clients c ON c.id = e.client_id
         WHERE e.id = $1 AND e.state = 'pending'",
    )
    .bind::<BigInt, _>(export_id)
    .get_result(&mut conn)
    .await
    .optional()?;
    let Some(pending) = pending else {
        return Ok(());
    };
    let scope = Scope {
        org_id: pending.org_id,
        client_id: pending.client_id,
    };
    let started = OffsetDateTime::now_utc();
    let mut writer = ArchiveWriter::new(started.unix_timestamp().max(0) as u64);
    let mut out = Parts {
        state,
        org_id: scope.org_id,
        export_id,
        job,
        stored: 0,
    };
    for (path, document) in contents::documents(&mut conn, scope).await? {
        writer.add(path, &document)?;
        out.store(&mut conn, writer.take_full_parts()).await?;
    }
    let mut unreadable = Vec::new();
    let artifacts = contents::artifacts(&mut conn, scope).await?;
    let mut exported = 0i32;
    for artifact in &artifacts {
        let bytes = match artifact.key(scope.org_id) {
            Ok(key) => state.blobs.get(&mut conn, &key).await.ok(),
            Err(_) => None,
        };
        match bytes {
            Some(bytes) if hex::encode(crate::crypto::sha256(&bytes)) == artifact.sha256 => {
                writer.add(&artifact.path(), &bytes)?;
                exported += 1;
            }
            // Gone from the store, or not what was recorded: listed, not silently left out.
            Some(_) => unreadable.push(
                json!({"path": artifact.path(), "reason": "does not match its recorded SHA-256"}),
            ),
            None => unreadable
                .push(json!({"path": artifact.path(), "reason": "cannot be read from the store"})),
        }
        out.store(&mut conn, writer.take_full_parts()).await?;
    }
    let expected: std::collections::HashMap<String, &str> = artifacts
        .iter()
        .map(|a| (a.path(), a.sha256.as_str()))
        .collect();
    let manifest = json!({
        "format": "siteward-export-1",
        "export_id": export_id,
        "organization": {"id": scope.org_id, "name": pending.org_name},
        "client": scope.client_id.map(|id| json!({"id": id, "name": pending.client_name})),
        "created_at": started.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "artifacts": exported,
        "unreadable": unreadable,
        "secrets": "checkout secrets are listed by name only; their values are never exported",
        "files": writer.files().iter().map(|f| json!({
            "path": f.path,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "recorded_sha256": expected.get(&f.path),
        })).collect::<Vec<_>>(),
    });
    writer.add("manifest.json", manifest.to_string().as_bytes())?;
    out.store(&mut conn, writer.take_full_parts()).await?;
    let finished = writer.finish()?;
    out.store(&mut conn, finished.parts).await?;

    let token = crate::crypto::new_token();
    let token_hash = crate::crypto::token_hash(&token);
    let expires_at = OffsetDateTime::now_utc() + LINK_LIFETIME;
    let requested_by = pending.requested_by;
    let attempt = job.attempt;
    let stored = out.stored;
    let ready = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let updated = diesel::sql_query(
                "UPDATE exports SET state = 'ready', token_hash = $2, parts = $3, size_bytes = $4,
                        sha256 = $5, artifacts = $6, finished_at = now(), expires_at = $7,
                        attempt = $8
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind::<BigInt, _>(export_id)
            .bind::<Bytea, _>(token_hash)
            .bind::<Integer, _>(stored as i32)
            .bind::<BigInt, _>(finished.size as i64)
            .bind::<Text, _>(&finished.sha256)
            .bind::<Integer, _>(exported)
            .bind::<Timestamptz, _>(expires_at)
            .bind::<Integer, _>(attempt)
            .execute(conn)
            .await?;
            if updated == 1 {
                audit::record(
                    conn,
                    Entry::system(
                        Some(scope.org_id),
                        "siteward",
                        "export.ready",
                        format!("export {export_id}"),
                    )
                    .detail(json!({
                        "bytes": finished.size,
                        "sha256": finished.sha256,
                        "artifacts": exported,
                        "unreadable": unreadable.len(),
                    })),
                )
                .await?;
            }
            Ok(updated == 1)
        })
        .await?;
    if ready && let Some(user_id) = requested_by {
        mail_link(state, &mut conn, user_id, export_id, &token, expires_at).await?;
    }
    Ok(())
}

/// The job attempt doing an export: its job, the token that proves it holds it, and its number.
pub struct JobAttempt {
    pub job_id: i64,
    pub token: String,
    pub attempt: i32,
}

/// Where an attempt's parts go.
struct Parts<'a> {
    state: &'a AppState,
    org_id: i64,
    export_id: i64,
    job: &'a JobAttempt,
    stored: u32,
}

impl Parts<'_> {
    /// Seals and stores the next parts, then renews the job's lease (an export of a large
    /// organization outlasts one lease); an attempt that lost its job stops.
    async fn store(
        &mut self,
        conn: &mut AsyncPgConnection,
        parts: Vec<Vec<u8>>,
    ) -> Result<(), ExportError> {
        if parts.is_empty() {
            return Ok(());
        }
        for part in parts {
            let key =
                ObjectKey::export_part(self.org_id, self.export_id, self.job.attempt, self.stored);
            self.state.blobs.put(conn, &key, &part).await?;
            self.stored += 1;
        }
        if !queue::heartbeat(conn, self.job.job_id, &self.job.token, LEASE).await? {
            return Err(ExportError::LostLease);
        }
        Ok(())
    }
}

async fn mail_link(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user_id: i64,
    export_id: i64,
    token: &str,
    expires_at: OffsetDateTime,
) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Email {
        #[diesel(sql_type = Text)]
        email: String,
    }
    let Some(to) = diesel::sql_query("SELECT email FROM users WHERE id = $1")
        .bind::<BigInt, _>(user_id)
        .get_result::<Email>(conn)
        .await
        .optional()?
    else {
        return Ok(());
    };
    let mut link = state.config.public_url.clone();
    link.set_path(&format!("/exports/download/{token}"));
    let until = expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    state.mailer.send_later(
        to.email,
        "Your siteward export is ready",
        format!(
            "The export you asked for (number {export_id}) is ready. Download it once, signed in as an owner of the organization, until {until} (UTC):\n\n{link}\n\nThe link works once; ask for a new export if it expires.\n"
        ),
    );
    Ok(())
}

/// Marks an export failed after its last attempt, audited.
async fn fail(state: &AppState, export_id: i64, error: &ExportError) {
    tracing::error!(export_id, %error, "export failed");
    let Ok(mut conn) = state.pool.get().await else {
        return;
    };
    let reason = "the export could not be built; it has been logged".to_string();
    let _ = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            #[derive(QueryableByName)]
            struct Failed {
                #[diesel(sql_type = BigInt)]
                org_id: i64,
            }
            let failed: Option<Failed> = diesel::sql_query(
                "UPDATE exports SET state = 'failed', error = $2, finished_at = now()
                 WHERE id = $1 AND state = 'pending' RETURNING org_id",
            )
            .bind::<BigInt, _>(export_id)
            .bind::<Text, _>(&reason)
            .get_result(conn)
            .await
            .optional()?;
            if let Some(failed) = failed {
                blob_deletions::queue_folder(
                    conn,
                    failed.org_id,
                    &ObjectFolder::export(failed.org_id, export_id),
                    Duration::ZERO,
                )
                .await?;
                audit::record(
                    conn,
                    Entry::system(
                        Some(failed.org_id),
                        "siteward",
                        "export.failed",
                        format!("export {export_id}"),
                    ),
                )
                .await?;
            }
            Ok(())
        })
        .await;
}

/// An export whose link was just used: what the download streams.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Integer)]
    pub parts: i32,
    #[diesel(sql_type = BigInt)]
    pub size_bytes: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub sha256: Option<String>,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
}

/// Uses a download link of the caller's organization: at most once, before it expires. The
/// parts are queued for deletion an hour on, after the download has streamed them.
pub async fn claim_download(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    token: &str,
) -> Result<Claimed, AppError> {
    let token_hash = crate::crypto::token_hash(token);
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let claimed: Option<Claimed> = diesel::sql_query(
            "UPDATE exports SET state = 'downloaded', downloaded_at = now(), token_hash = NULL
             WHERE token_hash = $1 AND org_id = $2 AND state = 'ready' AND expires_at > now()
             RETURNING id, parts, size_bytes, sha256, attempt",
        )
        .bind::<Bytea, _>(token_hash)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result(conn)
        .await
        .optional()?;
        let Some(claimed) = claimed else {
            return Err(AppError::NotFound);
        };
        blob_deletions::queue_folder(
            conn,
            ctx.org_id,
            &ObjectFolder::export(ctx.org_id, claimed.id),
            DELETE_AFTER_DOWNLOAD,
        )
        .await?;
        audit::record(
            conn,
            Entry::by(&ctx, "export.downloaded", format!("export {}", claimed.id))
                .detail(json!({ "bytes": claimed.size_bytes, "sha256": claimed.sha256 })),
        )
        .await?;
        Ok(claimed)
    })
    .await
}
