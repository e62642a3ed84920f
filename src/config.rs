//! The one `Config` of `siteward serve`: read once from an optional TOML file and `SITEWARD_*`
//! environment variables (the environment wins), validated into typed values, printed without
//! secrets. Nothing else in the app reads the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::crypto::{MasterKeyError, MasterKeys};
use crate::storage::{S3Config, StoreConfig};

/// Every setting, its default and what it means. The TOML file uses the lower-case name; the
/// environment the upper-case one with a `SITEWARD_` prefix (`listen` ↔ `SITEWARD_LISTEN`).
/// `database_url` is also read from plain `DATABASE_URL`.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("listen", "127.0.0.1:8080", "address and port to serve on"),
    (
        "public_url",
        "http://<listen>/",
        "the URL people use; https turns on Secure cookies and HSTS",
    ),
    (
        "data_dir",
        "./siteward-data",
        "folder for the embedded database, generated keys and the mail outbox",
    ),
    (
        "database_url",
        "(embedded PostgreSQL in <data_dir>/postgres)",
        "PostgreSQL URL",
    ),
    ("database_pool_size", "16", "connections in the pool"),
    (
        "master_keys",
        "(generated into <data_dir>/master-keys)",
        "id:base64-32-bytes, comma-separated",
    ),
    (
        "master_key_current",
        "(the last of master_keys)",
        "id of the key that seals new secrets",
    ),
    (
        "session_idle_timeout",
        "12h",
        "sign out after this long without a request",
    ),
    (
        "session_lifetime",
        "14d",
        "sign out this long after signing in, whatever happens",
    ),
    (
        "smtp_url",
        "(mail is written to <data_dir>/outbox)",
        "smtp://[user:password@]host[:port] (plain or STARTTLS if offered) or smtps://…",
    ),
    (
        "mail_from",
        "siteward <siteward@localhost>",
        "sender of every mail",
    ),
    (
        "blob_dir",
        "<data_dir>/blobs",
        "folder for encrypted blobs when no S3 bucket is set",
    ),
    (
        "s3_bucket",
        "(none: blobs go to blob_dir)",
        "S3 bucket for encrypted blobs",
    ),
    (
        "s3_region",
        "eu-west-1",
        "the bucket's region (checked at start)",
    ),
    ("s3_endpoint", "(AWS)", "URL of an S3-compatible server"),
    (
        "s3_path_style",
        "false (true with s3_endpoint)",
        "address buckets as a path",
    ),
    (
        "s3_access_key_id",
        "(required with s3_bucket)",
        "S3 access key id",
    ),
    (
        "s3_secret_access_key",
        "(required with s3_bucket)",
        "S3 secret access key",
    ),
    (
        "trust_forwarded_for",
        "false",
        "take the client address from X-Forwarded-For (only behind your own proxy)",
    ),
    (
        "metrics_token",
        "(none: /metrics answers loopback callers only)",
        "bearer token a Prometheus scraper sends for /metrics",
    ),
    (
        "embedded_runner",
        "true",
        "start one runner child process (false when runners run elsewhere)",
    ),
    (
        "runner_concurrency",
        "2",
        "scans the embedded runner runs at once",
    ),
    (
        "runner_allow_private",
        "false",
        "let the embedded runner scan private and loopback addresses (self-hosted sites only)",
    ),
    (
        "chromium",
        "/usr/bin/chromium",
        "the Chromium binary of the embedded runner",
    ),
    (
        "runner_lease",
        "60s",
        "a claimed job returns to the queue this long after the runner's last heartbeat",
    ),
    (
        "scan_attempts",
        "3",
        "attempts of a scan before it is marked failed",
    ),
    (
        "notify_allow_private",
        "false",
        "let webhooks reach private and loopback addresses (receivers on your own network)",
    ),
    (
        "scheduler",
        "true",
        "run the scheduler (one leads across all serve processes)",
    ),
    (
        "scheduler_interval",
        "15s",
        "how often the leading scheduler looks for due scans and lapsed leases",
    ),
    (
        "purge_interval",
        "1h",
        "how often the leading purge worker deletes what retention let expire (the blob-deletion queue is drained every scheduler interval)",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("unknown setting `{0}`; the settings are: {known}", known = known_names())]
    Unknown(String),
    #[error("setting `{name}`: {message}")]
    Invalid { name: &'static str, message: String },
    #[error(transparent)]
    MasterKeys(#[from] MasterKeyError),
}

/// How outgoing mail leaves.
#[derive(Clone)]
pub enum MailTransport {
    /// An SMTP server (URL may hold credentials, so it stays secret).
    Smtp(SecretString),
    /// Each mail is written as an `.eml` file into this folder (development default).
    Outbox(PathBuf),
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    /// `None`: start the embedded PostgreSQL in `data_dir/postgres`.
    pub database_url: Option<SecretString>,
    pub database_pool_size: usize,
    pub master_keys: MasterKeys,
    /// Whether the master keys were generated on this machine (unfit for production).
    pub master_keys_generated: bool,
    pub session_idle_timeout: Duration,
    pub session_lifetime: Duration,
    pub mail: MailTransport,
    pub mail_from: String,
    pub trust_forwarded_for: bool,
    /// The bearer token `/metrics` asks for; without one it answers loopback callers only.
    pub metrics_token: Option<SecretString>,
    pub blob_store: StoreConfig,
    pub runners: RunnerSettings,
}

/// How scans run: the embedded runner, leases, attempts and the scheduler.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub embedded_runner: bool,
    pub runner_concurrency: usize,
    pub runner_allow_private: bool,
    pub chromium: PathBuf,
    pub lease: Duration,
    pub scan_attempts: i32,
    pub scheduler: bool,
    pub scheduler_interval: Duration,
    /// How often a retention pass runs (see `crate::lifecycle`).
    pub purge_interval: Duration,
    /// Webhook and Slack URLs may resolve to private addresses.
    pub notify_allow_private: bool,
}

impl Config {
    /// Loads the file (if given) and the environment, and validates everything. Generates and
    /// keeps master keys in the data folder when none are configured.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut raw = match file {
            Some(path) => read_toml(path)?,
            None => BTreeMap::new(),
        };
        for (key, value) in env {
            let name = if key == "DATABASE_URL" {
                "database_url".to_string()
            } else if let Some(rest) = key.strip_prefix("SITEWARD_") {
                rest.to_ascii_lowercase()
            } else {
                continue;
            };
            if known(&name) {
                raw.insert(name, value);
            }
        }
        Self::from_raw(raw)
    }

    fn from_raw(mut raw: BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut take = |name: &'static str| raw.remove(name).filter(|v| !v.trim().is_empty());

        let listen: SocketAddr = parse(
            "listen",
            take("listen").as_deref().unwrap_or("127.0.0.1:8080"),
        )?;
        let public_url = match take("public_url") {
            Some(text) => parse_public_url(&text)?,
            None => {
                Url::parse(&format!("http://{listen}/")).map_err(|e| invalid("public_url", e))?
            }
        };
        let data_dir = PathBuf::from(take("data_dir").unwrap_or_else(|| "./siteward-data".into()));
        let database_url = take("database_url").map(SecretString::from);
        let database_pool_size: usize = parse(
            "database_pool_size",
            take("database_pool_size").as_deref().unwrap_or("16"),
        )?;
        if !(1..=512).contains(&database_pool_size) {
            return Err(invalid("database_pool_size", "must be between 1 and 512"));
        }
        let session_idle_timeout = parse_span(
            "session_idle_timeout",
            take("session_idle_timeout").as_deref().unwrap_or("12h"),
        )?;
        let session_lifetime = parse_span(
            "session_lifetime",
            take("session_lifetime").as_deref().unwrap_or("14d"),
        )?;
        if session_idle_timeout > session_lifetime {
            return Err(invalid(
                "session_idle_timeout",
                "must not be longer than session_lifetime",
            ));
        }
        let mail = match take("smtp_url") {
            Some(url) => {
                let parsed = Url::parse(&url).map_err(|_| {
                    invalid(
                        "smtp_url",
                        "not a URL (smtp://host:port or smtps://host:port)",
                    )
                })?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    return Err(invalid("smtp_url", "the scheme must be smtp or smtps"));
                }
                MailTransport::Smtp(SecretString::from(url))
            }
            None => MailTransport::Outbox(data_dir.join("outbox")),
        };
        let mail_from = take("mail_from").unwrap_or_else(|| "siteward <siteward@localhost>".into());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail_from",
                "not a mailbox like `Name <address@example.com>`",
            ));
        }
        let trust_forwarded_for = parse_bool(
            "trust_forwarded_for",
            take("trust_forwarded_for").as_deref().unwrap_or("false"),
        )?;
        let metrics_token = take("metrics_token").map(SecretString::from);
        if let Some(token) = &metrics_token
            && token.expose_secret().trim().len() < 16
        {
            return Err(invalid("metrics_token", "must be at least 16 characters"));
        }
        let blob_dir = take("blob_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("blobs"));
        let blob_store = match take("s3_bucket") {
            None => StoreConfig::Local(blob_dir),
            Some(bucket) => {
                let endpoint = take("s3_endpoint")
                    .map(|text| {
                        Url::parse(&text)
                            .ok()
                            .filter(|u| matches!(u.scheme(), "http" | "https"))
                            .ok_or_else(|| invalid("s3_endpoint", "must be an http or https URL"))
                    })
                    .transpose()?;
                let path_style = parse_bool(
                    "s3_path_style",
                    take("s3_path_style")
                        .as_deref()
                        .unwrap_or(if endpoint.is_some() { "true" } else { "false" }),
                )?;
                StoreConfig::S3(S3Config {
                    bucket,
                    region: take("s3_region").unwrap_or_else(|| "eu-west-1".into()),
                    endpoint,
                    path_style,
                    access_key_id: take("s3_access_key_id")
                        .ok_or_else(|| invalid("s3_access_key_id", "is required with s3_bucket"))?,
                    secret_access_key: take("s3_secret_access_key")
                        .map(SecretString::from)
                        .ok_or_else(|| {
                            invalid("s3_secret_access_key", "is required with s3_bucket")
                        })?,
                })
            }
        };
        let runners = RunnerSettings {
            embedded_runner: parse_bool(
                "embedded_runner",
                take("embedded_runner").as_deref().unwrap_or("true"),
            )?,
            runner_concurrency: parse(
                "runner_concurrency",
                take("runner_concurrency").as_deref().unwrap_or("2"),
            )?,
            runner_allow_private: parse_bool(
                "runner_allow_private",
                take("runner_allow_private").as_deref().unwrap_or("false"),
            )?,
            chromium: PathBuf::from(take("chromium").unwrap_or_else(|| "/usr/bin/chromium".into())),
            lease: parse_span(
                "runner_lease",
                take("runner_lease").as_deref().unwrap_or("60s"),
            )?,
            scan_attempts: parse(
                "scan_attempts",
                take("scan_attempts").as_deref().unwrap_or("3"),
            )?,
            scheduler: parse_bool("scheduler", take("scheduler").as_deref().unwrap_or("true"))?,
            notify_allow_private: parse_bool(
                "notify_allow_private",
                take("notify_allow_private").as_deref().unwrap_or("false"),
            )?,
            scheduler_interval: parse_span(
                "scheduler_interval",
                take("scheduler_interval").as_deref().unwrap_or("15s"),
            )?,
            purge_interval: parse_span(
                "purge_interval",
                take("purge_interval").as_deref().unwrap_or("1h"),
            )?,
        };
        if !(1..=64).contains(&runners.runner_concurrency) {
            return Err(invalid("runner_concurrency", "must be between 1 and 64"));
        }
        if !(1..=20).contains(&runners.scan_attempts) {
            return Err(invalid("scan_attempts", "must be between 1 and 20"));
        }
        if runners.lease < Duration::from_secs(2) || runners.lease > Duration::from_secs(3600) {
            return Err(invalid("runner_lease", "must be between 2s and 1h"));
        }
        let keys_text = take("master_keys");
        let current = take("master_key_current");
        let (master_keys, master_keys_generated) = match keys_text {
            Some(text) => (MasterKeys::parse(&text, current.as_deref())?, false),
            None => (
                MasterKeys::load_or_generate(&data_dir.join("master-keys"))?,
                true,
            ),
        };
        if let Some(name) = raw.keys().next() {
            return Err(ConfigError::Unknown(name.clone()));
        }
        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            database_pool_size,
            master_keys,
            master_keys_generated,
            session_idle_timeout,
            session_lifetime,
            mail,
            mail_from,
            trust_forwarded_for,
            metrics_token,
            blob_store,
            runners,
        })
    }

    /// Cookies get `Secure` and responses HSTS when people reach us over TLS.
    pub fn served_over_tls(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Printed at start: every value, secrets redacted, defaults unfit for production flagged.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  listen               {}", self.listen)?;
        writeln!(f, "  public_url           {}", self.public_url)?;
        writeln!(f, "  data_dir             {}", self.data_dir.display())?;
        match &self.database_url {
            Some(url) => writeln!(
                f,
                "  database_url         {}",
                redact_url(url.expose_secret())
            )?,
            None => writeln!(
                f,
                "  database_url         embedded PostgreSQL in {} (fine for one machine; back it up)",
                self.data_dir.join("postgres").display()
            )?,
        }
        writeln!(f, "  database_pool_size   {}", self.database_pool_size)?;
        writeln!(
            f,
            "  master_keys          {} key(s), current `{}`{}",
            self.master_keys.len(),
            self.master_keys.current_id(),
            if self.master_keys_generated {
                " — GENERATED into the data folder: unfit for production, set SITEWARD_MASTER_KEYS"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  session_idle_timeout {}s, session_lifetime {}s",
            self.session_idle_timeout.as_secs(),
            self.session_lifetime.as_secs()
        )?;
        match &self.mail {
            MailTransport::Smtp(url) => writeln!(
                f,
                "  mail                 {}",
                redact_url(url.expose_secret())
            )?,
            MailTransport::Outbox(dir) => writeln!(
                f,
                "  mail                 written to {} — unfit for production, set SITEWARD_SMTP_URL",
                dir.display()
            )?,
        }
        writeln!(f, "  mail_from            {}", self.mail_from)?;
        match &self.blob_store {
            StoreConfig::Local(dir) => writeln!(
                f,
                "  blobs                encrypted, in {} (set SITEWARD_S3_BUCKET for S3)",
                dir.display()
            )?,
            StoreConfig::S3(s3) => writeln!(
                f,
                "  blobs                encrypted, S3 bucket `{}` in {}{}{}",
                s3.bucket,
                s3.region,
                s3.endpoint
                    .as_ref()
                    .map(|e| format!(" at {}", redact_url(e.as_str())))
                    .unwrap_or_default(),
                if s3.path_style { ", path-style" } else { "" }
            )?,
        }
        writeln!(f, "  trust_forwarded_for  {}", self.trust_forwarded_for)?;
        writeln!(
            f,
            "  metrics              {}",
            if self.metrics_token.is_some() {
                "bearer token"
            } else {
                "loopback callers only"
            }
        )?;
        let runners = &self.runners;
        if runners.embedded_runner {
            writeln!(
                f,
                "  embedded_runner      one child process, {} scans at once, {}{}",
                runners.runner_concurrency,
                runners.chromium.display(),
                if runners.runner_allow_private {
                    ", PRIVATE ADDRESSES ALLOWED (egress guard off for private networks)"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(f, "  embedded_runner      off (runners run elsewhere)")?;
        }
        writeln!(
            f,
            "  scans                lease {}s, {} attempts; scheduler {}",
            runners.lease.as_secs(),
            runners.scan_attempts,
            if runners.scheduler {
                format!(
                    "on, every {}s; retention purge every {}s",
                    runners.scheduler_interval.as_secs(),
                    runners.purge_interval.as_secs()
                )
            } else {
                "off".into()
            }
        )?;
        write!(
            f,
            "  master keys and blob credentials stay in this process; runners get only a token"
        )?;
        if !self.served_over_tls() {
            write!(
                f,
                "\n  (public_url is not https: cookies are not Secure and HSTS is off — unfit for production)"
            )?;
        }
        Ok(())
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            // Query parameters can carry credentials too (`?password=…`, tokens).
            if url.query().is_some() {
                url.set_query(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(unparsable URL, not shown)".into(),
    }
}

fn known_names() -> String {
    SETTINGS
        .iter()
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn known(name: &str) -> bool {
    SETTINGS.iter().any(|(key, _, _)| *key == name)
}

fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_owned(),
            message: e.message().to_string(),
        })?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        if !known(&key) {
            return Err(ConfigError::Unknown(key));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(ConfigError::Toml {
                    path: path.to_owned(),
                    message: format!("`{key}` must be a string, a whole number or true/false"),
                });
            }
        };
        raw.insert(key, text);
    }
    Ok(raw)
}

fn invalid(name: &'static str, message: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_string(),
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, text: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e: T::Err| invalid(name, format!("`{text}`: {e}")))
}

fn parse_bool(name: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, format!("`{text}` is not true or false"))),
    }
}

fn parse_public_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| invalid("public_url", e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            "public_url",
            "must be an http or https URL with a host",
        ));
    }
    Ok(url)
}

/// `90s`, `30m`, `12h`, `14d`.
fn parse_span(name: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        invalid(
            name,
            format!("`{text}` is not a duration like 30m, 12h or 14d"),
        )
    })?;
    let seconds = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(invalid(
                name,
                format!("`{text}`: the unit must be s, m, h or d"),
            ));
        }
    };
    if number == 0 {
        return Err(invalid(name, "must be longer than zero"));
    }
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "SITEWARD_DATA_DIR".into(),
            dir.path().to_string_lossy().into_owned(),
        ));
        Config::load(None, env)
    }

    #[test]
    fn defaults_are_printed_without_secrets() {
        let config = load(&[(
            "DATABASE_URL",
            "postgres://siteward:hunter2@db.example/siteward",
        )])
        .unwrap();
        let printed = config.to_string();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("postgres://siteward:***@db.example/siteward"));
        assert!(printed.contains("GENERATED"));
        assert!(!config.served_over_tls());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(&[("SITEWARD_SESSION_IDLE_TIMEOUT", "soon")])
            .err()
            .unwrap();
        assert!(err.to_string().contains("session_idle_timeout"), "{err}");
        let err = load(&[("SITEWARD_PUBLIC_URL", "ftp://x")]).err().unwrap();
        assert!(err.to_string().contains("public_url"), "{err}");
        let err = load(&[("SITEWARD_SMTP_URL", "http://mail")]).err().unwrap();
        assert!(err.to_string().contains("smtp"), "{err}");
    }

    #[test]
    fn s3_needs_credentials_and_defaults_to_eu_west_1() {
        let err = load(&[("SITEWARD_S3_BUCKET", "snapshots")]).err().unwrap();
        assert!(err.to_string().contains("s3_access_key_id"), "{err}");
        let config = load(&[
            ("SITEWARD_S3_BUCKET", "snapshots"),
            ("SITEWARD_S3_ACCESS_KEY_ID", "AKIA"),
            ("SITEWARD_S3_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap();
        match &config.blob_store {
            StoreConfig::S3(s3) => {
                assert_eq!(s3.region, "eu-west-1");
                assert!(!s3.path_style);
            }
            StoreConfig::Local(_) => panic!("expected S3"),
        }
        assert!(!config.to_string().contains("very-secret"));
    }

    #[test]
    fn file_settings_are_overridden_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("siteward.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:9000\"\ndatabase_pool_size = 4\ndata_dir = {:?}\n",
                dir.path()
            ),
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            [("SITEWARD_LISTEN".to_string(), "127.0.0.1:9001".to_string())],
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.database_pool_size, 4);
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        let err = Config::load(Some(&file), []).err().unwrap();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
