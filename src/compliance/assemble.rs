//! Building a compliance scan's report once its visits are over: every `serve` process runs a
//! worker that claims `compliance_report` jobs, reads the visits' snapshots, turns them into the
//! report and its findings ([`super::findings`]), stores the report sealed, records the findings
//! for the target's history and raises or resolves their alerts — all of it once per scan.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scanner::Snapshot;

use super::queries::{self, REPORT_JOB, VisitScan};
use super::visits::{Visit, VisitOutcomes};
use super::{ComplianceReport, Finding};
use crate::alerts::rules::{COMPLIANCE_PREFIX, Finding as AlertFinding};
use crate::db::schema::{alerts, compliance_findings, compliance_scans, targets};
use crate::runner::protocol::SNAPSHOT_ARTIFACT;
use crate::scans::analysis::read_verified;
use crate::scans::ingest::{blob_error, clean};
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::AppError;

const LEASE: Duration = Duration::from_secs(300);

/// Claims and runs report jobs until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [REPORT_JOB.to_string()];
    crate::queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        LEASE,
        |job| {
            let state = state.clone();
            async move {
                let id = job.payload["compliance_scan_id"].as_i64().unwrap_or(0);
                assemble(&state, id).await.map_err(|e| e.to_string())
            }
        },
    )
    .await
}

/// Builds and stores the report of compliance scan `id`, if it is waiting for one.
pub async fn assemble(state: &AppState, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    let Some(scan) = queries::scan_for_worker(&mut conn, id).await? else {
        return Ok(()); // Its target was deleted meanwhile.
    };
    if scan.state != "assembling" {
        return Ok(());
    }
    let url: String = targets::table
        .find(scan.target_id)
        .select(targets::url)
        .first(&mut conn)
        .await?;
    let visits = queries::visit_scans(&mut conn, scan.org_id, id).await?;
    drop(conn);

    let mut pairs: Vec<(Visit, Result<Snapshot, String>)> = Vec::new();
    for visit in &visits {
        let Some(kind) = Visit::parse(&visit.visit) else {
            continue;
        };
        let outcome = match visit.snapshot_id {
            Some(snapshot_id) => Ok(read_document(state, scan.org_id, snapshot_id).await?),
            None => Err(visit
                .error
                .clone()
                .unwrap_or_else(|| "the visit did not complete".into())),
        };
        pairs.push((kind, outcome));
    }
    let mut conn = state.conn().await?;
    if pairs.iter().all(|(_, outcome)| outcome.is_err()) {
        let error = pairs
            .iter()
            .find_map(|(_, o)| o.as_ref().err().cloned())
            .unwrap_or_else(|| "no visit took place".into());
        diesel::update(compliance_scans::table.find(id))
            .filter(compliance_scans::state.eq("assembling"))
            .set((
                compliance_scans::state.eq("failed"),
                compliance_scans::error.eq(format!("every visit failed; the first: {error}")),
                compliance_scans::finished_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        return Ok(());
    }

    let report = ComplianceReport::new(&url, &VisitOutcomes::from_pairs(&pairs));
    let document = serde_json::to_vec(&report).map_err(AppError::internal)?;
    let key = ObjectKey::compliance_report(scan.org_id, id);
    state
        .blobs
        .put(&mut conn, &key, &document)
        .await
        .map_err(blob_error)?;
    let sha256 = hex::encode(crate::crypto::sha256(&document));
    let completed: BTreeSet<Visit> = pairs
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(v, _)| *v)
        .collect();
    conn.transaction::<_, AppError, _>(async |conn| {
        let claimed = diesel::update(compliance_scans::table.find(id))
            .filter(compliance_scans::state.eq("assembling"))
            .set((
                compliance_scans::state.eq("done"),
                compliance_scans::report_sha256.eq(&sha256),
                compliance_scans::finding_count.eq(report.findings.len() as i32),
                compliance_scans::worst_severity.eq(report
                    .findings
                    .iter()
                    .map(|f| f.severity)
                    .max()
                    .map(|s| s.as_str())),
                compliance_scans::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        if claimed == 0 {
            return Ok(()); // Another worker's run finished it first.
        }
        record_findings(conn, &scan, &report.findings).await?;
        raise_alerts(conn, &scan, &visits, &report.findings, &completed).await?;
        Ok(())
    })
    .await?;
    // Wake the notify worker for any alert just raised.
    state.jobs_ready.notify_waiters();
    Ok(())
}

/// A visit's snapshot document, checked against its recorded hash.
async fn read_document(
    state: &AppState,
    org_id: i64,
    snapshot_id: i64,
) -> Result<Snapshot, AppError> {
    let mut conn = state.conn().await?;
    let artifact = crate::scans::queries::artifacts(&mut conn, org_id, snapshot_id)
        .await?
        .into_iter()
        .find(|a| a.name == SNAPSHOT_ARTIFACT)
        .ok_or(AppError::NotFound)?;
    drop(conn);
    let bytes = read_verified(state, org_id, snapshot_id, &artifact).await?;
    serde_json::from_slice(&bytes).map_err(AppError::internal)
}

async fn record_findings(
    conn: &mut AsyncPgConnection,
    scan: &queries::ComplianceScan,
    findings: &[Finding],
) -> Result<(), AppError> {
    let rows: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                compliance_findings::compliance_scan_id.eq(scan.id),
                compliance_findings::fingerprint.eq(clean(&f.fingerprint, 1000)),
                compliance_findings::org_id.eq(scan.org_id),
                compliance_findings::target_id.eq(scan.target_id),
                compliance_findings::rule.eq(f.rule.as_str()),
                compliance_findings::severity.eq(f.severity.as_str()),
                compliance_findings::visit.eq(f.visit.as_str()),
                compliance_findings::title.eq(clean(&f.title, 1000)),
            )
        })
        .collect();
    for chunk in rows.chunks(1000) {
        diesel::insert_into(compliance_findings::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Every finding raises (or repeats) its alert; a live compliance alert whose finding is gone
/// resolves — but only when its visit completed this time, so a visit that failed keeps the
/// alerts it raised before.
async fn raise_alerts(
    conn: &mut AsyncPgConnection,
    scan: &queries::ComplianceScan,
    visits: &[VisitScan],
    findings: &[Finding],
    completed: &BTreeSet<Visit>,
) -> Result<(), AppError> {
    let snapshot_of = |visit: Visit| {
        visits
            .iter()
            .find(|v| v.visit == visit.as_str())
            .and_then(|v| v.snapshot_id)
    };
    let mut current = BTreeSet::new();
    for finding in findings {
        let alert = alert_finding(finding);
        current.insert(alert.fingerprint.clone());
        crate::alerts::queries::raise(
            conn,
            scan.org_id,
            scan.target_id,
            snapshot_of(finding.visit),
            &alert,
        )
        .await?;
    }
    let live: Vec<(i64, String)> = alerts::table
        .filter(alerts::target_id.eq(scan.target_id))
        .filter(alerts::state.ne("resolved"))
        .filter(alerts::fingerprint.like(format!("{COMPLIANCE_PREFIX}%")))
        .select((alerts::id, alerts::fingerprint))
        .load(conn)
        .await?;
    let gone: Vec<i64> = live
        .into_iter()
        .filter(|(_, fingerprint)| !current.contains(fingerprint))
        .filter(|(_, fingerprint)| visit_of(fingerprint).is_some_and(|v| completed.contains(&v)))
        .map(|(id, _)| id)
        .collect();
    if !gone.is_empty() {
        diesel::update(alerts::table.filter(alerts::id.eq_any(&gone)))
            .filter(alerts::state.ne("resolved"))
            .set((
                alerts::state.eq("resolved"),
                alerts::resolved_at.eq(diesel::dsl::now),
                alerts::resolution.eq("auto"),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The alert a compliance finding raises: the finding's own rule (tunable like any alert
/// rule), its fingerprint under the compliance prefix, the finding itself as detail.
pub fn alert_finding(finding: &Finding) -> AlertFinding {
    AlertFinding {
        rule: finding.rule.as_str(),
        fingerprint: clean(&format!("{COMPLIANCE_PREFIX}{}", finding.fingerprint), 1000),
        title: finding.title.clone(),
        detail: serde_json::to_value(finding).unwrap_or_default(),
    }
}

/// The visit in a compliance alert's fingerprint (`compliance:rule:visit:subject`).
fn visit_of(fingerprint: &str) -> Option<Visit> {
    Visit::parse(
        fingerprint
            .strip_prefix(COMPLIANCE_PREFIX)?
            .split(':')
            .nth(1)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compliance_alert_names_its_visit() {
        assert_eq!(
            visit_of("compliance:tracking_after_reject:reject_all:tracker.test"),
            Some(Visit::RejectAll)
        );
        assert_eq!(
            visit_of("compliance:gpc_ignored:gpc:tracker.test"),
            Some(Visit::Gpc)
        );
        assert_eq!(visit_of("host:tracker.test"), None);
        assert_eq!(visit_of("compliance:broken"), None);
    }
}
