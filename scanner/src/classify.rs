//! Cookie classification against a cookie database in the Open Cookie Database CSV format
//! (`ID, Platform, Category, Cookie / Data Key name, Domain, Description, Retention period,
//! Data Controller, User Privacy & GDPR Rights Portals, Wildcard match`).
//!
//! The database is loaded from a configured path; siteward ships none. A name matches an entry
//! exactly, or by prefix when the entry's wildcard flag is 1 (the longest prefix wins).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::snapshot::CookieClassification;

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
