//! Alerts in PostgreSQL: raising with deduplication and flap damping, resolving automatically
//! and by hand, acknowledging, and the rule settings.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use super::rules::{self, Finding, Severity};
use crate::auth::OrgCtx;
use crate::compliance::Visit;
use crate::db::schema::alert_rules;
use crate::web::pagination::PageRequest;

/// An alert as people see it.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct Alert {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    #[diesel(sql_type = Text)]
    pub target_name: String,
    #[diesel(sql_type = BigInt)]
    pub client_id: i64,
    #[diesel(sql_type = Text)]
    pub rule: String,
    #[diesel(sql_type = Text)]
    pub severity: String,
    #[diesel(sql_type = Text)]
    pub fingerprint: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Jsonb)]
    pub detail: serde_json::Value,
    /// `open`, `acknowledged` or `resolved`.
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub occurrences: i32,
    /// Times it came back within a day of being resolved.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub reopened: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub first_snapshot_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_snapshot_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub opened_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub acknowledged_by: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub resolved_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resolved_by: Option<String>,
    /// `auto` or `manual`.
    #[diesel(sql_type = Nullable<Text>)]
    pub resolution: Option<String>,
}

const ALERT_SELECT: &str = "SELECT a.id, a.target_id, t.name AS target_name, t.client_id, a.rule,
        a.severity, a.fingerprint, a.title, a.detail, a.state, a.occurrences, a.reopened,
        a.first_snapshot_id, a.last_snapshot_id, a.opened_at, a.acknowledged_at,
        ack.name AS acknowledged_by, a.resolved_at, res.name AS resolved_by, a.resolution
    FROM alerts a
    JOIN targets t ON t.id = a.target_id
    LEFT JOIN users ack ON ack.id = a.acknowledged_by
    LEFT JOIN users res ON res.id = a.resolved_by";

/// Which alerts to list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    /// `live` (open or acknowledged; the default), `open`, `acknowledged`, `resolved` or `all`.
    pub state: Option<String>,
    pub severity: Option<String>,
    pub target_id: Option<i64>,
    pub client_id: Option<i64>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    filter: &Filter,
    page: PageRequest,
) -> QueryResult<Vec<Alert>> {
    let states: Vec<&str> = match filter.state.as_deref().unwrap_or("live") {
        "open" => vec!["open"],
        "acknowledged" => vec!["acknowledged"],
        "resolved" => vec!["resolved"],
        "all" => vec!["open", "acknowledged", "resolved"],
        _ => vec!["open", "acknowledged"],
    };
    diesel::sql_query(format!(
        "{ALERT_SELECT} WHERE a.org_id = $1 AND a.state = ANY($2) AND a.id < $3
           AND ($4::text IS NULL OR a.severity = $4)
           AND ($5::bigint IS NULL OR a.target_id = $5)
           AND ($6::bigint IS NULL OR t.client_id = $6)
         ORDER BY a.id DESC LIMIT $7"
    ))
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<diesel::sql_types::Array<Text>, _>(states)
    .bind::<BigInt, _>(page.before_id.unwrap_or(i64::MAX))
    .bind::<Nullable<Text>, _>(filter.severity.as_deref())
    .bind::<Nullable<BigInt>, _>(filter.target_id)
    .bind::<Nullable<BigInt>, _>(filter.client_id)
    .bind::<BigInt, _>(page.limit + 1)
    .load(conn)
    .await
}

/// The alerts of a target of the caller's organization that were live at some time in
/// `from..to` (opened before its end, not resolved before its start), oldest first.
pub async fn live_during(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> QueryResult<Vec<Alert>> {
    diesel::sql_query(format!(
        "{ALERT_SELECT} WHERE a.org_id = $1 AND a.target_id = $2 AND a.opened_at < $4
           AND (a.resolved_at IS NULL OR a.resolved_at >= $3)
         ORDER BY a.opened_at, a.id LIMIT 5000"
    ))
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(target_id)
    .bind::<diesel::sql_types::Timestamptz, _>(from)
    .bind::<diesel::sql_types::Timestamptz, _>(to)
    .load(conn)
    .await
}

pub async fn alert(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Alert> {
    diesel::sql_query(format!("{ALERT_SELECT} WHERE a.id = $1 AND a.org_id = $2"))
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result(conn)
        .await
}

/// Open → acknowledged; false if it was not open.
pub async fn acknowledge(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
    user_id: Option<i64>,
) -> QueryResult<bool> {
    let updated = diesel::sql_query(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $3
         WHERE id = $1 AND org_id = $2 AND state = 'open'",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Nullable<BigInt>, _>(user_id)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Resolved by hand; false if it was already resolved.
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
    user_id: Option<i64>,
) -> QueryResult<bool> {
    let updated = diesel::sql_query(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = $3,
                resolution = 'manual'
         WHERE id = $1 AND org_id = $2 AND state <> 'resolved'",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Nullable<BigInt>, _>(user_id)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// The severity and switch that apply to a rule on a target: the target's own setting, else
/// the organization's, else the built-in one.
pub async fn effective_rule(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_id: i64,
    rule: &str,
) -> QueryResult<(Severity, bool)> {
    let settings: Vec<(Option<i64>, String, bool)> = alert_rules::table
        .filter(alert_rules::org_id.eq(org_id))
        .filter(alert_rules::rule.eq(rule))
        .filter(
            alert_rules::target_id
                .eq(target_id)
                .or(alert_rules::target_id.is_null()),
        )
        .select((
            alert_rules::target_id,
            alert_rules::severity,
            alert_rules::enabled,
        ))
        .load(conn)
        .await?;
    let chosen = settings
        .iter()
        .find(|(t, _, _)| t.is_some())
        .or_else(|| settings.iter().find(|(t, _, _)| t.is_none()));
    Ok(match chosen {
        Some((_, severity, enabled)) => (
            Severity::parse(severity).unwrap_or(Severity::Medium),
            *enabled,
        ),
        None => (
            rules::default_severity(rule).unwrap_or(Severity::Medium),
            true,
        ),
    })
}

/// How a raise ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// A new alert.
    Opened(i64),
    /// A live alert about the same change counted it again.
    Repeated(i64),
    /// An alert resolved less than a day ago came back.
    Reopened(i64),
    /// The rule is switched off.
    Disabled,
}

/// Raises an alert for a finding: counted on a live alert about the same change, reopening one
/// resolved within a day, or new.
pub async fn raise(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_id: i64,
    snapshot_id: Option<i64>,
    finding: &Finding,
) -> QueryResult<Raised> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let (severity, enabled) = effective_rule(conn, org_id, target_id, finding.rule).await?;
    if !enabled {
        return Ok(Raised::Disabled);
    }
    let repeated: Option<Id> = diesel::sql_query(
        "UPDATE alerts SET occurrences = occurrences + 1, last_seen_at = now(),
                last_snapshot_id = coalesce($3, last_snapshot_id)
         WHERE target_id = $1 AND fingerprint = $2 AND state <> 'resolved' RETURNING id",
    )
    .bind::<BigInt, _>(target_id)
    .bind::<Text, _>(&finding.fingerprint)
    .bind::<Nullable<BigInt>, _>(snapshot_id)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = repeated {
        return Ok(Raised::Repeated(row.id));
    }
    let reopened: Option<Id> = diesel::sql_query(
        "UPDATE alerts SET state = 'open', reopened = reopened + 1, occurrences = occurrences + 1,
                last_seen_at = now(), last_snapshot_id = coalesce($3, last_snapshot_id),
                severity = $4, title = $5, detail = $6, acknowledged_at = NULL,
                acknowledged_by = NULL, resolved_at = NULL, resolved_by = NULL, resolution = NULL
         WHERE id = (SELECT id FROM alerts WHERE target_id = $1 AND fingerprint = $2
                       AND state = 'resolved' AND resolved_at > now() - interval '1 day'
                     ORDER BY id DESC LIMIT 1)
         RETURNING id",
    )
    .bind::<BigInt, _>(target_id)
    .bind::<Text, _>(&finding.fingerprint)
    .bind::<Nullable<BigInt>, _>(snapshot_id)
    .bind::<Text, _>(severity.as_str())
    .bind::<Text, _>(&finding.title)
    .bind::<Jsonb, _>(&finding.detail)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = reopened {
        super::notifications::alert_raised(conn, row.id).await?;
        return Ok(Raised::Reopened(row.id));
    }
    let opened: Id = diesel::sql_query(
        "INSERT INTO alerts (org_id, target_id, rule, severity, fingerprint, title, detail, state,
                             first_snapshot_id, last_snapshot_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8) RETURNING id",
    )
    .bind::<BigInt, _>(org_id)
    .bind::<BigInt, _>(target_id)
    .bind::<Text, _>(finding.rule)
    .bind::<Text, _>(severity.as_str())
    .bind::<Text, _>(&finding.fingerprint)
    .bind::<Text, _>(&finding.title)
    .bind::<Jsonb, _>(&finding.detail)
    .bind::<Nullable<BigInt>, _>(snapshot_id)
    .get_result(conn)
    .await?;
    super::notifications::alert_raised(conn, opened.id).await?;
    Ok(Raised::Opened(opened.id))
}

/// Resolves the target's live alerts that `snapshot` (of compliance visit `visit`, or a plain
/// scan's) can judge and no longer shows; returns how many.
pub async fn auto_resolve(
    conn: &mut AsyncPgConnection,
    target_id: i64,
    visit: Option<Visit>,
    snapshot_id: i64,
    snapshot: &scanner::Snapshot,
) -> QueryResult<usize> {
    let live: Vec<(i64, String)> = crate::db::schema::alerts::table
        .filter(crate::db::schema::alerts::target_id.eq(target_id))
        .filter(crate::db::schema::alerts::state.ne("resolved"))
        .select((
            crate::db::schema::alerts::id,
            crate::db::schema::alerts::fingerprint,
        ))
        .load(conn)
        .await?;
    let gone: Vec<i64> = live
        .into_iter()
        .filter(|(_, fingerprint)| {
            rules::in_scope(fingerprint, visit).is_some_and(|f| !rules::still_shows(f, snapshot))
        })
        .map(|(id, _)| id)
        .collect();
    resolve_automatically(conn, &gone, snapshot_id).await
}

/// Resolves the live alerts `ids`, which `snapshot_id` showed to be over; returns how many.
pub async fn resolve_automatically(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
    snapshot_id: i64,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolution = 'auto',
                last_snapshot_id = $2
         WHERE id = ANY($1) AND state <> 'resolved'",
    )
    .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
    .bind::<BigInt, _>(snapshot_id)
    .execute(conn)
    .await
}

/// After a scan failed for good: raises `scan_failed` when the target's last plain scans all
/// failed. (A failed compliance visit shows in its compliance scan's report instead.)
pub async fn after_failed_scan(conn: &mut AsyncPgConnection, job_id: i64) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Recent {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = BigInt)]
        target_id: i64,
        #[diesel(sql_type = Bool)]
        dead: bool,
        #[diesel(sql_type = Nullable<Text>)]
        error: Option<String>,
    }
    let recent: Vec<Recent> = diesel::sql_query(
        "SELECT s.org_id, s.target_id, j.state = 'dead' AS dead, j.last_error AS error
         FROM scans s JOIN jobs j ON j.id = s.job_id
         WHERE s.target_id = (SELECT target_id FROM scans
                              WHERE job_id = $1 AND visit IS NULL AND crawl_id IS NULL)
           AND s.visit IS NULL AND s.crawl_id IS NULL AND j.state IN ('done', 'dead')
         ORDER BY s.id DESC LIMIT $2",
    )
    .bind::<BigInt, _>(job_id)
    .bind::<BigInt, _>(rules::FAILURES_BEFORE_ALERT as i64)
    .load(conn)
    .await?;
    if recent.len() < rules::FAILURES_BEFORE_ALERT || !recent.iter().all(|r| r.dead) {
        return Ok(());
    }
    let error = recent[0].error.clone().unwrap_or_default();
    let finding = Finding {
        rule: "scan_failed",
        fingerprint: "scan_failed".into(),
        title: format!(
            "The last {} scans failed: {error}",
            rules::FAILURES_BEFORE_ALERT
        ),
        detail: serde_json::json!({ "error": error }),
    };
    raise(conn, recent[0].org_id, recent[0].target_id, None, &finding).await?;
    Ok(())
}

/// A rule as it applies to the organization's targets by default.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RuleSetting {
    pub rule: String,
    pub description: String,
    pub severity: Severity,
    pub enabled: bool,
    /// Targets with their own setting for this rule.
    pub target_overrides: Vec<TargetOverride>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetOverride {
    pub target_id: i64,
    pub severity: Severity,
    pub enabled: bool,
}

pub async fn rule_settings(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
) -> QueryResult<Vec<RuleSetting>> {
    let stored: Vec<(Option<i64>, String, String, bool)> = alert_rules::table
        .filter(alert_rules::org_id.eq(ctx.org_id))
        .select((
            alert_rules::target_id,
            alert_rules::rule,
            alert_rules::severity,
            alert_rules::enabled,
        ))
        .order(alert_rules::id)
        .load(conn)
        .await?;
    Ok(rules::all_rules()
        .map(|(rule, severity, description)| {
            let org = stored.iter().find(|(t, r, _, _)| t.is_none() && r == rule);
            RuleSetting {
                rule: rule.to_string(),
                description: description.to_string(),
                severity: org
                    .and_then(|(_, _, s, _)| Severity::parse(s))
                    .unwrap_or(severity),
                enabled: org.map(|(_, _, _, e)| *e).unwrap_or(true),
                target_overrides: stored
                    .iter()
                    .filter(|(t, r, _, _)| t.is_some() && r == rule)
                    .map(|(t, _, s, e)| TargetOverride {
                        target_id: t.unwrap_or_default(),
                        severity: Severity::parse(s).unwrap_or(severity),
                        enabled: *e,
                    })
                    .collect(),
            }
        })
        .collect())
}

/// Sets a rule's severity and switch for the organization or one of its targets.
pub async fn set_rule(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: Option<i64>,
    rule: &str,
    severity: Severity,
    enabled: bool,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO alert_rules (org_id, target_id, rule, severity, enabled)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, target_id, rule) DO UPDATE
         SET severity = excluded.severity, enabled = excluded.enabled",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Nullable<BigInt>, _>(target_id)
    .bind::<Text, _>(rule)
    .bind::<Text, _>(severity.as_str())
    .bind::<Bool, _>(enabled)
    .execute(conn)
    .await?;
    Ok(())
}
