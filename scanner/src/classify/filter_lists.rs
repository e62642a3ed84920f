//! Request classification with maintained filter lists (EasyPrivacy, EasyList), matched by
//! Brave's `adblock` engine.
//!
//! The lists are data the operator keeps current, read from files; siteward ships none. Each list
//! is its own engine so a match says which list (and which rule) named the request. A line the
//! engine cannot use is skipped and counted, never fatal: lists are edited by hand upstream and a
//! new option syntax must not stop every scan. Element-hiding (cosmetic) rules are ignored: they
//! say nothing about requests.

use std::path::{Path, PathBuf};

use adblock::lists::{FilterParseError, ParseOptions, ParsedLine, RuleTypes};
use sha2::{Digest, Sha256};

use crate::snapshot::{FilterListInfo, ListMatch};

/// The lists siteward looks for in a filter-list folder, in the order they are asked: a request
/// both lists name is reported as tracking.
pub const LIST_FILES: [(&str, &str); 2] = [
    ("easyprivacy", "easyprivacy.txt"),
    ("easylist", "easylist.txt"),
];

/// Where Debian's `webext-ublock-origin-chromium` package keeps its copy of both lists.
pub const DEBIAN_LIST_FOLDER: &str =
    "/usr/share/chromium/extensions/ublock-origin/assets/thirdparties/easylist";

/// One loaded list: what it is, and its engine.
pub struct FilterList {
    info: FilterListInfo,
    engine: adblock::Engine,
}

impl std::fmt::Debug for FilterList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterList")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The lists a runner loaded once and shares between its scans.
#[derive(Debug)]
pub struct FilterLists {
    lists: Vec<FilterList>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterListError {
    #[error("cannot read the filter list {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the filter list {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("the filter list {} has no request rules", path.display())]
    NoRules { path: PathBuf },
}

impl FilterLists {
    /// Loads [`LIST_FILES`] from `folder`. A missing or unreadable list is an error naming its path.
    pub fn load_folder(folder: &Path) -> Result<Self, FilterListError> {
        let lists = LIST_FILES
            .iter()
            .map(|(name, file)| FilterList::load(name, &folder.join(file)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { lists })
    }

    /// Lists built from text, for tests and tools.
    pub fn from_lists(lists: Vec<FilterList>) -> Self {
        Self { lists }
    }

    /// What each list is, for the snapshots it classifies.
    pub fn infos(&self) -> Vec<FilterListInfo> {
        self.lists.iter().map(|l| l.info.clone()).collect()
    }

    /// The first list whose rules name a request for `url` of the browser's `resource_type`,
    /// made by a document at `source_url`. An explicit port is left out: the lists name hosts
    /// and paths (`.google-analytics.com/`), and a port does not change who receives the request.
    pub fn classify(&self, url: &str, source_url: &str, resource_type: &str) -> Option<ListMatch> {
        let request_type = request_type(resource_type);
        let (url, source_url) = (without_port(url), without_port(source_url));
        let request =
            adblock::request::Request::new(&url, &source_url, request_type, "GET").ok()?;
        self.lists.iter().find_map(|list| list.check(&request))
    }
}

/// `url` with no explicit port; unchanged when it has none or does not parse.
fn without_port(url: &str) -> std::borrow::Cow<'_, str> {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.port().is_some() => {
            let _ = parsed.set_port(None);
            std::borrow::Cow::Owned(parsed.into())
        }
        _ => std::borrow::Cow::Borrowed(url),
    }
}

impl FilterList {
    pub fn load(name: &str, path: &Path) -> Result<Self, FilterListError> {
        let bytes = std::fs::read(path).map_err(|source| FilterListError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| FilterListError::NotText {
            path: path.to_owned(),
        })?;
        let file_date = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(rfc3339)
            .unwrap_or_default();
        let list = Self::parse(name, &text, &file_date);
        if list.info.rules == 0 {
            return Err(FilterListError::NoRules {
                path: path.to_owned(),
            });
        }
        Ok(list)
    }

    /// Builds a list from its text. `file_date` is recorded as given.
    pub fn parse(name: &str, text: &str, file_date: &str) -> Self {
        let options = ParseOptions {
            rule_types: RuleTypes::NetworkOnly,
            ..ParseOptions::default()
        };
        let mut kept = String::with_capacity(text.len() / 2);
        let (mut rules, mut skipped) = (0u64, 0u64);
        let mut title = None;
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('!') {
                if title.is_none() {
                    title = comment
                        .trim()
                        .strip_prefix("Title:")
                        .map(|t| t.trim().to_owned());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('[') {
                continue;
            }
            match adblock::lists::parse_filter(line, false, options) {
                Ok(ParsedLine::Network(_)) => {
                    rules += 1;
                    kept.push_str(line);
                    kept.push('\n');
                }
                // Cosmetic rules, and lines of no kind the engine knows.
                Ok(ParsedLine::Cosmetic(_)) | Err(FilterParseError::Unsupported) => {}
                Err(_) => skipped += 1,
            }
        }
        let mut set = adblock::FilterSet::new(true);
        set.add_filter_list(kept, options);
        Self {
            info: FilterListInfo {
                name: name.to_owned(),
                title,
                file_date: file_date.to_owned(),
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
                rules,
                skipped_lines: skipped,
            },
            engine: adblock::Engine::new_with_filter_set(set),
        }
    }

    pub fn info(&self) -> &FilterListInfo {
        &self.info
    }

    fn check(&self, request: &adblock::request::Request) -> Option<ListMatch> {
        let result = self.engine.check_network_request(request);
        if !result.should_block() {
            return None;
        }
        let rule = result
            .filter
            .and_then(|f| f.raw_line)
            .unwrap_or_else(|| "(rule not recorded)".to_owned());
        Some(ListMatch {
            list: self.info.name.clone(),
            rule,
        })
    }
}

/// The engine's request type for a DevTools resource type.
fn request_type(resource_type: &str) -> &'static str {
    match resource_type {
        "Document" => "sub_frame",
        "Stylesheet" => "stylesheet",
        "Image" => "image",
        "Media" => "media",
        "Font" => "font",
        "Script" => "script",
        "XHR" | "Fetch" | "EventSource" => "xmlhttprequest",
        "Ping" | "CSPViolationReport" => "ping",
        "WebSocket" => "websocket",
        _ => "other",
    }
}

fn rfc3339(time: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVACY: &str = "[Adblock Plus 1.1]\n! Title: Test Privacy\n\
        ||tracker.example^$third-party\n\
        /pixel.gif?\n\
        ||broken.example^$unknownoption=\n\
        example.com##.ad-banner\n\
        @@||tracker.example/allowed.js\n";

    fn lists() -> FilterLists {
        FilterLists::from_lists(vec![
            FilterList::parse("easyprivacy", PRIVACY, "2026-01-01T00:00:00Z"),
            FilterList::parse("easylist", "||ads.example^\n", "2026-01-01T00:00:00Z"),
        ])
    }

    #[test]
    fn a_match_names_its_list_and_rule() {
        let lists = lists();
        let hit = lists
            .classify(
                "https://tracker.example/t.js",
                "https://shop.example/",
                "Script",
            )
            .expect("listed");
        assert_eq!(hit.list, "easyprivacy");
        assert_eq!(hit.rule, "||tracker.example^$third-party");
        let ad = lists
            .classify(
                "https://ads.example/b.png",
                "https://shop.example/",
                "Image",
            )
            .expect("listed");
        assert_eq!(
            (ad.list.as_str(), ad.rule.as_str()),
            ("easylist", "||ads.example^")
        );
        assert!(
            lists
                .classify(
                    "https://cdn.example/app.js",
                    "https://shop.example/",
                    "Script"
                )
                .is_none()
        );
    }

    #[test]
    fn a_port_does_not_hide_a_tracker_from_a_host_and_path_rule() {
        let lists = FilterLists::from_lists(vec![FilterList::parse(
            "easyprivacy",
            ".tracker.example/\n",
            "d",
        )]);
        for url in [
            "https://www.tracker.example/g/collect?v=2",
            "https://www.tracker.example:8443/g/collect?v=2",
        ] {
            let hit = lists.classify(url, "https://shop.example:8080/", "Image");
            assert_eq!(
                hit.map(|h| h.rule),
                Some(".tracker.example/".to_owned()),
                "{url}"
            );
        }
    }

    #[test]
    fn options_and_exceptions_are_honoured() {
        let lists = lists();
        // `$third-party`: the tracker's own site loading its script is not a match.
        assert!(
            lists
                .classify(
                    "https://tracker.example/t.js",
                    "https://tracker.example/",
                    "Script"
                )
                .is_none()
        );
        assert!(
            lists
                .classify(
                    "https://tracker.example/allowed.js",
                    "https://shop.example/",
                    "Script"
                )
                .is_none(),
            "an exception rule wins"
        );
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted_and_cosmetic_rules_ignored() {
        let list = FilterList::parse("easyprivacy", PRIVACY, "d");
        let info = list.info();
        assert_eq!(info.title.as_deref(), Some("Test Privacy"));
        assert_eq!(info.rules, 3, "two blocking rules and one exception");
        assert_eq!(info.skipped_lines, 1, "the rule with an unknown option");
        assert_eq!(info.sha256.len(), 64);
    }

    #[test]
    fn a_missing_or_empty_list_is_an_error_naming_its_path() {
        let error = FilterLists::load_folder(Path::new("/nonexistent/lists")).expect_err("missing");
        assert!(
            error
                .to_string()
                .contains("/nonexistent/lists/easyprivacy.txt"),
            "{error}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("easyprivacy.txt"), "! only a comment\n").expect("write");
        let error = FilterLists::load_folder(dir.path()).expect_err("no rules");
        assert!(
            error.to_string().contains("has no request rules"),
            "{error}"
        );
    }
}
