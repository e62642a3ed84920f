//! What a client report says, gathered once when the report is made: per target the latest
//! screenshot, its third-party hosts and cookies, what changed during the period (visual changes
//! with before and after), alerts opened and resolved, checkout runs, policy changes and the
//! latest compliance verdict — and a summary in words a shop owner understands.

use base64::Engine;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::diff::Change;
use crate::scans::analysis::read_verified;
use crate::state::AppState;
use crate::web::AppError;

/// How many visual changes per target a report shows with before and after screenshots.
const VISUAL_PAIRS: usize = 3;
/// How many change sentences per target a report lists (the rest are counted).
const CHANGE_LINES: usize = 50;

/// Everything a report shows; every string from a scanned site is escaped when rendered.
#[derive(Debug, Clone)]
pub struct ReportContent {
    pub title: String,
    pub agency: String,
    /// The agency's accent colour (`#rrggbb`) and logo (`data:` URI), if it set them.
    pub accent: Option<String>,
    pub logo: Option<String>,
    pub client: String,
    /// Whom the report is prepared for.
    pub contact: Option<String>,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub made_at: OffsetDateTime,
    pub summary: Vec<String>,
    pub targets: Vec<TargetSection>,
}

#[derive(Debug, Clone)]
pub struct TargetSection {
    pub name: String,
    pub url: String,
    pub latest: Option<Latest>,
    pub scans: i64,
    pub failed_scans: i64,
    /// Sentences, newest first, with when they were seen.
    pub changes: Vec<(OffsetDateTime, String)>,
    /// Changes beyond those listed.
    pub more_changes: usize,
    pub policy_changes: Vec<(OffsetDateTime, String)>,
    pub visual: Vec<VisualPair>,
    pub alerts_opened: Vec<AlertLine>,
    pub alerts_resolved: Vec<AlertLine>,
    /// Alerts still open at the end of the period.
    pub open_alerts: Vec<AlertLine>,
    pub checkout_runs: Vec<RunLine>,
    pub compliance: Option<ComplianceLine>,
}

#[derive(Debug, Clone)]
pub struct Latest {
    pub captured_at: OffsetDateTime,
    /// `data:image/png;base64,…` of the viewport screenshot.
    pub screenshot: Option<String>,
    pub hosts: Vec<(String, Option<String>)>,
    pub cookies: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct VisualPair {
    pub at: OffsetDateTime,
    pub sentence: String,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct AlertLine {
    #[diesel(sql_type = Timestamptz)]
    pub at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    pub severity: String,
    #[diesel(sql_type = Text)]
    pub title: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct RunLine {
    #[diesel(sql_type = Timestamptz)]
    pub at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    pub test: String,
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ComplianceLine {
    pub at: OffsetDateTime,
    pub findings: Vec<(String, String)>,
}

/// What to gather: a client's targets (or one of them) over a period.
pub struct Scope {
    pub org_id: i64,
    pub branding: crate::branding::queries::Branding,
    pub client_id: i64,
    pub client: String,
    pub contact: Option<String>,
    pub target_id: Option<i64>,
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
}

/// Reads what the scope's period held. Acts for the report's organization only: every query is
/// bound to `scope.org_id`.
pub async fn gather(state: &AppState, scope: &Scope) -> Result<ReportContent, AppError> {
    let mut conn = state.conn().await?;
    let targets: Vec<(i64, String, String)> = {
        use crate::db::schema::targets;
        let mut query = targets::table
            .filter(targets::org_id.eq(scope.org_id))
            .filter(targets::client_id.eq(scope.client_id))
            .select((targets::id, targets::name, targets::url))
            .order(targets::name)
            .into_boxed();
        if let Some(id) = scope.target_id {
            query = query.filter(targets::id.eq(id));
        }
        query.load(&mut conn).await?
    };
    drop(conn);
    let mut sections = Vec::with_capacity(targets.len());
    for (id, name, url) in targets {
        sections.push(target_section(state, scope, id, name, url).await?);
    }
    let mut content = ReportContent {
        title: match (scope.target_id, <[TargetSection]>::first(&sections)) {
            (Some(_), Some(section)) => format!("{}: {}", scope.client, section.name),
            _ => scope.client.clone(),
        },
        agency: scope.branding.name.clone(),
        accent: scope.branding.color.clone(),
        logo: scope.branding.logo_data_uri(),
        client: scope.client.clone(),
        contact: scope.contact.clone(),
        period_start: scope.period_start,
        period_end: scope.period_end,
        made_at: OffsetDateTime::now_utc(),
        summary: Vec::new(),
        targets: sections,
    };
    content.summary = summary(&content);
    Ok(content)
}

#[derive(QueryableByName)]
struct DiffRow {
    #[diesel(sql_type = BigInt)]
    snapshot_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    previous_snapshot_id: Option<i64>,
    #[diesel(sql_type = Timestamptz)]
    at: OffsetDateTime,
    #[diesel(sql_type = Jsonb)]
    changes: serde_json::Value,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    all: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
}

async fn target_section(
    state: &AppState,
    scope: &Scope,
    target_id: i64,
    name: String,
    url: String,
) -> Result<TargetSection, AppError> {
    let org = scope.org_id;
    let (from, to) = (scope.period_start, scope.period_end);
    let mut conn = state.conn().await?;
    let period = |sql: String| in_period(sql, org, target_id, from, to);
    let counts: Count = period(
        "SELECT count(*) AS all, count(*) FILTER (WHERE j.state = 'dead') AS failed
         FROM scans s JOIN jobs j ON j.id = s.job_id
         WHERE s.org_id = $1 AND s.target_id = $2 AND s.visit IS NULL
           AND s.created_at >= $3 AND s.created_at < $4"
            .into(),
    )
    .get_result(&mut conn)
    .await?;
    let diffs: Vec<DiffRow> = period(
        "SELECT d.snapshot_id, d.previous_snapshot_id, s.captured_at AS at, d.changes
         FROM snapshot_diffs d JOIN snapshots s ON s.id = d.snapshot_id
         WHERE d.org_id = $1 AND d.target_id = $2 AND s.visit IS NULL
           AND s.captured_at >= $3 AND s.captured_at < $4
         ORDER BY s.id DESC LIMIT 500"
            .into(),
    )
    .load(&mut conn)
    .await?;
    let alerts = |column: &str| {
        format!(
            "SELECT {column} AS at, severity, title FROM alerts
             WHERE org_id = $1 AND target_id = $2 AND {column} >= $3 AND {column} < $4
             ORDER BY {column} DESC LIMIT 100"
        )
    };
    let alerts_opened: Vec<AlertLine> = period(alerts("opened_at")).load(&mut conn).await?;
    let alerts_resolved: Vec<AlertLine> = period(alerts("resolved_at")).load(&mut conn).await?;
    let open_alerts: Vec<AlertLine> = diesel::sql_query(
        "SELECT opened_at AS at, severity, title FROM alerts
         WHERE org_id = $1 AND target_id = $2 AND opened_at < $3
           AND (resolved_at IS NULL OR resolved_at >= $3)
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2
                  WHEN 'low' THEN 3 ELSE 4 END, opened_at DESC LIMIT 100",
    )
    .bind::<BigInt, _>(org)
    .bind::<BigInt, _>(target_id)
    .bind::<Timestamptz, _>(to)
    .load(&mut conn)
    .await?;
    let checkout_runs: Vec<RunLine> = period(
        "SELECT r.finished_at AS at, t.name AS test, r.outcome, r.failure
         FROM checkout_runs r JOIN checkout_tests t ON t.id = r.test_id
         WHERE r.org_id = $1 AND r.target_id = $2 AND r.outcome IS NOT NULL
           AND r.finished_at >= $3 AND r.finished_at < $4
         ORDER BY r.finished_at DESC LIMIT 100"
            .into(),
    )
    .load(&mut conn)
    .await?;
    let latest_snapshot: Option<(i64, OffsetDateTime)> = {
        use crate::db::schema::snapshots;
        snapshots::table
            .filter(snapshots::org_id.eq(org))
            .filter(snapshots::target_id.eq(target_id))
            .filter(snapshots::visit.is_null())
            .filter(snapshots::captured_at.lt(to))
            .select((snapshots::id, snapshots::captured_at))
            .order(snapshots::id.desc())
            .first(&mut conn)
            .await
            .optional()?
    };
    let compliance = compliance_line(&mut conn, org, target_id, from, to).await?;
    let latest = match latest_snapshot {
        Some((id, captured_at)) => {
            use crate::db::schema::{snapshot_cookies as c, snapshot_hosts as h};
            let hosts: Vec<(String, Option<String>)> = h::table
                .filter(h::snapshot_id.eq(id))
                .filter(h::org_id.eq(org))
                .filter(h::party.eq("third"))
                .select((h::host, h::category))
                .order(h::host)
                .load(&mut conn)
                .await?;
            let cookies: Vec<(String, String, Option<String>)> = c::table
                .filter(c::snapshot_id.eq(id))
                .filter(c::org_id.eq(org))
                .select((c::name, c::domain, c::category))
                .order((c::domain, c::name))
                .load(&mut conn)
                .await?;
            drop(conn);
            Some(Latest {
                captured_at,
                screenshot: screenshot(state, org, id).await?.map(|png| data_uri(&png)),
                hosts,
                cookies,
            })
        }
        None => {
            drop(conn);
            None
        }
    };

    let mut changes = Vec::new();
    let mut policy_changes = Vec::new();
    let mut visual = Vec::new();
    for row in &diffs {
        let parsed: Vec<Change> = serde_json::from_value(row.changes.clone()).unwrap_or_default();
        for change in parsed {
            let sentence = change.sentence();
            match change {
                Change::PolicyTextChanged { .. }
                | Change::PolicyPageAdded { .. }
                | Change::PolicyPageRemoved { .. } => {
                    policy_changes.push((row.at, sentence.clone()))
                }
                Change::VisualChanged { ref screenshot, .. }
                    if screenshot == "viewport" && visual.len() < VISUAL_PAIRS =>
                {
                    if let Some(previous) = row.previous_snapshot_id
                        && let (Some(before), Some(after)) = (
                            self::screenshot(state, org, previous).await?,
                            self::screenshot(state, org, row.snapshot_id).await?,
                        )
                    {
                        visual.push(VisualPair {
                            at: row.at,
                            sentence: sentence.clone(),
                            before: data_uri(&before),
                            after: data_uri(&after),
                        });
                    }
                }
                _ => {}
            }
            changes.push((row.at, sentence));
        }
    }
    let more_changes = changes.len().saturating_sub(CHANGE_LINES);
    changes.truncate(CHANGE_LINES);
    Ok(TargetSection {
        name,
        url,
        latest,
        scans: counts.all,
        failed_scans: counts.failed,
        changes,
        more_changes,
        policy_changes,
        visual,
        alerts_opened,
        alerts_resolved,
        open_alerts,
        checkout_runs,
        compliance,
    })
}

/// `sql` bound to `$1` the organization, `$2` the target and `$3`–`$4` the period.
fn in_period(
    sql: String,
    org: i64,
    target_id: i64,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>
{
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<BigInt, _>(org)
        .bind::<BigInt, _>(target_id)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
}

async fn compliance_line(
    conn: &mut AsyncPgConnection,
    org: i64,
    target_id: i64,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Option<ComplianceLine>, AppError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Timestamptz)]
        at: OffsetDateTime,
    }
    let latest: Option<Row> = in_period(
        "SELECT id, finished_at AS at FROM compliance_scans
         WHERE org_id = $1 AND target_id = $2 AND state = 'done'
           AND finished_at >= $3 AND finished_at < $4
         ORDER BY id DESC LIMIT 1"
            .into(),
        org,
        target_id,
        from,
        to,
    )
    .get_result(conn)
    .await
    .optional()?;
    let Some(latest) = latest else {
        return Ok(None);
    };
    use crate::db::schema::compliance_findings as f;
    let findings: Vec<(String, String)> = f::table
        .filter(f::compliance_scan_id.eq(latest.id))
        .filter(f::org_id.eq(org))
        .select((f::severity, f::title))
        .order(f::fingerprint)
        .load(conn)
        .await?;
    Ok(Some(ComplianceLine {
        at: latest.at,
        findings,
    }))
}

/// The viewport screenshot of a snapshot of `org`, hash-checked; `None` if it has none.
async fn screenshot(
    state: &AppState,
    org: i64,
    snapshot_id: i64,
) -> Result<Option<Vec<u8>>, AppError> {
    let mut conn = state.conn().await?;
    let artifact = crate::scans::queries::artifacts(&mut conn, org, snapshot_id)
        .await?
        .into_iter()
        .find(|a| a.name == "viewport.png");
    drop(conn);
    match artifact {
        Some(artifact) => Ok(Some(
            read_verified(state, org, snapshot_id, &artifact).await?,
        )),
        None => Ok(None),
    }
}

fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The report's first lines: what is wrong, what changed, what to do — in plain words.
pub fn summary(content: &ReportContent) -> Vec<String> {
    let mut lines = Vec::new();
    let serious: Vec<(&str, &AlertLine)> = content
        .targets
        .iter()
        .flat_map(|t| t.open_alerts.iter().map(move |a| (t.name.as_str(), a)))
        .filter(|(_, a)| matches!(a.severity.as_str(), "critical" | "high"))
        .collect();
    if serious.is_empty() {
        lines.push("Nothing needs your attention: no serious problem is open.".to_owned());
    } else {
        lines.push(format!(
            "{} serious problem{} need{} attention:",
            serious.len(),
            plural(serious.len()),
            if serious.len() == 1 { "s" } else { "" }
        ));
        for (target, alert) in serious.iter().take(5) {
            lines.push(format!("{target}: {} ({}).", alert.title, alert.severity));
        }
    }
    let changes: usize = content
        .targets
        .iter()
        .map(|t| t.changes.len() + t.more_changes)
        .sum();
    let scans: i64 = content.targets.iter().map(|t| t.scans).sum();
    let failed: i64 = content.targets.iter().map(|t| t.failed_scans).sum();
    lines.push(format!(
        "{scans} scan{} of {} page{} in the period{}; {changes} change{} seen.",
        plural(scans as usize),
        content.targets.len(),
        plural(content.targets.len()),
        if failed > 0 {
            format!(" ({failed} could not complete)")
        } else {
            String::new()
        },
        plural(changes),
    ));
    let runs: Vec<&RunLine> = content
        .targets
        .iter()
        .flat_map(|t| &t.checkout_runs)
        .collect();
    if !runs.is_empty() {
        let failed = runs.iter().filter(|r| r.outcome != "passed").count();
        lines.push(if failed == 0 {
            format!(
                "Every checkout test passed ({} run{}).",
                runs.len(),
                plural(runs.len())
            )
        } else {
            format!(
                "{failed} of {} checkout test run{} failed: check that visitors can still buy.",
                runs.len(),
                plural(runs.len())
            )
        });
    }
    let policies: usize = content.targets.iter().map(|t| t.policy_changes.len()).sum();
    if policies > 0 {
        lines.push(format!(
            "{policies} privacy, cookie or terms page change{}: make sure they are intended.",
            plural(policies)
        ));
    }
    let consent: usize = content
        .targets
        .iter()
        .filter_map(|t| t.compliance.as_ref())
        .map(|c| c.findings.len())
        .sum();
    if consent > 0 {
        lines.push(format!(
            "The consent check found {consent} problem{} with how visitors' choices are respected.",
            plural(consent)
        ));
    }
    lines
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str) -> TargetSection {
        TargetSection {
            name: name.into(),
            url: format!("https://{name}/"),
            latest: None,
            scans: 30,
            failed_scans: 0,
            changes: vec![],
            more_changes: 0,
            policy_changes: vec![],
            visual: vec![],
            alerts_opened: vec![],
            alerts_resolved: vec![],
            open_alerts: vec![],
            checkout_runs: vec![],
            compliance: None,
        }
    }

    fn content(targets: Vec<TargetSection>) -> ReportContent {
        ReportContent {
            title: "Shop".into(),
            agency: "Agency".into(),
            accent: None,
            logo: None,
            client: "Shop".into(),
            contact: None,
            period_start: OffsetDateTime::UNIX_EPOCH,
            period_end: OffsetDateTime::UNIX_EPOCH,
            made_at: OffsetDateTime::UNIX_EPOCH,
            summary: vec![],
            targets,
        }
    }

    #[test]
    fn a_quiet_period_says_so_and_problems_come_first_in_words() {
        let quiet = summary(&content(vec![section("shop.test")]));
        assert_eq!(
            quiet,
            [
                "Nothing needs your attention: no serious problem is open.",
                "30 scans of 1 page in the period; 0 changes seen."
            ]
        );
        let mut busy = section("shop.test");
        busy.open_alerts = vec![AlertLine {
            at: OffsetDateTime::UNIX_EPOCH,
            severity: "critical".into(),
            title: "A checkout script changed".into(),
        }];
        busy.failed_scans = 2;
        busy.checkout_runs = vec![RunLine {
            at: OffsetDateTime::UNIX_EPOCH,
            test: "Buy".into(),
            outcome: "failed".into(),
            failure: None,
        }];
        let lines = summary(&content(vec![busy]));
        assert_eq!(lines[0], "1 serious problem needs attention:");
        assert_eq!(lines[1], "shop.test: A checkout script changed (critical).");
        assert!(lines[2].contains("(2 could not complete)"));
        assert_eq!(
            lines[3],
            "1 of 1 checkout test run failed: check that visitors can still buy."
        );
    }
}
