//! Classification of what a scan found against loadable lists: cookies against a cookie database
//! (below), hosts against a tracker list ([`HostList`]), requests against EasyPrivacy and
//! EasyList ([`FilterLists`]).
//!
//! Cookie classification against a cookie database in the Open Cookie Database CSV format
//! (`ID, Platform, Category, Cookie / Data Key name, Domain, Description, Retention period,
//! Data Controller, User Privacy & GDPR Rights Portals, Wildcard match`).
//!
//! The database is loaded from a configured path; siteward ships none. A name matches an entry
//! exactly, or by prefix when the entry's wildcard flag is 1 (the longest prefix wins).

mod filter_lists;

pub use filter_lists::{DEBIAN_LIST_FOLDER, FilterList, FilterListError, FilterLists, LIST_FILES};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ScanOptions;

use crate::snapshot::{CookieClassification, HostClassification};

/// The classifiers a process loaded once and shares between its scans.
#[derive(Debug, Clone, Default)]
pub struct Classifiers {
    pub cookie_database: Option<Arc<CookieDatabase>>,
    pub host_list: Option<Arc<HostList>>,
    pub filter_lists: Option<Arc<FilterLists>>,
}

impl Classifiers {
    /// `options`, classifying with these.
    pub fn apply(&self, options: ScanOptions) -> ScanOptions {
        ScanOptions {
            cookie_database: self.cookie_database.clone(),
            host_list: self.host_list.clone(),
            filter_lists: self.filter_lists.clone(),
            ..options
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct CookieDatabase {
    exact: HashMap<String, CookieClassification>,
    /// Wildcard entries, longest prefix first.
    prefixes: Vec<(String, CookieClassification)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CookieDatabaseError {
    #[error("cannot read the cookie database {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cookie database line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the cookie database has no entries")]
    Empty,
}

const NAME: usize = 3;
const PLATFORM: usize = 1;
const CATEGORY: usize = 2;
const RETENTION: usize = 6;
const CONTROLLER: usize = 7;
const WILDCARD: usize = 9;

impl CookieDatabase {
    pub fn load(path: &Path) -> Result<Self, CookieDatabaseError> {
        let text = std::fs::read(path).map_err(|source| CookieDatabaseError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(csv_bytes: &[u8]) -> Result<Self, CookieDatabaseError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(csv_bytes);
        let mut db = CookieDatabase::default();
        for record in reader.records() {
            let record = record.map_err(|e| CookieDatabaseError::Malformed {
                line: e.position().map_or(0, |p| p.line()),
                reason: e.to_string(),
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: usize| record.get(i).unwrap_or_default().trim().to_owned();
            if record.len() <= WILDCARD {
                return Err(CookieDatabaseError::Malformed {
                    line,
                    reason: format!("expected 10 columns, found {}", record.len()),
                });
            }
            let name = field(NAME);
            if name.is_empty() {
                return Err(CookieDatabaseError::Malformed {
                    line,
                    reason: "empty cookie name".into(),
                });
            }
            let entry = CookieClassification {
                category: field(CATEGORY),
                platform: field(PLATFORM),
                data_controller: field(CONTROLLER),
                retention: field(RETENTION),
            };
            match field(WILDCARD).as_str() {
                "1" => db.prefixes.push((name, entry)),
                "0" | "" => {
                    db.exact.entry(name).or_insert(entry);
                }
                other => {
                    return Err(CookieDatabaseError::Malformed {
                        line,
                        reason: format!("wildcard flag {other:?} is not 0 or 1"),
                    });
                }
            }
        }
        if db.exact.is_empty() && db.prefixes.is_empty() {
            return Err(CookieDatabaseError::Empty);
        }
        db.prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(db)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the database knows about a cookie called `name`.
    pub fn classify(&self, name: &str) -> Option<&CookieClassification> {
        self.exact.get(name).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix.as_str()))
                .map(|(_, e)| e)
        })
    }
}

/// A tracker list in the Disconnect `services.json` format:
/// `{"categories": {"Advertising": [{"Entity": {"https://entity.example/": ["domain.example", ...]}}]}}`.
/// A host matches a listed domain when it is that domain or a subdomain of it.
#[derive(Debug, Default, Clone)]
pub struct HostList {
    /// Listed domain → (category, entity).
    domains: HashMap<String, (String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostListError {
    #[error("cannot read the host list {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the host list is not in the Disconnect services.json format: {0}")]
    Format(String),
    #[error("the host list has no entries")]
    Empty,
}

impl HostList {
    pub fn load(path: &Path) -> Result<Self, HostListError> {
        let text = std::fs::read(path).map_err(|source| HostListError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(json: &[u8]) -> Result<Self, HostListError> {
        let format = |what: &str| HostListError::Format(what.to_owned());
        let root: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| HostListError::Format(e.to_string()))?;
        let categories = root
            .get("categories")
            .and_then(|c| c.as_object())
            .ok_or_else(|| format("no \"categories\" object"))?;
        let mut list = HostList::default();
        for (category, entities) in categories {
            let entities = entities
                .as_array()
                .ok_or_else(|| format("a category is not a list"))?;
            for entity in entities {
                let entity = entity
                    .as_object()
                    .ok_or_else(|| format("an entity entry is not an object"))?;
                for (name, sites) in entity {
                    let Some(sites) = sites.as_object() else {
                        continue;
                    };
                    // Besides its site URLs, an entity object may carry flags such as "dnt".
                    for domains in sites.values().filter_map(|d| d.as_array()) {
                        for domain in domains.iter().filter_map(|d| d.as_str()) {
                            let domain = domain.trim().trim_start_matches('.').to_ascii_lowercase();
                            if !domain.is_empty() {
                                list.domains
                                    .entry(domain)
                                    .or_insert_with(|| (category.clone(), name.clone()));
                            }
                        }
                    }
                }
            }
        }
        if list.domains.is_empty() {
            return Err(HostListError::Empty);
        }
        Ok(list)
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The list's entry for `host` or its nearest listed parent domain.
    pub fn classify(&self, host: &str) -> Option<HostClassification> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut candidate = host.as_str();
        loop {
            if let Some((category, entity)) = self.domains.get(candidate) {
                return Some(HostClassification {
                    host: host.clone(),
                    listed_domain: candidate.to_owned(),
                    category: category.clone(),
                    entity: entity.clone(),
                });
            }
            candidate = candidate.split_once('.')?.1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "ID,Platform,Category,Cookie / Data Key name,Domain,Description,Retention period,Data Controller,User Privacy & GDPR Rights Portals,Wildcard match\n";

    #[test]
    fn exact_names_and_longest_wildcard_prefixes_match() {
        let csv = format!(
            "{HEADER}1,Google Analytics,Analytics,_ga,,\"ID, used to identify users\",2 years,Google,https://x,0\n\
             2,Google Analytics,Analytics,_ga_,,ID,2 years,Google,https://x,1\n\
             3,Other,Marketing,_g,,short prefix,1 day,Other,https://y,1\n"
        );
        let db = CookieDatabase::parse(csv.as_bytes()).expect("parses");
        assert_eq!(db.len(), 3);
        assert_eq!(
            db.classify("_ga").map(|c| c.platform.as_str()),
            Some("Google Analytics")
        );
        assert_eq!(
            db.classify("_ga_ABC123").map(|c| c.platform.as_str()),
            Some("Google Analytics")
        );
        assert_eq!(
            db.classify("_gx").map(|c| c.category.as_str()),
            Some("Marketing")
        );
        assert!(db.classify("session_id").is_none());
    }

    const DISCONNECT: &str = r#"{"license": "x", "categories": {
        "Advertising": [{"DoubleClick": {"http://www.doubleclick.net/": ["doubleclick.net", "2mdn.net"], "dnt": "w3c"}}],
        "Analytics": [{"Example Analytics": {"https://analytics.example/": ["analytics.test"]}}]
    }}"#;

    #[test]
    fn hosts_match_their_listed_domain_or_a_parent() {
        let list = HostList::parse(DISCONNECT.as_bytes()).expect("parses");
        assert_eq!(list.len(), 3);
        let hit = list
            .classify("Stats.G.DoubleClick.net")
            .expect("subdomain matches");
        assert_eq!(
            (
                hit.listed_domain.as_str(),
                hit.category.as_str(),
                hit.entity.as_str()
            ),
            ("doubleclick.net", "Advertising", "DoubleClick")
        );
        assert_eq!(
            list.classify("analytics.test").map(|h| h.category),
            Some("Analytics".into())
        );
        assert!(
            list.classify("notdoubleclick.net").is_none(),
            "a lookalike is not a subdomain"
        );
        assert!(list.classify("shop.test").is_none());
    }

    #[test]
    fn malformed_host_lists_are_refused() {
        assert!(matches!(
            HostList::parse(b"[]"),
            Err(HostListError::Format(_))
        ));
        assert!(matches!(
            HostList::parse(b"not json"),
            Err(HostListError::Format(_))
        ));
        assert!(matches!(
            HostList::parse(br#"{"categories": {}}"#),
            Err(HostListError::Empty)
        ));
        let missing = HostList::load(Path::new("/nonexistent/services.json")).expect_err("missing");
        assert!(missing.to_string().contains("/nonexistent/services.json"));
    }

    #[test]
    fn malformed_databases_are_refused_with_the_line() {
        let short = format!("{HEADER}1,Platform,Category,name\n");
        let error = CookieDatabase::parse(short.as_bytes()).expect_err("too few columns");
        assert!(error.to_string().contains("line 2"), "{error}");
        let flag = format!("{HEADER}1,P,C,name,,d,r,o,u,yes\n");
        assert!(
            CookieDatabase::parse(flag.as_bytes())
                .expect_err("bad flag")
                .to_string()
                .contains("\"yes\"")
        );
        assert!(matches!(
            CookieDatabase::parse(HEADER.as_bytes()),
            Err(CookieDatabaseError::Empty)
        ));
        let missing = CookieDatabase::load(Path::new("/nonexistent/ocd.csv")).expect_err("missing");
        assert!(missing.to_string().contains("/nonexistent/ocd.csv"));
    }
}
