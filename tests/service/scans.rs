//! Scans through the runners' internal API, with a runner played by the test: the queue, attempt
//! tokens, idempotent delivery, bad input, tampering, revocation, the scheduler. No browser here;
//! `runner.rs` drives the real `siteward runner` with Chromium.

use reqwest::{Method, StatusCode};

use super::support::*;

async fn admin_api(app: &TestApp) -> ApiClient {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    app.api(&key)
}

/// An API key of a second organization, made by someone who belongs only to it.
async fn other_org_api(app: &TestApp, owner: &Browser) -> ApiClient {
    let other = app.invite_and_sign_up(owner, "member").await;
    let response = other
        .post_form("/orgs", &[("name", &format!("Other {}", unique()))])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let key = app.create_key(&other, "read").await;
    app.api(&key)
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_is_claimed_delivered_once_and_readable_with_its_inventory() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&api, "https://shop.example.com/").await;
    let scan_id = scan_now(&api, target).await;
    let scan = json(api.get(&format!("/api/v1/scans/{scan_id}")).await).await;
    assert_eq!(scan["state"], "queued");
    assert_eq!(scan["trigger"], "api");
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM jobs j JOIN scans s ON s.job_id = j.id WHERE s.id = {scan_id}")).await,
        1,
        "the scan and its job are written together"
    );

    let runner = RunnerApi::new(&app, &runner_token(&app, "r1").await);
    let job = runner
        .claim(5)
        .await
        .expect("the queued scan is handed out");
    assert_eq!(job.scan_id, scan_id);
    assert_eq!(job.url, "https://shop.example.com/");
    let scan = json(api.get(&format!("/api/v1/scans/{scan_id}")).await).await;
    assert_eq!(scan["state"], "running");

    let first = runner.finish(&job).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = json(first).await;
    assert_eq!(first["duplicate"], false);
    // The same attempt sending its snapshot again (a retried request) changes nothing.
    let viewport = fake_png(&format!("viewport {}", job.id));
    let full = fake_png(&format!("full page {}", job.id));
    let again = runner
        .complete(&job, &sample_snapshot(&job.url, &viewport, &full))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again = json(again).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["snapshot_id"], first["snapshot_id"]);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots WHERE scan_id = {scan_id}"
        ))
        .await,
        1,
        "never two snapshots for one scan"
    );
    assert_eq!(
        runner
            .upload(&job, "viewport.png", &viewport)
            .await
            .status(),
        StatusCode::CONFLICT,
        "a completed job's artifacts cannot change"
    );

    let scan = json(api.get(&format!("/api/v1/scans/{scan_id}")).await).await;
    assert_eq!(scan["state"], "succeeded");
    let snapshot_id = scan["snapshot_id"].as_i64().unwrap();
    assert_eq!(Some(snapshot_id), first["snapshot_id"].as_i64());
    let snapshot = json(api.get(&format!("/api/v1/snapshots/{snapshot_id}")).await).await;
    assert_eq!(snapshot["title"], "A <b>shop</b>");
    assert_eq!(
        snapshot["snapshot"]["third_party_hosts"][0],
        "analytics.test"
    );
    let names: Vec<&str> = snapshot["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fullpage.png", "snapshot.json", "viewport.png"]);
    let image = api
        .get(&format!(
            "/api/v1/snapshots/{snapshot_id}/artifacts/viewport.png"
        ))
        .await;
    assert_eq!(image.status(), StatusCode::OK);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().await.unwrap().to_vec(), viewport);

    // The requests download as HAR 1.2, one entry per recorded request.
    let har = api
        .get(&format!("/api/v1/snapshots/{snapshot_id}/har"))
        .await;
    assert_eq!(har.status(), StatusCode::OK);
    assert_eq!(
        har.headers()["content-disposition"],
        format!("attachment; filename=\"snapshot-{snapshot_id}.har\"").as_str()
    );
    let har = json(har).await;
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(
        har["log"]["entries"].as_array().map(Vec::len),
        snapshot["snapshot"]["requests"].as_array().map(Vec::len)
    );
    assert_eq!(har["log"]["pages"][0]["title"], "A <b>shop</b>");

    // Stored sealed: the blob on disk is not the screenshot.
    let blob = std::fs::read(app.data_dir.path().join(format!(
        "blobs/org/{}/snapshot/{snapshot_id}/attempt-1/viewport.png",
        app.count(&format!("SELECT org_id AS n FROM scans WHERE id = {scan_id}")).await
    )))
    .expect("the blob is in the local store under ids only");
    assert!(blob.starts_with(b"SWB"));
    assert!(
        !blob
            .windows(viewport.len())
            .any(|w| w == viewport.as_slice())
    );

    // The inventory answers "which of my targets load host X / set cookie Y".
    let hosts = json(api.get("/api/v1/inventory/hosts?host=analytics.test").await).await;
    assert_eq!(hosts.as_array().unwrap().len(), 1);
    assert_eq!(hosts[0]["target_id"], target);
    let cookies = json(api.get("/api/v1/inventory/cookies?name=_ga").await).await;
    assert_eq!(cookies[0]["matched"], "_ga@.analytics.test");
    let none = json(api.get("/api/v1/inventory/hosts?host=ads.example").await).await;
    assert_eq!(none.as_array().unwrap().len(), 0);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshot_scripts WHERE snapshot_id = {snapshot_id}"
        ))
        .await,
        2
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshot_blocked WHERE snapshot_id = {snapshot_id}"
        ))
        .await,
        1
    );

    // Another organization sees none of it.
    let other = other_org_api(&app, &owner).await;
    assert_eq!(
        other
            .get(&format!("/api/v1/snapshots/{snapshot_id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .get(&format!("/api/v1/snapshots/{snapshot_id}/har"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let theirs = json(
        other
            .get("/api/v1/inventory/hosts?host=analytics.test")
            .await,
    )
    .await;
    assert_eq!(theirs.as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_lost_its_lease_is_refused_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("SITEWARD_RUNNER_LEASE", "2s")]).await;
    let api = admin_api(&app).await;
    let scan_id = scan_now(&api, new_target(&api, "https://shop.example.com/").await).await;
    let slow = RunnerApi::new(&app, &runner_token(&app, "slow").await);
    let fast = RunnerApi::new(&app, &runner_token(&app, "fast").await);
    let lost = slow.claim(5).await.unwrap();
    assert!(
        fast.claim(0).await.is_none(),
        "a leased job is not handed out twice"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let taken = fast
        .claim(5)
        .await
        .expect("the lapsed lease returns the job");
    assert_eq!(taken.scan_id, scan_id);
    assert_eq!(taken.attempt, 2);

    let png = fake_png("late");
    assert_eq!(
        slow.upload(&lost, "viewport.png", &png).await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(slow.heartbeat(&lost).await.status(), StatusCode::CONFLICT);
    assert_eq!(
        slow.complete(&lost, &sample_snapshot(&lost.url, &png, &png))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        slow.fail(&lost, "late").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scan_artifacts").await,
        0
    );

    assert_eq!(fast.finish(&taken).await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 1);
    assert_eq!(
        app.count("SELECT max(attempt)::bigint AS n FROM snapshots")
            .await,
        2
    );
    // The stale attempt still cannot overwrite the finished scan's artifacts.
    assert_eq!(
        slow.upload(&lost, "viewport.png", &png).await.status(),
        StatusCode::CONFLICT
    );
}

/// The race of the security review's finding 7, replayed step by step: the late attempt passed
/// its standing check while it still held the lease, then lost the job, and only then wrote its
/// blob. It must neither change what the finished snapshot's artifact reads back as nor break it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_loses_the_job_mid_upload_cannot_touch_the_winners_artifacts() {
    use siteward::scans::ingest::{self, Standing};
    let app = TestApp::spawn_with(&[("SITEWARD_RUNNER_LEASE", "2s")]).await;
    let api = admin_api(&app).await;
    scan_now(&api, new_target(&api, "https://shop.example.com/").await).await;
    let slow = RunnerApi::new(&app, &runner_token(&app, "slow").await);
    let fast = RunnerApi::new(&app, &runner_token(&app, "fast").await);
    let lost = slow.claim(5).await.unwrap();
    let mut conn = app.db().await;
    let Standing::Holds(late) = ingest::standing(&mut conn, lost.id, &lost.token)
        .await
        .unwrap()
    else {
        panic!("the first attempt holds the job before its lease lapses");
    };
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let taken = fast
        .claim(5)
        .await
        .expect("the lapsed lease returns the job");
    assert_eq!(fast.finish(&taken).await.status(), StatusCode::OK);
    let snapshot_id = app.count("SELECT max(id) AS n FROM snapshots").await;
    let artifact = format!("/api/v1/snapshots/{snapshot_id}/artifacts/viewport.png");
    let winners = api.get(&artifact).await.bytes().await.unwrap();
    assert!(winners.starts_with(b"\x89PNG"));

    let blobs = siteward::storage::SealedBlobs::new(
        siteward::storage::BlobStore::Local(
            siteward::storage::LocalStore::open(&app.data_dir.path().join("blobs"))
                .await
                .unwrap(),
        ),
        siteward::crypto::MasterKeys::parse(
            "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            None,
        )
        .unwrap(),
    );
    let refused = ingest::store_artifact(
        &mut conn,
        &blobs,
        &late,
        &lost.token,
        "viewport.png",
        "image/png",
        &fake_png("the late attempt's screenshot"),
    )
    .await;
    assert!(
        matches!(refused, Err(siteward::web::AppError::Conflict(_))),
        "{refused:?}"
    );
    let response = api.get(&artifact).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the artifact still opens"
    );
    assert_eq!(
        response.bytes().await.unwrap(),
        winners,
        "and is the winner's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_runner_is_refused() {
    let app = TestApp::spawn().await;
    let token = runner_token(&app, "to-revoke").await;
    let runner = RunnerApi::new(&app, &token);
    assert_eq!(runner.claim_raw(0).await.status(), StatusCode::NO_CONTENT);
    let mut conn = app.db().await;
    let id = app.count("SELECT max(id) AS n FROM runners").await;
    assert!(
        siteward::scans::runner_tokens::revoke(&mut conn, id)
            .await
            .unwrap()
    );
    assert_eq!(runner.claim_raw(0).await.status(), StatusCode::UNAUTHORIZED);
    // Sessions, API keys and made-up tokens never get in either.
    let api = admin_api(&app).await;
    let response = api
        .request(Method::POST, "/internal/v1/jobs/claim")
        .json(&serde_json::json!({"wait_seconds": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let forged = RunnerApi::new(&app, &format!("{}x", &token[..token.len() - 1]));
    assert_eq!(forged.claim_raw(0).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_internal_input_answers_4xx_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    scan_now(&api, new_target(&api, "https://shop.example.com/").await).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let job = runner.claim(5).await.unwrap();
    let path = |rest: &str| format!("/internal/v1/jobs/{}/{rest}", job.id);
    let png = fake_png("ok");

    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "wrong content type",
            runner
                .request(Method::PUT, &path("artifacts/viewport.png"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "text/html")
                .body(png.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "not a PNG",
            runner
                .request(Method::PUT, &path("artifacts/viewport.png"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "image/png")
                .body("<svg onload=alert(1)>"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "oversized upload",
            runner
                .request(Method::PUT, &path("artifacts/viewport.png"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "image/png")
                .body(vec![0u8; 49 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "unknown artifact",
            runner
                .request(Method::PUT, &path("artifacts/..%2Fescape.png"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "image/png")
                .body(png.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "no attempt token",
            runner
                .request(Method::PUT, &path("artifacts/viewport.png"))
                .header("content-type", "image/png")
                .body(png.clone()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed snapshot JSON",
            runner
                .request(Method::POST, &path("complete"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "application/json")
                .body("{\"format_version\": 1, "),
            StatusCode::BAD_REQUEST,
        ),
        (
            "snapshot with an unknown field",
            runner
                .request(Method::POST, &path("complete"))
                .header("siteward-attempt", &job.token)
                .json(&{
                    let mut s = sample_snapshot(&job.url, &png, &png);
                    s["surprise"] = serde_json::json!(true);
                    s
                }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "snapshot before its screenshots",
            runner
                .request(Method::POST, &path("complete"))
                .header("siteward-attempt", &job.token)
                .json(&sample_snapshot(&job.url, &png, &png)),
            StatusCode::BAD_REQUEST,
        ),
        (
            "snapshot as form data",
            runner
                .request(Method::POST, &path("complete"))
                .header("siteward-attempt", &job.token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=b"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "claim wait too long",
            runner
                .request(Method::POST, "/internal/v1/jobs/claim")
                .json(&serde_json::json!({"wait_seconds": 31})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown job",
            runner
                .request(Method::POST, "/internal/v1/jobs/999999999/heartbeat")
                .header("siteward-attempt", &job.token),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (what, request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected, "{what}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, "application/problem+json", "{what}");
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scan_artifacts").await,
        0
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 0);
    // The job is untouched: the same attempt can still deliver.
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) AS n FROM snapshots").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_failed_attempt_marks_the_scan_failed_with_its_reason() {
    let app = TestApp::spawn_with(&[("SITEWARD_SCAN_ATTEMPTS", "2")]).await;
    let api = admin_api(&app).await;
    let scan_id = scan_now(&api, new_target(&api, "https://shop.example.com/").await).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let job = runner.claim(5).await.unwrap();
    let reply = json(runner.fail(&job, "the site did not answer").await).await;
    assert_eq!(reply["outcome"], "retrying");
    let scan = json(api.get(&format!("/api/v1/scans/{scan_id}")).await).await;
    assert_eq!(scan["state"], "retrying");
    assert_eq!(scan["error"], "the site did not answer");
    // Skip the backoff, then fail the last attempt.
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE jobs SET run_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    let job = runner.claim(5).await.unwrap();
    assert_eq!(job.attempt, 2);
    let reply = json(runner.fail(&job, "TLS handshake failed").await).await;
    assert_eq!(reply["outcome"], "dead");
    let scan = json(api.get(&format!("/api/v1/scans/{scan_id}")).await).await;
    assert_eq!(scan["state"], "failed");
    assert_eq!(scan["error"], "TLS handshake failed");
    assert!(scan["snapshot_id"].is_null());
    assert!(
        runner.claim(0).await.is_none(),
        "a dead job is not handed out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_or_swapped_blob_fails_with_an_integrity_error() {
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let scan_id = scan_now(&api, new_target(&api, "https://shop.example.com/").await).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let job = runner.claim(5).await.unwrap();
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    let snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {scan_id}"
        ))
        .await;
    let org = app
        .count(&format!(
            "SELECT org_id AS n FROM scans WHERE id = {scan_id}"
        ))
        .await;
    let dir = app
        .data_dir
        .path()
        .join(format!("blobs/org/{org}/snapshot/{snapshot}/attempt-1"));
    let url = |name: &str| format!("/api/v1/snapshots/{snapshot}/artifacts/{name}");
    assert_eq!(api.get(&url("viewport.png")).await.status(), StatusCode::OK);

    // One flipped bit.
    let mut blob = std::fs::read(dir.join("viewport.png")).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    std::fs::write(dir.join("viewport.png"), &blob).unwrap();
    let response = api.get(&url("viewport.png")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let problem = json(response).await;
    assert_eq!(problem["type"], "https://siteward.dev/problems/integrity");

    // A valid blob moved to another key.
    std::fs::copy(dir.join("fullpage.png"), dir.join("viewport.png")).unwrap();
    let problem = json(api.get(&url("viewport.png")).await).await;
    assert_eq!(problem["type"], "https://siteward.dev/problems/integrity");
    // The untouched artifact still reads.
    assert_eq!(api.get(&url("fullpage.png")).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_history_live_state_and_the_escaped_snapshot() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    let target = new_target(&api, "https://shop.example.com/").await;
    let response = owner
        .post_form(&format!("/targets/{target}/scans"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let scan_page = location(&response);
    assert!(scan_page.starts_with("/scans/"));
    let page = owner.get(&scan_page).await.text().await.unwrap();
    assert!(page.contains("queued"));
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "an unfinished scan reloads"
    );

    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let job = runner.claim(5).await.unwrap();
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    let page = owner.get(&scan_page).await.text().await.unwrap();
    assert!(page.contains("succeeded"));
    assert!(!page.contains("http-equiv=\"refresh\""));
    assert!(
        page.contains("A &#60;b&#62;shop&#60;/b&#62;")
            || page.contains("A &lt;b&gt;shop&lt;/b&gt;")
    );
    assert!(!page.contains("<b>shop</b>"), "captured text is escaped");
    assert!(page.contains("_ga"));
    assert!(page.contains("analytics.test"));
    let history = owner
        .get(&format!("/targets/{target}/scans"))
        .await
        .text()
        .await
        .unwrap();
    assert!(history.contains(&format!("href=\"{scan_page}\"")));
    let inventory = owner
        .get("/inventory?cookie=_ga")
        .await
        .text()
        .await
        .unwrap();
    assert!(inventory.contains("1 match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_runs_missed_ticks_once_and_only_one_process_leads() {
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let target = new_target(&api, "https://shop.example.com/").await;
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"schedule": "*/5 * * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut conn = app.db().await;
    // Three days of downtime since the target was created.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE targets SET created_at = now() - interval '3 days'"),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(
        siteward::scans::schedule::tick(&mut conn, 3).await.unwrap(),
        1
    );
    assert_eq!(
        siteward::scans::schedule::tick(&mut conn, 3).await.unwrap(),
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scans WHERE trigger = 'schedule'")
            .await,
        1,
        "864 missed firings make one scan"
    );
    // Even once that scan is done, the next is not due before the schedule fires again.
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let job = runner.claim(5).await.unwrap();
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    assert_eq!(
        siteward::scans::schedule::tick(&mut conn, 3).await.unwrap(),
        0
    );

    // Leadership: one session holds the lock; when it goes, another takes over.
    let mut first = app.db().await;
    let mut second = app.db().await;
    assert!(
        siteward::scheduler::try_lead(&mut first, siteward::scheduler::LEADER_LOCK)
            .await
            .unwrap()
    );
    assert!(
        !siteward::scheduler::try_lead(&mut second, siteward::scheduler::LEADER_LOCK)
            .await
            .unwrap()
    );
    drop(first);
    let mut led = false;
    for _ in 0..50 {
        if siteward::scheduler::try_lead(&mut second, siteward::scheduler::LEADER_LOCK)
            .await
            .unwrap()
        {
            led = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(led, "the lock is free once its holder's session ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_a_deleted_target_is_not_handed_out() {
    let app = TestApp::spawn().await;
    let api = admin_api(&app).await;
    let target = new_target(&api, "https://shop.example.com/").await;
    scan_now(&api, target).await;
    let response = api
        .request(Method::DELETE, &format!("/api/v1/targets/{target}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    assert!(runner.claim(0).await.is_none());
    assert_eq!(
        app.count("SELECT count(*) AS n FROM jobs").await,
        0,
        "the scan's job went with it (its payload named the deleted target's URL)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_on_the_new_reads_answer_4xx_with_a_reason() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&api, "https://shop.example.com/").await;
    let cases = [
        (
            "/api/v1/inventory/hosts?host=bad%20host",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/inventory/hosts", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "/api/v1/inventory/cookies",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/alerts?state=bogus",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/alerts?severity=apocalyptic",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/alerts?target_id=abc",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/alerts?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        (
            &*format!("/api/v1/targets/{target}/scans?limit=9999"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &*format!("/api/v1/targets/{target}/diff?from=abc&to=1"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/snapshots/abc/artifacts/viewport.png",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, expected) in cases {
        let response = api.get(path).await;
        assert_eq!(response.status(), expected, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    let page = owner.get("/alerts?severity=apocalyptic").await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = owner.get("/inventory?host=bad%20host").await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
