//! Headers as a scan records them.
//!
//! Every request's headers are kept for HAR export ([`all_headers`]), with the values that carry
//! credentials redacted: a cookie keeps its name and attributes, `Authorization` its scheme.
//!
//! The main document's security headers as the browser received them — what a payment page's
//! integrity rests on besides its scripts (PCI DSS 4.0 11.6.1 asks that changes to them be
//! detected). Names in lower case; a header sent several times is several entries; `Set-Cookie`
//! keeps the cookie's name and attributes but never its value (nor `Expires`' date, which moves
//! with every response).

use crate::snapshot::Header;

/// The headers kept: those that decide what a page may load, run, frame and send.
pub const WATCHED: [&str; 12] = [
    "content-security-policy",
    "content-security-policy-report-only",
    "strict-transport-security",
    "x-frame-options",
    "permissions-policy",
    "referrer-policy",
    "set-cookie",
    "cache-control",
    "x-content-type-options",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cross-origin-resource-policy",
];

/// Characters kept of one value (a page can send any length).
const MAX_VALUE_CHARS: usize = 4_096;
/// Entries kept in all (twelve names, so every name fits its share).
const MAX_ENTRIES: usize = 12 * MAX_PER_NAME;
/// Entries kept of one name (`Set-Cookie` above all).
const MAX_PER_NAME: usize = 16;

/// The watched headers among DevTools' `Network.Headers` (an object of name → value, where a
/// header received several times is one value joined by newlines), in a stable order: by name,
/// cookies by cookie name.
pub(crate) fn security_headers(headers: &serde_json::Value) -> Vec<Header> {
    let Some(object) = headers.as_object() else {
        return Vec::new();
    };
    let mut kept: Vec<Header> = Vec::new();
    for (name, value) in object {
        let name = name.to_ascii_lowercase();
        if !WATCHED.contains(&name.as_str()) {
            continue;
        }
        let Some(value) = value.as_str() else {
            continue;
        };
        for line in value.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            let value = if name == "set-cookie" {
                cookie_without_value(line)
            } else {
                line.chars().take(MAX_VALUE_CHARS).collect()
            };
            kept.push(Header {
                name: name.clone(),
                value,
            });
        }
    }
    kept.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)));
    kept.dedup();
    // A page that sends many cookies must not push its other headers out: each name keeps at
    // most its share.
    let mut per_name: Vec<Header> = Vec::with_capacity(kept.len().min(MAX_ENTRIES));
    for header in kept {
        let same = per_name.iter().filter(|h| h.name == header.name).count();
        if same < MAX_PER_NAME {
            per_name.push(header);
        }
    }
    per_name.truncate(MAX_ENTRIES);
    per_name
}

/// What stands in for a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Headers whose value is a credential behind a scheme word (`Bearer abc`): the scheme is kept.
const SCHEME_CREDENTIALS: [&str; 2] = ["authorization", "proxy-authorization"];

/// Words that make a header's whole value a credential wherever they appear in its name
/// (`x-api-key`, `x-auth-token`, `x-csrf-token`, `x-amz-security-token`, `x-session-id`...).
const CREDENTIAL_WORDS: [&str; 9] = [
    "auth",
    "token",
    "key",
    "secret",
    "session",
    "signature",
    "csrf",
    "xsrf",
    "password",
];

/// Characters kept of one value in [`all_headers`].
const MAX_RECORDED_VALUE_CHARS: usize = 2_048;
/// Headers kept of one message in [`all_headers`].
const MAX_RECORDED_HEADERS: usize = 100;

/// Every header of DevTools' `Network.Headers` (an object, so in name order), names in lower case, a header
/// received several times as several entries, with credentials redacted: `cookie` becomes
/// `a=[redacted]; b=[redacted]`, `set-cookie` `sid=[redacted]; Path=/; HttpOnly`, and
/// `authorization` `Bearer [redacted]`. Bounded in count and length.
pub(crate) fn all_headers(headers: &serde_json::Value) -> Vec<Header> {
    let Some(object) = headers.as_object() else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for (name, value) in object {
        let name: String = name.to_ascii_lowercase().chars().take(256).collect();
        let Some(value) = value.as_str() else {
            continue;
        };
        for line in value.split('\n') {
            if kept.len() >= MAX_RECORDED_HEADERS {
                return kept;
            }
            let value = redact(&name, line.trim());
            kept.push(Header {
                name: name.clone(),
                value: value.chars().take(MAX_RECORDED_VALUE_CHARS).collect(),
            });
        }
    }
    kept
}

/// A header's value with its credential replaced by [`REDACTED`].
pub(crate) fn redact(name: &str, value: &str) -> String {
    match name {
        "cookie" => value
            .split(';')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let name = pair.split_once('=').map_or("", |(name, _)| name.trim());
                format!("{name}={REDACTED}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => {
            let mut parts = value.splitn(2, ';');
            let name = parts
                .next()
                .unwrap_or_default()
                .split_once('=')
                .map_or("", |(name, _)| name.trim());
            match parts.next().map(str::trim).filter(|a| !a.is_empty()) {
                Some(attributes) => format!("{name}={REDACTED}; {attributes}"),
                None => format!("{name}={REDACTED}"),
            }
        }
        _ if SCHEME_CREDENTIALS.contains(&name) => match value.split_once(' ') {
            // `Bearer abc`, `Basic abc`: the scheme says what kind of credential it was.
            Some((scheme, _))
                if scheme.len() <= 20 && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                format!("{scheme} {REDACTED}")
            }
            _ => REDACTED.to_owned(),
        },
        _ if CREDENTIAL_WORDS.iter().any(|word| name.contains(word)) => REDACTED.to_owned(),
        _ => value.to_owned(),
    }
}

/// `sid=secret; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly` →
/// `sid; Path=/; Expires; HttpOnly`.
fn cookie_without_value(line: &str) -> String {
    let mut parts = line.split(';').map(str::trim);
    // `name=value`; a pair without `=` is a value with an empty name (RFC 6265 5.2).
    let name = parts
        .next()
        .unwrap_or_default()
        .split_once('=')
        .map_or("", |(name, _)| name.trim());
    let mut kept = vec![name.chars().take(256).collect::<String>()];
    for attribute in parts.filter(|a| !a.is_empty()) {
        let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
        if key.trim().eq_ignore_ascii_case("expires") || value.is_empty() {
            kept.push(key.trim().to_owned());
        } else {
            kept.push(format!("{}={}", key.trim(), value.trim()));
        }
    }
    kept.join("; ").chars().take(MAX_VALUE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_watched_headers_in_order_and_never_a_cookie_value() {
        let headers = serde_json::json!({
            "Content-Type": "text/html",
            "Content-Security-Policy": "script-src 'self'\nframe-ancestors 'none'",
            "strict-transport-security": "max-age=31536000",
            "Set-Cookie": "sid=s3cr3t-value; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; SameSite=Lax\ncart=; Max-Age=0",
            "X-Frame-Options": "DENY",
            "Server": "nginx",
        });
        let kept = security_headers(&headers);
        let lines: Vec<String> = kept
            .iter()
            .map(|h| format!("{}: {}", h.name, h.value))
            .collect();
        assert_eq!(
            lines,
            [
                "content-security-policy: frame-ancestors 'none'",
                "content-security-policy: script-src 'self'",
                "set-cookie: cart; Max-Age=0",
                "set-cookie: sid; Path=/; Expires; HttpOnly; SameSite=Lax",
                "strict-transport-security: max-age=31536000",
                "x-frame-options: DENY",
            ]
        );
        assert!(!lines.concat().contains("s3cr3t"));
    }

    #[test]
    fn all_headers_redact_cookies_and_credentials() {
        let headers = serde_json::json!({
            "Cookie": "sid=s3cr3t-1; theme=dark; =s3cr3t-2",
            "Set-Cookie": "sid=s3cr3t-3; Path=/; HttpOnly\nlone=s3cr3t-4",
            "Authorization": "Bearer s3cr3t-5",
            "Proxy-Authorization": "s3cr3t-6",
            "X-Api-Key": "Key s3cr3t-7",
            "X-Amz-Security-Token": "s3cr3t-8",
            "Accept": "text/html",
        });
        let lines: Vec<String> = all_headers(&headers)
            .iter()
            .map(|h| format!("{}: {}", h.name, h.value))
            .collect();
        assert_eq!(
            lines,
            [
                "accept: text/html",
                "authorization: Bearer [redacted]",
                "cookie: sid=[redacted]; theme=[redacted]; =[redacted]",
                "proxy-authorization: [redacted]",
                "set-cookie: sid=[redacted]; Path=/; HttpOnly",
                "set-cookie: lone=[redacted]",
                "x-amz-security-token: [redacted]",
                "x-api-key: [redacted]",
            ]
        );
        assert!(!lines.concat().contains("s3cr3t"));
        let many: String = (0..500).map(|n| format!("v{n}\n")).collect();
        let kept = all_headers(&serde_json::json!({"x-many": many, "x-long": "a".repeat(10_000)}));
        assert_eq!(kept.len(), MAX_RECORDED_HEADERS);
        assert!(
            all_headers(&serde_json::json!({"x-long": "a".repeat(10_000)}))[0]
                .value
                .len()
                <= MAX_RECORDED_VALUE_CHARS
        );
    }

    #[test]
    fn hostile_headers_are_bounded() {
        let huge = "a".repeat(100_000);
        let many: String = (0..500).map(|n| format!("c{n}=v\n")).collect();
        let kept = security_headers(&serde_json::json!({
            "content-security-policy": huge,
            "set-cookie": many,
            "x-frame-options": "DENY",
            "strict-transport-security": "max-age=1",
        }));
        // Five hundred cookies do not push the other headers out.
        assert_eq!(kept.len(), 1 + MAX_PER_NAME + 2);
        assert!(kept.iter().any(|h| h.name == "x-frame-options"));
        assert!(kept.iter().any(|h| h.name == "strict-transport-security"));
        // A cookie without a name keeps no value either.
        let nameless = security_headers(&serde_json::json!({"set-cookie": "s3cr3t-token; Path=/"}));
        assert_eq!(nameless[0].value, "; Path=/");
        assert!(
            kept.iter()
                .all(|h| h.value.chars().count() <= MAX_VALUE_CHARS)
        );
        assert!(security_headers(&serde_json::json!(["not", "an", "object"])).is_empty());
    }
}
