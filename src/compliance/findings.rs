//! Verdicts: what a compliance scan's visits show about the site's respect for consent. Pure
//! functions from the visits' snapshots to findings, each with the rule that made it, its
//! severity and the evidence (the request or cookie, the visit, the script chain that caused it
//! and the list rule that classified it).

use std::collections::{BTreeMap, HashMap};

use scanner::Snapshot;
use scanner::snapshot::{Cookie, ListMatch, Request};
use serde::{Deserialize, Serialize};

use super::visits::{Visit, VisitOutcomes};
use crate::alerts::rules::Severity;

/// What a finding says is wrong.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A request a tracking or advertising list names, or a tracking cookie, before any answer.
    TrackingBeforeConsent,
    /// The same, after the visitor rejected all.
    TrackingAfterReject,
    /// Google Consent Mode or IAB TCF said "granted" before any answer.
    ConsentSignalGrantedBeforeAnswer,
    /// ... or after the visitor rejected all.
    ConsentSignalGrantedAfterReject,
    /// The visit found no banner to answer, yet tracking cookies are set.
    NoBannerWhileTracking,
    /// Refusing takes more than accepting: no reject control on the banner's first layer.
    RejectHarderThanAccept,
    /// With Global Privacy Control sent, the site still tracked as without it.
    GpcIgnored,
    /// The consent manager failed the visit: the answer navigated away, or the visit could not
    /// complete.
    ConsentManagerBroken,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::TrackingBeforeConsent,
        Rule::TrackingAfterReject,
        Rule::ConsentSignalGrantedBeforeAnswer,
        Rule::ConsentSignalGrantedAfterReject,
        Rule::NoBannerWhileTracking,
        Rule::RejectHarderThanAccept,
        Rule::GpcIgnored,
        Rule::ConsentManagerBroken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::TrackingBeforeConsent => "tracking_before_consent",
            Rule::TrackingAfterReject => "tracking_after_reject",
            Rule::ConsentSignalGrantedBeforeAnswer => "consent_signal_granted_before_answer",
            Rule::ConsentSignalGrantedAfterReject => "consent_signal_granted_after_reject",
            Rule::NoBannerWhileTracking => "no_banner_while_tracking",
            Rule::RejectHarderThanAccept => "reject_harder_than_accept",
            Rule::GpcIgnored => "gpc_ignored",
            Rule::ConsentManagerBroken => "consent_manager_broken",
        }
    }

    /// The built-in severity; organizations tune it like any alert rule's.
    pub fn severity(self) -> Severity {
        match self {
            Rule::TrackingAfterReject | Rule::ConsentSignalGrantedAfterReject => Severity::Critical,
            Rule::TrackingBeforeConsent
            | Rule::ConsentSignalGrantedBeforeAnswer
            | Rule::NoBannerWhileTracking => Severity::High,
            Rule::RejectHarderThanAccept | Rule::GpcIgnored | Rule::ConsentManagerBroken => {
                Severity::Medium
            }
        }
    }

    /// What the rule watches for, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::TrackingBeforeConsent => {
                "tracking requests or cookies before the visitor answered the banner"
            }
            Rule::TrackingAfterReject => {
                "tracking requests or cookies after the visitor rejected all"
            }
            Rule::ConsentSignalGrantedBeforeAnswer => {
                "Consent Mode or TCF said consent was granted before the visitor answered"
            }
            Rule::ConsentSignalGrantedAfterReject => {
                "Consent Mode or TCF said consent was granted after the visitor rejected all"
            }
            Rule::NoBannerWhileTracking => {
                "no cookie banner was found, yet tracking cookies are set"
            }
            Rule::RejectHarderThanAccept => {
                "rejecting takes more clicks than accepting (no reject on the first layer)"
            }
            Rule::GpcIgnored => "the site tracked a visitor sending Global Privacy Control",
            Rule::ConsentManagerBroken => {
                "the consent manager broke a visit (it navigated away, or the visit failed)"
            }
        }
    }
}

/// One thing wrong, with its proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub visit: Visit,
    /// The same finding in the next scan has the same fingerprint: `rule:visit:subject`.
    pub fingerprint: String,
    /// One sentence.
    pub title: String,
    pub evidence: Vec<Evidence>,
}

/// What a finding rests on. All of it came from the scanned site: escape it wherever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    Request {
        url: String,
        resource_type: String,
        /// The list and rule that name it.
        list: String,
        list_rule: String,
        /// What caused it, nearest first: the script that asked, the script that loaded that
        /// one, and so on up to the page.
        initiators: Vec<String>,
    },
    Cookie {
        name: String,
        domain: String,
        /// Why it counts as tracking, in words (the cookie database entry, or the listed script
        /// that set it).
        reason: String,
        set_by_script: Option<String>,
        set_by_host: Option<String>,
        /// The chain of the script that set it, nearest first.
        initiators: Vec<String>,
    },
    ConsentMode {
        request_url: String,
        /// The purposes it said were granted.
        granted: Vec<String>,
    },
    Tcf {
        source: String,
        purposes_consent: Vec<u8>,
        vendors_consented: u32,
    },
    Banner {
        /// What the visit clicked, and on which layer; absent when nothing was found.
        label: Option<String>,
        layer: Option<u8>,
        /// Consent managers the page had.
        consent_managers: Vec<String>,
    },
    Failure {
        message: String,
    },
}

/// The findings of one compliance scan, sorted by severity (worst first), then rule and subject.
pub fn findings(visits: &VisitOutcomes<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (visit, outcome) in visits.iter() {
        if let Err(message) = outcome {
            out.push(finding(
                Rule::ConsentManagerBroken,
                visit,
                "visit",
                format!("the {} visit failed: {message}", visit.label()),
                vec![Evidence::Failure {
                    message: message.to_string(),
                }],
            ));
        }
    }
    if let Ok(first) = visits.first_visit {
        for (subject, evidence) in tracking(first, Moment::Whole) {
            out.push(finding(
                Rule::TrackingBeforeConsent,
                Visit::FirstVisit,
                &subject,
                format!("{subject} tracks visitors before they answer the cookie banner"),
                evidence,
            ));
        }
        if let Some(evidence) = granted_signals(first, Moment::Whole) {
            out.push(finding(
                Rule::ConsentSignalGrantedBeforeAnswer,
                Visit::FirstVisit,
                "signals",
                "the page announces consent as granted before the visitor answered".into(),
                evidence,
            ));
        }
    }
    if let Ok(reject) = visits.reject_all {
        reject_findings(reject, visits, &mut out);
    }
    for (visit, outcome) in [
        (Visit::RejectAll, visits.reject_all),
        (Visit::AcceptAll, visits.accept_all),
    ] {
        if let Ok(snapshot) = outcome
            && let Some(evidence) = broken_banner(snapshot)
        {
            out.push(finding(
                Rule::ConsentManagerBroken,
                visit,
                "banner",
                "the consent manager failed: no banner could be answered".into(),
                evidence,
            ));
        }
    }
    if let (Some(Ok(gpc)), Ok(first)) = (visits.gpc, visits.first_visit)
        && let Some(evidence) = gpc_ignored(first, gpc)
    {
        out.push(finding(
            Rule::GpcIgnored,
            Visit::Gpc,
            "gpc",
            "the site tracks visitors who send Global Privacy Control as it tracks others".into(),
            evidence,
        ));
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(&b.rule))
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    out
}

fn reject_findings(reject: &Snapshot, visits: &VisitOutcomes<'_>, out: &mut Vec<Finding>) {
    let answer = reject.consent.as_ref();
    let clicked = answer.and_then(|a| a.clicked.as_ref());
    let banner_evidence = || Evidence::Banner {
        label: clicked.map(|c| c.label.clone()),
        layer: clicked.map(|c| c.layer),
        consent_managers: answer
            .map(|a| a.consent_managers.clone())
            .unwrap_or_default(),
    };
    let answered = clicked.is_some() || answer.is_some_and(|a| a.settings.is_some());
    if answered {
        for (subject, evidence) in tracking(reject, Moment::AfterAnswer) {
            out.push(finding(
                Rule::TrackingAfterReject,
                Visit::RejectAll,
                &subject,
                format!("{subject} tracks visitors after they rejected all"),
                evidence,
            ));
        }
        if let Some(evidence) = granted_signals(reject, Moment::AfterAnswer) {
            out.push(finding(
                Rule::ConsentSignalGrantedAfterReject,
                Visit::RejectAll,
                "signals",
                "the page announces consent as granted after the visitor rejected all".into(),
                evidence,
            ));
        }
        if let Some(first) = visits.first_visit.ok()
            && navigated_away(first, reject)
        {
            out.push(finding(
                Rule::ConsentManagerBroken,
                Visit::RejectAll,
                "navigation",
                format!(
                    "rejecting all took the visitor away from the page, to {}",
                    reject.final_url
                ),
                vec![banner_evidence()],
            ));
        }
    } else {
        let cookies: Vec<Evidence> = tracking(reject, Moment::Whole)
            .into_values()
            .flatten()
            .filter(|e| matches!(e, Evidence::Cookie { .. }))
            .collect();
        if !cookies.is_empty() {
            let mut evidence = vec![banner_evidence()];
            evidence.extend(cookies);
            out.push(finding(
                Rule::NoBannerWhileTracking,
                Visit::RejectAll,
                "banner",
                "no cookie banner could be answered, yet tracking cookies are set".into(),
                evidence,
            ));
        }
    }
    let accepted_on_first = visits
        .accept_all
        .ok()
        .and_then(|a| a.consent.as_ref()?.clicked.as_ref())
        .is_some_and(|c| c.layer == 1);
    let rejected_on_first = clicked.is_some_and(|c| c.layer == 1);
    if accepted_on_first && !rejected_on_first {
        let how = match clicked {
            Some(c) => format!(
                "rejecting needs the banner's second layer (\"{}\"), accepting does not",
                c.label
            ),
            None => "the banner offers accepting but no way to reject".to_owned(),
        };
        out.push(finding(
            Rule::RejectHarderThanAccept,
            Visit::RejectAll,
            "banner",
            how,
            vec![banner_evidence()],
        ));
    }
}

/// How many of a page's uncaught exceptions a finding quotes.
const MAX_QUOTED_EXCEPTIONS: usize = 5;

/// Why a visit that should have answered the banner could not, when the consent manager is to
/// blame: the page had one (its script or markup) or threw before any banner showed. `None` when
/// a control was clicked, or when the page simply has no consent manager.
fn broken_banner(snapshot: &Snapshot) -> Option<Vec<Evidence>> {
    let answer = snapshot.consent.as_ref()?;
    if answer.clicked.is_some() || answer.settings.is_some() {
        return None;
    }
    let exceptions: Vec<Evidence> = snapshot
        .console_errors
        .iter()
        .filter(|e| e.kind == "uncaught_exception")
        .take(MAX_QUOTED_EXCEPTIONS)
        .map(|e| Evidence::Failure {
            message: match &e.source_url {
                Some(source) => format!("{} (in {source})", e.message),
                None => e.message.clone(),
            },
        })
        .collect();
    if exceptions.is_empty() && answer.consent_managers.is_empty() {
        return None;
    }
    let mut evidence = vec![Evidence::Banner {
        label: None,
        layer: None,
        consent_managers: answer.consent_managers.clone(),
    }];
    evidence.extend(exceptions);
    Some(evidence)
}

/// Whether the answer left the page the visit was on (another path, not just another query).
fn navigated_away(first: &Snapshot, reject: &Snapshot) -> bool {
    let page = |u: &str| {
        url::Url::parse(u)
            .map(|u| {
                (
                    u.host_str().unwrap_or_default().to_owned(),
                    u.path().to_owned(),
                )
            })
            .ok()
    };
    page(&first.final_url) != page(&reject.final_url)
}

fn finding(
    rule: Rule,
    visit: Visit,
    subject: &str,
    title: String,
    evidence: Vec<Evidence>,
) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        visit,
        fingerprint: format!("{}:{}:{subject}", rule.as_str(), visit.as_str()),
        title,
        evidence,
    }
}

/// Whether a visit left alone was tracked at all (a listed request or a tracking cookie): the
/// measure the GPC rule and the GPC verdict share.
pub(super) fn tracks(snapshot: &Snapshot) -> bool {
    !tracking(snapshot, Moment::Whole).is_empty()
}

/// Which part of a visit a rule looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// All of it (a visit that gave no answer).
    Whole,
    /// What happened after the banner was answered.
    AfterAnswer,
}

/// Tracking evidence of a visit grouped by the tracker's registrable domain.
fn tracking(snapshot: &Snapshot, moment: Moment) -> BTreeMap<String, Vec<Evidence>> {
    let chains = Initiators::of(snapshot);
    let mut by_subject: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
    for request in snapshot
        .requests
        .iter()
        .filter(|r| moment == Moment::Whole || r.after_answer)
    {
        let Some(listed) = &request.listed else {
            continue;
        };
        by_subject
            .entry(subject_of(&request.host))
            .or_default()
            .push(Evidence::Request {
                url: request.url.clone(),
                resource_type: request.resource_type.clone(),
                list: listed.list.clone(),
                list_rule: listed.rule.clone(),
                initiators: chains.chain(request.initiator.as_deref()),
            });
    }
    let before: Vec<(&str, &str, &str)> = match moment {
        Moment::Whole => Vec::new(),
        Moment::AfterAnswer => snapshot
            .consent
            .as_ref()
            .map(|c| {
                c.cookies_before
                    .iter()
                    .map(|k| (k.name.as_str(), k.domain.as_str(), k.path.as_str()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let listed = ListedBy::of(&snapshot.requests);
    for cookie in &snapshot.cookies {
        if before.contains(&(
            cookie.name.as_str(),
            cookie.domain.as_str(),
            cookie.path.as_str(),
        )) {
            continue;
        }
        let Some(reason) = tracking_cookie(cookie, &listed) else {
            continue;
        };
        let setter = cookie.set_by_host.as_deref().unwrap_or(&cookie.domain);
        by_subject
            .entry(subject_of(setter))
            .or_default()
            .push(Evidence::Cookie {
                name: cookie.name.clone(),
                domain: cookie.domain.clone(),
                reason,
                set_by_script: cookie.set_by_script.clone(),
                set_by_host: cookie.set_by_host.clone(),
                initiators: chains.chain(cookie.set_by_script.as_deref()),
            });
    }
    by_subject
}

/// The filter-list matches of a visit's requests, by URL and by host.
struct ListedBy<'a> {
    url: HashMap<&'a str, &'a ListMatch>,
    host: HashMap<&'a str, &'a ListMatch>,
}

impl<'a> ListedBy<'a> {
    fn of(requests: &'a [Request]) -> Self {
        let mut listed = ListedBy {
            url: HashMap::new(),
            host: HashMap::new(),
        };
        for request in requests {
            if let Some(hit) = &request.listed {
                listed.url.entry(request.url.as_str()).or_insert(hit);
                listed.host.entry(request.host.as_str()).or_insert(hit);
            }
        }
        listed
    }
}

/// Why a cookie counts as tracking, if it does, every reason there is: the cookie database calls
/// it analytics or marketing; a script a list names set it, whatever its name; or a response from
/// a host a list names did.
fn tracking_cookie(cookie: &Cookie, listed: &ListedBy<'_>) -> Option<String> {
    let mut reasons = Vec::new();
    if let Some(class) = &cookie.classification
        && matches!(class.category.as_str(), "Analytics" | "Marketing")
    {
        reasons.push(format!(
            "Open Cookie Database: {} cookie of {}",
            class.category, class.platform
        ));
    }
    if let Some(script) = cookie.set_by_script.as_deref() {
        if let Some(hit) = listed.url.get(script) {
            reasons.push(format!(
                "set by a script {} names ({})",
                list_title(&hit.list),
                hit.rule
            ));
        }
    } else if let Some(host) = cookie.set_by_host.as_deref()
        && let Some(hit) = listed.host.get(host)
    {
        reasons.push(format!(
            "set by {host}, a host {} names ({})",
            list_title(&hit.list),
            hit.rule
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn list_title(list: &str) -> &str {
    match list {
        "easyprivacy" => "EasyPrivacy",
        "easylist" => "EasyList",
        other => other,
    }
}

/// Consent signals that said "granted" in the part of the visit looked at.
fn granted_signals(snapshot: &Snapshot, moment: Moment) -> Option<Vec<Evidence>> {
    let mut evidence: Vec<Evidence> = snapshot
        .consent_signals
        .google
        .iter()
        .filter(|s| moment == Moment::Whole || s.after_answer)
        .filter_map(|s| {
            let granted: Vec<String> = [
                ("ad_storage", s.ad_storage),
                ("analytics_storage", s.analytics_storage),
                ("ad_user_data", s.ad_user_data),
                ("ad_personalization", s.ad_personalization),
            ]
            .into_iter()
            .filter(|(_, state)| state.is_some_and(|s| s.granted()))
            .map(|(name, _)| name.to_owned())
            .collect();
            (!granted.is_empty()).then(|| Evidence::ConsentMode {
                request_url: s.request_url.clone(),
                granted,
            })
        })
        .collect();
    if let Some(tcf) = &snapshot.consent_signals.tcf
        && !tcf.purposes_consent.is_empty()
    {
        evidence.push(Evidence::Tcf {
            source: tcf.source.clone(),
            purposes_consent: tcf.purposes_consent.clone(),
            vendors_consented: tcf.vendors_consented,
        });
    }
    (!evidence.is_empty()).then_some(evidence)
}

/// The GPC visit's tracking when it tracks what the plain first visit tracked: the signal made
/// no difference. `None` when the site did not track the first visit (nothing to opt out of) or
/// stopped when asked.
fn gpc_ignored(first: &Snapshot, gpc: &Snapshot) -> Option<Vec<Evidence>> {
    let without = tracking(first, Moment::Whole);
    if without.is_empty() {
        return None;
    }
    let with = tracking(gpc, Moment::Whole);
    let still: Vec<Evidence> = with
        .into_iter()
        .filter(|(subject, _)| without.contains_key(subject))
        .flat_map(|(_, evidence)| evidence)
        .collect();
    (!still.is_empty()).then_some(still)
}

/// The subject a tracker is grouped under: its registrable domain.
fn subject_of(host: &str) -> String {
    scanner::party::registrable_domain(host)
}

/// Who caused what: request URL → the initiator recorded for it.
struct Initiators<'a> {
    of_url: HashMap<&'a str, &'a str>,
    page: &'a str,
}

/// How far a chain is followed.
const MAX_CHAIN: usize = 10;

impl<'a> Initiators<'a> {
    fn of(snapshot: &'a Snapshot) -> Self {
        let mut of_url = HashMap::new();
        for request in &snapshot.requests {
            if let Some(initiator) = request.initiator.as_deref() {
                of_url.entry(request.url.as_str()).or_insert(initiator);
            }
        }
        Initiators {
            of_url,
            page: &snapshot.final_url,
        }
    }

    /// `first`, then whatever loaded it, and so on, ending at the page (or a script with no
    /// recorded cause); cycles and overlong chains stop.
    fn chain(&self, first: Option<&str>) -> Vec<String> {
        let mut chain: Vec<String> = Vec::new();
        let mut next = first;
        while let Some(url) = next {
            if chain.len() >= MAX_CHAIN || chain.iter().any(|c| c == url) {
                break;
            }
            chain.push(url.to_owned());
            if url == self.page {
                break;
            }
            next = self.of_url.get(url).copied();
        }
        chain
    }
}

#[cfg(test)]
mod tests;
