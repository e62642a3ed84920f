//! Making a report and a share link: the one way both happen, whether a person asks (the
//! routes, which check roles and audit as that person) or the schedule does ([`super::delivery`]).

use time::{Duration, OffsetDateTime};

use super::content::{self, ReportContent, Scope};
use super::queries::{self, NewReport, Report, Share};
use crate::scans::ingest::blob_error;
use crate::sites::queries::Client;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::AppError;

/// Characters of a share token kept in clear to find its row.
pub const TOKEN_PREFIX_LEN: usize = 12;

/// Gathers, renders and stores a report of `client` (or one of its targets, already checked to
/// be the client's) over the last `days` days. Call inside nothing: it stores the blob first,
/// then the row.
pub async fn report(
    state: &AppState,
    client: &Client,
    org_id: i64,
    target_id: Option<i64>,
    days: u32,
    created_by: Option<i64>,
) -> Result<(Report, ReportContent), AppError> {
    let mut conn = state.conn().await?;
    let branding = crate::branding::queries::branding(&mut conn, org_id).await?;
    drop(conn);
    let period_end = OffsetDateTime::now_utc();
    let scope = Scope {
        org_id,
        branding,
        client_id: client.id,
        contact: (!client.contact_name.is_empty()).then(|| client.contact_name.clone()),
        client: client.name.clone(),
        target_id,
        period_start: period_end - Duration::days(i64::from(days)),
        period_end,
    };
    let content = content::gather(state, &scope).await?;
    let document = super::render::render(&content).map_err(AppError::internal)?;
    let report = store(
        state,
        Document {
            org_id,
            client_id: client.id,
            target_id,
            title: &content.title,
            period_start: scope.period_start,
            period_end: scope.period_end,
            created_by,
            html: &document,
        },
    )
    .await?;
    Ok((report, content))
}

/// A rendered report document, ready to be frozen.
pub struct Document<'a> {
    pub org_id: i64,
    pub client_id: i64,
    pub target_id: Option<i64>,
    pub title: &'a str,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub created_by: Option<i64>,
    /// Self-contained HTML: nothing loads, nothing runs.
    pub html: &'a str,
}

/// Freezes a rendered document as a report: seals and stores the blob first, then inserts the
/// row and queues its PDF in one transaction. The one way every kind of report is stored.
pub async fn store(state: &AppState, document: Document<'_>) -> Result<Report, AppError> {
    let sha256 = hex::encode(crate::crypto::sha256(document.html.as_bytes()));
    let mut conn = state.conn().await?;
    let id = queries::reserve_id(&mut conn).await?;
    let key = ObjectKey::client_report(document.org_id, id);
    state
        .blobs
        .put(&mut conn, &key, document.html.as_bytes())
        .await
        .map_err(blob_error)?;
    let new = NewReport {
        id,
        org_id: document.org_id,
        created_by: document.created_by,
        client_id: document.client_id,
        target_id: document.target_id,
        title: document.title,
        period_start: document.period_start,
        period_end: document.period_end,
        sha256: &sha256,
        size_bytes: document.html.len() as i64,
    };
    use diesel_async::AsyncConnection;
    let report = conn
        .transaction::<_, AppError, _>(async |conn| {
            let report = queries::insert(conn, &new).await?;
            super::pdf::enqueue(conn, report.id).await?;
            Ok(report)
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(report)
}

/// A new share link of `report`, valid for `days`: the stored row and the link (shown once).
pub async fn share(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    report: &Report,
    days: u32,
    created_by: Option<i64>,
) -> Result<(Share, String), AppError> {
    let token = crate::crypto::new_token();
    let expires_at = OffsetDateTime::now_utc() + Duration::days(i64::from(days));
    let share = queries::insert_share(
        conn,
        report.org_id,
        created_by,
        report.id,
        &token[..TOKEN_PREFIX_LEN],
        &crate::crypto::token_hash(&token),
        expires_at,
    )
    .await?;
    let mut url = state.config.public_url.clone();
    url.set_path(&format!("/r/{token}"));
    Ok((share, url.to_string()))
}
