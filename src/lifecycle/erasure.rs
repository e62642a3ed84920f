//! Erasure of an organization by crypto-shredding. An owner asks for it; it waits out a grace
//! period (undoable until then), and the purge leader then erases the organization in one
//! transaction: its data keys first — every sealed blob of it, in the store or in any copy of the
//! store, can no longer be opened — then its audit chain, then every row by cascade, and its blob
//! folder is queued for deletion. The instance's audit chain keeps a record that it happened,
//! naming the organization by id only.

use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Entry};
use crate::db::schema::orgs;

/// How long an erasure can be undone.
pub const GRACE: time::Duration = time::Duration::days(7);

/// When an organization's erasure was asked for and when it will happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub requested_at: OffsetDateTime,
    pub erase_after: OffsetDateTime,
}

/// The organization's pending erasure, if one was asked for.
pub async fn scheduled(
    conn: &mut AsyncPgConnection,
    org_id: i64,
) -> QueryResult<Option<Scheduled>> {
    let row: (Option<OffsetDateTime>, Option<OffsetDateTime>) = orgs::table
        .find(org_id)
        .select((orgs::erasure_requested_at, orgs::erase_after))
        .first(conn)
        .await?;
    Ok(match row {
        (Some(requested_at), Some(erase_after)) => Some(Scheduled {
            requested_at,
            erase_after,
        }),
        _ => None,
    })
}

/// Schedules the erasure `after` from now (the grace period; zero to make it due at once).
/// An erasure already scheduled keeps its date.
pub async fn schedule(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    after: time::Duration,
) -> QueryResult<Scheduled> {
    let now = OffsetDateTime::now_utc();
    diesel::update(orgs::table.find(org_id).filter(orgs::erase_after.is_null()))
        .set((
            orgs::erasure_requested_at.eq(now),
            orgs::erase_after.eq(now + after),
        ))
        .execute(conn)
        .await?;
    scheduled(conn, org_id)
        .await?
        .ok_or(diesel::result::Error::NotFound)
}

/// Makes a scheduled erasure due now (the admin command skipping the grace period).
pub async fn make_due(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE orgs SET erasure_requested_at = coalesce(erasure_requested_at, now()),
                         erase_after = LEAST(coalesce(erase_after, now()), now())
         WHERE id = $1",
    )
    .bind::<BigInt, _>(org_id)
    .execute(conn)
    .await
}

/// Undoes a scheduled erasure; false if none was scheduled.
pub async fn cancel(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        orgs::table
            .find(org_id)
            .filter(orgs::erase_after.is_not_null()),
    )
    .set((
        orgs::erasure_requested_at.eq(None::<OffsetDateTime>),
        orgs::erase_after.eq(None::<OffsetDateTime>),
    ))
    .execute(conn)
    .await?;
    Ok(changed == 1)
}

/// What an erasure removed, as the instance's audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub org_id: i64,
    pub clients: i64,
    pub targets: i64,
    pub snapshots: i64,
    pub audit_rows: i64,
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    erasure_requested_at: Option<OffsetDateTime>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct JobId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str, org_id: i64) -> QueryResult<i64> {
    diesel::sql_query(sql)
        .bind::<BigInt, _>(org_id)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
}

/// Erases every organization whose grace period has passed, each in its own transaction.
pub async fn erase_due(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Erased>> {
    let due: Vec<Due> = diesel::sql_query(
        "SELECT id, erasure_requested_at FROM orgs WHERE erase_after <= now() ORDER BY erase_after",
    )
    .load(conn)
    .await?;
    let mut erased = Vec::with_capacity(due.len());
    for org in due {
        if let Some(done) = erase(conn, org.id).await? {
            erased.push(done);
        }
    }
    Ok(erased)
}

/// Erases one organization whose erasure is due; `None` if it is not (or no longer) due.
pub async fn erase(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<Option<Erased>> {
    use diesel_async::AsyncConnection;
    conn.transaction(async move |conn| {
        let locked = diesel::sql_query(
            "SELECT id, erasure_requested_at FROM orgs WHERE id = $1 AND erase_after <= now()
             FOR UPDATE",
        )
        .bind::<BigInt, _>(org_id)
        .get_result::<Due>(conn)
        .await
        .optional()?;
        let Some(Due {
            erasure_requested_at: requested_at,
            ..
        }) = locked
        else {
            return Ok(None);
        };
        // Its audit chain's lock, after the row's (the order `audit::record` takes them in): a
        // request appending to the chain finishes first, or waits and finds the org gone.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<Text, _>(format!("siteward.audit:{org_id}"))
            .execute(conn)
            .await?;
        // Names the organization for the audit log's trigger and the deletion-queue triggers.
        diesel::sql_query("SELECT set_config('siteward.erasing_org', $1, true)")
            .bind::<Text, _>(org_id.to_string())
            .execute(conn)
            .await?;
        let clients = count(
            conn,
            "SELECT count(*) AS n FROM clients WHERE org_id = $1",
            org_id,
        )
        .await?;
        let targets = count(
            conn,
            "SELECT count(*) AS n FROM targets WHERE org_id = $1",
            org_id,
        )
        .await?;
        let snapshots = count(
            conn,
            "SELECT count(*) AS n FROM snapshots WHERE org_id = $1",
            org_id,
        )
        .await?;
        // Jobs of its scans, runs and reports still queued or running carry its URLs; finished
        // ones go with their rows.
        let jobs: Vec<i64> = diesel::sql_query(
            "SELECT job_id AS id FROM scans WHERE org_id = $1
             UNION SELECT job_id FROM checkout_runs WHERE org_id = $1
             UNION SELECT pdf_job_id FROM reports WHERE org_id = $1 AND pdf_job_id IS NOT NULL",
        )
        .bind::<BigInt, _>(org_id)
        .load::<JobId>(conn)
        .await?
        .into_iter()
        .map(|j| j.id)
        .collect();
        // Crypto-shredding first: without its data keys no blob of it opens anywhere.
        diesel::sql_query("DELETE FROM org_data_keys WHERE org_id = $1")
            .bind::<BigInt, _>(org_id)
            .execute(conn)
            .await?;
        let audit_rows = diesel::sql_query("DELETE FROM audit_log WHERE org_id = $1")
            .bind::<BigInt, _>(org_id)
            .execute(conn)
            .await? as i64;
        super::blob_deletions::queue_folder(
            conn,
            org_id,
            &crate::storage::ObjectFolder::org(org_id),
            std::time::Duration::ZERO,
        )
        .await?;
        diesel::sql_query("DELETE FROM orgs WHERE id = $1")
            .bind::<BigInt, _>(org_id)
            .execute(conn)
            .await?;
        diesel::sql_query("DELETE FROM jobs WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(&jobs)
            .execute(conn)
            .await?;
        let erased = Erased {
            org_id,
            clients,
            targets,
            snapshots,
            audit_rows,
        };
        audit::record(
            conn,
            Entry {
                org_id: None,
                actor_user_id: None,
                actor_key_id: None,
                actor: "erasure".into(),
                action: "org.erased",
                subject: format!("org {org_id}"),
                detail: json!({
                    "requested_at": requested_at.map(|t| t.unix_timestamp()),
                    "clients": clients,
                    "targets": targets,
                    "snapshots": snapshots,
                    "audit_rows": audit_rows,
                }),
                ip: String::new(),
            },
        )
        .await?;
        Ok(Some(erased))
    })
    .await
}
