//! A snapshot's network log as HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>), the
//! format browser DevTools, proxies and HAR viewers read.
//!
//! Built from what the snapshot recorded, so it holds what the snapshot holds and nothing more:
//! headers with cookie values and credentials already redacted at capture, no bodies. One page
//! per snapshot; one entry per request hop (a redirect is an entry of its own, as in DevTools'
//! export), in the order they started. siteward's own fields start with `_`, as the format
//! allows: `_initiator`, `_resourceType`, `_error`, `_blockedByEgressGuard`, `_party`, `_listed`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::capture::headers::REDACTED;
use crate::snapshot::{Header, Party, Request, Snapshot};

/// The id of the snapshot's one page.
const PAGE_ID: &str = "page_1";

/// `snapshot` as a HAR 1.2 document; `creator_version` is siteward's version.
pub fn har(snapshot: &Snapshot, creator_version: &str) -> Value {
    let started = OffsetDateTime::parse(&snapshot.started_at, &Rfc3339).ok();
    let (browser, browser_version) = snapshot
        .browser
        .product
        .split_once('/')
        .unwrap_or((snapshot.browser.product.as_str(), ""));
    let mut requests: Vec<&Request> = snapshot.requests.iter().collect();
    requests.sort_by_key(|r| r.started_ms);
    let entries: Vec<Value> = requests
        .into_iter()
        .map(|request| entry(request, started))
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "siteward", "version": creator_version},
            "browser": {"name": browser, "version": browser_version},
            "pages": [{
                "startedDateTime": date_time(started, 0),
                "id": PAGE_ID,
                "title": if snapshot.title.is_empty() { &snapshot.final_url } else { &snapshot.title },
                "pageTimings": {
                    "onContentLoad": -1,
                    "onLoad": snapshot.timings.load_ms.map_or(-1, |ms| ms as i64),
                },
                "_url": snapshot.final_url,
            }],
            "entries": entries,
        }
    })
}

fn entry(request: &Request, started: Option<OffsetDateTime>) -> Value {
    let http_version = request
        .response
        .as_ref()
        .and_then(|r| r.protocol.as_deref())
        .map(http_version)
        .unwrap_or_default();
    let timings = match &request.timing {
        Some(t) => json!({
            "blocked": t.blocked, "dns": t.dns, "connect": t.connect, "ssl": t.ssl,
            "send": t.send, "wait": t.wait, "receive": t.receive,
        }),
        // No timing from the browser (a failed, blocked or cached request): the whole duration
        // is waiting.
        None => json!({
            "blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
            "send": 0, "wait": request.duration_ms.unwrap_or(0), "receive": 0,
        }),
    };
    let time = match &request.timing {
        Some(t) => [t.blocked, t.dns, t.connect, t.send, t.wait, t.receive]
            .into_iter()
            .filter(|phase| *phase > 0.0)
            .sum::<f64>(),
        None => request.duration_ms.unwrap_or(0) as f64,
    };
    let response_headers: &[Header] = request
        .response
        .as_ref()
        .map_or(&[], |r| r.headers.as_slice());
    let mut entry = json!({
        "pageref": PAGE_ID,
        "startedDateTime": date_time(started, request.started_ms),
        "time": (time * 1000.0).round() / 1000.0,
        "request": {
            "method": request.method,
            "url": request.url,
            "httpVersion": http_version,
            "cookies": request_cookies(&request.request_headers),
            "headers": headers(&request.request_headers),
            "queryString": query_string(&request.url),
            "headersSize": -1,
            // Bodies are never recorded; a request without one has size 0.
            "bodySize": if matches!(request.method.as_str(), "GET" | "HEAD" | "OPTIONS") { 0 } else { -1 },
        },
        "response": {
            "status": request.status.unwrap_or(0),
            "statusText": request.response.as_ref().map_or("", |r| r.status_text.as_str()),
            "httpVersion": http_version,
            "cookies": response_cookies(response_headers),
            "headers": headers(response_headers),
            "content": {
                "size": request.response.as_ref().and_then(|r| r.body_bytes).unwrap_or(0),
                "mimeType": request.response.as_ref().and_then(|r| r.mime_type.as_deref()).unwrap_or(""),
                "comment": "bodies are not recorded",
            },
            "redirectURL": redirect_url(&request.url, response_headers),
            "headersSize": -1,
            "bodySize": request.encoded_bytes.map_or(-1, |b| b as i64),
        },
        "cache": {},
        "timings": timings,
        "_initiator": initiator(request),
        "_resourceType": request.resource_type.to_ascii_lowercase(),
        "_party": match request.party { Party::First => "first", Party::Third => "third" },
    });
    if let Some(object) = entry.as_object_mut() {
        if let Some(failure) = &request.failure {
            object.insert("_error".into(), json!(failure));
        }
        if request.blocked {
            object.insert("_blockedByEgressGuard".into(), json!(true));
        }
        if let Some(listed) = &request.listed {
            object.insert(
                "_listed".into(),
                json!({"list": listed.list, "rule": listed.rule}),
            );
        }
    }
    entry
}

/// The browser's protocol name as HAR writes it.
fn http_version(protocol: &str) -> String {
    match protocol.to_ascii_lowercase().as_str() {
        "http/1.0" => "HTTP/1.0".into(),
        "http/1.1" => "HTTP/1.1".into(),
        "h2" | "http/2" | "http/2.0" => "HTTP/2".into(),
        "h3" | "http/3" => "HTTP/3".into(),
        other => other.into(),
    }
}

/// An ISO 8601 time `offset_ms` after `start`; the Unix epoch's when the start did not parse
/// (HAR requires some time, and a wrong one is easy to spot).
fn date_time(start: Option<OffsetDateTime>, offset_ms: u64) -> String {
    let start = start.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = start + time::Duration::milliseconds(offset_ms.min(i64::MAX as u64) as i64);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn headers(headers: &[Header]) -> Vec<Value> {
    headers
        .iter()
        .map(|h| json!({"name": h.name, "value": h.value}))
        .collect()
}

/// The cookies a request's `Cookie` header sent, by name (their values were redacted at capture).
fn request_cookies(headers: &[Header]) -> Vec<Value> {
    headers
        .iter()
        .filter(|h| h.name == "cookie")
        .flat_map(|h| h.value.split(';'))
        .filter_map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
            (!name.is_empty()).then(|| json!({"name": name, "value": REDACTED}))
        })
        .collect()
}

/// The cookies a response's `Set-Cookie` headers set, with their attributes.
fn response_cookies(headers: &[Header]) -> Vec<Value> {
    headers
        .iter()
        .filter(|h| h.name == "set-cookie")
        .map(|h| {
            let mut parts = h.value.split(';').map(str::trim);
            let name = parts
                .next()
                .unwrap_or_default()
                .split_once('=')
                .map_or("", |(name, _)| name.trim());
            let mut cookie = json!({"name": name, "value": REDACTED});
            for attribute in parts {
                let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
                let field = match key.trim().to_ascii_lowercase().as_str() {
                    "path" => ("path", json!(value.trim())),
                    "domain" => ("domain", json!(value.trim())),
                    "httponly" => ("httpOnly", json!(true)),
                    "secure" => ("secure", json!(true)),
                    _ => continue,
                };
                cookie[field.0] = field.1;
            }
            cookie
        })
        .collect()
}

fn query_string(url: &str) -> Vec<Value> {
    url::Url::parse(url)
        .map(|u| {
            u.query_pairs()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect()
        })
        .unwrap_or_default()
}

/// Where a redirect response sent the browser: its `Location`, resolved against the request.
fn redirect_url(url: &str, headers: &[Header]) -> String {
    let Some(location) = headers.iter().find(|h| h.name == "location") else {
        return String::new();
    };
    url::Url::parse(url)
        .and_then(|base| base.join(&location.value))
        .map_or_else(|_| location.value.clone(), String::from)
}

/// DevTools' `_initiator` shape: what kind of thing sent it, and the script or document.
fn initiator(request: &Request) -> Value {
    let kind = request.initiator_type.as_deref().unwrap_or("other");
    match &request.initiator {
        Some(url) => json!({"type": kind, "url": url}),
        None => json!({"type": kind}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ListMatch, RequestTiming, ResponseDetails};

    fn request(url: &str) -> Request {
        Request {
            url: url.into(),
            method: "GET".into(),
            resource_type: "Script".into(),
            host: "cdn.test".into(),
            party: Party::Third,
            status: Some(200),
            failure: None,
            blocked: false,
            started_ms: 120,
            duration_ms: Some(40),
            encoded_bytes: Some(1_300),
            after_hide: false,
            after_answer: false,
            initiator: Some("https://shop.test/".into()),
            listed: None,
            initiator_type: Some("parser".into()),
            request_headers: vec![
                Header {
                    name: "cookie".into(),
                    value: "sid=[redacted]; ab=[redacted]".into(),
                },
                Header {
                    name: "accept".into(),
                    value: "*/*".into(),
                },
            ],
            response: Some(ResponseDetails {
                status_text: "OK".into(),
                protocol: Some("h2".into()),
                mime_type: Some("text/javascript".into()),
                headers: vec![Header {
                    name: "set-cookie".into(),
                    value: "uid=[redacted]; Path=/; Domain=cdn.test; Secure; HttpOnly".into(),
                }],
                body_bytes: Some(4_000),
            }),
            timing: Some(RequestTiming {
                blocked: 1.5,
                dns: -1.0,
                connect: 3.0,
                ssl: 2.0,
                send: 0.25,
                wait: 20.0,
                receive: 5.0,
            }),
        }
    }

    #[test]
    fn an_entry_carries_timings_headers_cookies_and_the_initiator() {
        let start = OffsetDateTime::parse("2026-12-07T10:00:00Z", &Rfc3339).ok();
        let mut r = request("https://cdn.test/a.js?v=2&utm_source=x");
        r.listed = Some(ListMatch {
            list: "easyprivacy".into(),
            rule: "||cdn.test^".into(),
        });
        let e = entry(&r, start);
        assert_eq!(e["startedDateTime"], "2026-12-07T10:00:00.12Z");
        // ssl is inside connect and -1 phases do not count.
        assert_eq!(e["time"], 29.75);
        assert_eq!(e["request"]["httpVersion"], "HTTP/2");
        assert_eq!(
            e["request"]["cookies"],
            json!([{"name": "sid", "value": "[redacted]"}, {"name": "ab", "value": "[redacted]"}])
        );
        assert_eq!(
            e["request"]["queryString"],
            json!([{"name": "v", "value": "2"}, {"name": "utm_source", "value": "x"}])
        );
        assert_eq!(
            e["response"]["cookies"],
            json!([{"name": "uid", "value": "[redacted]", "path": "/", "domain": "cdn.test", "secure": true, "httpOnly": true}])
        );
        assert_eq!(e["response"]["content"]["size"], 4_000);
        assert_eq!(e["response"]["bodySize"], 1_300);
        assert_eq!(
            e["_initiator"],
            json!({"type": "parser", "url": "https://shop.test/"})
        );
        assert_eq!(e["_listed"]["rule"], "||cdn.test^");
        assert!(e.get("_error").is_none());
    }

    #[test]
    fn a_failed_redirected_or_blocked_request_still_makes_a_valid_entry() {
        let mut redirect = request("https://shop.test/old");
        redirect.status = Some(302);
        if let Some(response) = redirect.response.as_mut() {
            response.headers = vec![Header {
                name: "location".into(),
                value: "/new?x=1".into(),
            }];
        }
        let e = entry(&redirect, None);
        assert_eq!(e["response"]["redirectURL"], "https://shop.test/new?x=1");
        assert_eq!(e["startedDateTime"], "1970-01-01T00:00:00.12Z");

        let mut blocked = request("http://10.0.0.1/x");
        blocked.status = None;
        blocked.failure = Some("net::ERR_TUNNEL_CONNECTION_FAILED".into());
        blocked.blocked = true;
        blocked.response = None;
        blocked.timing = None;
        blocked.duration_ms = None;
        blocked.method = "POST".into();
        let e = entry(&blocked, None);
        assert_eq!(e["response"]["status"], 0);
        assert_eq!(e["response"]["httpVersion"], "");
        assert_eq!(e["request"]["bodySize"], -1);
        assert_eq!(e["timings"]["wait"], 0);
        assert_eq!(e["_error"], "net::ERR_TUNNEL_CONNECTION_FAILED");
        assert_eq!(e["_blockedByEgressGuard"], true);
    }
}
