//! A Content-Security-Policy for a payment page that allows exactly its authorized scripts, for
//! the agency to deploy, and how the page's own policy differs from it (pure).
//!
//! The proposal: `script-src` with the exact URL of each authorized external script that runs
//! in the page (not its whole origin, which would let a rejected script of the same host in), a
//! `'sha256-…'` source per authorized inline script, and
//! `'none'` when nothing is authorized; `frame-src` with the origins of the iframes whose
//! scripts are authorized (the payment provider's); `object-src 'none'` and `base-uri 'self'`.

use base64::Engine;
use serde::Serialize;

use super::queries::{InventoryScript, Standing};

/// A policy as ordered directives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Policy {
    pub directives: Vec<Directive>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Directive {
    pub name: String,
    pub sources: Vec<String>,
}

impl Policy {
    /// The header value.
    pub fn header_value(&self) -> String {
        self.directives
            .iter()
            .map(|d| format!("{} {}", d.name, d.sources.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Parses a header value; unknown directives are kept as they are.
    pub fn parse(value: &str) -> Policy {
        let mut directives: Vec<Directive> = Vec::new();
        for part in value.split(';') {
            let mut words = part.split_whitespace();
            let Some(name) = words.next() else { continue };
            let name = name.to_ascii_lowercase();
            // The first occurrence of a directive is the one that counts.
            if directives.iter().any(|d| d.name == name) {
                continue;
            }
            directives.push(Directive {
                name,
                sources: words.map(str::to_owned).collect(),
            });
        }
        Policy { directives }
    }

    /// The sources that govern `name`, falling back to `default-src` for fetch directives.
    fn effective(&self, name: &str) -> Option<&Vec<String>> {
        let find = |n: &str| {
            self.directives
                .iter()
                .find(|d| d.name == n)
                .map(|d| &d.sources)
        };
        find(name).or_else(|| {
            matches!(name, "script-src" | "frame-src" | "object-src")
                .then(|| find("default-src"))
                .flatten()
        })
    }
}

/// A source that allows this one script and nothing else from its origin: its URL without
/// query or fragment (CSP matches a path without a trailing slash exactly).
fn exact_source(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Some(parsed.to_string())
}

fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The policy that allows exactly the authorized scripts that ran in the latest scan of the
/// page at `page_url`.
pub fn propose(page_url: &str, inventory: &[InventoryScript]) -> Policy {
    let page_origin = origin_of(page_url);
    let mut script_src: Vec<String> = Vec::new();
    let mut hashes: Vec<String> = Vec::new();
    let mut frame_src: Vec<String> = Vec::new();
    for script in inventory {
        for version in script
            .versions
            .iter()
            .filter(|v| v.current && v.standing == Standing::Authorized)
        {
            if version.in_iframe {
                if let Some(origin) = origin_of(&version.frame_url)
                    && Some(&origin) != page_origin.as_ref()
                {
                    frame_src.push(origin);
                }
                continue;
            }
            match &script.url {
                Some(url) => script_src.extend(exact_source(url)),
                None => {
                    if let Ok(bytes) = hex::decode(&version.sha256) {
                        hashes.push(format!(
                            "'sha256-{}'",
                            base64::engine::general_purpose::STANDARD.encode(bytes)
                        ));
                    }
                }
            }
        }
    }
    for list in [&mut script_src, &mut hashes, &mut frame_src] {
        list.sort();
        list.dedup();
    }
    script_src.extend(hashes);
    if script_src.is_empty() {
        script_src.push("'none'".into());
    }
    let mut directives = vec![Directive {
        name: "script-src".into(),
        sources: script_src,
    }];
    if !frame_src.is_empty() {
        directives.push(Directive {
            name: "frame-src".into(),
            sources: frame_src,
        });
    }
    directives.push(Directive {
        name: "object-src".into(),
        sources: vec!["'none'".into()],
    });
    directives.push(Directive {
        name: "base-uri".into(),
        sources: vec!["'self'".into()],
    });
    Policy { directives }
}

/// How the page's policy differs from the proposal in one directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DirectiveDifference {
    pub name: String,
    pub proposed: Vec<String>,
    /// What the page's policy allows for it (through `default-src` if need be); absent: the
    /// page's policy does not restrict it at all.
    pub current: Option<Vec<String>>,
    /// Allowed by the page but not by the proposal: wider than the authorized scripts need.
    pub wider: Vec<String>,
    /// Needed by the authorized scripts but not allowed by the page's policy.
    pub missing: Vec<String>,
}

/// The page's policy (`None`: it sends none) against the proposal, directive by directive, for
/// the page at `page_url` (what `'self'` means).
pub fn compare(
    proposal: &Policy,
    current: Option<&str>,
    page_url: &str,
) -> Vec<DirectiveDifference> {
    let current = current.map(Policy::parse);
    let page_origin = origin_of(page_url);
    proposal
        .directives
        .iter()
        .map(|directive| {
            let now = current
                .as_ref()
                .and_then(|policy| policy.effective(&directive.name))
                .cloned();
            let (wider, missing) = match &now {
                None => (vec!["(anything)".to_owned()], Vec::new()),
                Some(sources) => (
                    sources
                        .iter()
                        .filter(|s| !directive.sources.contains(s))
                        .cloned()
                        .collect(),
                    directive
                        .sources
                        .iter()
                        .filter(|s| *s != "'none'")
                        .filter(|s| {
                            !sources
                                .iter()
                                .any(|c| covers(c, s, sources, page_origin.as_deref()))
                        })
                        .cloned()
                        .collect(),
                ),
            };
            DirectiveDifference {
                name: directive.name.clone(),
                proposed: directive.sources.clone(),
                current: now,
                wider,
                missing,
            }
        })
        .collect()
}

/// Whether the page's source `current` (one of `all`) already allows the proposed `wanted`.
fn covers(current: &str, wanted: &str, all: &[String], page_origin: Option<&str>) -> bool {
    if current == wanted {
        return true;
    }
    if wanted.starts_with("'sha") {
        // `'unsafe-inline'` allows inline script unless a hash or nonce is also listed.
        return current == "'unsafe-inline'"
            && !all
                .iter()
                .any(|s| s.starts_with("'sha") || s.starts_with("'nonce-"));
    }
    let Ok(url) = url::Url::parse(wanted) else {
        return false;
    };
    match current {
        "*" => matches!(url.scheme(), "http" | "https"),
        "'self'" => origin_of(wanted).as_deref() == page_origin,
        "https:" | "http:" => {
            url.scheme() == current.trim_end_matches(':')
                || (current == "http:" && url.scheme() == "https")
        }
        source if !source.starts_with('\'') => host_source_covers(source, &url),
        _ => false,
    }
}

/// CSP host-source matching: `[scheme://]host[:port][/path]`, `*.` for subdomains.
fn host_source_covers(source: &str, url: &url::Url) -> bool {
    let (scheme, rest) = match source.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, source),
    };
    if let Some(scheme) = scheme
        && scheme != url.scheme()
        && !(scheme == "http" && url.scheme() == "https")
    {
        return false;
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], Some(&rest[at..])),
        None => (rest, None),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let Some(wanted_host) = url.host_str() else {
        return false;
    };
    let host_ok = match host.strip_prefix("*.") {
        Some(parent) => wanted_host.ends_with(&format!(".{parent}")),
        None => wanted_host.eq_ignore_ascii_case(host),
    };
    let port_ok = match port {
        Some("*") => true,
        Some(port) => port.parse::<u16>().ok() == url.port_or_known_default(),
        None => url.port().is_none(),
    };
    let path_ok = match path {
        None | Some("/") => true,
        Some(prefix) if prefix.ends_with('/') => url.path().starts_with(prefix),
        Some(exact) => url.path() == exact,
    };
    host_ok && port_ok && path_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::queries::Version;

    fn version(sha256: &str, frame: &str, standing: Standing) -> Version {
        Version {
            id: 1,
            sha256: sha256.into(),
            size_bytes: 1,
            first_bytes: String::new(),
            frame_url: frame.into(),
            in_iframe: !frame.starts_with("https://shop.example/"),
            injected_by: None,
            integrity_state: "missing".into(),
            integrity: None,
            current: true,
            standing,
            first_seen_at: time::OffsetDateTime::UNIX_EPOCH,
            last_seen_at: time::OffsetDateTime::UNIX_EPOCH,
            decisions: Vec::new(),
        }
    }

    fn script(url: Option<&str>, versions: Vec<Version>) -> InventoryScript {
        InventoryScript {
            id: 1,
            identity: url.unwrap_or("inline").into(),
            kind: if url.is_some() { "external" } else { "inline" }.into(),
            url: url.map(Into::into),
            host: None,
            first_seen_at: time::OffsetDateTime::UNIX_EPOCH,
            versions,
        }
    }

    #[test]
    fn the_proposal_allows_exactly_the_authorized_scripts() {
        let page = "https://shop.example/pay";
        let inventory = vec![
            script(
                Some("https://shop.example/app.js"),
                vec![version("aa", page, Standing::Authorized)],
            ),
            script(
                Some("https://js.stripe.com/v3/"),
                vec![version("bb", page, Standing::Authorized)],
            ),
            // Unreviewed and rejected scripts are not allowed.
            script(
                Some("https://skimmer.example/s.js"),
                vec![version("cc", page, Standing::Rejected)],
            ),
            script(
                None,
                vec![version(&"00".repeat(32), page, Standing::Authorized)],
            ),
            script(
                Some("https://js.stripe.com/frame.js"),
                vec![version(
                    "dd",
                    "https://js.stripe.com/v3/elements-inner-card.html",
                    Standing::Authorized,
                )],
            ),
        ];
        let proposal = propose(page, &inventory);
        assert_eq!(
            proposal.header_value(),
            format!(
                "script-src https://js.stripe.com/v3/ https://shop.example/app.js 'sha256-{}'; frame-src https://js.stripe.com; object-src 'none'; base-uri 'self'",
                base64::engine::general_purpose::STANDARD.encode([0u8; 32])
            )
        );
        let nothing = propose(page, &[]);
        assert!(nothing.header_value().starts_with("script-src 'none';"));
    }

    #[test]
    fn the_pages_policy_is_compared_through_default_src_and_what_its_sources_cover() {
        let page = "https://shop.example/pay";
        let proposal = Policy::parse(
            "script-src https://shop.example/app.js https://js.stripe.com/v3/ 'sha256-AAAA'; object-src 'none'",
        );
        let differences = compare(
            &proposal,
            Some("default-src 'self' https: 'unsafe-inline'; object-src 'none'"),
            page,
        );
        // `'self'`, `https:` and `'unsafe-inline'` cover every proposed source, and are wider.
        assert_eq!(
            differences[0].wider,
            ["'self'", "https:", "'unsafe-inline'"]
        );
        assert!(
            differences[0].missing.is_empty(),
            "{:?}",
            differences[0].missing
        );
        assert!(differences[1].wider.is_empty() && differences[1].missing.is_empty());
        // A host source covers its host only; a hash listed switches `'unsafe-inline'` off.
        let narrow = compare(
            &proposal,
            Some("script-src https://js.stripe.com 'unsafe-inline' 'sha256-BBBB'"),
            page,
        );
        assert_eq!(
            narrow[0].missing,
            ["https://shop.example/app.js", "'sha256-AAAA'"]
        );
        let none = compare(&proposal, None, page);
        assert_eq!(none[0].wider, ["(anything)"]);
        assert_eq!(none[0].current, None);
    }

    #[test]
    fn host_sources_match_as_csp_says() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(host_source_covers(
            "js.stripe.com",
            &url("https://js.stripe.com/v3/")
        ));
        assert!(host_source_covers(
            "*.stripe.com",
            &url("https://js.stripe.com/v3/")
        ));
        assert!(!host_source_covers(
            "*.stripe.com",
            &url("https://stripe.com/")
        ));
        assert!(!host_source_covers(
            "https://js.stripe.com",
            &url("http://js.stripe.com/")
        ));
        assert!(host_source_covers(
            "cdn.test:8080",
            &url("http://cdn.test:8080/a.js")
        ));
        assert!(!host_source_covers(
            "cdn.test",
            &url("http://cdn.test:8080/a.js")
        ));
        assert!(host_source_covers(
            "cdn.test/pay/",
            &url("http://cdn.test/pay/lib.js")
        ));
        assert!(!host_source_covers(
            "cdn.test/pay/lib.js",
            &url("http://cdn.test/pay/skim.js")
        ));
    }
}
