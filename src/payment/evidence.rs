//! Evidence for an assessor (PCI DSS 4.0 6.4.3 and 11.6.1), per client and period: for each of
//! the client's payment targets, the dates it was scanned, the script inventory with every
//! version's justification and decision history, every change detected on the page, and every
//! alert that was live in the period with who acknowledged and resolved it. Made from the
//! database each time it is asked for, as a printable page and as CSV; every export is written
//! to the audit log by the routes.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::cadence::{self, Window};
use super::queries::{self, InventoryScript};
use crate::alerts::queries::Alert;
use crate::auth::OrgCtx;
use crate::db::schema::{snapshot_diffs, snapshots, targets};
use crate::diff::Change;
use crate::sites::queries::{Client, Target};

/// The most days one export covers.
pub const MAX_DAYS: u32 = 400;
/// Changes listed per target (the newest).
const MAX_CHANGES: i64 = 2_000;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Evidence {
    pub client_id: i64,
    pub client: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub period_end: OffsetDateTime,
    pub targets: Vec<TargetEvidence>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetEvidence {
    pub target_id: i64,
    pub name: String,
    pub url: String,
    /// Successful scans of the page in the period, oldest first.
    #[serde(with = "rfc3339_list")]
    #[schemars(with = "Vec<String>")]
    pub scans: Vec<OffsetDateTime>,
    pub window: Window,
    pub scripts: Vec<InventoryScript>,
    /// Changes detected in the period, oldest first (the newest 2,000).
    pub changes: Vec<ChangeEvidence>,
    /// More changes were detected than are listed.
    pub changes_truncated: bool,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChangeEvidence {
    pub snapshot_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub at: OffsetDateTime,
    pub kind: String,
    pub sentence: String,
}

mod rfc3339_list {
    use serde::Serializer;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        times: &[OffsetDateTime],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(times.len()))?;
        for time in times {
            seq.serialize_element(
                &time
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            )?;
        }
        seq.end()
    }
}

/// Gathers the evidence of `client` (the caller's, already checked) for the last `days` days.
pub async fn gather(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    client: &Client,
    days: u32,
) -> QueryResult<Evidence> {
    let period_end = OffsetDateTime::now_utc();
    let period_start = period_end - Duration::days(i64::from(days.clamp(1, MAX_DAYS)));
    let payment_targets: Vec<Target> = targets::table
        .filter(targets::org_id.eq(ctx.org_id))
        .filter(targets::client_id.eq(client.id))
        .filter(targets::page_kind.eq("payment"))
        .select(Target::as_select())
        .order(targets::name)
        .load(conn)
        .await?;
    let mut evidence = Vec::with_capacity(payment_targets.len());
    for target in payment_targets {
        let scans: Vec<OffsetDateTime> = snapshots::table
            .filter(snapshots::org_id.eq(ctx.org_id))
            .filter(snapshots::target_id.eq(target.id))
            .filter(snapshots::visit.is_null())
            .filter(snapshots::captured_at.ge(period_start))
            .filter(snapshots::captured_at.lt(period_end))
            .select(snapshots::captured_at)
            .order(snapshots::captured_at)
            .load(conn)
            .await?;
        let diffs: Vec<(i64, OffsetDateTime, serde_json::Value)> = snapshot_diffs::table
            .inner_join(snapshots::table.on(snapshots::id.eq(snapshot_diffs::snapshot_id)))
            .filter(snapshot_diffs::org_id.eq(ctx.org_id))
            .filter(snapshot_diffs::target_id.eq(target.id))
            .filter(snapshots::visit.is_null())
            .filter(snapshots::captured_at.ge(period_start))
            .filter(snapshots::captured_at.lt(period_end))
            .select((
                snapshot_diffs::snapshot_id,
                snapshots::captured_at,
                snapshot_diffs::changes,
            ))
            .order(snapshots::captured_at.desc())
            .limit(MAX_CHANGES)
            .load(conn)
            .await?;
        let mut changes: Vec<ChangeEvidence> = diffs
            .into_iter()
            .rev()
            .flat_map(|(snapshot_id, at, changes)| {
                serde_json::from_value::<Vec<Change>>(changes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |change| ChangeEvidence {
                        snapshot_id,
                        at,
                        kind: serde_json::to_value(&change)
                            .ok()
                            .and_then(|v| v["kind"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        sentence: change.sentence(),
                    })
            })
            .collect();
        // The newest are kept when there are more.
        let changes_truncated = changes.len() > MAX_CHANGES as usize;
        if changes_truncated {
            changes.drain(..changes.len() - MAX_CHANGES as usize);
        }
        evidence.push(TargetEvidence {
            target_id: target.id,
            scripts: queries::inventory(conn, ctx, target.id).await?,
            alerts: crate::alerts::queries::live_during(
                conn,
                ctx,
                target.id,
                period_start,
                period_end,
            )
            .await?,
            window: cadence::window(conn, &target).await?,
            name: target.name,
            url: target.url,
            scans,
            changes,
            changes_truncated,
        });
    }
    Ok(Evidence {
        client_id: client.id,
        client: client.name.clone(),
        period_start,
        period_end,
        targets: evidence,
    })
}

#[derive(askama::Template)]
#[template(path = "payment_evidence_report.html")]
struct ReportDocument<'a> {
    evidence: &'a Evidence,
    title: &'a str,
    agency: &'a str,
    accent: Option<&'a str>,
    made_by: &'a str,
}

/// The title of the evidence's frozen report.
pub fn report_title(evidence: &Evidence) -> String {
    format!("{}: payment-page evidence (PCI DSS 4.0)", evidence.client)
}

/// The evidence as a self-contained document for a frozen report (no script, nothing loads).
pub fn render_report(
    evidence: &Evidence,
    branding: &crate::branding::queries::Branding,
    made_by: &str,
) -> Result<String, askama::Error> {
    use askama::Template;
    ReportDocument {
        evidence,
        title: &report_title(evidence),
        agency: &branding.name,
        accent: branding.color.as_deref(),
        made_by,
    }
    .render()
}

/// A cell a spreadsheet will not run: text that starts like a formula (`=`, `+`, `-`, `@`, a
/// tab or a carriage return) gets a leading apostrophe. Scanned URLs, titles, names and
/// justifications are other people's text.
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn date_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The evidence as one CSV table: a row per record, its `record` column saying which kind
/// (`scan`, `script_version`, `decision`, `change`, `alert`), so that an assessor can filter.
pub fn csv(evidence: &Evidence) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "record", "target", "url", "at", "subject", "state", "detail", "by", "until",
    ])?;
    for target in &evidence.targets {
        let row = |record: &str,
                   at: String,
                   subject: &str,
                   state: &str,
                   detail: &str,
                   by: &str,
                   until: String| {
            [
                record.to_owned(),
                inert(&target.name),
                inert(&target.url),
                at,
                inert(subject),
                inert(state),
                inert(detail),
                inert(by),
                until,
            ]
        };
        for at in &target.scans {
            out.write_record(row(
                "scan",
                date_time(*at),
                "",
                "succeeded",
                "",
                "",
                String::new(),
            ))?;
        }
        for script in &target.scripts {
            for version in &script.versions {
                let mut detail = format!(
                    "sha256 {}; {}",
                    version.sha256,
                    version.integrity().describe()
                );
                if version.in_iframe {
                    detail.push_str(&format!("; inside an iframe ({})", version.frame_url));
                }
                if let Some(by) = &version.injected_by {
                    detail.push_str(&format!("; injected by {by}"));
                }
                out.write_record(row(
                    "script_version",
                    date_time(version.first_seen_at),
                    &script.name(),
                    version.standing.describe(),
                    &detail,
                    "",
                    date_time(version.last_seen_at),
                ))?;
                for decision in version.decisions.iter().rev() {
                    out.write_record(row(
                        "decision",
                        date_time(decision.decided_at),
                        &script.name(),
                        &decision.decision,
                        &decision.justification,
                        &decision.decided_by_name,
                        format!("version sha256 {}", version.sha256),
                    ))?;
                }
            }
        }
        for change in &target.changes {
            out.write_record(row(
                "change",
                date_time(change.at),
                &change.kind,
                "",
                &change.sentence,
                "",
                String::new(),
            ))?;
        }
        for alert in &target.alerts {
            let by = [
                alert
                    .acknowledged_by
                    .as_ref()
                    .map(|who| format!("acknowledged by {who}")),
                alert
                    .resolved_by
                    .as_ref()
                    .map(|who| format!("resolved by {who}")),
                (alert.resolution.as_deref() == Some("auto"))
                    .then(|| "resolved automatically".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
            out.write_record(row(
                "alert",
                date_time(alert.opened_at),
                &alert.rule,
                &format!("{} {}", alert.severity, alert.state),
                &alert.title,
                &by,
                alert.resolved_at.map(date_time).unwrap_or_default(),
            ))?;
        }
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_made_inert() {
        assert_eq!(
            inert("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(inert("@SUM(1)"), "'@SUM(1)");
        assert_eq!(inert("-1+2"), "'-1+2");
        assert_eq!(
            inert("https://shop.example/pay"),
            "https://shop.example/pay"
        );
    }
}
