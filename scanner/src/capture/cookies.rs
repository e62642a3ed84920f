//! Cookies at the end of a scan, with the host that set each one where known.
//!
//! Two witnesses say who set a cookie: `Set-Cookie` response headers (the responding host), and the
//! page instrumentation that reports `document.cookie` and Cookie Store writes with the calling
//! script's URL. Values never enter this module's output.

use crate::capture::network::host_of;
use crate::classify::CookieDatabase;
use crate::party::party_of;
use crate::snapshot::{Cookie, CookieSource, SameSite};

/// One observed cookie write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CookieWrite {
    pub name: String,
    /// The domain the cookie lands on: the Domain attribute, or the host it was set for.
    pub domain: String,
    /// Who set it: the responding host or the calling script's host.
    pub setter_host: String,
    /// The calling script's URL, for script writes from a script with one.
    pub setter_script: Option<String>,
    pub source: CookieSource,
    /// When it was seen, in event order: the latest write to a cookie wins.
    pub seq: u64,
}

/// Parses a `Set-Cookie` line from a response of `response_url`. Only name and Domain are read.
pub(crate) fn header_write(response_url: &str, line: &str, seq: u64) -> Option<CookieWrite> {
    let host = host_of(response_url);
    let mut parts = line.split(';');
    let name = parts.next()?.split_once('=')?.0.trim().to_owned();
    let domain = parts
        .filter_map(|attr| attr.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("domain"))
        .map(|(_, value)| value.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| host.clone());
    Some(CookieWrite {
        name,
        domain,
        setter_host: host,
        setter_script: None,
        source: CookieSource::Header,
        seq,
    })
}

/// The instrumentation's report of a script cookie write, as JSON
/// `{"name": …, "script": url-or-null, "documentHost": …}`.
pub(crate) fn script_write(payload: &str, seq: u64) -> Option<CookieWrite> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let name = value.get("name")?.as_str()?.trim().to_owned();
    let document_host = value.get("documentHost")?.as_str()?.to_ascii_lowercase();
    let setter_script = value
        .get("script")
        .and_then(|s| s.as_str())
        .filter(|s| !host_of(s).is_empty())
        .map(|s| s.chars().take(2_000).collect::<String>());
    let setter_host = setter_script
        .as_deref()
        .map(host_of)
        .unwrap_or_else(|| document_host.clone());
    Some(CookieWrite {
        name,
        domain: document_host,
        setter_host,
        setter_script,
        source: CookieSource::Script,
        seq,
    })
}

/// Whether `host` may set or read a cookie for `cookie_domain` (RFC 6265 domain-match).
fn domain_matches(host: &str, cookie_domain: &str) -> bool {
    host == cookie_domain || host.ends_with(&format!(".{cookie_domain}"))
}

/// Turns the browser's cookies into snapshot cookies, attributing each to its latest writer.
pub(crate) fn attribute(
    cookies: &[chromiumoxide::cdp::browser_protocol::network::Cookie],
    writes: &[CookieWrite],
    first_party_domain: &str,
    database: Option<&CookieDatabase>,
) -> Vec<Cookie> {
    let mut out: Vec<Cookie> = cookies
        .iter()
        .map(|c| {
            let domain = c.domain.trim_start_matches('.').to_ascii_lowercase();
            let writer = writes
                .iter()
                .filter(|w| {
                    w.name == c.name
                        && match w.source {
                            CookieSource::Header => w.domain == domain,
                            CookieSource::Script => domain_matches(&w.domain, &domain),
                        }
                })
                .max_by_key(|w| w.seq);
            let session = c.session || c.expires <= 0.0;
            Cookie {
                name: c.name.clone(),
                domain: c.domain.clone(),
                path: c.path.clone(),
                expires: (!session).then(|| rfc3339(c.expires)).flatten(),
                session,
                secure: c.secure,
                http_only: c.http_only,
                same_site: match c.same_site.as_ref().map(|s| s.as_ref()) {
                    Some("Strict") => SameSite::Strict,
                    Some("Lax") => SameSite::Lax,
                    Some("None") => SameSite::None,
                    _ => SameSite::Unspecified,
                },
                party: party_of(&domain, first_party_domain),
                set_by_host: writer.map(|w| w.setter_host.clone()),
                set_by: writer.map(|w| w.source),
                set_by_script: writer.and_then(|w| w.setter_script.clone()),
                value_size: (c.size.max(0) as u64).saturating_sub(c.name.len() as u64),
                classification: database.and_then(|db| db.classify(&c.name)).cloned(),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.domain, &a.name, &a.path).cmp(&(&b.domain, &b.name, &b.path)));
    out
}

fn rfc3339(unix_seconds: f64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_seconds.floor() as i64).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_writes_take_the_domain_attribute_or_the_host() {
        let w = header_write(
            "https://ads.example.net/p.gif",
            "uid=abc; Path=/; Domain=.Example.net; Secure",
            1,
        )
        .expect("parses");
        assert_eq!(
            (w.name.as_str(), w.domain.as_str(), w.setter_host.as_str()),
            ("uid", "example.net", "ads.example.net")
        );
        let w = header_write("http://shop.test:8080/", "sid=1", 1).expect("parses");
        assert_eq!(w.domain, "shop.test");
        assert!(header_write("http://x.test/", "no-equals-sign", 1).is_none());
    }

    #[test]
    fn script_writes_name_the_calling_script_host() {
        let w = script_write(
            r#"{"name":"_ga","script":"https://analytics.test:9/a.js","documentHost":"shop.test"}"#,
            1,
        )
        .expect("parses");
        assert_eq!(
            (w.domain.as_str(), w.setter_host.as_str()),
            ("shop.test", "analytics.test")
        );
        let inline = script_write(
            r#"{"name":"x","script":null,"documentHost":"shop.test"}"#,
            1,
        )
        .expect("parses");
        assert_eq!(inline.setter_host, "shop.test");
        assert!(script_write("not json", 1).is_none());
    }

    #[test]
    fn the_latest_write_names_the_setter() {
        use chromiumoxide::cdp::browser_protocol::network::Cookie as CdpCookie;
        let cookie: CdpCookie = serde_json::from_value(serde_json::json!({
            "name": "uid", "value": "v", "domain": "shop.test", "path": "/", "expires": -1,
            "size": 4, "httpOnly": false, "secure": false, "session": true, "priority": "Medium",
            "sameParty": false, "sourceScheme": "NonSecure", "sourcePort": 80
        }))
        .expect("a DevTools cookie");
        let header = header_write("http://shop.test/", "uid=1", 5).expect("parses");
        let script = script_write(
            r#"{"name":"uid","script":"http://t.test/t.js","documentHost":"shop.test"}"#,
            3,
        )
        .expect("parses");
        let cookies = attribute(
            std::slice::from_ref(&cookie),
            &[header.clone(), script.clone()],
            "shop.test",
            None,
        );
        assert_eq!(
            cookies[0].set_by_host.as_deref(),
            Some("shop.test"),
            "the header came last"
        );
        let later_script = CookieWrite { seq: 9, ..script };
        let cookies = attribute(&[cookie], &[header, later_script], "shop.test", None);
        assert_eq!(cookies[0].set_by_host.as_deref(), Some("t.test"));
        assert_eq!(
            cookies[0].set_by_script.as_deref(),
            Some("http://t.test/t.js")
        );
        assert_eq!(cookies[0].value_size, 1);
    }

    #[test]
    fn domain_match_does_not_accept_lookalikes() {
        assert!(domain_matches("www.shop.test", "shop.test"));
        assert!(!domain_matches("evilshop.test", "shop.test"));
    }
}
