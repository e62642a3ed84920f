//! `siteward bench-reports`: what a client report costs to make and to print. A client with
//! 10 pages scanned daily for 30 days is built through the service as runners build it: one
//! real scan of a fixture page, then one snapshot a day per page delivered over the runner
//! protocol (a new third-party host each day, a visibly changed screenshot on three days),
//! each ingested and diffed by the app (changes, alerts), then dated a day apart. Making the
//! report (`POST /api/v1/clients/{id}/reports`: gathering from the database and the sealed
//! store, rendering, sealing, storing) is timed, and its document is printed to PDF as a runner
//! prints it (A4, header, page numbers, offline tab) against a bare `Page.printToPDF` of the same
//! document in the same browser — the baseline of both figures.

use std::io::Cursor;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use fixture_sites::{FixtureSites, SHOP};
use scanner::egress::EgressPolicy;
use scanner::{ScanOptions, ScanOutput, Scanner, Supervisor};
use secrecy::{ExposeSecret, SecretString};

use super::bench::{median, ms};
use super::bench_scans::{Api, RunningApp, seed};
use super::serve::ConfigArgs;
use super::{BrowserArgs, print_figure};
use crate::runner::client::AppClient;
use crate::runner::pdf;
use crate::runner::protocol::PdfOrder;

#[derive(Debug, Args)]
pub struct BenchReportsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Reports made and printed (median taken).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Pages of the client.
    #[arg(long, default_value_t = 10)]
    pub pages: usize,
    /// Days of daily scans.
    #[arg(long, default_value_t = 30)]
    pub days: usize,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchReportsArgs) -> ExitCode {
    super::scratch::in_scratch_database(&args.config, "report_bench", async |url| {
        bench_in(url, &args).await
    })
    .await
}

/// The day's version of a page's scan: its URL, a host first seen that day, and on a few days
/// a screenshot with a large block painted over it.
fn day_of(scanned: &ScanOutput, page: &str, day: usize) -> Result<ScanOutput, String> {
    let mut output = scanned.clone();
    output.snapshot.requested_url = page.to_string();
    output.snapshot.final_url = page.to_string();
    output
        .snapshot
        .third_party_hosts
        .push(format!("day{day}.cdn.example"));
    if day % 10 == 5 {
        let mut picture = image::load_from_memory(&output.viewport_png)
            .map_err(|e| e.to_string())?
            .to_rgba8();
        let (width, height) = picture.dimensions();
        for y in height / 4..height * 3 / 4 {
            for x in width / 4..width * 3 / 4 {
                picture.put_pixel(x, y, image::Rgba([(day * 20) as u8, 40, 90, 255]));
            }
        }
        let mut png = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        output.snapshot.screenshots.viewport.sha256 = hex::encode(crate::crypto::sha256(&png));
        output.snapshot.screenshots.viewport.size_bytes = png.len() as u64;
        output.viewport_png = png;
    }
    Ok(output)
}

/// Scans `target` once through the service, delivering `output` as a runner would.
async fn deliver(
    api: &Api,
    runner: &AppClient,
    target: i64,
    output: &ScanOutput,
) -> Result<(), String> {
    api.scan_now(target).await?;
    let job = runner
        .claim(5)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the scan was not queued")?;
    for (name, bytes) in [
        ("viewport.png", &output.viewport_png),
        ("fullpage.png", &output.full_page_png),
    ] {
        runner
            .upload(&job, name, "image/png", bytes.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let document = serde_json::to_vec(&output.snapshot).map_err(|e| e.to_string())?;
    runner
        .complete::<serde_json::Value>(&job, document)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> Result<usize, String> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .map_err(|e| e.to_string())
}

/// Waits until the app has diffed every snapshot (PDF jobs wait for a runner that never comes).
async fn analysed(conn: &mut AsyncPgConnection) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let pending = execute(
            conn,
            "SELECT 1 FROM jobs WHERE state IN ('queued', 'running') AND kind <> 'pdf'",
        )
        .await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{pending} analysis jobs still pending after 10 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Dates each page's snapshots (and their scans and alerts) a day apart, the last one today.
async fn backdate(conn: &mut AsyncPgConnection) -> Result<(), String> {
    execute(
        conn,
        "WITH aged AS (
           SELECT id, rank() OVER (PARTITION BY target_id ORDER BY id DESC) - 1 AS age
           FROM snapshots)
         UPDATE snapshots s SET captured_at = s.captured_at - make_interval(days => aged.age::int)
         FROM aged WHERE aged.id = s.id",
    )
    .await?;
    execute(
        conn,
        "UPDATE scans c SET created_at = s.captured_at FROM snapshots s WHERE s.id = c.snapshot_id",
    )
    .await?;
    execute(
        conn,
        "UPDATE alerts a SET opened_at = s.captured_at
         FROM snapshots s WHERE s.id = a.first_snapshot_id",
    )
    .await?;
    Ok(())
}

async fn bench_in(url: &SecretString, args: &BenchReportsArgs) -> Result<(), String> {
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    let sites = FixtureSites::start().await.map_err(|e| e.to_string())?;
    let pages: Vec<String> = (0..args.pages.max(1))
        .map(|n| sites.url(SHOP, &format!("/bench?page={n}")))
        .collect();
    let seeded = seed(url, &pages, 500, 500).await?;

    // One real scan: the material of every day's snapshot.
    let mut egress = EgressPolicy::public_only().allowing_private();
    for mapping in sites.resolve_args() {
        egress = egress
            .with_resolve_arg(&mapping)
            .map_err(|e| e.to_string())?;
    }
    let options = ScanOptions {
        quiet_period: Duration::from_millis(500),
        min_dwell: Duration::from_millis(500),
        egress,
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(Supervisor::new(args.browser.browser_options(1)));
    let scanned = scanner
        .scan(&pages[0], &options, &|_| {})
        .await
        .map_err(|e| e.to_string())?;

    let app = RunningApp::start(url).await?;
    let outcome = build_and_make(url, &app, &seeded, &pages, &scanned, args).await;
    app.stop().await;
    let (made, made_in, seeding, html) = outcome?;

    let order = PdfOrder {
        report_id: 0,
        html: html.clone(),
        header: "Bench agency · Bench".into(),
    };
    // One of each first, to warm the browser.
    let printed = pdf::render(&scanner, &order)
        .await
        .map_err(|e| e.to_string())?;
    pdf::render_bare(&scanner, &html)
        .await
        .map_err(|e| e.to_string())?;
    let (mut service, mut bare): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        let started = Instant::now();
        pdf::render(&scanner, &order)
            .await
            .map_err(|e| e.to_string())?;
        service.push(started.elapsed());
        let started = Instant::now();
        pdf::render_bare(&scanner, &html)
            .await
            .map_err(|e| e.to_string())?;
        bare.push(started.elapsed());
    }
    scanner.supervisor().shutdown().await;
    let mut made_in = made_in;
    let (make, service, bare) = (
        median(&mut made_in),
        median(&mut service),
        median(&mut bare),
    );
    println!(
        "siteward bench-reports: a client of {} pages, {} days of daily scans ({made} snapshots, delivered and diffed in {:.1} s); median of {} rounds",
        args.pages,
        args.days,
        seeding.as_secs_f64(),
        args.rounds.max(1)
    );
    println!(
        "  making the report:              {:>7.0} ms ({:.1} MB of HTML)",
        ms(make),
        html.len() as f64 / 1e6
    );
    println!(
        "  printing it as a runner does:   {:>7.0} ms ({:.1} MB of PDF)",
        ms(service),
        printed.len() as f64 / 1e6
    );
    println!("  bare Page.printToPDF of it:     {:>7.0} ms", ms(bare));
    let ratio = service.as_secs_f64() / bare.as_secs_f64();
    println!("  runner print / bare print:      {ratio:>9.2}");
    print_figure("reports.pdf_vs_bare_print", ratio);
    print_figure(
        "reports.make_vs_bare_print",
        make.as_secs_f64() / bare.as_secs_f64(),
    );
    Ok(())
}

/// Delivers the days' snapshots, then makes the report `rounds` times: (snapshots, time of
/// each making, time the snapshots took, the last report's document).
async fn build_and_make(
    url: &SecretString,
    app: &RunningApp,
    seeded: &super::bench_scans::Seeded,
    pages: &[String],
    scanned: &ScanOutput,
    args: &BenchReportsArgs,
) -> Result<(usize, Vec<Duration>, Duration, String), String> {
    let mut conn = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let (_, token) = crate::scans::runner_tokens::create(&mut conn, "bench")
        .await
        .map_err(|e| e.to_string())?;
    let runner = AppClient::new(
        url::Url::parse(&app.base).map_err(|e| e.to_string())?,
        token,
    )?;
    let api = Api {
        http: reqwest::Client::new(),
        base: app.base.clone(),
        key: seeded.key.clone(),
    };
    let started = Instant::now();
    let mut made = 0;
    for day in 0..args.days {
        for (page, target) in pages.iter().zip(&seeded.targets) {
            deliver(&api, &runner, *target, &day_of(scanned, page, day)?).await?;
            made += 1;
        }
    }
    analysed(&mut conn).await?;
    backdate(&mut conn).await?;
    let seeding = started.elapsed();
    let mut times = Vec::new();
    let mut last = 0;
    for _ in 0..args.rounds.max(1) {
        let started = Instant::now();
        let response = api
            .http
            .post(format!(
                "{}/api/v1/clients/{}/reports",
                app.base, seeded.client
            ))
            .bearer_auth(&api.key)
            .json(&serde_json::json!({ "days": args.days + 1 }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("making the report answered {}", response.status()));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        last = body["id"].as_i64().ok_or("no report id")?;
    }
    let html = api
        .http
        .get(format!("{}/api/v1/reports/{last}/document", app.base))
        .bearer_auth(&api.key)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if !html.contains("day0.cdn.example") && !html.contains("Fixture page 0") {
        return Err("the report's document does not hold the client's pages".into());
    }
    Ok((made, times, seeding, html))
}
