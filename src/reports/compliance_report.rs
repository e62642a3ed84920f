//! The self-contained `compliance.html` of one compliance scan, for an agency's client: the
//! verdict first (findings, worst first, each with its evidence), then the visits side by side.
//! Nothing loads from anywhere and every captured string is escaped (askama escapes by default;
//! the page's CSP forbids scripts regardless).

use askama::Template;

use crate::compliance::{ComplianceReport, Evidence, GpcVerdict};

#[derive(Template)]
#[template(path = "compliance_report.html")]
struct CompliancePage {
    rv: ReportView,
}

/// A compliance report ready to show (`templates/compliance/report_body.html`): the same
/// content in the self-contained page and in the dashboard.
pub struct ReportView {
    pub r: ComplianceReport,
    pub findings: Vec<FindingView>,
    pub gpc: Option<&'static str>,
    pub critical: usize,
    pub high: usize,
    pub other: usize,
}

pub struct FindingView {
    pub severity: &'static str,
    pub rule: &'static str,
    pub visit: &'static str,
    pub title: String,
    pub evidence: Vec<EvidenceView>,
}

/// One piece of evidence as lines of "label: value".
pub struct EvidenceView {
    pub kind: &'static str,
    pub lines: Vec<(&'static str, String)>,
}

/// Renders `report` as a self-contained page a client can read.
pub fn render_compliance_report(report: &ComplianceReport) -> Result<String, askama::Error> {
    CompliancePage {
        rv: ReportView::new(report),
    }
    .render()
}

impl ReportView {
    pub fn new(report: &ComplianceReport) -> ReportView {
        let count = |severities: &[&str]| {
            report
                .findings
                .iter()
                .filter(|f| severities.contains(&f.severity.as_str()))
                .count()
        };
        ReportView {
            r: report.clone(),
            findings: report
                .findings
                .iter()
                .map(|f| FindingView {
                    severity: f.severity.as_str(),
                    rule: f.rule.describe(),
                    visit: f.visit.label(),
                    title: f.title.clone(),
                    evidence: f.evidence.iter().map(evidence_view).collect(),
                })
                .collect(),
            gpc: match report.gpc {
                GpcVerdict::NotTested => None,
                GpcVerdict::NothingToOptOutOf => {
                    Some("nothing to opt out of: the site did not track a first visit")
                }
                GpcVerdict::Honoured => {
                    Some("honoured: the site stopped tracking visitors who send it")
                }
                GpcVerdict::Ignored => {
                    Some("ignored: the site tracked visitors who send it as it tracks others")
                }
                GpcVerdict::Unknown => Some("unknown: a visit needed to judge it failed"),
            },
            critical: count(&["critical"]),
            high: count(&["high"]),
            other: count(&["medium", "low", "info"]),
        }
    }
}

fn evidence_view(evidence: &Evidence) -> EvidenceView {
    let chain = |initiators: &[String]| {
        if initiators.is_empty() {
            "unknown".to_owned()
        } else {
            initiators.join(" ← ")
        }
    };
    match evidence {
        Evidence::Request {
            url,
            resource_type,
            list,
            list_rule,
            initiators,
        } => EvidenceView {
            kind: "Request",
            lines: vec![
                ("URL", url.clone()),
                ("Type", resource_type.clone()),
                ("Named by", format!("{list}: {list_rule}")),
                ("Caused by", chain(initiators)),
            ],
        },
        Evidence::Cookie {
            name,
            domain,
            reason,
            set_by_script,
            set_by_host,
            initiators,
        } => {
            let mut lines = vec![
                ("Cookie", format!("{name} on {domain}")),
                ("Why tracking", reason.clone()),
            ];
            if let Some(script) = set_by_script {
                lines.push(("Set by script", script.clone()));
                lines.push(("Caused by", chain(initiators)));
            } else if let Some(host) = set_by_host {
                lines.push(("Set by", host.clone()));
            }
            EvidenceView {
                kind: "Cookie",
                lines,
            }
        }
        Evidence::ConsentMode {
            request_url,
            granted,
        } => EvidenceView {
            kind: "Google Consent Mode",
            lines: vec![
                ("Request", request_url.clone()),
                ("Granted", granted.join(", ")),
            ],
        },
        Evidence::Tcf {
            source,
            purposes_consent,
            vendors_consented,
        } => EvidenceView {
            kind: "IAB TCF",
            lines: vec![
                ("Read from", source.clone()),
                (
                    "Purposes with consent",
                    purposes_consent
                        .iter()
                        .map(u8::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("Vendors with consent", vendors_consented.to_string()),
            ],
        },
        Evidence::Banner {
            label,
            layer,
            consent_managers,
        } => EvidenceView {
            kind: "Cookie banner",
            lines: vec![
                (
                    "Answered with",
                    match (label, layer) {
                        (Some(label), Some(layer)) => format!("\"{label}\" (layer {layer})"),
                        _ => "nothing could be clicked".to_owned(),
                    },
                ),
                (
                    "Consent managers",
                    if consent_managers.is_empty() {
                        "none recognised".to_owned()
                    } else {
                        consent_managers.join(", ")
                    },
                ),
            ],
        },
        Evidence::Failure { message } => EvidenceView {
            kind: "Failure",
            lines: vec![("Message", message.clone())],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{Finding, Rule, Visit};

    #[test]
    fn captured_strings_are_escaped_and_the_verdict_comes_first() {
        let hostile = "<script>alert(1)</script>";
        let report = ComplianceReport {
            url: format!("https://shop.test/?q={hostile}"),
            visits: vec![],
            findings: vec![Finding {
                rule: Rule::TrackingAfterReject,
                severity: Rule::TrackingAfterReject.severity(),
                visit: Visit::RejectAll,
                fingerprint: "tracking_after_reject:reject_all:evil.test".into(),
                title: format!("evil.test {hostile} tracks visitors after they rejected all"),
                evidence: vec![Evidence::Request {
                    url: format!("https://evil.test/{hostile}"),
                    resource_type: "Script".into(),
                    list: "easyprivacy".into(),
                    list_rule: "||evil.test^".into(),
                    initiators: vec!["https://shop.test/".into()],
                }],
            }],
            gpc: GpcVerdict::Ignored,
            filter_lists: vec![],
        };
        let html = render_compliance_report(&report).expect("renders");
        assert!(!html.contains(hostile), "captured markup is escaped");
        assert!(html.contains("alert(1)"), "the text is kept, as text");
        assert!(
            html.contains("default-src 'none'"),
            "the CSP forbids loading and running"
        );
        let verdict = html
            .find("1 critical")
            .expect("the count of critical findings");
        let visits = html
            .find("The visits side by side")
            .expect("the visits section");
        assert!(verdict < visits);
        assert!(html.contains("||evil.test^"));
        assert!(html.contains("ignored: the site tracked"));
    }
}
