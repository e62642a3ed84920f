//! `siteward scan URL --compliance --out DIR`: a compliance scan's visits side by side in one
//! browser, each written to `DIR/<visit>/`, the verdicts to `DIR/compliance.json`,
//! `DIR/compliance.html` and stdout.

use std::process::ExitCode;
use std::time::Instant;

use scanner::{ScanOptions, Scanner, Stage, Supervisor};

use super::fail;
use super::fail_on::FailRule;
use super::scan::{ScanArgs, write_output};
use crate::compliance::visits::{self, Visit, VisitOutcomes};
use crate::compliance::{ComplianceReport, Finding, GpcVerdict};
use crate::reports::render_compliance_report;

pub async fn run(args: &ScanArgs, options: ScanOptions, rules: &[FailRule]) -> ExitCode {
    let planned = visits::planned(args.gpc);
    let scanner = Scanner::new(Supervisor::new(args.browser.browser_options(planned.len())));
    let started = Instant::now();
    let quiet = args.quiet_progress;
    let progress = move |visit: Visit, stage: Stage| {
        if !quiet {
            eprintln!(
                "[{:>5.1}s] {}: {}",
                started.elapsed().as_secs_f64(),
                visit.as_str(),
                stage.describe()
            );
        }
    };
    let outcomes = visits::run(&scanner, &args.url, &options, &planned, &progress).await;
    scanner.supervisor().shutdown().await;

    let mut pairs = Vec::with_capacity(outcomes.len());
    for (visit, outcome) in outcomes {
        match outcome {
            Ok(output) => {
                let dir = args.out.join(visit.as_str());
                if let Err(error) = std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))
                    .and_then(|()| write_output(&dir, &output))
                {
                    return fail(error);
                }
                pairs.push((visit, Ok(output.snapshot)));
            }
            Err(error) => pairs.push((visit, Err(error))),
        }
    }
    if pairs.iter().all(|(_, outcome)| outcome.is_err())
        && let Some((_, Err(error))) = pairs.first()
    {
        return fail(format!("every visit failed; the first: {error}"));
    }
    let report = ComplianceReport::new(&args.url, &VisitOutcomes::from_pairs(&pairs));
    let path = args.out.join("compliance.json");
    let written = serde_json::to_vec_pretty(&report)
        .map_err(|e| format!("cannot encode the compliance report: {e}"))
        .and_then(|json| {
            std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
    if let Err(error) = written {
        return fail(error);
    }
    let html = args.out.join("compliance.html");
    let rendered = render_compliance_report(&report)
        .map_err(|e| format!("cannot render the compliance report: {e}"))
        .and_then(|page| {
            std::fs::write(&html, page).map_err(|e| format!("cannot write {}: {e}", html.display()))
        });
    if let Err(error) = rendered {
        return fail(error);
    }
    print!("{}", summary(&report));
    if !quiet {
        eprintln!(
            "[{:>5.1}s] wrote {}",
            started.elapsed().as_secs_f64(),
            path.display()
        );
    }

    let mut violations = Vec::new();
    for rule in rules {
        if *rule == FailRule::ComplianceFinding {
            violations.extend(report.findings.iter().map(|f| f.title.clone()));
            continue;
        }
        for (visit, outcome) in &pairs {
            if let Ok(snapshot) = outcome {
                let prefix = visit.as_str();
                violations.extend(
                    rule.violations(snapshot)
                        .into_iter()
                        .map(|v| format!("{prefix}: {v}")),
                );
            }
        }
    }
    super::fail_on::exit_with(&violations)
}

/// The report for a terminal: each visit in a line, then the findings, worst first.
fn summary(report: &ComplianceReport) -> String {
    let mut out = format!("Compliance scan of {}\n", report.url);
    for visit in &report.visits {
        let line = match &visit.error {
            Some(error) => format!("failed: {error}"),
            None => {
                let hosts: Vec<&str> = visit
                    .tracking_hosts
                    .iter()
                    .map(|h| h.host.as_str())
                    .collect();
                format!(
                    "{} cookies, {} tracking hosts{}{}",
                    visit.cookies.len(),
                    hosts.len(),
                    if hosts.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", hosts.join(", "))
                    },
                    visit
                        .answered_with
                        .as_ref()
                        .map(|a| format!("; answered with {a}"))
                        .unwrap_or_default()
                )
            }
        };
        out.push_str(&format!("  {:<12} {line}\n", visit.visit.as_str()));
    }
    match report.gpc {
        GpcVerdict::NotTested => {}
        verdict => out.push_str(&format!(
            "  Global Privacy Control: {}\n",
            gpc_words(verdict)
        )),
    }
    if report.findings.is_empty() {
        out.push_str("No findings.\n");
    } else {
        out.push_str(&format!("{} findings:\n", report.findings.len()));
        for finding in &report.findings {
            out.push_str(&finding_line(finding));
        }
    }
    out
}

fn gpc_words(verdict: GpcVerdict) -> &'static str {
    match verdict {
        GpcVerdict::NotTested => "not tested",
        GpcVerdict::NothingToOptOutOf => "nothing to opt out of (no tracking without it)",
        GpcVerdict::Honoured => "honoured",
        GpcVerdict::Ignored => "ignored",
        GpcVerdict::Unknown => "unknown (a visit failed)",
    }
}

fn finding_line(finding: &Finding) -> String {
    format!(
        "  [{}] {} ({}, {} piece{} of evidence)\n",
        finding.severity.as_str(),
        finding.title,
        finding.rule.as_str(),
        finding.evidence.len(),
        if finding.evidence.len() == 1 { "" } else { "s" }
    )
}
