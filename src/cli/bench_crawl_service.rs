//! `siteward bench-crawl-service`: a 20-page crawl of the outdoor fixture site through the whole
//! service — "Crawl now" over the API, lanes and pages as jobs, a `siteward runner` process,
//! sealed uploads, the frontier in PostgreSQL, the site snapshot built — at runner concurrency 1
//! and 4, against the same 20 URLs as separate page targets scanned through the service in the
//! same run. The goal: the crawl no slower than the separate scans, and faster in one session.
//! Runs the app on a scratch database it creates and drops, with blobs in a temporary folder.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fixture_sites::FixtureSites;
use fixture_sites::outdoor::OUTDOOR;
use scanner::crawl::CrawlRules;
use secrecy::{ExposeSecret, SecretString};

use super::BrowserArgs;
use super::bench::{median, ms};
use super::bench_scans::{Api, RunningApp, seed, spawn_runner, stop_runner};
use super::print_figure;
use super::serve::ConfigArgs;

#[derive(Debug, Args)]
pub struct BenchCrawlServiceArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Rounds of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pages per crawl.
    #[arg(long, default_value_t = 20)]
    pub pages: usize,
    /// Every page's quiet period in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub wait_ms: u32,
    /// Every page's least wait after load in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub dwell_ms: u32,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

/// Runner slots measured (the crawl's lanes follow them).
const SLOTS: [usize; 2] = [1, 4];

pub async fn run(args: BenchCrawlServiceArgs) -> ExitCode {
    super::scratch::in_scratch_database(&args.config, "crawl_bench", async |url| {
        bench_in(url, &args).await
    })
    .await
}

async fn execute(conn: &mut AsyncPgConnection, sql: String) -> Result<(), String> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn bench_in(url: &SecretString, args: &BenchCrawlServiceArgs) -> Result<(), String> {
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    let sites = FixtureSites::start().await.map_err(|e| e.to_string())?;
    let start = sites.url(OUTDOOR, "/");
    let seeded = seed(
        url,
        std::slice::from_ref(&start),
        args.wait_ms,
        args.dwell_ms,
    )
    .await?;
    let site_target = seeded.targets[0];
    let mut conn = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let rules = CrawlRules {
        max_pages: args.pages,
        // Enough of each template that the site has the pages asked for.
        per_template: args.pages,
        ..CrawlRules::default()
    };
    let rules = serde_json::to_string(&rules).map_err(|e| e.to_string())?;
    execute(
        &mut conn,
        format!(
            "UPDATE targets SET kind = 'site', crawl_rules = '{}'::jsonb WHERE id = {site_target}",
            rules.replace('\'', "''")
        ),
    )
    .await?;
    let app = RunningApp::start(url).await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: app.base.clone(),
        key: seeded.key.clone(),
    };
    let outcome = measure(&mut conn, &api, &sites, site_target, seeded.client, args).await;
    app.stop().await;
    sites.stop().await;
    outcome
}

async fn measure(
    conn: &mut AsyncPgConnection,
    api: &Api,
    sites: &FixtureSites,
    site_target: i64,
    client: i64,
    args: &BenchCrawlServiceArgs,
) -> Result<(), String> {
    let mut page_targets: Vec<i64> = Vec::new();
    for slots in SLOTS {
        execute(conn, format!("UPDATE orgs SET crawl_concurrency = {slots}")).await?;
        let runner = spawn_runner(conn, &api.base, sites, &args.browser, slots).await?;
        // A first crawl warms the runner's browser and the server, and names the pages.
        let urls = crawl(api, site_target).await?.1;
        if page_targets.is_empty() {
            page_targets = page_targets_of(conn, client, &urls, args).await?;
            println!(
                "siteward bench-crawl-service: {} pages of the outdoor fixture site through the service, median of {} rounds",
                urls.len(),
                args.rounds
            );
        }
        let (mut crawls, mut scans) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            crawls.push(crawl(api, site_target).await?.0);
            scans.push(separate(api, &page_targets).await?);
        }
        stop_runner(runner).await;
        let (crawl_time, scan_time) = (median(&mut crawls), median(&mut scans));
        let per_minute = |d: Duration| urls.len() as f64 * 60.0 / d.as_secs_f64().max(0.001);
        println!(
            "  runner concurrency {slots}: crawl {:>7.0} ms ({:>5.1} pages/min), separate page targets {:>7.0} ms ({:>5.1} pages/min)",
            ms(crawl_time),
            per_minute(crawl_time),
            ms(scan_time),
            per_minute(scan_time)
        );
        let ratio = crawl_time.as_secs_f64() / scan_time.as_secs_f64();
        println!("  crawl / separate page targets, concurrency {slots} (goal <= 1.0): {ratio:.2}");
        print_figure(
            &format!("crawl_service.vs_page_targets_{slots}_slots"),
            ratio,
        );
    }
    Ok(())
}

/// One crawl through the service until its site snapshot is stored: the wall time and the
/// pages it visited.
async fn crawl(api: &Api, target: i64) -> Result<(Duration, Vec<String>), String> {
    let started = Instant::now();
    let response = api
        .http
        .post(format!("{}/api/v1/targets/{target}/crawls", api.base))
        .bearer_auth(&api.key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().as_u16() != 202 {
        return Err(format!("Crawl now answered {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    let id = body["id"].as_i64().ok_or("no crawl id")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let body = api.get(&format!("/api/v1/crawls/{id}")).await?;
        match body["state"].as_str() {
            Some("done") => {
                let took = started.elapsed();
                let site = &body["site"];
                let unreachable = site["unreachable"].as_array().cloned().unwrap_or_default();
                if !unreachable
                    .iter()
                    .all(|u| u["url"].as_str().unwrap_or("").contains("/loop-"))
                {
                    return Err(format!("pages failed: {unreachable:?}"));
                }
                let urls = site["pages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p["final_url"].as_str().map(str::to_owned))
                    .collect();
                return Ok((took, urls));
            }
            Some("failed") => return Err(format!("crawl {id} failed: {}", body["error"])),
            _ if Instant::now() > deadline => return Err(format!("crawl {id} timed out")),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A page target per URL, with the site target's settings.
async fn page_targets_of(
    conn: &mut AsyncPgConnection,
    client: i64,
    urls: &[String],
    args: &BenchCrawlServiceArgs,
) -> Result<Vec<i64>, String> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut targets = Vec::new();
    for url in urls {
        let target: Id = diesel::sql_query(
            "INSERT INTO targets (org_id, client_id, name, url, viewport_width, viewport_height,
                                  consent_mode, capture_policy_pages, wait_ms, dwell_ms, enabled)
             SELECT org_id, id, $2, $2, 1366, 768, 'none', false, $3, $4, true
             FROM clients WHERE id = $1
             RETURNING id",
        )
        .bind::<diesel::sql_types::BigInt, _>(client)
        .bind::<diesel::sql_types::Text, _>(url)
        .bind::<diesel::sql_types::Integer, _>(args.wait_ms as i32)
        .bind::<diesel::sql_types::Integer, _>(args.dwell_ms as i32)
        .get_result(conn)
        .await
        .map_err(|e| e.to_string())?;
        targets.push(target.id);
    }
    Ok(targets)
}

/// The same pages as separate page targets, all asked for at once, until every scan succeeded.
async fn separate(api: &Api, targets: &[i64]) -> Result<Duration, String> {
    let started = Instant::now();
    let mut scans = Vec::new();
    for target in targets {
        scans.push(api.scan_now(*target).await?);
    }
    for scan in scans {
        api.finished(scan).await?;
    }
    Ok(started.elapsed())
}
