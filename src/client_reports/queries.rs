//! Reports and their share links in PostgreSQL, scoped to the caller's organization — except
//! the lookup of a share by its token, which is how a signed-out reader reaches one report.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::OrgCtx;
use crate::db::schema::{report_shares, reports};

#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = reports)]
pub struct Report {
    pub id: i64,
    pub client_id: i64,
    /// Absent for a report of the whole client.
    pub target_id: Option<i64>,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub period_end: OffsetDateTime,
    /// Hex SHA-256 of the stored document, checked on every read.
    pub sha256: String,
    pub size_bytes: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(skip)]
    #[schemars(skip)]
    pub org_id: i64,
    /// Whether the PDF is ready to download (a runner prints it moments after the report is
    /// made).
    #[serde(rename = "pdf_ready")]
    pub pdf_done: bool,
    #[serde(skip)]
    #[schemars(skip)]
    pub pdf_attempt: Option<i32>,
    #[serde(skip)]
    #[schemars(skip)]
    pub pdf_sha256: Option<String>,
}

/// A share link as its makers see it (never the token).
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = report_shares)]
pub struct Share {
    pub id: i64,
    pub report_id: i64,
    /// The token's first characters, to tell links apart.
    pub token_prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    pub views: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_viewed_at: Option<OffsetDateTime>,
}

impl Share {
    /// Whether the link still shows its report at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A report about to be stored.
pub struct NewReport<'a> {
    pub id: i64,
    pub org_id: i64,
    /// The person who made it; `None` for a scheduled report.
    pub created_by: Option<i64>,
    pub client_id: i64,
    pub target_id: Option<i64>,
    pub title: &'a str,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub sha256: &'a str,
    pub size_bytes: i64,
}

/// A report id, reserved so its blob can be stored before its row.
pub async fn reserve_id(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "nextval('reports_id_seq')",
    ))
    .get_result(conn)
    .await
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewReport<'_>) -> QueryResult<Report> {
    diesel::insert_into(reports::table)
        .values((
            reports::id.eq(new.id),
            reports::org_id.eq(new.org_id),
            reports::client_id.eq(new.client_id),
            reports::target_id.eq(new.target_id),
            reports::title.eq(new.title),
            reports::period_start.eq(new.period_start),
            reports::period_end.eq(new.period_end),
            reports::sha256.eq(new.sha256),
            reports::size_bytes.eq(new.size_bytes),
            reports::created_by.eq(new.created_by),
        ))
        .returning(Report::as_returning())
        .get_result(conn)
        .await
}

pub async fn report(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Report> {
    reports::table
        .filter(reports::id.eq(id))
        .filter(reports::org_id.eq(ctx.org_id))
        .select(Report::as_select())
        .first(conn)
        .await
}

/// A client's reports, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    client_id: i64,
    limit: i64,
) -> QueryResult<Vec<Report>> {
    reports::table
        .filter(reports::org_id.eq(ctx.org_id))
        .filter(reports::client_id.eq(client_id))
        .select(Report::as_select())
        .order(reports::id.desc())
        .limit(limit)
        .load(conn)
        .await
}

/// The share links of reports of the caller's organization, newest first.
pub async fn shares(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    report_ids: &[i64],
) -> QueryResult<Vec<Share>> {
    report_shares::table
        .filter(report_shares::org_id.eq(ctx.org_id))
        .filter(report_shares::report_id.eq_any(report_ids))
        .select(Share::as_select())
        .order(report_shares::id.desc())
        .load(conn)
        .await
}

pub async fn insert_share(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    created_by: Option<i64>,
    report_id: i64,
    token_prefix: &str,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> QueryResult<Share> {
    diesel::insert_into(report_shares::table)
        .values((
            report_shares::report_id.eq(report_id),
            report_shares::org_id.eq(org_id),
            report_shares::token_prefix.eq(token_prefix),
            report_shares::token_hash.eq(token_hash),
            report_shares::expires_at.eq(expires_at),
            report_shares::created_by.eq(created_by),
        ))
        .returning(Share::as_returning())
        .get_result(conn)
        .await
}

/// One share link of the caller's organization.
pub async fn share(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Share> {
    report_shares::table
        .filter(report_shares::id.eq(id))
        .filter(report_shares::org_id.eq(ctx.org_id))
        .select(Share::as_select())
        .first(conn)
        .await
}

/// Revokes a live share link of the caller's organization; false if it was already revoked.
pub async fn revoke_share(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    share_id: i64,
) -> QueryResult<bool> {
    let updated = diesel::update(
        report_shares::table
            .filter(report_shares::id.eq(share_id))
            .filter(report_shares::org_id.eq(ctx.org_id))
            .filter(report_shares::revoked_at.is_null()),
    )
    .set(report_shares::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// The share whose token starts with `prefix`, with its token hash and its report (any
/// organization: the token is the reader's only credential, checked by the caller).
pub async fn share_by_prefix(
    conn: &mut AsyncPgConnection,
    prefix: &str,
) -> QueryResult<Option<(Share, Vec<u8>, Report)>> {
    let found: Option<(Share, Vec<u8>, i64)> = report_shares::table
        .filter(report_shares::token_prefix.eq(prefix))
        .select((
            Share::as_select(),
            report_shares::token_hash,
            report_shares::report_id,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((share, hash, report_id)) = found else {
        return Ok(None);
    };
    let report = reports::table
        .find(report_id)
        .select(Report::as_select())
        .first(conn)
        .await?;
    Ok(Some((share, hash, report)))
}

/// Counts a view of a live share.
pub async fn count_view(conn: &mut AsyncPgConnection, share_id: i64) -> QueryResult<()> {
    diesel::update(report_shares::table.find(share_id))
        .set((
            report_shares::views.eq(report_shares::views + 1),
            report_shares::last_viewed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
