//! What ran on a payment page, read from one snapshot (pure): every script with how it got
//! there — in the page's markup or injected by another script, in the page or inside an iframe
//! (the payment provider's card fields are one) — and, for the page's own external scripts, the
//! Subresource Integrity value its markup gave and whether it holds for the body seen.

use std::collections::HashMap;

use base64::Engine;
use scanner::Snapshot;
use scanner::snapshot::Script;
use serde::Serialize;

/// A script as one snapshot saw it run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    /// What identifies it across scans: its URL, or for an inline script its hash (an inline
    /// script has no other name; a changed one is another script).
    pub identity: String,
    pub kind: Kind,
    pub url: Option<String>,
    pub host: Option<String>,
    pub sha256: String,
    pub size_bytes: u64,
    /// The first characters of an inline script's source.
    pub first_bytes: String,
    /// The document it ran in.
    pub frame_url: String,
    /// It ran inside an iframe on the page, not in the page itself.
    pub in_iframe: bool,
    /// The script that added it to the page, when it was not in the markup.
    pub injected_by: Option<String>,
    pub integrity: Integrity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    External,
    Inline,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::External => "external",
            Kind::Inline => "inline",
        }
    }
}

/// Subresource Integrity of an external script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Integrity {
    /// Not applicable: inline, or inside an iframe (whose markup the scan does not read).
    NotApplicable,
    /// The page's markup gives the script no `integrity`.
    Missing,
    /// A `sha256-` value that equals the body seen.
    Matches(String),
    /// Only `sha384-`/`sha512-` values: the browser checked them (it runs nothing that fails
    /// them), the scan cannot recompute them.
    CheckedByBrowser(String),
    /// Only `sha256-` values, none equal to the body seen.
    Mismatch(String),
}

impl Integrity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Integrity::NotApplicable => "not_applicable",
            Integrity::Missing => "missing",
            Integrity::Matches(_) => "matches",
            Integrity::CheckedByBrowser(_) => "checked_by_browser",
            Integrity::Mismatch(_) => "mismatch",
        }
    }

    /// The `integrity` attribute as the page gave it, if it did.
    pub fn value(&self) -> Option<&str> {
        match self {
            Integrity::Matches(v) | Integrity::CheckedByBrowser(v) | Integrity::Mismatch(v) => {
                Some(v)
            }
            Integrity::NotApplicable | Integrity::Missing => None,
        }
    }

    /// Reads it back from its stored parts.
    pub fn from_parts(state: &str, value: Option<String>) -> Integrity {
        let value = value.unwrap_or_default();
        match state {
            "missing" => Integrity::Missing,
            "matches" => Integrity::Matches(value),
            "checked_by_browser" => Integrity::CheckedByBrowser(value),
            "mismatch" => Integrity::Mismatch(value),
            _ => Integrity::NotApplicable,
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Integrity::NotApplicable => "—",
            Integrity::Missing => "no SRI",
            Integrity::Matches(_) => "SRI matches",
            Integrity::CheckedByBrowser(_) => "SRI checked by the browser",
            Integrity::Mismatch(_) => "SRI does not match",
        }
    }
}

/// Every script of the snapshot, in the snapshot's order, each identity once.
pub fn of(snapshot: &Snapshot) -> Vec<Seen> {
    let page = without_fragment(&snapshot.final_url);
    let markup = integrity_in_markup(&snapshot.dom.html, &snapshot.final_url);
    let requested_by: HashMap<&str, &str> = snapshot
        .requests
        .iter()
        .filter(|r| r.resource_type == "Script")
        .filter_map(|r| Some((r.url.as_str(), r.initiator.as_deref()?)))
        .collect();
    let mut seen: Vec<Seen> = Vec::new();
    for script in &snapshot.scripts {
        let item = match script {
            Script::External {
                url,
                host,
                sha256,
                size_bytes,
                frame_url,
                ..
            } => {
                let in_iframe = without_fragment(frame_url) != page;
                let injected_by = requested_by
                    .get(url.as_str())
                    .filter(|by| without_fragment(by) != without_fragment(frame_url))
                    .map(|by| (*by).to_owned());
                let integrity = if in_iframe {
                    Integrity::NotApplicable
                } else {
                    match markup.get(url.as_str()) {
                        Some(value) => check(value, sha256),
                        None => Integrity::Missing,
                    }
                };
                Seen {
                    identity: url.clone(),
                    kind: Kind::External,
                    url: Some(url.clone()),
                    host: Some(host.clone()),
                    sha256: sha256.clone(),
                    size_bytes: *size_bytes,
                    first_bytes: String::new(),
                    frame_url: frame_url.clone(),
                    in_iframe,
                    injected_by,
                    integrity,
                }
            }
            Script::Inline {
                sha256,
                size_bytes,
                first_bytes,
                frame_url,
            } => Seen {
                identity: format!("inline:{sha256}"),
                kind: Kind::Inline,
                url: None,
                host: None,
                sha256: sha256.clone(),
                size_bytes: *size_bytes,
                first_bytes: first_bytes.clone(),
                frame_url: frame_url.clone(),
                in_iframe: without_fragment(frame_url) != page,
                injected_by: None,
                integrity: Integrity::NotApplicable,
            },
        };
        if !seen.iter().any(|s| s.identity == item.identity) {
            seen.push(item);
        }
    }
    seen
}

fn without_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// `src` (resolved against the page) → `integrity` of the page's `<script>` elements.
fn integrity_in_markup(html: &str, base: &str) -> HashMap<String, String> {
    let Ok(base) = url::Url::parse(base) else {
        return HashMap::new();
    };
    let document = scraper::Html::parse_document(html);
    let Ok(scripts) = scraper::Selector::parse("script[src][integrity]") else {
        return HashMap::new();
    };
    document
        .select(&scripts)
        .filter_map(|element| {
            let src = base.join(element.value().attr("src")?).ok()?;
            let integrity = element.value().attr("integrity")?.trim();
            Some((src.to_string(), integrity.chars().take(1_000).collect()))
        })
        .collect()
}

/// Whether `integrity` (space-separated `alg-base64` values) holds for a body whose SHA-256 is
/// `sha256_hex`. The browser uses the strongest algorithm listed; only SHA-256 can be
/// recomputed here.
pub fn check(integrity: &str, sha256_hex: &str) -> Integrity {
    let values: Vec<&str> = integrity.split_whitespace().collect();
    // A well-formed stronger value is what the browser checks (it runs nothing that fails it);
    // malformed ones it ignores, and so does this.
    let stronger = values.iter().any(|v| {
        let digest = |prefix: &str, len: usize| {
            v.strip_prefix(prefix)
                .map(|b64| b64.split('?').next().unwrap_or(b64))
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|bytes| bytes.len() == len)
        };
        digest("sha384-", 48) || digest("sha512-", 64)
    });
    if stronger {
        return Integrity::CheckedByBrowser(integrity.to_owned());
    }
    let ours = hex::decode(sha256_hex)
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .unwrap_or_default();
    let matches = values.iter().any(|v| {
        v.strip_prefix("sha256-")
            .map(|b64| b64.split('?').next().unwrap_or(b64))
            .is_some_and(|b64| b64 == ours)
    });
    if matches {
        Integrity::Matches(integrity.to_owned())
    } else {
        Integrity::Mismatch(integrity.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::inventory::tests::{base, parse};

    fn hex_of(body: &str) -> String {
        hex::encode(crate::crypto::sha256(body.as_bytes()))
    }

    fn sri_of(body: &str) -> String {
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD
                .encode(crate::crypto::sha256(body.as_bytes()))
        )
    }

    #[test]
    fn integrity_is_checked_against_the_body_seen() {
        let body = "window.vendor = 1;";
        assert_eq!(
            check(&sri_of(body), &hex_of(body)),
            Integrity::Matches(sri_of(body))
        );
        assert!(matches!(
            check(&sri_of("other"), &hex_of(body)),
            Integrity::Mismatch(_)
        ));
        // Several values: one that holds is enough.
        let both = format!("{} {}", sri_of("other"), sri_of(body));
        assert!(matches!(check(&both, &hex_of(body)), Integrity::Matches(_)));
        let sha384 = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 48])
        );
        assert!(matches!(
            check(&sha384, &hex_of(body)),
            Integrity::CheckedByBrowser(_)
        ));
        // A malformed stronger value is ignored, by the browser and here.
        assert!(matches!(
            check("sha384-abc", &hex_of(body)),
            Integrity::Mismatch(_)
        ));
    }

    #[test]
    fn scripts_are_told_apart_by_how_they_got_onto_the_page() {
        let vendor = "window.vendor = 1;";
        let mut json = base();
        json["final_url"] = "http://shop.test/pay".into();
        json["dom"]["html"] = format!(
            "<html><head><script src=\"/v.js\" integrity=\"{}\"></script><script src=\"http://cdn.test/lib.js\"></script></head></html>",
            sri_of(vendor)
        )
        .into();
        json["scripts"] = serde_json::json!([
            {"kind": "external", "url": "http://shop.test/v.js", "host": "shop.test", "party": "first",
             "sha256": hex_of(vendor), "size_bytes": 18, "frame_url": "http://shop.test/pay"},
            {"kind": "external", "url": "http://cdn.test/lib.js", "host": "cdn.test", "party": "third",
             "sha256": "11", "size_bytes": 1, "frame_url": "http://shop.test/pay"},
            {"kind": "external", "url": "http://shop.test/skim.js", "host": "shop.test", "party": "first",
             "sha256": "33", "size_bytes": 1, "frame_url": "http://shop.test/pay"},
            {"kind": "external", "url": "http://pay.test/card.js", "host": "pay.test", "party": "third",
             "sha256": "44", "size_bytes": 1, "frame_url": "http://pay.test/frame"},
            {"kind": "inline", "sha256": "22", "size_bytes": 1, "first_bytes": "init()", "frame_url": "http://shop.test/pay#top"},
            {"kind": "inline", "sha256": "22", "size_bytes": 1, "first_bytes": "init()", "frame_url": "http://shop.test/pay"}
        ]);
        json["requests"] = serde_json::json!([
            {"url": "http://shop.test/skim.js", "method": "GET", "resource_type": "Script", "host": "shop.test",
             "party": "first", "status": 200, "failure": null, "blocked": false, "started_ms": 1,
             "duration_ms": 1, "encoded_bytes": 1, "initiator": "http://cdn.test/lib.js"},
            {"url": "http://cdn.test/lib.js", "method": "GET", "resource_type": "Script", "host": "cdn.test",
             "party": "third", "status": 200, "failure": null, "blocked": false, "started_ms": 1,
             "duration_ms": 1, "encoded_bytes": 1, "initiator": "http://shop.test/pay"}
        ]);
        let seen = of(&parse(json));
        let facts: Vec<(&str, bool, Option<&str>, &str)> = seen
            .iter()
            .map(|s| {
                (
                    s.identity.as_str(),
                    s.in_iframe,
                    s.injected_by.as_deref(),
                    s.integrity.as_str(),
                )
            })
            .collect();
        assert_eq!(
            facts,
            [
                ("http://shop.test/v.js", false, None, "matches"),
                ("http://cdn.test/lib.js", false, None, "missing"),
                (
                    "http://shop.test/skim.js",
                    false,
                    Some("http://cdn.test/lib.js"),
                    "missing"
                ),
                ("http://pay.test/card.js", true, None, "not_applicable"),
                ("inline:22", false, None, "not_applicable"),
            ]
        );
    }
}
