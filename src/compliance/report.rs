//! A compliance scan as people read it: each visit side by side (banner answer, tracking hosts,
//! cookies by category, consent signals), the findings, and the lists that classified them.

use std::collections::BTreeMap;

use scanner::Snapshot;
use scanner::snapshot::{ConsentSignals, FilterListInfo};
use serde::{Deserialize, Serialize};

use super::findings::{Finding, findings, tracks};
use super::visits::{Visit, VisitOutcomes};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComplianceReport {
    pub url: String,
    pub visits: Vec<VisitSummary>,
    pub findings: Vec<Finding>,
    /// Whether the site honoured Global Privacy Control.
    pub gpc: GpcVerdict,
    /// The lists that classified the visits (from the first visit that has them).
    pub filter_lists: Vec<FilterListInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpcVerdict {
    /// The GPC visit was not asked for.
    NotTested,
    /// The site did not track a first visit, so there was nothing to opt out of.
    NothingToOptOutOf,
    Honoured,
    Ignored,
    /// A visit needed for the verdict failed.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VisitSummary {
    pub visit: Visit,
    /// Why the visit failed; absent when it completed.
    pub error: Option<String>,
    pub final_url: Option<String>,
    /// The banner control the visit clicked (label, layer), for visits that answer.
    pub answered_with: Option<String>,
    pub consent_managers: Vec<String>,
    /// Hosts a tracking or advertising list names, with how many requests went to each.
    pub tracking_hosts: Vec<TrackingHost>,
    pub cookies: Vec<CookieRow>,
    pub consent_signals: ConsentSignals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrackingHost {
    pub host: String,
    /// `easyprivacy` or `easylist`.
    pub list: String,
    /// The company, where the configured host list names it.
    pub company: Option<String>,
    pub requests: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CookieRow {
    pub name: String,
    pub domain: String,
    /// The cookie database's category, or `Unclassified`.
    pub category: String,
    pub platform: Option<String>,
}

impl ComplianceReport {
    pub fn new(url: &str, visits: &VisitOutcomes<'_>) -> Self {
        let findings = findings(visits);
        let gpc = match (visits.gpc, visits.first_visit) {
            (None, _) => GpcVerdict::NotTested,
            (Some(Err(_)), _) | (_, Err(_)) => GpcVerdict::Unknown,
            (Some(Ok(_)), Ok(first)) => {
                if findings.iter().any(|f| f.visit == Visit::Gpc) {
                    GpcVerdict::Ignored
                } else if tracks(first) {
                    GpcVerdict::Honoured
                } else {
                    GpcVerdict::NothingToOptOutOf
                }
            }
        };
        let filter_lists = visits
            .iter()
            .find_map(|(_, outcome)| outcome.ok().map(|s| s.filter_lists.clone()))
            .unwrap_or_default();
        ComplianceReport {
            url: url.to_owned(),
            visits: visits
                .iter()
                .map(|(visit, outcome)| summarize(visit, outcome))
                .collect(),
            findings,
            gpc,
            filter_lists,
        }
    }
}

fn summarize(visit: Visit, outcome: Result<&Snapshot, &str>) -> VisitSummary {
    let snapshot = match outcome {
        Ok(snapshot) => snapshot,
        Err(error) => {
            return VisitSummary {
                visit,
                error: Some(error.to_owned()),
                final_url: None,
                answered_with: None,
                consent_managers: Vec::new(),
                tracking_hosts: Vec::new(),
                cookies: Vec::new(),
                consent_signals: ConsentSignals::default(),
            };
        }
    };
    let mut hosts: BTreeMap<&str, TrackingHost> = BTreeMap::new();
    for request in &snapshot.requests {
        let Some(listed) = &request.listed else {
            continue;
        };
        hosts
            .entry(request.host.as_str())
            .or_insert_with(|| TrackingHost {
                host: request.host.clone(),
                list: listed.list.clone(),
                company: snapshot
                    .listed_hosts
                    .iter()
                    .find(|h| h.host == request.host)
                    .map(|h| h.entity.clone()),
                requests: 0,
            })
            .requests += 1;
    }
    let consent = snapshot.consent.as_ref();
    VisitSummary {
        visit,
        error: None,
        final_url: Some(snapshot.final_url.clone()),
        answered_with: consent
            .and_then(|c| c.clicked.as_ref())
            .map(|c| format!("\"{}\" (layer {})", c.label, c.layer)),
        consent_managers: consent
            .map(|c| c.consent_managers.clone())
            .unwrap_or_default(),
        tracking_hosts: hosts.into_values().collect(),
        cookies: snapshot
            .cookies
            .iter()
            .map(|c| CookieRow {
                name: c.name.clone(),
                domain: c.domain.clone(),
                category: c
                    .classification
                    .as_ref()
                    .map_or_else(|| "Unclassified".to_owned(), |k| k.category.clone()),
                platform: c.classification.as_ref().map(|k| k.platform.clone()),
            })
            .collect(),
        consent_signals: snapshot.consent_signals.clone(),
    }
}
