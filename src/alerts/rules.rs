//! Alert rules: which changes deserve whose attention, at what severity. Pure functions from a
//! snapshot's typed changes to findings, and the test of whether a later snapshot still shows one.

use scanner::Snapshot;
use serde::{Deserialize, Serialize};

use crate::compliance::Visit;
use crate::diff::Change;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// The rules, their built-in severity and what they watch for.
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "new_third_party_host",
        Severity::High,
        "the page contacts a third-party host it did not before",
    ),
    (
        "checkout_script_changed",
        Severity::Critical,
        "a script is added or changes its code on a checkout page",
    ),
    (
        "payment_script_unauthorized",
        Severity::Critical,
        "a script that is not authorized (unreviewed or rejected) runs on a payment page",
    ),
    (
        "payment_script_returned",
        Severity::Critical,
        "a script left a payment page and came back with a body never seen before",
    ),
    (
        "payment_header_changed",
        Severity::Critical,
        "a security header (CSP, HSTS, framing, cookies, ...) of a checkout or payment page appears, goes or changes",
    ),
    (
        "security_header_changed",
        Severity::Medium,
        "a security header (CSP, HSTS, framing, cookies, ...) of the page appears, goes or changes",
    ),
    (
        "cookie_before_consent",
        Severity::High,
        "a new cookie is set before any consent answer",
    ),
    (
        "policy_changed",
        Severity::Info,
        "a privacy, cookie or terms page changed or disappeared",
    ),
    (
        "visual_change",
        Severity::Medium,
        "a screenshot changed more than the target's threshold",
    ),
    (
        "scan_failed",
        Severity::High,
        "the last three scans of the target failed",
    ),
    (
        "checkout_failed",
        Severity::Critical,
        "a checkout test failed (a step, or the run could not take place)",
    ),
];

/// Consecutive failed scans that raise `scan_failed`.
pub const FAILURES_BEFORE_ALERT: usize = 3;

/// Every rule: those about a snapshot's changes, then the compliance findings' rules.
pub fn all_rules() -> impl Iterator<Item = (&'static str, Severity, &'static str)> {
    RULES.iter().copied().chain(
        crate::compliance::Rule::ALL
            .into_iter()
            .map(|r| (r.as_str(), r.severity(), r.describe())),
    )
}

pub fn default_severity(rule: &str) -> Option<Severity> {
    all_rules()
        .find(|(name, _, _)| *name == rule)
        .map(|(_, s, _)| s)
}

/// Something an alert should be raised for.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    /// Identifies "the same change" across snapshots, e.g. `host:tracker.example`.
    pub fingerprint: String,
    pub title: String,
    pub detail: serde_json::Value,
}

impl Finding {
    /// The finding as raised by a compliance scan's `visit` (as is for a plain scan): its
    /// fingerprint is scoped to the visit, so only a later snapshot of the same visit resolves
    /// or repeats it.
    pub fn in_visit(mut self, visit: Option<Visit>) -> Finding {
        if let Some(visit) = visit {
            self.fingerprint = format!("{}/{}", visit.as_str(), self.fingerprint);
            self.title = format!("{} (the {} visit)", self.title, visit.label());
        }
        self
    }
}

/// Fingerprints of alerts that compliance findings raise start with this; only the next
/// compliance report resolves them.
pub const COMPLIANCE_PREFIX: &str = "compliance:";

/// Whether a snapshot of `visit` (`None`: a plain scan) can tell if the alert with this
/// fingerprint still shows, and the fingerprint to test it by.
pub fn in_scope(fingerprint: &str, visit: Option<Visit>) -> Option<&str> {
    if fingerprint.starts_with(COMPLIANCE_PREFIX) {
        return None;
    }
    let scoped = Visit::ALL
        .into_iter()
        .find_map(|v| Some((v, fingerprint.strip_prefix(v.as_str())?.strip_prefix('/')?)));
    match (scoped, visit) {
        (None, None) => Some(fingerprint),
        (Some((of, inner)), Some(visit)) if of == visit => Some(inner),
        _ => None,
    }
}

/// What the changes of one snapshot raise, on a page of this kind (`page`, `checkout`,
/// `payment`). On a payment page the script inventory's authorization decides about scripts
/// (`payment::queries::record`), not their changes.
pub fn findings(changes: &[Change], page_kind: &str) -> Vec<Finding> {
    let sensitive = matches!(page_kind, "checkout" | "payment");
    let checkout = page_kind == "checkout";
    let mut found = Vec::new();
    for change in changes {
        let detail = serde_json::to_value(change).unwrap_or_default();
        let finding = |rule: &'static str, fingerprint: String| Finding {
            rule,
            fingerprint,
            title: change.sentence(),
            detail: detail.clone(),
        };
        match change {
            Change::ThirdPartyHostAdded { host } => {
                found.push(finding("new_third_party_host", format!("host:{host}")))
            }
            Change::ScriptContentChanged { url, .. } | Change::ScriptAdded { url, .. }
                if checkout =>
            {
                found.push(finding("checkout_script_changed", format!("script:{url}")))
            }
            Change::SecurityHeaderChanged { header, .. } => found.push(finding(
                if sensitive {
                    "payment_header_changed"
                } else {
                    "security_header_changed"
                },
                format!("header:{header}"),
            )),
            Change::InlineScriptAdded { sha256, .. } if checkout => found.push(finding(
                "checkout_script_changed",
                format!("inline:{sha256}"),
            )),
            Change::CookieAdded {
                name,
                domain,
                before_consent: true,
                ..
            } => found.push(finding(
                "cookie_before_consent",
                format!("cookie:{name}@{}", domain.trim_start_matches('.')),
            )),
            Change::PolicyTextChanged { policy, .. } | Change::PolicyPageRemoved { policy, .. } => {
                found.push(finding(
                    "policy_changed",
                    format!("policy:{policy:?}").to_lowercase(),
                ))
            }
            Change::VisualChanged { screenshot, .. } => {
                found.push(finding("visual_change", format!("visual:{screenshot}")))
            }
            _ => {}
        }
    }
    found
}

/// Whether `snapshot` still shows what a live alert is about. Alerts about a state (a host is
/// contacted, a cookie is set) resolve themselves once it is gone; alerts about an event (code,
/// policy or looks changed) stay until someone resolves them.
pub fn still_shows(fingerprint: &str, snapshot: &Snapshot) -> bool {
    if let Some(host) = fingerprint.strip_prefix("host:") {
        return snapshot
            .third_party_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host));
    }
    if let Some(cookie) = fingerprint.strip_prefix("cookie:") {
        return snapshot
            .cookies
            .iter()
            .any(|c| format!("{}@{}", c.name, c.domain.trim_start_matches('.')) == cookie);
    }
    if let Some(sha256) = fingerprint.strip_prefix("pay-script:") {
        return snapshot.scripts.iter().any(|s| s.sha256() == sha256);
    }
    if fingerprint == "scan_failed" {
        // A snapshot means the scan succeeded.
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::inventory::tests::{base, parse};
    use scanner::snapshot::Party;

    #[test]
    fn checkout_pages_make_script_changes_critical_and_other_pages_do_not() {
        let changes = vec![
            Change::ScriptContentChanged {
                url: "https://cdn.example/pay.js".into(),
                host: "cdn.example".into(),
                before_sha256: "a".into(),
                after_sha256: "b".into(),
            },
            Change::ThirdPartyHostAdded {
                host: "tracker.example".into(),
            },
            Change::CookieAdded {
                name: "_t".into(),
                domain: ".tracker.example".into(),
                path: "/".into(),
                party: Party::Third,
                before_consent: true,
            },
            Change::CookieAdded {
                name: "after".into(),
                domain: "shop.test".into(),
                path: "/".into(),
                party: Party::First,
                before_consent: false,
            },
        ];
        let rules: Vec<&str> = findings(&changes, "checkout")
            .iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(
            rules,
            [
                "checkout_script_changed",
                "new_third_party_host",
                "cookie_before_consent"
            ]
        );
        let rules: Vec<&str> = findings(&changes, "page").iter().map(|f| f.rule).collect();
        assert_eq!(rules, ["new_third_party_host", "cookie_before_consent"]);
    }

    #[test]
    fn state_alerts_resolve_when_the_state_is_gone_and_event_alerts_stay() {
        let snapshot = parse(base());
        assert!(still_shows("host:cdn.test", &snapshot));
        assert!(!still_shows("host:tracker.example", &snapshot));
        assert!(still_shows("cookie:session@shop.test", &snapshot));
        assert!(!still_shows("cookie:_t@tracker.example", &snapshot));
        assert!(still_shows("visual:viewport", &snapshot));
        assert!(!still_shows("scan_failed", &snapshot));
    }

    #[test]
    fn a_visit_resolves_only_its_own_alerts_and_compliance_alerts_only_by_reports() {
        assert_eq!(in_scope("host:a.test", None), Some("host:a.test"));
        assert_eq!(in_scope("host:a.test", Some(Visit::RejectAll)), None);
        assert_eq!(
            in_scope("reject_all/host:a.test", Some(Visit::RejectAll)),
            Some("host:a.test")
        );
        assert_eq!(
            in_scope("reject_all/host:a.test", Some(Visit::AcceptAll)),
            None
        );
        assert_eq!(in_scope("reject_all/host:a.test", None), None);
        // A script URL has slashes but no visit prefix.
        assert_eq!(
            in_scope("script:https://cdn.test/a.js", None),
            Some("script:https://cdn.test/a.js")
        );
        assert_eq!(in_scope("compliance:gpc_ignored:gpc:a.test", None), None);
        let finding = Finding {
            rule: "new_third_party_host",
            fingerprint: "host:a.test".into(),
            title: "New host".into(),
            detail: serde_json::Value::Null,
        };
        let scoped = finding.clone().in_visit(Some(Visit::AcceptAll));
        assert_eq!(scoped.fingerprint, "accept_all/host:a.test");
        assert_eq!(finding.clone().in_visit(None), finding);
    }
}
