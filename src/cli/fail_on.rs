//! `--fail-on` rules: conditions that make `siteward scan` exit with code 1, so agencies can gate
//! their own deploy pipelines on what a page loads.

use std::path::{Path, PathBuf};

use scanner::snapshot::{Party, Snapshot};

/// One `--fail-on` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailRule {
    /// Any cookie set for a third-party domain.
    ThirdPartyCookie,
    /// Any host contacted that the allow-list file does not name.
    NewHost(HostAllowList),
    /// Any contacted host that the tracker list (`--host-list`) names.
    ListedHost,
    /// Any request EasyPrivacy or EasyList names.
    Tracker,
    /// Any finding of a compliance scan (`--compliance` only).
    ComplianceFinding,
    /// Any connection the egress guard refused.
    BlockedRequest,
    /// Any console error, error log entry or uncaught exception.
    ConsoleError,
    /// The main document answered with a 4xx or 5xx status.
    HttpError,
    /// Any limit was hit, so the snapshot is partial.
    Partial,
}

pub const RULE_NAMES: &str = "third-party-cookie, new-host:FILE, listed-host, tracker, \
     compliance-finding, blocked-request, console-error, http-error, partial";

#[derive(Debug, thiserror::Error)]
pub enum FailRuleError {
    #[error("unknown --fail-on rule {0:?}; expected one of: {RULE_NAMES}")]
    Unknown(String),
    #[error("cannot read the host list {}: {source}", path.display())]
    HostFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FailRule {
    pub fn parse(text: &str) -> Result<Self, FailRuleError> {
        match text {
            "third-party-cookie" => Ok(FailRule::ThirdPartyCookie),
            "blocked-request" => Ok(FailRule::BlockedRequest),
            "listed-host" => Ok(FailRule::ListedHost),
            "tracker" => Ok(FailRule::Tracker),
            "compliance-finding" => Ok(FailRule::ComplianceFinding),
            "console-error" => Ok(FailRule::ConsoleError),
            "http-error" => Ok(FailRule::HttpError),
            "partial" => Ok(FailRule::Partial),
            _ => match text.strip_prefix("new-host:") {
                Some(path) if !path.is_empty() => {
                    Ok(FailRule::NewHost(HostAllowList::load(Path::new(path))?))
                }
                _ => Err(FailRuleError::Unknown(text.to_owned())),
            },
        }
    }

    /// Why `snapshot` breaks this rule, one line per finding; empty when it does not.
    pub fn violations(&self, snapshot: &Snapshot) -> Vec<String> {
        match self {
            FailRule::ThirdPartyCookie => snapshot
                .cookies
                .iter()
                .filter(|c| c.party == Party::Third)
                .map(|c| format!("third-party cookie {} on {}", c.name, c.domain))
                .collect(),
            FailRule::NewHost(allowed) => {
                let mut hosts: Vec<&str> = snapshot
                    .requests
                    .iter()
                    .map(|r| r.host.as_str())
                    .chain(snapshot.blocked.iter().map(|b| b.host.as_str()))
                    .filter(|h| !h.is_empty() && !allowed.allows(h))
                    .collect();
                hosts.sort_unstable();
                hosts.dedup();
                hosts
                    .into_iter()
                    .map(|h| format!("new host {h} (not in {})", allowed.path.display()))
                    .collect()
            }
            FailRule::ListedHost => snapshot
                .listed_hosts
                .iter()
                .map(|h| format!("listed host {} ({}, {})", h.host, h.category, h.entity))
                .collect(),
            FailRule::Tracker => snapshot
                .requests
                .iter()
                .filter_map(|r| {
                    let listed = r.listed.as_ref()?;
                    Some(format!(
                        "tracker {} ({}: {})",
                        r.url, listed.list, listed.rule
                    ))
                })
                .collect(),
            // Judged on the compliance report, not on one snapshot.
            FailRule::ComplianceFinding => Vec::new(),
            FailRule::BlockedRequest => snapshot
                .blocked
                .iter()
                .map(|b| format!("blocked connection to {}:{}: {}", b.host, b.port, b.reason))
                .collect(),
            FailRule::ConsoleError => snapshot
                .console_errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.kind,
                        e.message.chars().take(200).collect::<String>()
                    )
                })
                .collect(),
            FailRule::HttpError => match snapshot.status {
                Some(status) if status >= 400 => vec![format!("the page answered HTTP {status}")],
                _ => Vec::new(),
            },
            FailRule::Partial => snapshot
                .limits_hit
                .iter()
                .map(|l| format!("limit reached: {l:?}"))
                .collect(),
        }
    }
}

/// Hosts a page is known to contact, one per line; `*.example.com` allows every subdomain; `#`
/// starts a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowList {
    path: PathBuf,
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl HostAllowList {
    pub fn load(path: &Path) -> Result<Self, FailRuleError> {
        let text = std::fs::read_to_string(path).map_err(|source| FailRuleError::HostFile {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse(path, &text))
    }

    fn parse(path: &Path, text: &str) -> Self {
        let mut exact = Vec::new();
        let mut suffixes = Vec::new();
        for line in text.lines() {
            let entry = line
                .split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            match entry.strip_prefix("*.") {
                Some(suffix) => suffixes.push(format!(".{suffix}")),
                None => exact.push(entry),
            }
        }
        Self {
            path: path.to_owned(),
            exact,
            suffixes,
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.exact.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s.as_str()))
    }
}

/// The exit of a command whose output is written: success, or each violation on stderr and
/// exit code 1.
pub fn exit_with(violations: &[String]) -> std::process::ExitCode {
    if violations.is_empty() {
        return std::process::ExitCode::SUCCESS;
    }
    for violation in violations {
        eprintln!("siteward: fail-on: {violation}");
    }
    std::process::ExitCode::from(super::exit::RULE_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_take_exact_names_wildcards_and_comments() {
        let list = HostAllowList::parse(
            Path::new("hosts.txt"),
            "# known\nshop.test\n*.cdn.test  # any cdn\n\n",
        );
        assert!(list.allows("shop.test"));
        assert!(list.allows("SHOP.test"));
        assert!(list.allows("eu.cdn.test"));
        assert!(
            !list.allows("cdn.test"),
            "a wildcard does not cover the bare domain"
        );
        assert!(!list.allows("evilshop.test"));
    }

    #[test]
    fn unknown_rules_and_missing_files_are_clear_errors() {
        assert!(matches!(
            FailRule::parse("third-party-cookies"),
            Err(FailRuleError::Unknown(_))
        ));
        assert!(matches!(
            FailRule::parse("new-host:"),
            Err(FailRuleError::Unknown(_))
        ));
        let missing = FailRule::parse("new-host:/nonexistent/hosts.txt").expect_err("missing file");
        assert!(
            missing.to_string().contains("/nonexistent/hosts.txt"),
            "{missing}"
        );
        assert_eq!(
            FailRule::parse("blocked-request").expect("known"),
            FailRule::BlockedRequest
        );
    }
}
