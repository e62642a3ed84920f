//! The real `siteward runner` process with real Chromium against the real app: a scan end to end,
//! and the faults — a runner killed mid-scan, the blob store down during upload, the app
//! restarted while runners work — each ending in exactly one snapshot.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fixture_sites::{FixtureSites, SHOP};
use reqwest::StatusCode;

use super::support::*;

/// A `siteward runner` process. Dropping it sends SIGTERM, so the runner closes its Chromium.
pub(super) struct Runner(tokio::process::Child);

impl Runner {
    fn pid(&self) -> Option<rustix::process::Pid> {
        self.0
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    }

    /// kill -9, as the OOM killer or a crashed supervisor would; returns the processes the
    /// runner had started (its Chromium and the browser's own), for the caller to watch.
    pub(super) async fn kill_hard(&mut self) -> Vec<rustix::process::Pid> {
        let descendants = self.pid().map(descendants_of).unwrap_or_default();
        self.0.kill().await.expect("SIGKILL the runner");
        descendants
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

/// Every process below `root`, children first.
fn descendants_of(root: rustix::process::Pid) -> Vec<rustix::process::Pid> {
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        for child in children_of(parent) {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// Whether `pid` still runs (a zombie, exited and waiting for its parent to reap it, does not).
fn running(pid: rustix::process::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The processes whose parent is `parent` (from /proc).
fn children_of(parent: rustix::process::Pid) -> Vec<rustix::process::Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent.as_raw_nonzero().get()).then(|| rustix::process::Pid::from_raw(pid))?
        })
        .collect()
}

/// Starts `siteward runner` against the app, allowed to reach the fixture sites on loopback.
fn spawn_runner(app: &TestApp, token: &str, sites: &FixtureSites) -> Runner {
    spawn_runner_with(app, token, sites, 2)
}

pub(super) fn spawn_runner_with(
    app: &TestApp,
    token: &str,
    sites: &FixtureSites,
    concurrency: usize,
) -> Runner {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("runner")
        .args(["--allow-private", "--deliver-for", "90s"])
        .args(["--concurrency", &concurrency.to_string()])
        .arg("--resolve")
        .arg(sites.resolve_args().join(","))
        .args(["--trust-spki", sites.spki()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("SITEWARD_APP_URL", &app.base)
        .env("SITEWARD_RUNNER_TOKEN", token)
        .stdout(Stdio::null())
        .spawn()
        .expect("siteward runner starts");
    Runner(child)
}

async fn admin_api(app: &TestApp) -> ApiClient {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    app.api(&key)
}

async fn target_with_wait(api: &ApiClient, url: &str, wait_ms: u32) -> i64 {
    let target = new_target(api, url).await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({ "wait_ms": wait_ms }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    target
}

/// Polls the scan until it is in `state` (panics with the last answer after `limit`).
async fn wait_for(
    api: &ApiClient,
    scan_id: i64,
    state: &str,
    limit: Duration,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let response = api.get(&format!("/api/v1/scans/{scan_id}")).await;
        let scan: serde_json::Value = response.json().await.unwrap();
        if scan["state"] == state {
            return scan;
        }
        assert!(
            started.elapsed() < limit,
            "scan {scan_id} did not become {state} within {limit:?}: {scan}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_process_scans_a_fixture_site_end_to_end() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let token = runner_token(&app, "e2e").await;
    let _runner = spawn_runner(&app, &token, &sites);
    let target = target_with_wait(&api, &sites.url(SHOP, "/"), 500).await;
    // A French visitor on a phone: the target's visitor settings reach the runner's browser.
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"device": "mobile", "languages": "fr-FR,fr,en", "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let scan_id = scan_now(&api, target).await;
    let scan = wait_for(&api, scan_id, "succeeded", Duration::from_secs(90)).await;
    let snapshot_id = scan["snapshot_id"].as_i64().unwrap();
    let snapshot: serde_json::Value = api
        .get(&format!("/api/v1/snapshots/{snapshot_id}"))
        .await
        .json()
        .await
        .unwrap();
    let visitor = &snapshot["snapshot"]["options"]["visitor"];
    assert_eq!(visitor["device"], "mobile", "{visitor}");
    assert_eq!(
        visitor["languages"],
        serde_json::json!(["fr-FR", "fr", "en"])
    );
    assert_eq!(visitor["accept_language"], "fr-FR,fr;q=0.9,en;q=0.8");
    assert_eq!(visitor["timezone"], "Europe/Paris");
    let user_agent = snapshot["snapshot"]["browser"]["user_agent"].to_string();
    assert!(
        user_agent.contains("Android") && !user_agent.contains("Headless"),
        "{user_agent}"
    );
    let hosts = snapshot["snapshot"]["third_party_hosts"].to_string();
    assert!(hosts.contains("analytics.test"), "{hosts}");
    assert!(snapshot["request_count"].as_i64().unwrap() > 3);
    let png = api
        .get(&format!(
            "/api/v1/snapshots/{snapshot_id}/artifacts/fullpage.png"
        ))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a real screenshot");
    let found: serde_json::Value = api
        .get("/api/v1/inventory/hosts?host=analytics.test")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found[0]["target_id"], target);
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_runs_a_compliance_scan_and_the_app_finds_exactly_what_the_shop_deserves() {
    use fixture_sites::compliance_sites::PAGES;
    let page = PAGES
        .iter()
        .find(|p| p.path == "/compliance/tracks-after-reject")
        .expect("the fixture exists");
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let _runner = spawn_runner_with(&app, &runner_token(&app, "consent").await, &sites, 4);
    let target = target_with_wait(&api, &sites.url(SHOP, page.path), 500).await;
    let response = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/targets/{target}/compliance-scans"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started = Instant::now();
    let compliance = loop {
        let body: serde_json::Value = api
            .get(&format!("/api/v1/targets/{target}/compliance"))
            .await
            .json()
            .await
            .unwrap();
        if body["latest"]["state"] == "done" || body["latest"]["state"] == "failed" {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the compliance scan did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let latest = &compliance["latest"];
    assert_eq!(latest["state"], "done", "{compliance}");
    let found: std::collections::BTreeSet<&str> = latest["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fingerprint"].as_str().unwrap())
        .collect();
    let expected: std::collections::BTreeSet<&str> = page.findings.iter().copied().collect();
    // Every visit is a scan of its own, with a real snapshot classified by the real lists.
    for visit in latest["visits"].as_array().unwrap() {
        assert_eq!(visit["state"], "succeeded", "{visit}");
    }
    let reject = latest["visits"][1]["snapshot_id"].as_i64().unwrap();
    let snapshot: serde_json::Value = api
        .get(&format!("/api/v1/snapshots/{reject}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["visit"], "reject_all");
    assert!(
        !snapshot["snapshot"]["filter_lists"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let requests: Vec<String> = snapshot["snapshot"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} listed={} after={}",
                r["url"], r["listed"], r["after_answer"]
            )
        })
        .collect();
    assert_eq!(
        found, expected,
        "{}; the reject-all visit's requests: {requests:#?}; settle: {}",
        page.notes, snapshot["snapshot"]["settle"]
    );
    let alerts = app
        .count(&format!(
            "SELECT count(*) AS n FROM alerts WHERE target_id = {target}
             AND rule = 'tracking_after_reject' AND state = 'open'"
        ))
        .await;
    assert_eq!(alerts, 2, "one alert per tracker seen after rejecting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_scan_is_replaced_and_the_scan_finishes_once() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn_with(&[("SITEWARD_RUNNER_LEASE", "3s")]).await;
    let api = admin_api(&app).await;
    // A five-second network-quiet wait keeps the scan busy long enough to kill its runner.
    let target = target_with_wait(&api, &sites.url(SHOP, "/"), 5_000).await;
    // One slot, busy with the scan: no long poll of the dead runner is left to take the job
    // back (that case costs one claim-acknowledgement window and is counted below).
    let doomed = spawn_runner_with(&app, &runner_token(&app, "doomed").await, &sites, 1);
    let scan_id = scan_now(&api, target).await;
    wait_for(&api, scan_id, "running", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut doomed = doomed;
    // The runner runs as root here: its Chromium runs as nobody, with its sandbox.
    let started = doomed.pid().map(descendants_of).unwrap_or_default();
    assert!(!started.is_empty(), "the runner had started its Chromium");
    for pid in &started {
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_nonzero()))
            .unwrap_or_default();
        let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", pid.as_raw_nonzero()))
            .unwrap_or_default();
        if status.is_empty() || !cmdline.contains("chromium") {
            continue; // gone meanwhile, or not the browser
        }
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        if rustix::process::geteuid().is_root() {
            assert_eq!(uid, "65534", "Chromium runs as nobody: {cmdline}");
        }
        assert!(!cmdline.contains("--no-sandbox"), "{cmdline}");
    }
    let browser = doomed.kill_hard().await; // kill -9
    // Its Chromium dies with it (the kernel's parent-death signal), not left behind scanning.
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser.iter().any(|pid| running(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<_> = browser.iter().filter(|pid| running(**pid)).collect();
    assert!(
        left.is_empty(),
        "Chromium processes left after 5 s: {left:?}"
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 0);

    let _heir = spawn_runner(&app, &runner_token(&app, "heir").await, &sites);
    let scan = wait_for(&api, scan_id, "succeeded", Duration::from_secs(90)).await;
    let mut conn = app.db().await;
    #[derive(diesel::QueryableByName, Debug)]
    struct Job {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        holder: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        last_error: Option<String>,
    }
    let job: Job = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT holder, last_error FROM jobs"),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(
        scan["attempts"], 2,
        "the lapsed lease was taken over once: {job:?}"
    );
    assert!(
        job.holder.as_deref().unwrap_or("").contains("heir"),
        "{job:?}"
    );
    assert!(
        job.last_error.as_deref().unwrap_or("").contains("doomed"),
        "{job:?}"
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM scans").await, 1);
    assert_eq!(
        app.count("SELECT attempt::bigint AS n FROM snapshots")
            .await,
        2,
        "the snapshot is the second attempt's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_store_outage_during_upload_is_retried_until_it_is_back() {
    let sites = FixtureSites::start().await.unwrap();
    let mut s3 = S3Server::start();
    let settings = s3.settings("snapshots");
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn_with(&settings).await;
    let api = admin_api(&app).await;
    let target = target_with_wait(&api, &sites.url(SHOP, "/simple"), 300).await;
    let _runner = spawn_runner(&app, &runner_token(&app, "r").await, &sites);
    s3.stop();
    let scan_id = scan_now(&api, target).await;
    wait_for(&api, scan_id, "running", Duration::from_secs(60)).await;
    // The scan finishes but its screenshots cannot be stored: the runner keeps the results and
    // retries while the job stays running.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let scan: serde_json::Value = api
        .get(&format!("/api/v1/scans/{scan_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(scan["state"], "running", "{scan}");
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scan_artifacts").await,
        0
    );

    s3.resume();
    let scan = wait_for(&api, scan_id, "succeeded", Duration::from_secs(90)).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 1);
    let snapshot_id = scan["snapshot_id"].as_i64().unwrap();
    let image = api
        .get(&format!(
            "/api/v1/snapshots/{snapshot_id}/artifacts/viewport.png"
        ))
        .await;
    assert_eq!(
        image.status(),
        StatusCode::OK,
        "the blob is in S3 and opens"
    );
    let stored = std::fs::read_dir(s3.root.path().join("snapshots/org"))
        .expect("blobs under org/<id>/… in the bucket")
        .count();
    assert_eq!(stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_reconnect_and_finish_when_the_app_restarts() {
    let sites = FixtureSites::start().await.unwrap();
    let mut app = TestApp::spawn_with(&[("SITEWARD_RUNNER_LEASE", "20s")]).await;
    let api = admin_api(&app).await;
    let target = target_with_wait(&api, &sites.url(SHOP, "/"), 4_000).await;
    let _runner = spawn_runner(&app, &runner_token(&app, "r").await, &sites);
    let first = scan_now(&api, target).await;
    wait_for(&api, first, "running", Duration::from_secs(60)).await;
    app.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.start_again().await;
    let scan = wait_for(&api, first, "succeeded", Duration::from_secs(90)).await;
    assert_eq!(
        scan["attempts"], 1,
        "the runner kept its attempt through the restart"
    );
    // And it claims new work from the restarted app.
    let second = scan_now(&api, target).await;
    wait_for(&api, second, "succeeded", Duration::from_secs(90)).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_changes_between_two_scans_yields_exactly_its_changes_and_noise_none() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let _runner = spawn_runner(&app, &runner_token(&app, "r").await, &sites);
    let changing = target_with_wait(&api, &sites.url(SHOP, "/changing"), 500).await;
    let noisy = target_with_wait(&api, &sites.url(SHOP, "/noisy"), 300).await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{noisy}"),
            serde_json::json!({"ignore_selectors": ["#clock", ".ad"],
                               "ignore_regions": [{"x": 0, "y": 0, "width": 1280, "height": 100}]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let mut last = std::collections::HashMap::new();
    for round in 0..2 {
        sites.set_version(round);
        for target in [changing, noisy] {
            let scan = scan_now(&api, target).await;
            let done = wait_for(&api, scan, "succeeded", Duration::from_secs(90)).await;
            last.insert(target, done["snapshot_id"].as_i64().unwrap());
        }
    }
    let changes = computed_changes(&api, last[&changing]).await;
    assert_eq!(
        kinds(&changes),
        [
            "cookie_added",
            "third_party_host_added",
            "third_party_host_removed",
            "request_host_added",
            "script_added",
            "script_content_changed",
            "policy_text_changed",
            "visual_changed",
            "visual_changed",
        ],
        "{changes}"
    );
    let text = changes.to_string();
    assert!(text.contains("_trk") && text.contains("ads.test") && text.contains("analytics.test"));
    assert!(
        text.contains("advertising partners"),
        "the policy diff shows the new paragraph"
    );
    let noise = computed_changes(&api, last[&noisy]).await;
    assert_eq!(kinds(&noise), Vec::<String>::new(), "{noise}");
    // The noise raised no alert; the real change did.
    let alerts = |target: i64| {
        let api = &api;
        async move {
            let body: serde_json::Value = api
                .get(&format!("/api/v1/alerts?target_id={target}"))
                .await
                .json()
                .await
                .unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["rule"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(alerts(noisy).await, Vec::<String>::new());
    let raised = alerts(changing).await;
    assert!(
        raised.contains(&"new_third_party_host".to_string()),
        "{raised:?}"
    );
    assert!(
        raised.contains(&"cookie_before_consent".to_string()),
        "{raised:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_prints_each_report_to_a_pdf_that_says_what_the_report_says() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let _runner = spawn_runner(&app, &runner_token(&app, "pdf").await, &sites);
    let target = target_with_wait(&api, &sites.url(SHOP, "/"), 500).await;
    let scan = scan_now(&api, target).await;
    wait_for(&api, scan, "succeeded", Duration::from_secs(90)).await;
    let client = app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {target}"
        ))
        .await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            "/api/v1/branding",
            serde_json::json!({"name": "Webwerk Studio"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = api
        .send_json(
            reqwest::Method::POST,
            &format!("/api/v1/clients/{client}/reports"),
            serde_json::json!({"days": 7}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let report: serde_json::Value = response.json().await.unwrap();
    let id = report["id"].as_i64().unwrap();
    assert_eq!(report["pdf_ready"], false);
    // While the runner prints it, the PDF is not there yet (409), then it is.
    let started = Instant::now();
    let pdf = loop {
        let response = api.get(&format!("/api/v1/reports/{id}/pdf")).await;
        if response.status() == StatusCode::OK {
            assert_eq!(response.headers()["content-type"], "application/pdf");
            break response.bytes().await.unwrap();
        }
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the PDF was never printed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(pdf.starts_with(b"%PDF-"));
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let output = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/test installs poppler-utils)");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    // What the HTML report says, with the agency's line and page numbers on every page.
    assert!(text.contains("Summary"), "{text}");
    assert!(text.contains("Third-party hosts"), "{text}");
    assert!(text.contains("analytics.test"), "{text}");
    assert!(text.contains("Webwerk Studio"), "{text}");
    assert!(text.contains("Page 1 of"), "{text}");
    assert!(!text.contains("elsewhere"), "{text}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM jobs WHERE kind = 'pdf' AND state = 'done'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_pages_security_headers_are_watched_and_a_dropped_csp_is_critical() {
    use fixture_sites::payment_page;
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let _runner = spawn_runner(&app, &runner_token(&app, "headers").await, &sites);
    let payment = target_with_wait(&api, &sites.url(SHOP, "/payment"), 300).await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{payment}"),
            serde_json::json!({"page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // An ordinary page whose headers change the same way: a change, but not critical.
    let page = target_with_wait(&api, &sites.url(SHOP, "/payment?plain"), 300).await;

    let scan_both = async || {
        let mut snapshots = Vec::new();
        for target in [payment, page] {
            let scan = scan_now(&api, target).await;
            let done = wait_for(&api, scan, "succeeded", Duration::from_secs(90)).await;
            let snapshot = done["snapshot_id"].as_i64().unwrap();
            // Compared (and its alerts raised) before anyone looks.
            computed_changes(&api, snapshot).await;
            snapshots.push(snapshot);
        }
        snapshots
    };
    scan_both().await;
    // The same page again (a new session cookie value, the same attributes): nothing changed.
    let again = scan_both().await;
    assert_eq!(
        kinds(&computed_changes(&api, again[0]).await),
        Vec::<String>::new()
    );
    sites.set_version(payment_page::CSP_DROPPED);
    let dropped = scan_both().await;
    let changes = computed_changes(&api, dropped[0]).await;
    assert_eq!(kinds(&changes), ["security_header_changed"], "{changes}");
    assert_eq!(changes["changes"][0]["header"], "content-security-policy");
    assert!(
        changes["changes"][0]["before"]
            .as_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(changes["changes"][0]["after"].is_null());

    let alerts = |target: i64| {
        let api = &api;
        async move {
            let body: serde_json::Value = api
                .get(&format!("/api/v1/alerts?target_id={target}"))
                .await
                .json()
                .await
                .unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                // The scripts' own alerts (unreviewed in the inventory) are another test's.
                .filter(|a| a["rule"].as_str().unwrap().ends_with("header_changed"))
                .map(|a| {
                    format!(
                        "{} {} {}",
                        a["rule"].as_str().unwrap(),
                        a["severity"].as_str().unwrap(),
                        a["title"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let raised = alerts(payment).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0].starts_with(
            "payment_header_changed critical The page no longer sends Content-Security-Policy"
        ),
        "{raised:?}"
    );
    let raised = alerts(page).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0].starts_with("security_header_changed medium"),
        "{raised:?}"
    );

    // Loosened: a change from the dropped state back to a CSP that lets any script in.
    sites.set_version(payment_page::CSP_LOOSENED);
    let loosened = scan_both().await;
    let changes = computed_changes(&api, loosened[0]).await;
    assert_eq!(kinds(&changes), ["security_header_changed"], "{changes}");
    assert!(
        changes["changes"][0]["after"]
            .as_str()
            .unwrap()
            .contains("script-src * 'unsafe-inline'"),
        "{changes}"
    );
}

/// The payment inventory of a target, by script name: (identity, versions as
/// (sha256, standing, current, in_iframe, injected_by, integrity_state)).
async fn payment_inventory(api: &ApiClient, target: i64) -> serde_json::Value {
    let response = api
        .get(&format!("/api/v1/targets/{target}/payment-scripts"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The script of the inventory whose identity ends with `suffix`.
fn script_ending<'a>(inventory: &'a serde_json::Value, suffix: &str) -> &'a serde_json::Value {
    inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identity"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no script ending {suffix} in {inventory}"))
}

/// Open alerts of a target as "rule: title".
async fn open_alerts(api: &ApiClient, target: i64) -> Vec<String> {
    let body: serde_json::Value = api
        .get(&format!("/api/v1/alerts?target_id={target}&state=open"))
        .await
        .json()
        .await
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}: {}",
                a["rule"].as_str().unwrap(),
                a["title"].as_str().unwrap()
            )
        })
        .collect()
}

async fn decide(api: &ApiClient, version: i64, decision: &str, why: &str) -> reqwest::Response {
    api.send_json(
        reqwest::Method::POST,
        &format!("/api/v1/payment-script-versions/{version}/decisions"),
        serde_json::json!({"decision": decision, "justification": why}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_pages_scripts_are_inventoried_authorized_and_every_attack_alerts() {
    use fixture_sites::payment_page::{self, *};
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let _runner = spawn_runner(&app, &runner_token(&app, "pci").await, &sites);
    let target = target_with_wait(&api, &sites.url(SHOP, "/payment"), 300).await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let scan_as = async |version: u8| {
        sites.set_version(version);
        let scan = scan_now(&api, target).await;
        let done = wait_for(&api, scan, "succeeded", Duration::from_secs(90)).await;
        computed_changes(&api, done["snapshot_id"].as_i64().unwrap()).await;
    };

    // The baseline: every script listed as what it is, all unreviewed, each a critical alert.
    scan_as(BASELINE).await;
    let inventory = payment_inventory(&api, target).await;
    let identities: Vec<&str> = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["identity"].as_str().unwrap())
        .collect();
    assert_eq!(identities.len(), 4, "{identities:?}");
    let vendor = &script_ending(&inventory, "/pay/vendor.js")["versions"][0];
    assert_eq!(vendor["integrity_state"], "matches");
    assert_eq!(
        vendor["integrity"],
        payment_page::sri("window.checkoutVendor = { name: 'fixture-vendor', version: '4.2.0' };")
    );
    let library = &script_ending(&inventory, "/pay/lib.js")["versions"][0];
    assert_eq!(library["integrity_state"], "missing");
    assert_eq!(library["in_iframe"], false);
    let card = &script_ending(&inventory, "/card.js")["versions"][0];
    assert_eq!(card["in_iframe"], true);
    assert_eq!(card["integrity_state"], "not_applicable");
    let inline = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "inline")
        .unwrap();
    assert!(
        inline["versions"][0]["first_bytes"]
            .as_str()
            .unwrap()
            .contains("checkoutConfig")
    );
    let alerts = open_alerts(&api, target).await;
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    assert!(
        alerts
            .iter()
            .all(|a| a.starts_with("payment_script_unauthorized: Unreviewed"))
    );
    // The proposal allows nothing yet: nothing is authorized.
    assert!(
        inventory["proposed_csp"]
            .as_str()
            .unwrap()
            .starts_with("script-src 'none'")
    );

    // Authorizing clears each alert; the decision is on record with who and why.
    for script in inventory["scripts"].as_array().unwrap() {
        let version = script["versions"][0]["id"].as_i64().unwrap();
        assert_eq!(
            decide(&api, version, "authorized", "Needed to take the payment")
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(open_alerts(&api, target).await, Vec::<String>::new());
    let inventory = payment_inventory(&api, target).await;
    let decision = &script_ending(&inventory, "/pay/lib.js")["versions"][0]["decisions"][0];
    assert_eq!(decision["decision"], "authorized");
    assert_eq!(decision["justification"], "Needed to take the payment");
    let proposed = inventory["proposed_csp"].as_str().unwrap();
    let cdn = sites.url(fixture_sites::CDN, "");
    let pay = sites.url(fixture_sites::PAY, "");
    // Exactly the authorized scripts, not their whole origin.
    let cdn_origin = cdn.trim_end_matches('/');
    assert!(
        proposed.starts_with(&format!(
            "script-src {cdn_origin}/pay/lib.js {cdn_origin}/pay/vendor.js 'sha256-"
        )),
        "{proposed}"
    );
    // The page's own policy already allows them (its CDN origin, `'unsafe-inline'`).
    assert_eq!(
        inventory["csp_differences"][0]["missing"],
        serde_json::json!([]),
        "{}",
        inventory["csp_differences"]
    );
    assert!(
        proposed.contains(&format!("frame-src {}", pay.trim_end_matches('/'))),
        "{proposed}"
    );
    // The page's own policy allows inline script wholesale: wider than the proposal.
    assert!(
        inventory["csp_differences"][0]["wider"]
            .to_string()
            .contains("'unsafe-inline'")
    );

    // An authorized script's body changes: a new, unreviewed version of the same script.
    scan_as(SCRIPT_CHANGED).await;
    let alerts = open_alerts(&api, target).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains("/pay/lib.js"), "{alerts:?}");
    let inventory = payment_inventory(&api, target).await;
    let library = script_ending(&inventory, "/pay/lib.js");
    assert_eq!(library["versions"].as_array().unwrap().len(), 2);
    assert_eq!(library["versions"][0]["standing"], "unreviewed");
    assert_eq!(library["versions"][1]["standing"], "authorized");

    // A skimmer injected by the library: listed with what injected it, and alerted.
    scan_as(SKIMMER_INJECTED).await;
    let inventory = payment_inventory(&api, target).await;
    let skimmer = script_ending(&inventory, "/assets/skim.js");
    assert!(
        skimmer["versions"][0]["injected_by"]
            .as_str()
            .unwrap()
            .ends_with("/pay/lib.js"),
        "{skimmer}"
    );
    let alerts = open_alerts(&api, target).await;
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("/assets/skim.js") && a.contains("injected by")),
        "{alerts:?}"
    );
    // Rejected, it stays a critical alert for as long as it runs.
    let skimmer_version = skimmer["versions"][0]["id"].as_i64().unwrap();
    assert_eq!(
        decide(&api, skimmer_version, "rejected", "Nobody added this")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert!(
        open_alerts(&api, target)
            .await
            .iter()
            .any(|a| a.contains("/assets/skim.js"))
    );

    // A changed inline script is a new script, unreviewed.
    scan_as(INLINE_CHANGED).await;
    let alerts = open_alerts(&api, target).await;
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("inline `window.checkoutConfig = { currency: 'EUR', collect")),
        "{alerts:?}"
    );
    // The skimmer is gone from the page: its alert resolved itself.
    assert!(
        !alerts.iter().any(|a| a.contains("/assets/skim.js")),
        "{alerts:?}"
    );

    // A script added inside the payment provider's iframe: listed as such, alerted; an owner's
    // rule for the provider's host authorizes it (and every later version from that host)...
    scan_as(IFRAME_SCRIPT_ADDED).await;
    let inventory = payment_inventory(&api, target).await;
    assert_eq!(
        script_ending(&inventory, "/fraud.js")["versions"][0]["in_iframe"],
        true
    );
    assert!(
        open_alerts(&api, target)
            .await
            .iter()
            .any(|a| a.contains("/fraud.js"))
    );
    let pay_host = url::Url::parse(&pay)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let cdn_host = url::Url::parse(&cdn)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let form = owner
        .post_form(
            "/payment-rules",
            &[
                ("host", pay_host.as_str()),
                ("justification", "Our payment provider's card fields"),
            ],
        )
        .await;
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    let alerts = open_alerts(&api, target).await;
    assert!(
        !alerts.iter().any(|a| a.contains("/fraud.js")),
        "{alerts:?}"
    );
    let inventory = payment_inventory(&api, target).await;
    let fraud = &script_ending(&inventory, "/fraud.js")["versions"][0];
    assert_eq!(fraud["standing"], "authorized");
    assert!(
        fraud["decisions"][0]["decided_by_name"]
            .as_str()
            .unwrap()
            .contains(&pay_host)
    );
    // ...but not scripts of another host.
    assert_eq!(
        script_ending(&inventory, "/pay/lib.js")["versions"][0]["standing"],
        "unreviewed"
    );
    assert_ne!(pay_host, cdn_host);

    // A script leaves and comes back with a body seen before: no new alert; with a body
    // never seen before: its own critical alert.
    scan_as(SCRIPT_REMOVED).await;
    scan_as(SCRIPT_CHANGED).await;
    assert!(
        !open_alerts(&api, target)
            .await
            .iter()
            .any(|a| a.starts_with("payment_script_returned"))
    );
    scan_as(SCRIPT_REMOVED).await;
    scan_as(SCRIPT_RETURNED).await;
    let alerts = open_alerts(&api, target).await;
    assert!(
        alerts
            .iter()
            .any(|a| a.starts_with("payment_script_returned") && a.contains("/pay/lib.js")),
        "{alerts:?}"
    );
}
