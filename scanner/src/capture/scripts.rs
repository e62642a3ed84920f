//! Scripts the page ran, from the debugger's `scriptParsed` events and their sources.

use sha2::{Digest, Sha256};

use crate::capture::network::host_of;
use crate::party::party_of;
use crate::snapshot::Script;

/// Characters of an inline script kept to recognise it.
const FIRST_CHARS: usize = 120;

/// A script the debugger announced.
#[derive(Debug, Clone)]
pub(crate) struct ParsedScript {
    pub script_id: String,
    pub url: String,
    /// The URL of the document of the frame that ran it.
    pub frame_url: String,
}

impl ParsedScript {
    /// Scripts without a URL are `eval`, `new Function`, or DevTools' own evaluations: not part of
    /// what the site ships, so they are not recorded.
    pub(crate) fn is_recordable(&self) -> bool {
        self.url.starts_with("http://") || self.url.starts_with("https://")
    }
}

/// Turns a parsed script and its source into a snapshot entry. A script whose URL is its frame's
/// document URL is inline; any other is external.
pub(crate) fn describe(script: &ParsedScript, source: &str, first_party_domain: &str) -> Script {
    let sha256 = hex::encode(Sha256::digest(source.as_bytes()));
    let size_bytes = source.len() as u64;
    if strip_fragment(&script.url) == strip_fragment(&script.frame_url) {
        Script::Inline {
            sha256,
            size_bytes,
            first_bytes: source.trim_start().chars().take(FIRST_CHARS).collect(),
            frame_url: script.frame_url.clone(),
        }
    } else {
        let host = host_of(&script.url);
        Script::External {
            party: party_of(&host, first_party_domain),
            host,
            url: script.url.clone(),
            sha256,
            size_bytes,
            frame_url: script.frame_url.clone(),
        }
    }
}

fn strip_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(u, _)| u)
}

/// Orders scripts for a stable snapshot and drops exact repeats (the same inline script in the
/// same frame parsed twice, the same external file included twice).
pub(crate) fn normalize(mut scripts: Vec<Script>) -> Vec<Script> {
    let key = |s: &Script| match s {
        Script::External {
            url,
            sha256,
            frame_url,
            ..
        } => (0, url.clone(), sha256.clone(), frame_url.clone()),
        Script::Inline {
            sha256, frame_url, ..
        } => (1, String::new(), sha256.clone(), frame_url.clone()),
    };
    scripts.sort_by_key(key);
    scripts.dedup_by(|a, b| key(a) == key(b));
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str, frame: &str) -> ParsedScript {
        ParsedScript {
            script_id: "1".into(),
            url: url.into(),
            frame_url: frame.into(),
        }
    }

    #[test]
    fn inline_and_external_scripts_are_told_apart() {
        let inline = describe(
            &parsed("https://shop.test/", "https://shop.test/#top"),
            "  var a = 1;",
            "shop.test",
        );
        match inline {
            Script::Inline {
                first_bytes,
                size_bytes,
                ..
            } => {
                assert_eq!(first_bytes, "var a = 1;");
                assert_eq!(size_bytes, 12);
            }
            other => panic!("expected inline, got {other:?}"),
        }
        let external = describe(
            &parsed("https://cdn.test/lib.js", "https://shop.test/"),
            "x",
            "shop.test",
        );
        assert_eq!(
            external.sha256(),
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        assert!(matches!(external, Script::External { ref host, .. } if host == "cdn.test"));
    }

    #[test]
    fn evals_are_not_recorded() {
        assert!(!parsed("", "https://shop.test/").is_recordable());
        assert!(parsed("https://shop.test/a.js", "https://shop.test/").is_recordable());
    }
}
