//! `siteward serve`, `siteward migrate` and `siteward admin …`: the commands that need the
//! configuration and the database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use diesel_async::AsyncConnection;
use secrecy::{ExposeSecret, SecretString};

use super::fail;
use crate::app::Application;
use crate::config::Config;
use crate::config::redact_url;
use crate::db;
use crate::db::embedded::{EmbeddedPostgres, StopOutcome, Tenure};

use super::serve_lock::ServeLock;

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A TOML file with settings; `SITEWARD_*` environment variables override it.
    #[arg(long, env = "SITEWARD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Check every audit-log hash chain; exit 1 and name the rows if one is broken.
    VerifyAudit,
    /// Re-wrap every organization's data key under the current master key
    /// (SITEWARD_MASTER_KEY_CURRENT). Blobs are not touched; keep the old master key configured
    /// until this has run.
    RotateMasterKey,
    /// Give an organization a new data key: new blobs use it, older ones stay readable.
    RotateDataKey {
        /// The organization's id.
        #[arg(long)]
        org: i64,
    },
    /// Register a runner and print its token (shown once) for `siteward runner`.
    RunnerToken {
        /// A name to recognise the runner by.
        #[arg(long)]
        name: String,
    },
    /// Create the runners' key pair for checkout test data: the private key goes to --out (give
    /// that file to every runner as SITEWARD_RUNNER_KEY_FILE), the public key is registered so
    /// the app seals new secrets to it. Secrets sealed to an earlier key must be entered again.
    RunnerKeys {
        /// Where to write the private key (created readable by its owner only).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// List registered runners.
    ListRunners,
    /// Back up a single-machine installation: the database as a pg_dump archive (consistent
    /// while serve runs) and the local blob folder, into a new folder under --out with a
    /// manifest. Master keys are never written into it: keep them apart.
    Backup {
        /// The folder to create the backup folder in.
        #[arg(long)]
        out: PathBuf,
    },
    /// Read every blob the database names, open it and check its SHA-256 against the one
    /// recorded; exit 1 and name the blobs that are missing or wrong (after a restore, a bucket
    /// migration or a key rotation).
    VerifyBlobs,
    /// Run a retention pass now (what the leading serve does every purge interval): delete what
    /// each organization's retention let expire, then the blobs of everything deleted. Safe
    /// beside running serve processes; an interrupted run goes on where it stopped next time.
    Purge,
    /// Erase an organization: its data keys (so none of its blobs opens anywhere), its audit
    /// chain and every row of it, then its blobs. Without --now this schedules the erasure with
    /// the same 7-day grace period an owner gets; with --now it happens at once.
    EraseOrg {
        /// The organization's id.
        #[arg(long)]
        org: i64,
        /// The organization's name, exactly, as a confirmation.
        #[arg(long)]
        confirm: String,
        /// Skip the grace period and erase now.
        #[arg(long)]
        now: bool,
    },
    /// Erase a person (answering a request that reached the operator): their account, sessions
    /// and second factor go, the API keys they created are revoked, and every audit entry naming
    /// them is pseudonymized. Refused while they own an organization.
    ErasePerson {
        /// The address they sign in with.
        #[arg(long)]
        email: String,
    },
    /// Revoke a runner: its token stops working at its next request.
    RevokeRunner {
        /// The runner's id (see list-runners).
        #[arg(long)]
        id: i64,
    },
}

pub(super) fn load(args: &ConfigArgs) -> Result<Config, ExitCode> {
    Config::load(args.config.as_deref(), std::env::vars()).map_err(fail)
}

/// Where a command acts: `database: …` with the embedded folder, or the URL's host and database
/// (never the password). The first line every `migrate` and `admin` command prints.
pub(super) fn describe_database(config: &Config) -> String {
    match &config.database_url {
        Some(url) => match url::Url::parse(url.expose_secret()) {
            Ok(parsed) => format!(
                "database: `{}` on {}:{}",
                parsed.path().trim_start_matches('/'),
                parsed.host_str().unwrap_or("(local socket)"),
                parsed.port().unwrap_or(5432)
            ),
            Err(_) => format!("database: {}", redact_url(url.expose_secret())),
        },
        None => format!(
            "database: the embedded PostgreSQL in {}",
            embedded_dir(config).display()
        ),
    }
}

fn embedded_dir(config: &Config) -> PathBuf {
    config.data_dir.join("postgres")
}

/// The database to use: the configured URL, or the embedded cluster (started here unless
/// another siteward process runs it already).
pub(super) async fn database(
    config: &Config,
    tenure: Tenure,
) -> Result<(SecretString, Option<EmbeddedPostgres>), ExitCode> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), None));
    }
    let embedded = EmbeddedPostgres::start(&embedded_dir(config), tenure)
        .await
        .map_err(fail)?;
    Ok((embedded.database_url(), Some(embedded)))
}

/// Releases the embedded server: stopped if this process may and no other siteward process uses
/// it, else left running.
pub(super) async fn release_embedded(embedded: Option<EmbeddedPostgres>) {
    if let Some(embedded) = embedded {
        report_release(embedded.stop().await);
    }
}

fn report_release(outcome: Result<StopOutcome, db::embedded::EmbeddedError>) {
    match outcome {
        Ok(StopOutcome::Stopped) => {}
        Ok(StopOutcome::LeftRunningAdopted) => {
            eprintln!("the embedded PostgreSQL was already running and stays running")
        }
        Ok(StopOutcome::LeftRunningInUse) => {
            eprintln!("the embedded PostgreSQL stays running: another siteward process uses it")
        }
        Err(error) => eprintln!("siteward: warning: stopping the embedded PostgreSQL: {error}"),
    }
}

async fn migrate_or_fail(url: &SecretString) -> Result<(), ExitCode> {
    let applied = db::migrate(url).await.map_err(fail)?;
    if !applied.is_empty() {
        eprintln!("applied migrations: {}", applied.join(", "));
    }
    Ok(())
}

pub async fn serve(args: ConfigArgs) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // One serve per data folder on the embedded database, refused before the database is touched.
    let _serve_lock = if config.database_url.is_none() {
        match ServeLock::acquire(&config.data_dir, &config.listen.to_string()) {
            Ok(lock) => Some(lock),
            Err(error) => return fail(error),
        }
    } else {
        None
    };
    eprintln!("siteward serve, configuration:\n{config}");
    if config.database_url.is_none() {
        eprintln!(
            "starting the embedded PostgreSQL in {} …",
            embedded_dir(&config).display()
        );
    }
    let (url, embedded) = match database(&config, Tenure::Keeper).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Err(code) = migrate_or_fail(&url).await {
        release_embedded(embedded).await;
        return code;
    }
    let public_url = config.public_url.clone();
    let runner_settings = config.runners.clone();
    let data_dir = config.data_dir.clone();
    // The embedded runner reaches the app over loopback unless we listen on one address only.
    let runner_host = match config.listen.ip() {
        ip if ip.is_unspecified() || ip.is_loopback() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let app = match Application::build(config, &url).await {
        Ok(app) => app,
        Err(error) => {
            release_embedded(embedded).await;
            return fail(error);
        }
    };
    // From here on the embedded server is watched and started again if it dies.
    let embedded = embedded.map(|server| server.supervise(app.database_health()));
    eprintln!(
        "siteward is ready: open {public_url} (listening on port {})",
        app.port()
    );
    let handle = app.handle();
    let runner = if runner_settings.embedded_runner {
        match start_embedded_runner(&app, &runner_host, &runner_settings, &data_dir).await {
            Ok(child) => Some(child),
            Err(error) => {
                handle.stop(false).await;
                release_supervised(embedded).await;
                return fail(error);
            }
        }
    } else {
        None
    };
    let server = tokio::spawn(app.run());
    shutdown_signal().await;
    eprintln!("shutting down …");
    if let Some(runner) = runner {
        runner.stop().await;
    }
    handle.stop(true).await;
    let _ = server.await;
    release_supervised(embedded).await;
    ExitCode::SUCCESS
}

async fn release_supervised(embedded: Option<db::embedded::Supervised>) {
    if let Some(supervised) = embedded {
        report_release(supervised.stop().await);
    }
}

pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Registers a fresh token for the embedded runner (revoking the last one) and starts the child.
async fn start_embedded_runner(
    app: &Application,
    host: &str,
    settings: &crate::config::RunnerSettings,
    data_dir: &std::path::Path,
) -> Result<crate::runner::child::RunnerChild, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our own binary: {e}"))?;
    let mut conn = app
        .pool()
        .get()
        .await
        .map_err(|e| format!("cannot reach the database: {e}"))?;
    crate::scans::runner_tokens::revoke_named(&mut conn, EMBEDDED_RUNNER)
        .await
        .map_err(|e| format!("cannot revoke the old embedded runner: {e}"))?;
    let (_, token) = crate::scans::runner_tokens::create(&mut conn, EMBEDDED_RUNNER)
        .await
        .map_err(|e| format!("cannot register the embedded runner: {e}"))?;
    let key_file = embedded_runner_key(&mut conn, data_dir).await?;
    let app_url =
        url::Url::parse(&format!("http://{host}:{}/", app.port())).map_err(|e| e.to_string())?;
    Ok(crate::runner::child::RunnerChild::spawn(
        exe, app_url, token, settings, key_file,
    ))
}

/// The embedded runner's key for checkout secrets: `<data_dir>/runner-checkout.key`, created on
/// first start and registered while no other key is. When an operator has registered their own
/// key (`admin runner-keys`) for external runners, that one stays active.
async fn embedded_runner_key(
    conn: &mut diesel_async::AsyncPgConnection,
    data_dir: &std::path::Path,
) -> Result<std::path::PathBuf, String> {
    let path = data_dir.join("runner-checkout.key");
    let keys = if path.exists() {
        crate::checkouts::keys::read_key_file(&path)?
    } else {
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let keys = checkout_runner::RunnerKeyPair::generate();
        crate::checkouts::keys::write_key_file(&path, &keys, false)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        keys
    };
    let active = crate::checkouts::keys::active(conn)
        .await
        .map_err(|e| format!("cannot read the runner key: {e}"))?;
    if active.is_none() {
        crate::checkouts::keys::register(conn, keys.public())
            .await
            .map_err(|e| format!("cannot register the runner key: {e}"))?;
    }
    Ok(path)
}

/// The name the embedded runner is registered under.
const EMBEDDED_RUNNER: &str = "embedded";

pub async fn migrate(args: ConfigArgs) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    eprintln!("{}", describe_database(&config));
    let (url, embedded) = match database(&config, Tenure::Visitor).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let result = migrate_or_fail(&url).await;
    release_embedded(embedded).await;
    match result {
        Ok(()) => {
            eprintln!("the database is up to date");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

pub async fn admin(args: AdminArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    eprintln!("{}", describe_database(&config));
    let (url, embedded) = match database(&config, Tenure::Visitor).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let code = match args.command {
        AdminCommand::VerifyAudit => verify_audit(&url).await,
        AdminCommand::RotateMasterKey => rotate_master_key(&url, &config).await,
        AdminCommand::RotateDataKey { org } => rotate_data_key(&url, &config, org).await,
        AdminCommand::RunnerToken { name } => runner_token(&url, &name).await,
        AdminCommand::RunnerKeys { out, force } => runner_keys(&url, &out, force).await,
        AdminCommand::ListRunners => list_runners(&url).await,
        AdminCommand::RevokeRunner { id } => revoke_runner(&url, id).await,
        AdminCommand::Backup { out } => super::backup::run(&config, &url, &out).await,
        AdminCommand::VerifyBlobs => verify_blobs(&url, &config).await,
        AdminCommand::Purge => purge(&url, &config).await,
        AdminCommand::EraseOrg { org, confirm, now } => {
            erase_org(&url, &config, org, &confirm, now).await
        }
        AdminCommand::ErasePerson { email } => erase_person(&url, &email).await,
    };
    release_embedded(embedded).await;
    code
}

async fn purge(url: &SecretString, config: &Config) -> ExitCode {
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let store = match crate::storage::BlobStore::open(&config.blob_store).await {
        Ok(store) => store,
        Err(error) => return fail(format!("blob storage: {error}")),
    };
    // One purge at a time: the leading serve's worker holds the same lock while it works.
    match crate::scheduler::try_lead(&mut conn, crate::lifecycle::PURGE_LOCK).await {
        Ok(true) => {}
        Ok(false) => {
            return fail(
                "a serve process leads the purge right now; it runs a pass every purge interval (try again, or wait for it)",
            );
        }
        Err(error) => return fail(format!("cannot read the database: {error}")),
    }
    let started = std::time::Instant::now();
    let (report, drained) = match crate::lifecycle::purge_now(&mut conn, &store).await {
        Ok(done) => done,
        Err(error) => return fail(format!("the purge stopped: {error}")),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "purged {} row(s) in {} batch(es); blob deletions: {} done ({} object(s)), {} failed and queued for retry; {seconds:.1} s",
        report.total(),
        report.batches,
        drained.done,
        drained.objects,
        drained.failed
    );
    for kind in crate::lifecycle::Purged::ALL {
        let n = report.of(kind);
        if n > 0 {
            println!("  {kind:?}: {n}");
        }
    }
    if drained.failed > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

async fn erase_org(
    url: &SecretString,
    config: &Config,
    org_id: i64,
    confirm: &str,
    now: bool,
) -> ExitCode {
    use crate::lifecycle::erasure;
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let name: Option<String> = match diesel_async::RunQueryDsl::get_result(
        diesel::QueryDsl::select(
            diesel::QueryDsl::find(crate::db::schema::orgs::table, org_id),
            crate::db::schema::orgs::name,
        ),
        &mut conn,
    )
    .await
    {
        Ok(name) => Some(name),
        Err(diesel::result::Error::NotFound) => None,
        Err(error) => return fail(format!("cannot read the database: {error}")),
    };
    let Some(name) = name else {
        return fail(format!("there is no organization {org_id}"));
    };
    if name != confirm {
        return fail(format!(
            "--confirm must be the organization's name exactly; organization {org_id} is called {name:?}"
        ));
    }
    let grace = if now {
        time::Duration::ZERO
    } else {
        erasure::GRACE
    };
    let scheduled = match erasure::schedule(&mut conn, org_id, grace).await {
        Ok(scheduled) => scheduled,
        Err(error) => return fail(format!("cannot schedule the erasure: {error}")),
    };
    let asked = crate::audit::record(
        &mut conn,
        crate::audit::Entry {
            org_id: Some(org_id),
            actor_user_id: None,
            actor_key_id: None,
            actor: "siteward admin".into(),
            action: "org.erasure_requested",
            subject: format!("org {org_id}"),
            detail: serde_json::json!({
                "erase_after": scheduled.erase_after.unix_timestamp(),
                "grace_skipped": now,
            }),
            ip: String::new(),
        },
    )
    .await;
    if let Err(error) = asked {
        return fail(format!("cannot write the audit log: {error}"));
    }
    if !now {
        println!(
            "organization {org_id} will be erased after {} (an owner can undo it until then)",
            scheduled.erase_after
        );
        return ExitCode::SUCCESS;
    }
    if let Err(error) = erasure::make_due(&mut conn, org_id).await {
        return fail(format!("cannot make the erasure due: {error}"));
    }
    let erased = match erasure::erase(&mut conn, org_id).await {
        Ok(Some(erased)) => erased,
        Ok(None) => return fail(format!("organization {org_id} is already gone")),
        Err(error) => return fail(format!("the erasure failed, nothing was erased: {error}")),
    };
    println!(
        "organization {org_id} erased: data keys destroyed; {} client(s), {} target(s), {} snapshot(s), {} audit row(s) deleted",
        erased.clients, erased.targets, erased.snapshots, erased.audit_rows
    );
    let store = match crate::storage::BlobStore::open(&config.blob_store).await {
        Ok(store) => store,
        Err(error) => {
            return fail(format!(
                "blob storage: {error}; its blobs are queued and the purge leader deletes them"
            ));
        }
    };
    match crate::lifecycle::blob_deletions::drain(
        &mut conn,
        &store,
        crate::lifecycle::BATCH,
        std::time::Duration::from_secs(600),
    )
    .await
    {
        Ok(drained) if drained.failed == 0 => {
            println!("blobs deleted: {} object(s)", drained.objects);
            ExitCode::SUCCESS
        }
        Ok(drained) => fail(format!(
            "{} blob deletion(s) failed; they stay queued and the purge leader retries them",
            drained.failed
        )),
        Err(error) => fail(format!("cannot drain the blob-deletion queue: {error}")),
    }
}

async fn verify_blobs(url: &SecretString, config: &Config) -> ExitCode {
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let store = match crate::storage::BlobStore::open(&config.blob_store).await {
        Ok(store) => store,
        Err(error) => return fail(format!("blob storage: {error}")),
    };
    let blobs = crate::storage::SealedBlobs::new(store, config.master_keys.clone());
    let started = std::time::Instant::now();
    let verified = match crate::storage::verify::verify_all(&mut conn, &blobs).await {
        Ok(verified) => verified,
        Err(error) => return fail(format!("cannot read the database: {error}")),
    };
    let seconds = started.elapsed().as_secs_f64();
    if verified.problems.is_empty() {
        println!(
            "blobs intact: {} blob(s), {} bytes opened and matching their SHA-256 in {seconds:.1} s",
            verified.intact, verified.bytes
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "blobs BROKEN: {} problem(s), {} blob(s) intact",
        verified.problems.len(),
        verified.intact
    );
    for problem in &verified.problems {
        println!("  {problem}");
    }
    ExitCode::from(1)
}

async fn verify_audit(url: &SecretString) -> ExitCode {
    let mut conn = match diesel_async::AsyncPgConnection::establish(url.expose_secret()).await {
        Ok(conn) => conn,
        Err(error) => return fail(format!("cannot connect to the database: {error}")),
    };
    let result = match crate::audit::chain::verify_all(&mut conn).await {
        Ok(result) => result,
        Err(error) => return fail(format!("cannot read the audit log: {error}")),
    };
    if result.breaks.is_empty() {
        println!(
            "audit log intact: {} chain(s), {} row(s) verified",
            result.chains, result.rows
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "audit log BROKEN: {} problem(s) in {} chain(s), {} row(s)",
        result.breaks.len(),
        result.chains,
        result.rows
    );
    for b in &result.breaks {
        let chain = b
            .org_id
            .map(|id| format!("org {id}"))
            .unwrap_or_else(|| "instance".into());
        println!(
            "  {chain}, entry #{} (row id {}): {}",
            b.seq, b.row_id, b.reason
        );
    }
    ExitCode::from(1)
}

async fn erase_person(url: &SecretString, email: &str) -> ExitCode {
    use crate::lifecycle::person::{self, AskedBy};
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let user_id: Option<i64> = match diesel_async::RunQueryDsl::get_result(
        diesel::QueryDsl::select(
            diesel::QueryDsl::filter(
                crate::db::schema::users::table,
                diesel::ExpressionMethods::eq(
                    crate::db::schema::users::email,
                    email.trim().to_lowercase(),
                ),
            ),
            crate::db::schema::users::id,
        ),
        &mut conn,
    )
    .await
    {
        Ok(id) => Some(id),
        Err(diesel::result::Error::NotFound) => None,
        Err(error) => return fail(format!("cannot read the database: {error}")),
    };
    let Some(user_id) = user_id else {
        return fail(format!("nobody signs in with {email:?}"));
    };
    match person::erase(&mut conn, user_id, AskedBy::Operator).await {
        Ok(erased) => {
            println!(
                "{} erased as “{}”: {} audit entr(y/ies) pseudonymized, {} API key(s) revoked, {} organization(s) left",
                email,
                erased.pseudonym,
                erased.audit_entries,
                erased.keys_revoked,
                erased.orgs_left
            );
            if erased.entries_left_in_v1_chains > 0 {
                eprintln!(
                    "siteward: {} entr(y/ies) naming them are in audit chains that could not be re-chained (they do not verify) and keep the address",
                    erased.entries_left_in_v1_chains
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(format!("nothing was erased: {error}")),
    }
}

async fn connect(url: &SecretString) -> Result<diesel_async::AsyncPgConnection, ExitCode> {
    diesel_async::AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|error| fail(format!("cannot connect to the database: {error}")))
}

async fn rotate_master_key(url: &SecretString, config: &Config) -> ExitCode {
    if let Err(code) = migrate_or_fail(url).await {
        return code;
    }
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let keys = &config.master_keys;
    let data_keys = match crate::storage::envelope::rewrap_data_keys(&mut conn, keys).await {
        Ok(count) => count,
        Err(error) => return fail(error),
    };
    let second_factors = match crate::auth::totp::reseal_all(&mut conn, keys).await {
        Ok(count) => count,
        Err(error) => return fail(error),
    };
    let channels = match crate::alerts::notifications::reseal_all(&mut conn, keys).await {
        Ok(count) => count,
        Err(error) => return fail(error),
    };
    println!(
        "re-wrapped {data_keys} data key(s) and sealed {second_factors} two-factor secret(s) and \
         {channels} notification channel setting(s) again under master key `{}`",
        keys.current_id()
    );
    ExitCode::SUCCESS
}

async fn rotate_data_key(url: &SecretString, config: &Config, org: i64) -> ExitCode {
    if let Err(code) = migrate_or_fail(url).await {
        return code;
    }
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let exists: Result<i64, _> = crate::db::schema::orgs::table
        .filter(crate::db::schema::orgs::id.eq(org))
        .count()
        .get_result(&mut conn)
        .await;
    match exists {
        Ok(0) => return fail(format!("no organization has the id {org}")),
        Ok(_) => {}
        Err(error) => return fail(format!("cannot read organizations: {error}")),
    }
    match crate::storage::envelope::create_data_key(&mut conn, &config.master_keys, org).await {
        Ok(id) => {
            println!("organization {org} now seals new blobs with data key {id}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

async fn runner_token(url: &SecretString, name: &str) -> ExitCode {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return fail("--name must be 1–100 characters");
    }
    if let Err(code) = migrate_or_fail(url).await {
        return code;
    }
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    match crate::scans::runner_tokens::create(&mut conn, name).await {
        Ok((runner, token)) => {
            eprintln!(
                "runner {} `{}` registered; its token is shown once — give it to the runner as SITEWARD_RUNNER_TOKEN:",
                runner.id, runner.name
            );
            println!("{}", token.expose_secret());
            ExitCode::SUCCESS
        }
        Err(error) => fail(format!("cannot register the runner: {error}")),
    }
}

async fn runner_keys(url: &SecretString, out: &std::path::Path, force: bool) -> ExitCode {
    if let Err(code) = migrate_or_fail(url).await {
        return code;
    }
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    let keys = checkout_runner::RunnerKeyPair::generate();
    if let Err(error) = crate::checkouts::keys::write_key_file(out, &keys, force) {
        return fail(format!(
            "cannot write {}: {error}{}",
            out.display(),
            if error.kind() == std::io::ErrorKind::AlreadyExists {
                " (pass --force to replace it)"
            } else {
                ""
            }
        ));
    }
    if let Err(error) = crate::checkouts::keys::register(&mut conn, keys.public()).await {
        return fail(format!("cannot register the public key: {error}"));
    }
    let stale = crate::checkouts::keys::stale_secrets(&mut conn, &keys.public().id())
        .await
        .unwrap_or(0);
    eprintln!(
        "runner key {} registered; its private key is in {} — give that file to every runner as SITEWARD_RUNNER_KEY_FILE.",
        keys.public().id(),
        out.display()
    );
    if stale > 0 {
        eprintln!("{stale} stored secret(s) were sealed to an earlier key: enter them again.");
    }
    ExitCode::SUCCESS
}

async fn list_runners(url: &SecretString) -> ExitCode {
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    match crate::scans::runner_tokens::list(&mut conn).await {
        Ok(runners) => {
            println!(
                "{:>6}  {:<14}  {:<24}  {:<10}  name",
                "id", "token", "last seen", "state"
            );
            for r in runners {
                let seen = r
                    .last_seen_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "never".into());
                let state = if r.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>6}  swr_{:<10}  {:<24.24}  {:<10}  {}",
                    r.id, r.token_prefix, seen, state, r.name
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(format!("cannot list runners: {error}")),
    }
}

async fn revoke_runner(url: &SecretString, id: i64) -> ExitCode {
    let mut conn = match connect(url).await {
        Ok(conn) => conn,
        Err(code) => return code,
    };
    match crate::scans::runner_tokens::revoke(&mut conn, id).await {
        Ok(true) => {
            println!("runner {id} revoked");
            ExitCode::SUCCESS
        }
        Ok(false) => fail(format!("no active runner has the id {id}")),
        Err(error) => fail(format!("cannot revoke the runner: {error}")),
    }
}
