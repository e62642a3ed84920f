//! What changed between two snapshots of one target: pure functions, no I/O. Each change is a
//! typed, serializable value that alert rules match on and the dashboard turns into a sentence.
//!
//! - `inventory`: cookies, third-party hosts, scripts (added, removed, same URL with new content),
//!   inline scripts, request hosts, refused connections, console errors, title and final URL.
//! - `headers`: the main document's security headers (CSP, HSTS, framing, cookies, ...).
//! - `text`: visible DOM text and policy pages as word-level diffs.
//! - `visual`: changed-pixel share, changed regions and a highlighted diff image of screenshots,
//!   which becomes a `VisualChanged` change above the target's threshold (`visual_change`).

pub mod headers;
pub mod inventory;
pub mod text;
pub mod visual;

use scanner::Snapshot;
use scanner::snapshot::{Party, PolicyKind};
use serde::{Deserialize, Serialize};

pub use text::Span;
pub use visual::{Rect, VisualDiff};

/// How to compare two snapshots of a target.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// CSS selectors whose text is left out of the DOM text (clocks, rotating ads, random ids).
    pub ignore_selectors: Vec<String>,
}

/// A cookie attribute that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttributeChange {
    /// `expiry`, `secure`, `http_only`, `same_site` or `domain`.
    pub attribute: String,
    pub before: String,
    pub after: String,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    CookieAdded {
        name: String,
        domain: String,
        path: String,
        party: Party,
        /// Set before any consent answer (or with no answer asked for).
        before_consent: bool,
    },
    CookieRemoved {
        name: String,
        domain: String,
        path: String,
    },
    CookieChanged {
        name: String,
        domain: String,
        path: String,
        attributes: Vec<AttributeChange>,
    },
    ThirdPartyHostAdded {
        host: String,
    },
    ThirdPartyHostRemoved {
        host: String,
    },
    ScriptAdded {
        url: String,
        host: String,
        party: Party,
        sha256: String,
    },
    ScriptRemoved {
        url: String,
        host: String,
    },
    /// The same URL now serves different code.
    ScriptContentChanged {
        url: String,
        host: String,
        before_sha256: String,
        after_sha256: String,
    },
    InlineScriptAdded {
        sha256: String,
        first_bytes: String,
    },
    InlineScriptRemoved {
        sha256: String,
        first_bytes: String,
    },
    /// A host the page had not contacted before (first or third party).
    RequestHostAdded {
        host: String,
        party: Party,
    },
    /// The egress guard refused a destination it had not refused before.
    BlockedRequestAdded {
        host: String,
        reason: String,
    },
    ConsoleErrorAdded {
        message: String,
    },
    TitleChanged {
        before: String,
        after: String,
    },
    FinalUrlChanged {
        before: String,
        after: String,
    },
    PolicyTextChanged {
        policy: PolicyKind,
        url: String,
        words_added: usize,
        words_removed: usize,
        diff: Vec<Span>,
    },
    PolicyPageAdded {
        policy: PolicyKind,
        url: String,
    },
    PolicyPageRemoved {
        policy: PolicyKind,
        url: String,
    },
    DomTextChanged {
        words_added: usize,
        words_removed: usize,
        diff: Vec<Span>,
    },
    /// A security header of the main document appeared, went away or changed its value.
    SecurityHeaderChanged {
        /// The header's name in lower case, or `set-cookie NAME` for one cookie's.
        header: String,
        /// Absent: the page did not send it. Several lines: sent several times.
        before: Option<String>,
        after: Option<String>,
    },
    /// More of a screenshot changed than the target's threshold allows.
    VisualChanged {
        /// `viewport` or `full_page`.
        screenshot: String,
        changed_percent: f64,
        regions: Vec<Rect>,
    },
}

impl Change {
    /// The change as a sentence for people.
    pub fn sentence(&self) -> String {
        match self {
            Change::CookieAdded {
                name,
                domain,
                party,
                before_consent,
                ..
            } => format!(
                "New {} cookie `{name}` on {domain}{}",
                party_word(*party),
                if *before_consent {
                    ", set before consent"
                } else {
                    ""
                }
            ),
            Change::CookieRemoved { name, domain, .. } => {
                format!("Cookie `{name}` on {domain} is no longer set")
            }
            Change::CookieChanged {
                name,
                domain,
                attributes,
                ..
            } => format!(
                "Cookie `{name}` on {domain} changed: {}",
                attributes
                    .iter()
                    .map(|a| format!("{} {} → {}", a.attribute, a.before, a.after))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::ThirdPartyHostAdded { host } => format!("New third-party host {host}"),
            Change::ThirdPartyHostRemoved { host } => {
                format!("Third-party host {host} is no longer contacted")
            }
            Change::ScriptAdded { url, party, .. } => {
                format!("New {} script {url}", party_word(*party))
            }
            Change::ScriptRemoved { url, .. } => format!("Script {url} is no longer loaded"),
            Change::ScriptContentChanged { url, .. } => {
                format!("Script {url} now serves different code")
            }
            Change::InlineScriptAdded { first_bytes, .. } => {
                format!("New inline script `{first_bytes}`")
            }
            Change::InlineScriptRemoved { first_bytes, .. } => {
                format!("Inline script `{first_bytes}` is gone")
            }
            Change::RequestHostAdded { host, party } => {
                format!(
                    "The page now contacts {host} ({} party)",
                    party_word(*party)
                )
            }
            Change::BlockedRequestAdded { host, reason } => {
                format!("A request to {host} was refused: {reason}")
            }
            Change::ConsoleErrorAdded { message } => format!("New console error: {message}"),
            Change::TitleChanged { before, after } => {
                format!("Title changed from “{before}” to “{after}”")
            }
            Change::FinalUrlChanged { before, after } => {
                format!("The page now ends at {after} (was {before})")
            }
            Change::PolicyTextChanged {
                policy,
                words_added,
                words_removed,
                ..
            } => format!(
                "The {} policy changed: {words_added} words added, {words_removed} removed",
                policy_word(*policy)
            ),
            Change::PolicyPageAdded { policy, url } => {
                format!("A {} policy page was found at {url}", policy_word(*policy))
            }
            Change::PolicyPageRemoved { policy, url } => {
                format!("The {} policy page at {url} is gone", policy_word(*policy))
            }
            Change::DomTextChanged {
                words_added,
                words_removed,
                ..
            } => format!(
                "The page's text changed: {words_added} words added, {words_removed} removed"
            ),
            Change::SecurityHeaderChanged {
                header,
                before,
                after,
            } => {
                let name = headers::display_name(header);
                match (before, after) {
                    (None, Some(after)) => {
                        format!("The page now sends {name}: “{}”", shorten(after))
                    }
                    (Some(before), None) => format!(
                        "The page no longer sends {name} (it was “{}”)",
                        shorten(before)
                    ),
                    (before, after) => format!(
                        "{name} changed from “{}” to “{}”",
                        shorten(before.as_deref().unwrap_or_default()),
                        shorten(after.as_deref().unwrap_or_default())
                    ),
                }
            }
            Change::VisualChanged {
                screenshot,
                changed_percent,
                regions,
            } => format!(
                "The {} looks different: {changed_percent:.1} % of pixels changed in {} area(s)",
                if screenshot == "viewport" {
                    "first screen"
                } else {
                    "full page"
                },
                regions.len()
            ),
        }
    }
}

/// A header value short enough for a sentence (the change's detail keeps it whole).
fn shorten(value: &str) -> String {
    const MAX: usize = 160;
    let value = value.replace('\n', " | ");
    if value.chars().count() <= MAX {
        value
    } else {
        value.chars().take(MAX).collect::<String>() + "…"
    }
}

fn party_word(party: Party) -> &'static str {
    match party {
        Party::First => "first-party",
        Party::Third => "third-party",
    }
}

fn policy_word(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Privacy => "privacy",
        PolicyKind::Cookies => "cookie",
        PolicyKind::Terms => "terms",
    }
}

/// Every change from `before` to `after` except the visual ones (see `visual::compare`), in a
/// stable order.
pub fn snapshots(before: &Snapshot, after: &Snapshot, options: &DiffOptions) -> Vec<Change> {
    let mut changes = inventory::changes(before, after);
    changes.extend(headers::changes(before, after));
    changes.extend(text::policy_changes(before, after));
    if let Some(change) =
        text::dom_change(&before.dom.html, &after.dom.html, &options.ignore_selectors)
    {
        changes.push(change);
    }
    changes
}

/// A screenshot comparison as a change, when more changed than `threshold_percent`.
pub fn visual_change(
    screenshot: &str,
    diff: &VisualDiff,
    threshold_percent: f64,
) -> Option<Change> {
    let changed_percent = diff.changed_share * 100.0;
    (changed_percent > threshold_percent).then(|| Change::VisualChanged {
        screenshot: screenshot.to_string(),
        changed_percent,
        regions: diff.regions.clone(),
    })
}
