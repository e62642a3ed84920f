//! Notification channels and deliveries. When an alert opens (or reopens, up to twice a day), one
//! delivery per matching channel is written with a queued `notify` job in the same transaction;
//! the app's notify worker sends it — mail, signed webhook or Slack-compatible webhook — and
//! records the status and response code. A failed send is retried with backoff by the queue; a
//! delivered message is never sent again. Channel addresses, URLs and secrets are sealed with the
//! master key; lists show only a redacted description.

use actix_web::web;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::rules::Severity;
use crate::auth::OrgCtx;
use crate::crypto::MasterKeys;
use crate::db::schema::{notification_channels, notification_deliveries};
use crate::notify;
use crate::queue;
use crate::state::AppState;
use crate::web::AppError;

pub const NOTIFY_JOB: &str = "notify";
/// Reopened alerts notify again only this many times; after that they reopen quietly.
const LOUD_REOPENS: i32 = 2;

/// A channel as listed (never its address, URL or secret in full).
#[derive(Debug, Clone, Serialize, Queryable, schemars::JsonSchema)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// Alerts at or above this severity are sent.
    pub min_severity: String,
    /// The address, or the URL's scheme and host.
    pub display: String,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
}

/// What a channel needs to send; sealed at rest.
#[derive(Serialize, Deserialize)]
struct Secret {
    /// Email: comma-separated addresses. Webhook and Slack: the URL.
    to: String,
    /// Webhook: the signing secret.
    secret: Option<String>,
}

/// What a channel's sealed settings are bound to: its organization and the channel itself, so a
/// sealed value moved to another row (of the same org or not) does not open.
fn context(org_id: i64, channel_id: i64) -> String {
    format!("notification_channels:{org_id}:{channel_id}")
}

/// The binding of channels sealed before December 2026 (organization only). Such settings still
/// open, and are sealed again under [`context`] the first time they are used.
fn legacy_context(org_id: i64) -> String {
    format!("notification_channels:{org_id}")
}

/// `POST /api/v1/notification-channels`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: String,
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// For email: addresses, comma-separated. For webhook and Slack: the URL.
    pub to: String,
    /// `info`, `low`, `medium` (default), `high` or `critical`.
    pub min_severity: Option<String>,
}

/// A channel just made: for webhooks, the signing secret, shown once.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Created {
    pub channel: Channel,
    pub signing_secret: Option<String>,
}

/// Validates and stores a channel.
pub async fn create(
    conn: &mut AsyncPgConnection,
    keys: &MasterKeys,
    ctx: &OrgCtx,
    input: &ChannelInput,
) -> Result<Created, AppError> {
    let mut errors = crate::web::FieldErrors::default();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.add("name", "must be 1–100 characters");
    }
    let min_severity = input
        .min_severity
        .clone()
        .unwrap_or_else(|| "medium".into());
    if Severity::parse(&min_severity).is_none() {
        errors.add(
            "min_severity",
            "must be info, low, medium, high or critical",
        );
    }
    let (display, secret) = match input.kind.as_str() {
        "email" => {
            let addresses: Vec<&str> = input
                .to
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect();
            if addresses.is_empty()
                || addresses.len() > 20
                || addresses
                    .iter()
                    .any(|a| a.parse::<lettre::Address>().is_err())
            {
                errors.add(
                    "to",
                    "must be one to twenty email addresses, comma-separated",
                );
            }
            (addresses.join(", "), None)
        }
        "webhook" | "slack" => match notify::check_url(&input.to) {
            Ok(url) => (
                format!(
                    "{}://{}/…",
                    url.scheme(),
                    url.host_str().unwrap_or_default()
                ),
                (input.kind == "webhook").then(crate::crypto::new_token),
            ),
            Err(message) => {
                errors.add("to", message);
                (String::new(), None)
            }
        },
        _ => {
            errors.add("kind", "must be email, webhook or slack");
            (String::new(), None)
        }
    };
    errors.into_result()?;
    // The id first: the sealed settings are bound to it.
    let channel_id: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
        "nextval(pg_get_serial_sequence('notification_channels', 'id'))",
    ))
    .get_result(conn)
    .await?;
    let sealed = keys.seal(
        &Zeroizing::new(
            serde_json::to_vec(&Secret {
                to: input.to.trim().to_string(),
                secret: secret.clone(),
            })
            .map_err(AppError::internal)?,
        ),
        &context(ctx.org_id, channel_id),
    );
    let channel: Channel = diesel::insert_into(notification_channels::table)
        .values((
            notification_channels::id.eq(channel_id),
            notification_channels::org_id.eq(ctx.org_id),
            notification_channels::name.eq(name),
            notification_channels::kind.eq(&input.kind),
            notification_channels::min_severity.eq(&min_severity),
            notification_channels::config_sealed.eq(sealed),
            notification_channels::display.eq(&display),
        ))
        .returning(COLUMNS)
        .get_result(conn)
        .await?;
    Ok(Created {
        channel,
        signing_secret: secret,
    })
}

const COLUMNS: (
    notification_channels::id,
    notification_channels::name,
    notification_channels::kind,
    notification_channels::min_severity,
    notification_channels::display,
    notification_channels::enabled,
    notification_channels::created_at,
) = (
    notification_channels::id,
    notification_channels::name,
    notification_channels::kind,
    notification_channels::min_severity,
    notification_channels::display,
    notification_channels::enabled,
    notification_channels::created_at,
);

pub async fn list(conn: &mut AsyncPgConnection, ctx: &OrgCtx) -> QueryResult<Vec<Channel>> {
    notification_channels::table
        .filter(notification_channels::org_id.eq(ctx.org_id))
        .select(COLUMNS)
        .order(notification_channels::id)
        .load(conn)
        .await
}

pub async fn channel(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Channel> {
    notification_channels::table
        .filter(notification_channels::org_id.eq(ctx.org_id))
        .filter(notification_channels::id.eq(id))
        .select(COLUMNS)
        .first(conn)
        .await
}

pub async fn delete(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<usize> {
    diesel::delete(
        notification_channels::table
            .filter(notification_channels::org_id.eq(ctx.org_id))
            .filter(notification_channels::id.eq(id)),
    )
    .execute(conn)
    .await
}

/// Writes a delivery and queues its job, unless one with this key exists; call in the caller's
/// transaction.
async fn enqueue(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    channel_id: i64,
    alert_id: Option<i64>,
    dedupe_key: &str,
) -> QueryResult<Option<i64>> {
    let id: Option<i64> = diesel::insert_into(notification_deliveries::table)
        .values((
            notification_deliveries::org_id.eq(org_id),
            notification_deliveries::channel_id.eq(channel_id),
            notification_deliveries::alert_id.eq(alert_id),
            notification_deliveries::dedupe_key.eq(dedupe_key),
            notification_deliveries::status.eq("pending"),
        ))
        .on_conflict_do_nothing()
        .returning(notification_deliveries::id)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(id) = id {
        queue::enqueue(
            conn,
            NOTIFY_JOB,
            &serde_json::json!({ "delivery_id": id }),
            8,
            OffsetDateTime::now_utc(),
        )
        .await?;
    }
    Ok(id)
}

/// Queues messages about an alert that just opened or reopened, to every enabled channel of its
/// organization whose minimum severity it reaches.
pub async fn alert_raised(conn: &mut AsyncPgConnection, alert_id: i64) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = Text)]
        severity: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        reopened: i32,
    }
    let alert: Row =
        diesel::sql_query("SELECT org_id, severity, reopened FROM alerts WHERE id = $1")
            .bind::<BigInt, _>(alert_id)
            .get_result(conn)
            .await?;
    if alert.reopened > LOUD_REOPENS {
        return Ok(0);
    }
    let severity = Severity::parse(&alert.severity).unwrap_or(Severity::Medium);
    let channels: Vec<(i64, String)> = notification_channels::table
        .filter(notification_channels::org_id.eq(alert.org_id))
        .filter(notification_channels::enabled.eq(true))
        .select((
            notification_channels::id,
            notification_channels::min_severity,
        ))
        .load(conn)
        .await?;
    let mut queued = 0;
    for (channel_id, min) in channels {
        if severity < Severity::parse(&min).unwrap_or(Severity::Medium) {
            continue;
        }
        let key = format!("alert:{alert_id}:{}:channel:{channel_id}", alert.reopened);
        if enqueue(conn, alert.org_id, channel_id, Some(alert_id), &key)
            .await?
            .is_some()
        {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queues a test message to a channel of the caller's organization.
pub async fn test_send(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    channel_id: i64,
) -> QueryResult<Option<i64>> {
    let key = format!("test:{channel_id}:{}", crate::crypto::new_token());
    enqueue(conn, ctx.org_id, channel_id, None, &key).await
}

/// A delivery as listed.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct Delivery {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub channel_id: i64,
    #[diesel(sql_type = Text)]
    pub channel_name: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub alert_id: Option<i64>,
    /// `pending`, `delivered` or `failed` (retries continue until the last attempt).
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    pub response_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub delivered_at: Option<OffsetDateTime>,
}

pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    limit: i64,
) -> QueryResult<Vec<Delivery>> {
    diesel::sql_query(
        "SELECT d.id, d.channel_id, c.name AS channel_name, d.alert_id, d.status, d.attempts,
                d.response_code, d.last_error, d.created_at, d.delivered_at
         FROM notification_deliveries d JOIN notification_channels c ON c.id = d.channel_id
         WHERE d.org_id = $1 ORDER BY d.id DESC LIMIT $2",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Claims and sends notifications until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [NOTIFY_JOB.to_string()];
    queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        std::time::Duration::from_secs(120),
        |job| {
            let state = state.clone();
            async move {
                let id = job.payload["delivery_id"].as_i64().unwrap_or(0);
                send(&state, id).await
            }
        },
    )
    .await
}

/// Seals every channel's settings not sealed by the current master key under it, bound to the
/// channel (part of `siteward admin rotate-master-key`); returns how many.
pub async fn reseal_all(conn: &mut AsyncPgConnection, keys: &MasterKeys) -> Result<usize, String> {
    let channels: Vec<(i64, i64, Vec<u8>)> = notification_channels::table
        .select((
            notification_channels::id,
            notification_channels::org_id,
            notification_channels::config_sealed,
        ))
        .load(conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut resealed = 0;
    for (channel_id, org_id, sealed) in channels {
        let context = context(org_id, channel_id);
        match keys.reseal(&sealed, &context) {
            Ok(Some(fresh)) => {
                // Only if unchanged meanwhile (edited settings are sealed anew anyway).
                resealed += diesel::update(
                    notification_channels::table
                        .filter(notification_channels::id.eq(channel_id))
                        .filter(notification_channels::config_sealed.eq(&sealed)),
                )
                .set(notification_channels::config_sealed.eq(fresh))
                .execute(conn)
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok(None) => {}
            // Legacy binding: opening seals it again under the channel and the current key.
            Err(_) => {
                open_settings(conn, keys, (org_id, channel_id, &sealed)).await?;
                resealed += 1;
            }
        }
    }
    Ok(resealed)
}

/// Opens a channel's sealed settings; legacy ones (bound to the org only) are sealed again
/// under the channel's own binding on the way.
async fn open_settings(
    conn: &mut AsyncPgConnection,
    keys: &MasterKeys,
    (org_id, channel_id, sealed): (i64, i64, &[u8]),
) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Ok(opened) = keys.open(sealed, &context(org_id, channel_id)) {
        return Ok(opened);
    }
    let opened = keys
        .open(sealed, &legacy_context(org_id))
        .map_err(|e| e.to_string())?;
    let resealed = keys.seal(&opened, &context(org_id, channel_id));
    diesel::update(
        notification_channels::table
            .filter(notification_channels::id.eq(channel_id))
            .filter(notification_channels::config_sealed.eq(sealed)),
    )
    .set(notification_channels::config_sealed.eq(resealed))
    .execute(conn)
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(
        channel_id,
        "sealed a channel's settings under its own binding"
    );
    Ok(opened)
}

/// Sends one delivery and records how it went; an error retries the job.
async fn send(state: &AppState, delivery_id: i64) -> Result<(), String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = BigInt)]
        channel_id: i64,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        config_sealed: Vec<u8>,
        #[diesel(sql_type = Nullable<BigInt>)]
        alert_id: Option<i64>,
        #[diesel(sql_type = Nullable<Text>)]
        title: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        severity: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        rule: Option<String>,
        #[diesel(sql_type = Nullable<BigInt>)]
        target_id: Option<i64>,
        #[diesel(sql_type = Nullable<Text>)]
        target_name: Option<String>,
    }
    let mut conn = state.conn().await.map_err(|e| e.to_string())?;
    let row: Option<Row> = diesel::sql_query(
        "SELECT d.org_id, d.status, c.kind, c.id AS channel_id, c.config_sealed, d.alert_id, a.title, a.severity,
                a.rule, a.target_id, t.name AS target_name
         FROM notification_deliveries d
         JOIN notification_channels c ON c.id = d.channel_id
         LEFT JOIN alerts a ON a.id = d.alert_id
         LEFT JOIN targets t ON t.id = a.target_id
         WHERE d.id = $1",
    )
    .bind::<BigInt, _>(delivery_id)
    .get_result(&mut conn)
    .await
    .optional()
    .map_err(|e| e.to_string())?;
    // Its channel or alert was deleted, or it was sent already: nothing to do.
    let Some(row) = row.filter(|r| r.status != "delivered") else {
        return Ok(());
    };
    let opened = match open_settings(
        &mut conn,
        &state.config.master_keys,
        (row.org_id, row.channel_id, &row.config_sealed),
    )
    .await
    {
        Ok(opened) => opened,
        Err(error) => {
            let message = format!("the channel's settings cannot be opened: {error}");
            record_failure(&mut conn, delivery_id, None, &message).await?;
            return Err(message);
        }
    };
    drop(conn);
    let secret: Secret = serde_json::from_slice(&opened).map_err(|e| e.to_string())?;
    let title = row
        .title
        .clone()
        .unwrap_or_else(|| "Test message from siteward".into());
    let severity = row.severity.clone().unwrap_or_else(|| "info".into());
    let link = row
        .alert_id
        .map(|id| format!("{}alerts?state=all#alert-{id}", state.config.public_url));
    let allow_private = state.config.runners.notify_allow_private;
    let result: Result<Option<u16>, notify::SendError> = match row.kind.as_str() {
        "email" => {
            // Plain text; page text on its own lines, never a header of its own.
            let title = notify::escape::one_line(&title);
            let body = format!(
                "{title}\n\nSeverity: {severity}\nTarget: {}\n{}\n\n— siteward",
                notify::escape::one_line(&row.target_name.clone().unwrap_or_else(|| "—".into())),
                link.clone().unwrap_or_default()
            );
            let mut outcome = Ok(None);
            for to in secret
                .to
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                if let Err(e) = state
                    .mailer
                    .send(to, &format!("[siteward] {severity}: {title}"), body.clone())
                    .await
                {
                    outcome = Err(notify::SendError::Mail(e.to_string()));
                    break;
                }
            }
            outcome
        }
        kind => {
            let url = notify::check_url(&secret.to).map_err(|e| e.to_string())?;
            let body = if kind == "slack" {
                serde_json::json!({ "text": format!(
                    "*{severity}* — {}{}",
                    notify::escape::slack(&title),
                    link.as_deref().map(|l| format!(" <{l}|open>")).unwrap_or_default()
                ) })
            } else {
                serde_json::json!({
                    "delivery_id": delivery_id,
                    "alert_id": row.alert_id,
                    "rule": row.rule,
                    "severity": severity,
                    "title": title,
                    "target_id": row.target_id,
                    "target_name": row.target_name,
                    "url": link,
                })
            };
            let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let mut headers = vec![("siteward-delivery", delivery_id.to_string())];
            if let Some(key) = &secret.secret {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                headers.push((
                    "siteward-signature",
                    notify::signature(key.as_bytes(), now, &body),
                ));
            }
            notify::post_json(&url, &body, &headers, allow_private)
                .await
                .map(Some)
        }
    };
    let mut conn = state.conn().await.map_err(|e| e.to_string())?;
    match result {
        Ok(code) => {
            diesel::sql_query(
                "UPDATE notification_deliveries SET status = 'delivered', attempts = attempts + 1,
                        response_code = $2, last_error = NULL, delivered_at = now()
                 WHERE id = $1",
            )
            .bind::<BigInt, _>(delivery_id)
            .bind::<Nullable<diesel::sql_types::Integer>, _>(code.map(i32::from))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            Ok(())
        }
        Err(error) => {
            let message = error.to_string();
            record_failure(&mut conn, delivery_id, error.status(), &message).await?;
            Err(message)
        }
    }
}

/// Records a failed attempt of a delivery.
async fn record_failure(
    conn: &mut AsyncPgConnection,
    delivery_id: i64,
    response_code: Option<u16>,
    message: &str,
) -> Result<(), String> {
    diesel::sql_query(
        "UPDATE notification_deliveries SET status = 'failed', attempts = attempts + 1,
                response_code = $2, last_error = $3
         WHERE id = $1",
    )
    .bind::<BigInt, _>(delivery_id)
    .bind::<Nullable<diesel::sql_types::Integer>, _>(response_code.map(i32::from))
    .bind::<Text, _>(message)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}
