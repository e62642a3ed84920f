//! A compliance scan's visits: the page as a first-time visitor gets it (banner left alone), after
//! "reject all", after "accept all", and optionally with Global Privacy Control sent. Each is a
//! full scan in its own fresh browser context; they run side by side in one browser.

use scanner::snapshot::ConsentMode;
use scanner::{ScanOptions, ScanOutput, Scanner, Snapshot, Stage};
use serde::{Deserialize, Serialize};

/// One visit of a compliance scan.
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
pub enum Visit {
    /// The banner left alone.
    FirstVisit,
    RejectAll,
    AcceptAll,
    /// The banner left alone, with `Sec-GPC: 1` and `navigator.globalPrivacyControl`.
    Gpc,
}

impl Visit {
    pub const ALL: [Visit; 4] = [
        Visit::FirstVisit,
        Visit::RejectAll,
        Visit::AcceptAll,
        Visit::Gpc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Visit::FirstVisit => "first_visit",
            Visit::RejectAll => "reject_all",
            Visit::AcceptAll => "accept_all",
            Visit::Gpc => "gpc",
        }
    }

    /// In words, for sentences.
    pub fn label(self) -> &'static str {
        match self {
            Visit::FirstVisit => "first",
            Visit::RejectAll => "reject-all",
            Visit::AcceptAll => "accept-all",
            Visit::Gpc => "Global Privacy Control",
        }
    }

    pub fn parse(text: &str) -> Option<Visit> {
        Visit::ALL.into_iter().find(|v| v.as_str() == text)
    }

    /// How the visit answers the cookie banner.
    pub fn consent_mode(self) -> ConsentMode {
        match self {
            Visit::FirstVisit | Visit::Gpc => ConsentMode::NoInteraction,
            Visit::RejectAll => ConsentMode::RejectAll,
            Visit::AcceptAll => ConsentMode::AcceptAll,
        }
    }

    /// Whether the visit sends Global Privacy Control.
    pub fn sends_gpc(self) -> bool {
        self == Visit::Gpc
    }

    /// The scan options of this visit, from the target's own.
    pub fn options(self, base: &ScanOptions) -> ScanOptions {
        let mut options = base.clone();
        options.consent_mode = self.consent_mode();
        options.global_privacy_control = self.sends_gpc();
        options
    }
}

/// The visits a compliance scan runs.
pub fn planned(with_gpc: bool) -> Vec<Visit> {
    Visit::ALL
        .into_iter()
        .filter(|v| with_gpc || *v != Visit::Gpc)
        .collect()
}

/// What each visit produced: its snapshot, or why it failed.
pub struct VisitOutcomes<'a> {
    pub first_visit: Result<&'a Snapshot, &'a str>,
    pub reject_all: Result<&'a Snapshot, &'a str>,
    pub accept_all: Result<&'a Snapshot, &'a str>,
    /// Absent when the scan did not ask for the GPC visit.
    pub gpc: Option<Result<&'a Snapshot, &'a str>>,
}

impl<'a> VisitOutcomes<'a> {
    /// The visits that took place, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Visit, Result<&'a Snapshot, &'a str>)> + '_ {
        [
            (Visit::FirstVisit, Some(self.first_visit)),
            (Visit::RejectAll, Some(self.reject_all)),
            (Visit::AcceptAll, Some(self.accept_all)),
            (Visit::Gpc, self.gpc),
        ]
        .into_iter()
        .filter_map(|(visit, outcome)| Some((visit, outcome?)))
    }

    /// From `(visit, snapshot or error)` pairs; a planned visit that is missing reads as failed.
    pub fn from_pairs(pairs: &'a [(Visit, Result<Snapshot, String>)]) -> Self {
        let get = |visit: Visit| {
            pairs
                .iter()
                .find(|(v, _)| *v == visit)
                .map(|(_, outcome)| match outcome {
                    Ok(snapshot) => Ok(snapshot),
                    Err(error) => Err(error.as_str()),
                })
        };
        let missing = Err("the visit did not take place");
        VisitOutcomes {
            first_visit: get(Visit::FirstVisit).unwrap_or(missing),
            reject_all: get(Visit::RejectAll).unwrap_or(missing),
            accept_all: get(Visit::AcceptAll).unwrap_or(missing),
            gpc: get(Visit::Gpc),
        }
    }
}

/// Runs `visits` of `url` side by side on `scanner` (its concurrency bounds how many at once).
/// A visit that fails does not stop the others.
pub async fn run(
    scanner: &Scanner,
    url: &str,
    base: &ScanOptions,
    visits: &[Visit],
    progress: &(dyn Fn(Visit, Stage) + Send + Sync),
) -> Vec<(Visit, Result<ScanOutput, String>)> {
    let runs = visits.iter().map(|&visit| async move {
        let options = visit.options(base);
        let report = move |stage: Stage| progress(visit, stage);
        let outcome = scanner
            .scan(url, &options, &report)
            .await
            .map_err(|e| e.to_string());
        (visit, outcome)
    });
    futures::future::join_all(runs).await
}
