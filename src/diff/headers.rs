//! The main document's security headers: a header (or one cookie's attributes) that appeared,
//! went away or changed its value between two snapshots. Snapshots that did not record headers
//! (made before the scanner kept them) compare as unknown, never as "all headers removed".

use std::collections::{BTreeMap, BTreeSet};

use scanner::Snapshot;
use scanner::snapshot::Header;

use super::Change;

/// Every header change from `before` to `after`, by header name.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let (Some(before), Some(after)) = (&before.document_headers, &after.document_headers) else {
        return Vec::new();
    };
    let (before, after) = (by_key(before), by_key(after));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| Change::SecurityHeaderChanged {
            header: key.clone(),
            before: before.get(key).cloned(),
            after: after.get(key).cloned(),
        })
        .collect()
}

/// Values by what identifies them across snapshots: the header's name, or `set-cookie NAME`
/// for a cookie. A header sent several times is one value, its lines in order.
fn by_key(headers: &[Header]) -> BTreeMap<String, String> {
    let mut grouped: BTreeMap<String, String> = BTreeMap::new();
    for header in headers {
        let key = if header.name == "set-cookie" {
            let cookie = header.value.split(';').next().unwrap_or_default().trim();
            format!("set-cookie {cookie}")
        } else {
            header.name.clone()
        };
        let comparable = if header.name.starts_with("content-security-policy") {
            without_nonces(&header.value)
        } else {
            header.value.clone()
        };
        let value = grouped.entry(key).or_default();
        if !value.is_empty() {
            value.push('\n');
        }
        value.push_str(&comparable);
    }
    grouped
}

/// A CSP with its per-response nonces blanked (`'nonce-…'`): a nonce is new in every response
/// by design, so it is no change.
fn without_nonces(policy: &str) -> String {
    policy
        .split(';')
        .map(|directive| {
            directive
                .split_whitespace()
                .map(|token| {
                    if token.starts_with("'nonce-") && token.ends_with('\'') {
                        "'nonce-…'"
                    } else {
                        token
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `content-security-policy` → `Content-Security-Policy`; `set-cookie sid` → the cookie `sid`'s
/// `Set-Cookie`.
pub fn display_name(key: &str) -> String {
    if let Some(cookie) = key.strip_prefix("set-cookie ") {
        return format!("Set-Cookie of `{cookie}`");
    }
    key.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::inventory::tests::{base, parse};

    fn with_headers(lines: &[(&str, &str)]) -> Snapshot {
        let mut snapshot = parse(base());
        snapshot.document_headers = Some(
            lines
                .iter()
                .map(|(name, value)| Header {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
        );
        snapshot
    }

    #[test]
    fn a_dropped_loosened_or_new_header_is_a_change_and_the_same_headers_are_none() {
        let before = with_headers(&[
            ("content-security-policy", "script-src 'self'"),
            ("set-cookie", "sid; Path=/; HttpOnly"),
            ("x-frame-options", "DENY"),
        ]);
        assert!(changes(&before, &before.clone()).is_empty());
        let after = with_headers(&[
            (
                "content-security-policy",
                "script-src 'self' 'unsafe-inline' *",
            ),
            ("set-cookie", "sid; Path=/"),
            ("strict-transport-security", "max-age=60"),
        ]);
        let found = changes(&before, &after);
        let summary: Vec<(String, Option<String>, Option<String>)> = found
            .iter()
            .map(|c| match c {
                Change::SecurityHeaderChanged {
                    header,
                    before,
                    after,
                } => (header.clone(), before.clone(), after.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "content-security-policy".into(),
                    Some("script-src 'self'".into()),
                    Some("script-src 'self' 'unsafe-inline' *".into())
                ),
                (
                    "set-cookie sid".into(),
                    Some("sid; Path=/; HttpOnly".into()),
                    Some("sid; Path=/".into())
                ),
                (
                    "strict-transport-security".into(),
                    None,
                    Some("max-age=60".into())
                ),
                ("x-frame-options".into(), Some("DENY".into()), None),
            ]
        );
        assert!(
            found[3]
                .sentence()
                .contains("no longer sends X-Frame-Options")
        );
    }

    #[test]
    fn a_new_nonce_in_every_response_is_no_change_but_a_new_source_is() {
        let before = with_headers(&[(
            "content-security-policy",
            "script-src 'self' 'nonce-r4nd0m1'; object-src 'none'",
        )]);
        let after = with_headers(&[(
            "content-security-policy",
            "script-src 'self' 'nonce-0th3r2'; object-src 'none'",
        )]);
        assert!(changes(&before, &after).is_empty());
        let widened = with_headers(&[(
            "content-security-policy",
            "script-src 'self' 'nonce-0th3r2' https://evil.example; object-src 'none'",
        )]);
        assert_eq!(changes(&before, &widened).len(), 1);
    }

    #[test]
    fn snapshots_without_recorded_headers_compare_as_unknown() {
        let old = parse(base());
        assert!(old.document_headers.is_none());
        let new = with_headers(&[("content-security-policy", "script-src 'self'")]);
        assert!(changes(&old, &new).is_empty());
        assert!(changes(&new, &old).is_empty());
        // Recorded, and none sent: every header the page sent before is gone.
        assert_eq!(changes(&new, &with_headers(&[])).len(), 1);
    }

    #[test]
    fn names_read_as_people_write_them() {
        assert_eq!(
            display_name("content-security-policy-report-only"),
            "Content-Security-Policy-Report-Only"
        );
        assert_eq!(display_name("set-cookie sid"), "Set-Cookie of `sid`");
    }
}
