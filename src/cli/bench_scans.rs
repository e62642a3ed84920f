//! `siteward bench-scans`: end-to-end scans through the whole service — "Scan now" over the API,
//! the queue, a `siteward runner` process at concurrency 2, sealed uploads, ingestion — until the
//! snapshot is visible over the API, on a fixture page. Measured against the scan itself in the
//! same run: each snapshot's own scan time, and the same scans run straight in a browser.
//! Runs the app on a scratch database it creates and drops, with blobs in a temporary folder.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fixture_sites::{FixtureSites, SHOP};
use scanner::egress::EgressPolicy;
use scanner::{ScanOptions, Scanner, Supervisor};
use secrecy::{ExposeSecret, SecretString};

use super::BrowserArgs;
use super::serve::ConfigArgs;
use crate::app::Application;
use crate::auth::{Actor, OrgCtx, Role};

#[derive(Debug, Args)]
pub struct BenchScansArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Scans one at a time, for the latency figures.
    #[arg(long, default_value_t = 10)]
    pub sequential: usize,
    /// Scans asked for at once, for the throughput figures.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// The runner's concurrency.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// The target's quiet period in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub wait_ms: u32,
    /// The target's least wait after load in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    pub dwell_ms: u32,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchScansArgs) -> ExitCode {
    super::scratch::in_scratch_database(&args.config, "scan_bench", async |url| {
        bench_in(url, &args).await
    })
    .await
}

/// What [`seed`] made.
pub(super) struct Seeded {
    /// A read-write API key of the organization.
    pub key: String,
    pub client: i64,
    /// One per page, in order.
    pub targets: Vec<i64>,
}

/// An organization with a read-write API key and one client with a target per page, made
/// straight in the database.
pub(super) async fn seed(
    url: &SecretString,
    pages: &[String],
    wait_ms: u32,
    dwell_ms: u32,
) -> Result<Seeded, String> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut conn = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let user: Id = diesel::sql_query(
        "INSERT INTO users (email, name, password_hash) VALUES ('bench@example.com', 'Bench', 'x') RETURNING id",
    )
    .get_result(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let org = crate::orgs::queries::create_org(&mut conn, "Bench", user.id)
        .await
        .map_err(|e| e.to_string())?;
    let ctx = OrgCtx {
        org_id: org,
        role: Role::Owner,
        actor: Actor::User {
            id: user.id,
            email: "bench@example.com".into(),
        },
        ip: "127.0.0.1".into(),
    };
    let (_, key) = crate::keys::queries::create(
        &mut conn,
        &ctx,
        "bench",
        crate::keys::queries::Scope::ReadWrite,
    )
    .await
    .map_err(|e| e.to_string())?;
    let client = crate::sites::queries::insert_client(
        &mut conn,
        &ctx,
        &crate::sites::queries::ClientFields {
            name: "Bench".into(),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut targets = Vec::with_capacity(pages.len());
    for (n, page) in pages.iter().enumerate() {
        let target: Id = diesel::sql_query(
            "INSERT INTO targets (org_id, client_id, name, url, viewport_width, viewport_height,
                                  consent_mode, capture_policy_pages, wait_ms, dwell_ms, enabled)
             VALUES ($1, $2, $3, $4, 1366, 768, 'none', false, $5, $6, true)
             RETURNING id",
        )
        .bind::<diesel::sql_types::BigInt, _>(org)
        .bind::<diesel::sql_types::BigInt, _>(client.id)
        .bind::<diesel::sql_types::Text, _>(format!("Fixture page {n}"))
        .bind::<diesel::sql_types::Text, _>(page)
        .bind::<diesel::sql_types::Integer, _>(wait_ms as i32)
        .bind::<diesel::sql_types::Integer, _>(dwell_ms as i32)
        .get_result(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        targets.push(target.id);
    }
    Ok(Seeded {
        key,
        client: client.id,
        targets,
    })
}

/// The service's API as a benchmark calls it.
pub(super) struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub async fn scan_now(&self, target: i64) -> Result<i64, String> {
        let response = self
            .http
            .post(format!("{}/api/v1/targets/{target}/scans", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() != 202 {
            return Err(format!("Scan now answered {}", response.status()));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        body["id"].as_i64().ok_or("no scan id".into())
    }

    /// Polls until the scan has succeeded.
    pub async fn finished(&self, scan: i64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let body = self.get(&format!("/api/v1/scans/{scan}")).await?;
            match body["state"].as_str() {
                Some("succeeded") => return Ok(()),
                Some("failed") => return Err(format!("scan {scan} failed: {}", body["error"])),
                _ if Instant::now() > deadline => return Err(format!("scan {scan} timed out")),
                _ => tokio::time::sleep(Duration::from_millis(POLL_MS)).await,
            }
        }
    }

    /// Polls until the scan's snapshot is readable; returns the snapshot's own scan time.
    async fn visible(&self, scan: i64) -> Result<Duration, String> {
        self.finished(scan).await?;
        let body = self.get(&format!("/api/v1/scans/{scan}")).await?;
        let snapshot = body["snapshot_id"].as_i64().unwrap_or(0);
        let meta = self.get(&format!("/api/v1/snapshots/{snapshot}")).await?;
        let ms = meta["scan_ms"].as_u64().ok_or("snapshot without scan_ms")?;
        Ok(Duration::from_millis(ms))
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }
}

/// How often "visible" is checked; half of it is the average overshoot.
const POLL_MS: u64 = 20;

async fn bench_in(url: &SecretString, args: &BenchScansArgs) -> Result<(), String> {
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    let sites = FixtureSites::start().await.map_err(|e| e.to_string())?;
    let page = sites.url(SHOP, "/bench");
    let seeded = seed(
        url,
        std::slice::from_ref(&page),
        args.wait_ms,
        args.dwell_ms,
    )
    .await?;
    let (key, target) = (seeded.key, seeded.targets[0]);
    let app = RunningApp::start(url).await?;
    let base = app.base.clone();
    let mut conn = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let runner = spawn_runner(&mut conn, &base, &sites, &args.browser, args.concurrency).await?;
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base,
        key,
    });

    let outcome = measure(&api, target, args).await;
    let baseline = if outcome.is_ok() {
        direct_scans(&page, &sites, args).await
    } else {
        Err("skipped".into())
    };
    stop_runner(runner).await;
    app.stop().await;
    drop(conn);
    let (latency, throughput) = outcome?;
    let direct = baseline?;
    report(args, &latency, throughput, direct);
    Ok(())
}

/// A `siteward runner` process with `concurrency` slots, on a fresh runner token.
pub(super) async fn spawn_runner(
    conn: &mut AsyncPgConnection,
    base: &str,
    sites: &FixtureSites,
    browser: &BrowserArgs,
    concurrency: usize,
) -> Result<tokio::process::Child, String> {
    let (_, token) = crate::scans::runner_tokens::create(conn, &format!("bench-{concurrency}"))
        .await
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    tokio::process::Command::new(exe)
        .arg("runner")
        .args(["--concurrency", &concurrency.to_string(), "--allow-private"])
        .arg("--resolve")
        .arg(sites.resolve_args().join(","))
        .arg("--chromium")
        .arg(&browser.chromium)
        .env("SITEWARD_APP_URL", base)
        .env("SITEWARD_RUNNER_TOKEN", token.expose_secret())
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the runner: {e}"))
}

/// Stops a runner started by [`spawn_runner`]: SIGTERM (it closes its Chromium), then kill.
pub(super) async fn stop_runner(mut runner: tokio::process::Child) {
    if let Some(pid) = runner
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), runner.wait()).await;
    let _ = runner.start_kill();
}

/// The app on a scratch database, in this process, with blobs in a temporary folder; no
/// embedded runner, no scheduler.
pub(super) struct RunningApp {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
    data: std::path::PathBuf,
}

impl RunningApp {
    pub async fn start(url: &SecretString) -> Result<RunningApp, String> {
        let data = std::env::temp_dir().join(format!(
            "siteward-bench-{}",
            hex::encode(crate::crypto::random_bytes::<4>())
        ));
        let env = vec![
            ("SITEWARD_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            ("SITEWARD_DATA_DIR".into(), data.display().to_string()),
            ("SITEWARD_EMBEDDED_RUNNER".into(), "false".into()),
            ("SITEWARD_SCHEDULER".into(), "false".into()),
            ("SITEWARD_DATABASE_POOL_SIZE".into(), "8".into()),
        ];
        let config = crate::config::Config::load(None, env).map_err(|e| e.to_string())?;
        let app = Application::build(config, url)
            .await
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run());
        Ok(RunningApp { base, handle, data })
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// (end-to-end, scan alone) per sequential scan, and the batch's scans per minute.
async fn measure(
    api: &Arc<Api>,
    target: i64,
    args: &BenchScansArgs,
) -> Result<(Vec<(Duration, Duration)>, f64), String> {
    // Warm-up: the runner's browser, the app's pool and caches.
    for _ in 0..2 {
        let scan = api.scan_now(target).await?;
        api.visible(scan).await?;
    }
    let mut latency = Vec::new();
    for _ in 0..args.sequential {
        let started = Instant::now();
        let scan = api.scan_now(target).await?;
        let scan_time = api.visible(scan).await?;
        latency.push((started.elapsed(), scan_time));
    }
    let started = Instant::now();
    let mut scans = Vec::new();
    for _ in 0..args.batch {
        scans.push(api.scan_now(target).await?);
    }
    // One poller, in the order they were asked for (they finish roughly in that order), so the
    // measuring itself does not load the app.
    for scan in scans {
        api.finished(scan).await?;
    }
    let per_minute = args.batch as f64 / started.elapsed().as_secs_f64() * 60.0;
    Ok((latency, per_minute))
}

/// The same scans straight in one browser at the same concurrency: scans per minute.
async fn direct_scans(
    page: &str,
    sites: &FixtureSites,
    args: &BenchScansArgs,
) -> Result<f64, String> {
    let mut egress = EgressPolicy::public_only().allowing_private();
    for mapping in sites.resolve_args() {
        egress = egress
            .with_resolve_arg(&mapping)
            .map_err(|e| e.to_string())?;
    }
    let options = ScanOptions {
        quiet_period: Duration::from_millis(u64::from(args.wait_ms)),
        min_dwell: Duration::from_millis(u64::from(args.dwell_ms)),
        egress,
        ..ScanOptions::default()
    };
    let scanner = Arc::new(Scanner::new(Supervisor::new(
        args.browser.browser_options(args.concurrency),
    )));
    for _ in 0..2 {
        scanner
            .scan(page, &options, &|_| {})
            .await
            .map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..args.concurrency {
        let (scanner, options, next, page) = (
            scanner.clone(),
            options.clone(),
            next.clone(),
            page.to_string(),
        );
        let total = args.batch;
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                scanner
                    .scan(&page, &options, &|_| {})
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| e.to_string())??;
    }
    let per_minute = args.batch as f64 / started.elapsed().as_secs_f64() * 60.0;
    scanner.supervisor().shutdown().await;
    Ok(per_minute)
}

fn report(args: &BenchScansArgs, latency: &[(Duration, Duration)], per_minute: f64, direct: f64) {
    let mean = |pick: fn(&(Duration, Duration)) -> Duration| {
        latency.iter().map(pick).sum::<Duration>().as_secs_f64() / latency.len().max(1) as f64
    };
    let end_to_end = mean(|l| l.0);
    let scan_alone = mean(|l| l.1);
    let mut ratios: Vec<f64> = latency
        .iter()
        .map(|(e2e, scan)| e2e.as_secs_f64() / scan.as_secs_f64().max(0.001))
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    let median_ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
    println!(
        "end-to-end scans (\"Scan now\" to snapshot visible), fixture page, one runner at concurrency {}",
        args.concurrency
    );
    println!(
        "  one at a time ({} scans): end-to-end {:.0} ms, the scan itself {:.0} ms → {:.3}× (median {:.3}×; target ≤ 1.15×)",
        latency.len(),
        end_to_end * 1000.0,
        scan_alone * 1000.0,
        end_to_end / scan_alone.max(0.001),
        median_ratio
    );
    println!(
        "  time outside the scan: {:.0} ms = {:.1} % (queue hand-off, uploads, sealing, ingestion, {POLL_MS} ms polling)",
        (end_to_end - scan_alone) * 1000.0,
        (1.0 - scan_alone / end_to_end.max(0.001)) * 100.0
    );
    println!(
        "  {} at once: {per_minute:.1} scans/min end to end; the same scans straight in one browser: {direct:.1} scans/min → {:.3}×",
        args.batch,
        direct / per_minute.max(0.001)
    );
    super::print_figure("scans.end_to_end_vs_scan_median", median_ratio);
    super::print_figure(
        "scans.direct_vs_service_batch",
        direct / per_minute.max(0.001),
    );
}
