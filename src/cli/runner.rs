//! `siteward runner`: the scanning worker. It needs the app's URL and a runner token, nothing
//! else — no database, no blob store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use scanner::egress::EgressPolicy;
use secrecy::SecretString;
use url::Url;

use super::{BrowserArgs, ClassifyArgs, fail, parse_duration};
use crate::runner::{RunnerSettings, run as run_runner};

#[derive(Debug, Clone, Args)]
pub struct RunnerArgs {
    /// The app's base URL (as the runner reaches it).
    #[arg(long, env = "SITEWARD_APP_URL")]
    pub app_url: String,
    /// The runner token from `siteward admin runner-token` (prefer the environment variable:
    /// arguments show in the process list).
    #[arg(long, env = "SITEWARD_RUNNER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Scans at once on the one browser.
    #[arg(long, env = "SITEWARD_RUNNER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Allow private, loopback and link-local destinations (self-hosted and test sites only).
    #[arg(long, env = "SITEWARD_RUNNER_ALLOW_PRIVATE")]
    pub allow_private: bool,
    /// Map HOST to IP, like curl's --resolve; the mapping is allowed even when the address is
    /// private. Repeatable, or comma-separated in the environment variable.
    #[arg(
        long,
        value_name = "HOST=IP",
        env = "SITEWARD_RUNNER_RESOLVE",
        value_delimiter = ','
    )]
    pub resolve: Vec<String>,
    /// Ask this name server (IP:PORT) instead of the system's.
    #[arg(long, env = "SITEWARD_RUNNER_DNS_SERVER", value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// The runners' private key for checkout test data (written by `siteward admin
    /// runner-keys`). Without it, checkout tests that fill in secrets fail.
    #[arg(long, env = "SITEWARD_RUNNER_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Keep trying to deliver a finished scan this long while the app is unreachable.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub deliver_for: Duration,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

impl RunnerArgs {
    fn settings(&self) -> Result<RunnerSettings, String> {
        let mut app_url = Url::parse(&self.app_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("--app-url {:?} is not an http(s) URL", self.app_url))?;
        if !app_url.path().ends_with('/') {
            app_url.set_path(&format!("{}/", app_url.path()));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err("--concurrency must be between 1 and 64".into());
        }
        if !self.token.starts_with("swr_") {
            return Err("the runner token must look like swr_<prefix>_<secret>".into());
        }
        let mut egress = EgressPolicy::public_only();
        for mapping in self.resolve.iter().filter(|m| !m.trim().is_empty()) {
            egress = egress
                .with_resolve_arg(mapping)
                .map_err(|e| e.to_string())?;
        }
        if let Some(server) = self.dns_server {
            egress = egress.with_dns_server(server);
        }
        if self.allow_private {
            egress = egress.allowing_private();
        }
        Ok(RunnerSettings {
            app_url,
            token: SecretString::from(self.token.clone()),
            concurrency: self.concurrency,
            browser: self.browser.browser_options(self.concurrency),
            egress,
            classifiers: self.classify.load()?,
            claim_wait_seconds: 25,
            deliver_for: self.deliver_for,
            checkout_keys: self
                .key_file
                .as_deref()
                .map(crate::checkouts::keys::read_key_file)
                .transpose()?
                .map(std::sync::Arc::new),
        })
    }
}

pub async fn run(args: RunnerArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(error) => return fail(error),
    };
    if args.allow_private {
        eprintln!(
            "siteward runner: WARNING: private destinations are allowed: scans may reach loopback, \
             private networks and cloud metadata."
        );
    }
    match run_runner(settings, super::serve::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}
