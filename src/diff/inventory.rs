//! Inventory changes: cookies, hosts, scripts, refused connections, console errors, title, URL.

use std::collections::{BTreeMap, BTreeSet};

use scanner::Snapshot;
use scanner::snapshot::{Cookie, Party, SameSite, Script};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AttributeChange, Change};

/// Cookies are the same cookie when name, path and domain (without a leading dot) match.
fn cookie_key(cookie: &Cookie) -> (String, String, String) {
    (
        cookie.name.clone(),
        cookie.domain.trim_start_matches('.').to_ascii_lowercase(),
        cookie.path.clone(),
    )
}

/// How long a cookie lives, in classes coarse enough that a sliding expiry is not a change.
pub fn expiry_class(cookie: &Cookie, scanned_at: &str) -> &'static str {
    if cookie.session {
        return "session";
    }
    let (Some(expires), Ok(now)) = (
        cookie
            .expires
            .as_deref()
            .and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok()),
        OffsetDateTime::parse(scanned_at, &Rfc3339),
    ) else {
        return "persistent";
    };
    let days = (expires - now).whole_hours() as f64 / 24.0;
    match days {
        d if d <= 1.0 => "up to a day",
        d if d <= 31.0 => "up to a month",
        d if d <= 366.0 => "up to a year",
        _ => "over a year",
    }
}

fn same_site(value: SameSite) -> &'static str {
    match value {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
        SameSite::None => "None",
        SameSite::Unspecified => "unspecified",
    }
}

/// Cookies that were set before any consent answer.
fn before_consent(snapshot: &Snapshot) -> BTreeSet<(String, String, String)> {
    match &snapshot.consent {
        Some(outcome) => outcome.cookies_before.iter().map(cookie_key).collect(),
        None => snapshot.cookies.iter().map(cookie_key).collect(),
    }
}

fn cookie_changes(before: &Snapshot, after: &Snapshot, changes: &mut Vec<Change>) {
    let old: BTreeMap<_, &Cookie> = before.cookies.iter().map(|c| (cookie_key(c), c)).collect();
    let new: BTreeMap<_, &Cookie> = after.cookies.iter().map(|c| (cookie_key(c), c)).collect();
    let early = before_consent(after);
    for (key, cookie) in &new {
        match old.get(key) {
            None => changes.push(Change::CookieAdded {
                name: cookie.name.clone(),
                domain: cookie.domain.clone(),
                path: cookie.path.clone(),
                party: cookie.party,
                before_consent: early.contains(key),
            }),
            Some(previous) => {
                let mut attributes = Vec::new();
                let mut compare = |attribute: &str, a: String, b: String| {
                    if a != b {
                        attributes.push(AttributeChange {
                            attribute: attribute.into(),
                            before: a,
                            after: b,
                        });
                    }
                };
                compare(
                    "expiry",
                    expiry_class(previous, &before.started_at).into(),
                    expiry_class(cookie, &after.started_at).into(),
                );
                compare(
                    "secure",
                    previous.secure.to_string(),
                    cookie.secure.to_string(),
                );
                compare(
                    "http_only",
                    previous.http_only.to_string(),
                    cookie.http_only.to_string(),
                );
                compare(
                    "same_site",
                    same_site(previous.same_site).into(),
                    same_site(cookie.same_site).into(),
                );
                compare("domain", previous.domain.clone(), cookie.domain.clone());
                if !attributes.is_empty() {
                    changes.push(Change::CookieChanged {
                        name: cookie.name.clone(),
                        domain: cookie.domain.clone(),
                        path: cookie.path.clone(),
                        attributes,
                    });
                }
            }
        }
    }
    for (key, cookie) in &old {
        if !new.contains_key(key) {
            changes.push(Change::CookieRemoved {
                name: cookie.name.clone(),
                domain: cookie.domain.clone(),
                path: cookie.path.clone(),
            });
        }
    }
}

fn lowercase_set<'a>(hosts: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    hosts
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

fn host_changes(before: &Snapshot, after: &Snapshot, changes: &mut Vec<Change>) {
    let old = lowercase_set(before.third_party_hosts.iter());
    let new = lowercase_set(after.third_party_hosts.iter());
    changes.extend(
        new.difference(&old)
            .map(|host| Change::ThirdPartyHostAdded { host: host.clone() }),
    );
    changes.extend(
        old.difference(&new)
            .map(|host| Change::ThirdPartyHostRemoved { host: host.clone() }),
    );

    let old_requests: BTreeSet<String> = before
        .requests
        .iter()
        .map(|r| r.host.to_ascii_lowercase())
        .collect();
    let mut seen = BTreeSet::new();
    for request in &after.requests {
        let host = request.host.to_ascii_lowercase();
        if host.is_empty() || old_requests.contains(&host) || !seen.insert(host.clone()) {
            continue;
        }
        changes.push(Change::RequestHostAdded {
            host,
            party: request.party,
        });
    }

    let old_blocked: BTreeSet<String> = before
        .blocked
        .iter()
        .map(|b| b.host.to_ascii_lowercase())
        .collect();
    let mut seen = BTreeSet::new();
    for blocked in &after.blocked {
        let host = blocked.host.to_ascii_lowercase();
        if !old_blocked.contains(&host) && seen.insert(host.clone()) {
            changes.push(Change::BlockedRequestAdded {
                host,
                reason: blocked.reason.clone(),
            });
        }
    }
}

/// External scripts by URL (first occurrence), inline scripts by hash.
fn script_changes(before: &Snapshot, after: &Snapshot, changes: &mut Vec<Change>) {
    type External<'a> = BTreeMap<&'a str, (&'a str, Party, &'a str)>;
    fn external(snapshot: &Snapshot) -> External<'_> {
        let mut map = BTreeMap::new();
        for script in &snapshot.scripts {
            if let Script::External {
                url,
                host,
                party,
                sha256,
                ..
            } = script
            {
                map.entry(url.as_str())
                    .or_insert((host.as_str(), *party, sha256.as_str()));
            }
        }
        map
    }
    fn inline(snapshot: &Snapshot) -> BTreeMap<&str, &str> {
        snapshot
            .scripts
            .iter()
            .filter_map(|s| match s {
                Script::Inline {
                    sha256,
                    first_bytes,
                    ..
                } => Some((sha256.as_str(), first_bytes.as_str())),
                Script::External { .. } => None,
            })
            .collect()
    }
    let old = external(before);
    let new = external(after);
    for (url, (host, party, sha256)) in &new {
        match old.get(url) {
            None => changes.push(Change::ScriptAdded {
                url: url.to_string(),
                host: host.to_string(),
                party: *party,
                sha256: sha256.to_string(),
            }),
            Some((_, _, previous)) if previous != sha256 => {
                changes.push(Change::ScriptContentChanged {
                    url: url.to_string(),
                    host: host.to_string(),
                    before_sha256: previous.to_string(),
                    after_sha256: sha256.to_string(),
                })
            }
            Some(_) => {}
        }
    }
    for (url, (host, _, _)) in &old {
        if !new.contains_key(url) {
            changes.push(Change::ScriptRemoved {
                url: url.to_string(),
                host: host.to_string(),
            });
        }
    }
    let old_inline = inline(before);
    let new_inline = inline(after);
    for (sha256, first_bytes) in &new_inline {
        if !old_inline.contains_key(sha256) {
            changes.push(Change::InlineScriptAdded {
                sha256: sha256.to_string(),
                first_bytes: first_bytes.to_string(),
            });
        }
    }
    for (sha256, first_bytes) in &old_inline {
        if !new_inline.contains_key(sha256) {
            changes.push(Change::InlineScriptRemoved {
                sha256: sha256.to_string(),
                first_bytes: first_bytes.to_string(),
            });
        }
    }
}

/// Console messages with their numbers blanked, so counters and timestamps are not news.
fn normalized(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

fn console_changes(before: &Snapshot, after: &Snapshot, changes: &mut Vec<Change>) {
    let old: BTreeSet<String> = before
        .console_errors
        .iter()
        .map(|e| normalized(&e.message))
        .collect();
    let mut seen = BTreeSet::new();
    for error in &after.console_errors {
        let key = normalized(&error.message);
        if !old.contains(&key) && seen.insert(key) {
            changes.push(Change::ConsoleErrorAdded {
                message: error.message.clone(),
            });
        }
    }
}

/// Every inventory change, in a fixed order of kinds.
pub fn changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    if before.title.trim() != after.title.trim() {
        changes.push(Change::TitleChanged {
            before: before.title.clone(),
            after: after.title.clone(),
        });
    }
    if before.final_url != after.final_url {
        changes.push(Change::FinalUrlChanged {
            before: before.final_url.clone(),
            after: after.final_url.clone(),
        });
    }
    cookie_changes(before, after, &mut changes);
    host_changes(before, after, &mut changes);
    script_changes(before, after, &mut changes);
    console_changes(before, after, &mut changes);
    changes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diff::{DiffOptions, snapshots};

    /// A snapshot of the fixture shop with a first-party script and cookie.
    pub(crate) fn base() -> serde_json::Value {
        serde_json::json!({
            "format_version": 1, "scanner_version": "test",
            "requested_url": "http://shop.test/", "final_url": "http://shop.test/",
            "redirect_chain": [], "status": 200, "title": "Shop", "first_party_domain": "shop.test",
            "started_at": "2026-11-23T10:00:00Z", "finished_at": "2026-11-23T10:00:01Z",
            "timings": {"load_ms": 1, "network_quiet_ms": 1, "total_ms": 2},
            "browser": {"product": "p", "user_agent": "u", "third_party_cookies_allowed": true},
            "options": {"viewport_width": 1280, "viewport_height": 800, "quiet_period_ms": 1,
                "load_timeout_ms": 1, "scan_timeout_ms": 1, "consent_mode": "no_interaction",
                "policy_pages": true, "resolve": [], "private_destinations_allowed": false},
            "dom": {"html": "<html><body><p>Welcome</p></body></html>", "size_bytes": 1, "truncated": false},
            "scripts": [
                {"kind": "external", "url": "http://cdn.test/lib.js", "host": "cdn.test", "party": "third",
                 "sha256": "11", "size_bytes": 1, "frame_url": "http://shop.test/"},
                {"kind": "inline", "sha256": "22", "size_bytes": 1, "first_bytes": "init()", "frame_url": "http://shop.test/"}
            ],
            "cookies": [cookie("session", "shop.test", "first", true)],
            "storage": [],
            "requests": [request("shop.test", "first"), request("cdn.test", "third"), request("widget.test", "third")],
            "blocked": [], "console_errors": [], "dialogs": [], "downloads": [],
            "third_party_hosts": ["cdn.test", "widget.test"], "listed_hosts": [],
            "screenshots": {"viewport": {"width": 1, "height": 1, "sha256": "a", "size_bytes": 1},
                "full_page": {"width": 1, "height": 1, "sha256": "b", "size_bytes": 1},
                "page_height": 1, "full_page_truncated": false, "full_page_max_height": 1},
            "policy_pages": [{"kind": "privacy", "url": "http://shop.test/privacy", "link_text": "Privacy",
                "status": 200, "text": "We keep your data for one year.", "truncated": false, "error": null}],
            "consent": null, "limits_hit": []
        })
    }

    pub(crate) fn cookie(
        name: &str,
        domain: &str,
        party: &str,
        session: bool,
    ) -> serde_json::Value {
        serde_json::json!({"name": name, "domain": domain, "path": "/",
            "expires": if session { serde_json::Value::Null } else { "2027-11-23T10:00:00Z".into() },
            "session": session, "secure": false, "http_only": false, "same_site": "lax", "party": party,
            "set_by_host": domain, "set_by": "script", "value_size": 5, "classification": null})
    }

    pub(crate) fn request(host: &str, party: &str) -> serde_json::Value {
        serde_json::json!({"url": format!("http://{host}/x"), "method": "GET", "resource_type": "Script",
            "host": host, "party": party, "status": 200, "failure": null, "blocked": false,
            "started_ms": 1, "duration_ms": 1, "encoded_bytes": 1})
    }

    pub(crate) fn parse(value: serde_json::Value) -> Snapshot {
        serde_json::from_value(value).expect("a valid snapshot")
    }

    #[test]
    fn an_unchanged_site_has_no_changes() {
        let before = parse(base());
        assert_eq!(
            snapshots(&before, &before.clone(), &DiffOptions::default()),
            vec![]
        );
    }

    #[test]
    fn a_new_tracker_a_dropped_iframe_and_a_library_changed_in_place() {
        let before = parse(base());
        let mut after = base();
        after["scripts"][0]["sha256"] = "33".into();
        after["scripts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"kind": "external",
            "url": "http://analytics.test/a.js", "host": "analytics.test", "party": "third",
            "sha256": "44", "size_bytes": 1, "frame_url": "http://shop.test/"}));
        after["cookies"].as_array_mut().unwrap().push(cookie(
            "_track",
            ".analytics.test",
            "third",
            false,
        ));
        after["cookies"][0]["secure"] = true.into();
        after["requests"] = serde_json::json!([
            request("shop.test", "first"),
            request("cdn.test", "third"),
            request("analytics.test", "third")
        ]);
        after["third_party_hosts"] = serde_json::json!(["analytics.test", "cdn.test"]);
        after["policy_pages"][0]["text"] =
            "We keep your data for one year and share it with partners.".into();
        let changes = snapshots(&before, &parse(after), &DiffOptions::default());
        let kinds: Vec<String> = changes
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "cookie_added",
                "cookie_changed",
                "third_party_host_added",
                "third_party_host_removed",
                "request_host_added",
                "script_added",
                "script_content_changed",
                "policy_text_changed",
            ],
            "{changes:#?}"
        );
        assert!(changes.contains(&Change::CookieAdded {
            name: "_track".into(),
            domain: ".analytics.test".into(),
            path: "/".into(),
            party: Party::Third,
            before_consent: true,
        }));
        assert!(changes.contains(&Change::ScriptContentChanged {
            url: "http://cdn.test/lib.js".into(),
            host: "cdn.test".into(),
            before_sha256: "11".into(),
            after_sha256: "33".into(),
        }));
        assert!(changes.contains(&Change::ThirdPartyHostRemoved {
            host: "widget.test".into()
        }));
        let Some(Change::CookieChanged { attributes, .. }) = changes
            .iter()
            .find(|c| matches!(c, Change::CookieChanged { .. }))
        else {
            unreachable!()
        };
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].attribute, "secure");
        assert!(changes.iter().all(|c| !c.sentence().is_empty()));
    }

    #[test]
    fn expiry_classes_absorb_sliding_expiry() {
        let mut a = base();
        a["cookies"] = serde_json::json!([cookie("id", "shop.test", "first", false)]);
        let mut b = a.clone();
        // A year later, scanned a day later: the same class.
        b["started_at"] = "2026-11-24T10:00:00Z".into();
        b["cookies"][0]["expires"] = "2027-11-24T10:00:00Z".into();
        assert_eq!(changes(&parse(a.clone()), &parse(b)), vec![]);
        let mut c = a.clone();
        c["cookies"][0]["expires"] = "2026-11-23T12:00:00Z".into();
        let diff = changes(&parse(a), &parse(c));
        assert!(
            matches!(&diff[0], Change::CookieChanged { attributes, .. } if attributes[0].before == "up to a year" && attributes[0].after == "up to a day"),
            "{diff:?}"
        );
    }

    #[test]
    fn console_errors_differing_only_in_numbers_are_not_new() {
        let mut a = base();
        a["console_errors"] = serde_json::json!([{"kind": "exception", "message": "failed at 12:00:01 (id 42)", "source_url": null}]);
        let mut b = a.clone();
        b["console_errors"][0]["message"] = "failed at 12:05:09 (id 77)".into();
        assert_eq!(changes(&parse(a.clone()), &parse(b)), vec![]);
        let mut c = a.clone();
        c["console_errors"][0]["message"] = "undefinedFunction is not defined".into();
        assert_eq!(changes(&parse(a), &parse(c)).len(), 1);
    }
}
