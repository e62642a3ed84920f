//! Data lifecycle: the retention purge deletes exactly what expired (rows and blobs) and keeps
//! what later features need; deletions reach the blob store through the queue, survive a
//! failing store and an interrupted pass; owners set retention.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use siteward::lifecycle::{self, Purged, retention};
use siteward::storage::{BlobStore, LocalStore};

use crate::support::*;

struct Org {
    api: ApiClient,
    owner: Browser,
    org_id: i64,
    runner: RunnerApi,
}

async fn org(app: &TestApp) -> Org {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    let org: serde_json::Value = api.get("/api/v1/org").await.json().await.unwrap();
    let runner = RunnerApi::new(app, &runner_token(app, &format!("r{}", unique())).await);
    Org {
        api,
        owner,
        org_id: org["id"].as_i64().unwrap(),
        runner,
    }
}

/// A finished scan of `target` with both screenshots; returns (scan, snapshot).
async fn scanned(app: &TestApp, org: &Org, target: i64) -> (i64, i64) {
    let scan = scan_now(&org.api, target).await;
    let job = org.runner.claim(5).await.expect("a job");
    assert_eq!(org.runner.finish(&job).await.status(), StatusCode::OK);
    let snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
        ))
        .await;
    (scan, snapshot)
}

/// Moves a scan (its job, snapshot and artifacts) `days` into the past.
async fn age(app: &TestApp, scan: i64, days: i64) {
    let mut conn = app.db().await;
    for sql in [
        format!("UPDATE scans SET created_at = now() - interval '{days} days' WHERE id = {scan}"),
        format!(
            "UPDATE snapshots SET captured_at = now() - interval '{days} days' WHERE scan_id = {scan}"
        ),
        format!(
            "UPDATE scan_artifacts SET uploaded_at = now() - interval '{days} days' WHERE scan_id = {scan}"
        ),
        format!(
            "UPDATE jobs SET finished_at = now() - interval '{days} days'
             WHERE id = (SELECT job_id FROM scans WHERE id = {scan})"
        ),
    ] {
        diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut conn)
            .await
            .unwrap();
    }
}

fn blob_root(app: &TestApp) -> PathBuf {
    app.data_dir.path().join("blobs")
}

async fn local_store(app: &TestApp) -> BlobStore {
    BlobStore::Local(LocalStore::open(&blob_root(app)).await.unwrap())
}

/// The files under a folder of the store, relative to it, sorted.
fn files_under(root: &Path, folder: &str) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    let base = root.join(folder);
    walk(&base, &base, &mut out);
    out.sort();
    out
}

fn snapshot_folder(org: &Org, snapshot: i64) -> String {
    format!("org/{}/snapshot/{snapshot}", org.org_id)
}

async fn artifacts_of(app: &TestApp, scan: i64) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM scan_artifacts WHERE scan_id = {scan}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_expired_and_keeps_what_later_features_need() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let page = new_target(&org.api, "https://shop.example.com/").await;
    let quiet = new_target(&org.api, "https://quiet.example.com/").await;
    let payment = new_target(&org.api, "https://pay.example.com/checkout").await;
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE targets SET page_kind = 'payment' WHERE id = {payment}"
        )),
        &mut conn,
    )
    .await
    .unwrap();

    // The page: expired (500 days); the snapshot an open alert's first sighting was compared
    // with (480) and that sighting (450); screenshots expired (100); the latest (today).
    let (expired, expired_snap) = scanned(&app, &org, page).await;
    let (baseline, baseline_snap) = scanned(&app, &org, page).await;
    let (alerted, alerted_snap) = scanned(&app, &org, page).await;
    let (older, older_snap) = scanned(&app, &org, page).await;
    let (latest, latest_snap) = scanned(&app, &org, page).await;
    // The quiet page: two expired scans, the second its latest.
    let (quiet_old, quiet_old_snap) = scanned(&app, &org, quiet).await;
    let (quiet_latest, quiet_latest_snap) = scanned(&app, &org, quiet).await;
    // The payment page: 390 days old (kept: payment pages keep 400 days) and its latest.
    let (pay_old, _) = scanned(&app, &org, payment).await;
    let (_pay_latest, _) = scanned(&app, &org, payment).await;
    // Each snapshot compared with its predecessor, as the app does after every scan.
    for snap in [baseline_snap, alerted_snap, older_snap, latest_snap] {
        computed_changes(&org.api, snap).await;
    }
    for (scan, days) in [
        (expired, 500),
        (baseline, 480),
        (alerted, 450),
        (older, 100),
        (quiet_old, 500),
        (quiet_latest, 499),
        (pay_old, 390),
    ] {
        age(&app, scan, days).await;
    }
    // An organization keeping snapshots 365 days: the payment page's 390-day scan is still kept.
    let set = org
        .owner
        .post_form(
            "/settings/retention",
            &[
                ("snapshots_days", "365"),
                ("screenshots_days", "90"),
                ("checkout_screenshots_days", "30"),
                ("history_days", "30"),
            ],
        )
        .await;
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    // Alerts the comparisons raised are resolved; one open alert is made by hand.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE alerts SET state = 'resolved', resolved_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO alerts (org_id, target_id, rule, severity, fingerprint, title, detail, state,
                                 first_snapshot_id, last_snapshot_id)
             VALUES ({}, {page}, 'new_third_party', 'high', 'host:t.example', 'New host', '{{}}',
                     'open', {alerted_snap}, {alerted_snap})",
            org.org_id
        )),
        &mut conn,
    )
    .await
    .unwrap();
    // Before: every scan has its three artifacts in the store.
    let root = blob_root(&app);
    for snap in [
        expired_snap,
        baseline_snap,
        alerted_snap,
        older_snap,
        latest_snap,
        quiet_old_snap,
    ] {
        assert_eq!(
            files_under(&root, &snapshot_folder(&org, snap)).len(),
            3,
            "snapshot {snap} before the purge"
        );
    }
    let jobs_before = app.count("SELECT count(*) AS n FROM jobs").await;

    let store = local_store(&app).await;
    let (report, drained) = lifecycle::purge_now(&mut conn, &store).await.unwrap();

    // Rows: the expired scans are gone with their snapshots, artifacts and jobs.
    let scans_left = app
        .count(&format!(
            "SELECT count(*) AS n FROM scans WHERE id IN ({expired}, {quiet_old})"
        ))
        .await;
    assert_eq!(scans_left, 0);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots WHERE id IN ({expired_snap}, {quiet_old_snap})"
        ))
        .await,
        0
    );
    assert_eq!(report.of(Purged::Scans), 2);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM jobs").await,
        jobs_before - 2,
        "the two purged scans' jobs went with them"
    );
    // Kept: the open alert's snapshot and its baseline, the latest of each target, the payment
    // page's.
    for (scan, what) in [
        (alerted, "an open alert's"),
        (baseline, "an open alert's baseline"),
        (older, "not expired"),
        (latest, "the latest"),
        (quiet_latest, "the quiet page's latest, however old"),
        (pay_old, "a payment page's, within 400 days"),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM snapshots WHERE scan_id = {scan}"
            ))
            .await,
            1,
            "{what} snapshot is kept"
        );
    }
    // Screenshots: the 100-day-old snapshot and the payment page's old one lost theirs (the
    // alert's, its baseline and the latest keep them); their snapshot.json stays.
    assert_eq!(report.of(Purged::Screenshots), 4);
    assert_eq!(artifacts_of(&app, older).await, 1);
    assert_eq!(artifacts_of(&app, pay_old).await, 1);
    for scan in [baseline, alerted, latest, quiet_latest] {
        assert_eq!(artifacts_of(&app, scan).await, 3, "scan {scan}");
    }
    // Blobs: exactly the rows' blobs remain.
    assert!(files_under(&root, &snapshot_folder(&org, expired_snap)).is_empty());
    assert!(files_under(&root, &snapshot_folder(&org, quiet_old_snap)).is_empty());
    assert_eq!(
        files_under(&root, &snapshot_folder(&org, older_snap)),
        vec!["attempt-1/snapshot.json".to_string()]
    );
    for snap in [baseline_snap, alerted_snap, latest_snap, quiet_latest_snap] {
        assert_eq!(files_under(&root, &snapshot_folder(&org, snap)).len(), 3);
    }
    assert_eq!(drained.failed, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM blob_deletions").await,
        0
    );
    // What remains still reads back, and the snapshot whose screenshots went still opens.
    let still = org
        .api
        .get(&format!("/api/v1/snapshots/{older_snap}"))
        .await;
    assert_eq!(still.status(), StatusCode::OK);
    let gone = org
        .api
        .get(&format!(
            "/api/v1/snapshots/{older_snap}/artifacts/viewport.png"
        ))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // Audited per organization, and the chains verify.
    let entry = app
        .count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {} AND action = 'retention.purged'
               AND detail::jsonb @> '{{\"scans\": 2, \"screenshots\": 4}}'",
            org.org_id
        ))
        .await;
    assert_eq!(entry, 1);
    let verified = siteward::audit::chain::verify_all(&mut conn).await.unwrap();
    assert!(verified.breaks.is_empty(), "{:?}", verified.breaks);

    // A second pass finds nothing more.
    let (again, drained) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(again.total(), 0);
    assert_eq!(drained.done, 0);

    // Resolving the alert lets its snapshots go at the next pass.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE alerts SET state = 'resolved', resolved_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    let (third, _) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(third.of(Purged::Scans), 2);
    assert!(files_under(&root, &snapshot_folder(&org, alerted_snap)).is_empty());
    assert!(files_under(&root, &snapshot_folder(&org, baseline_snap)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_and_a_failing_store_leave_a_consistent_state_that_the_next_pass_finishes()
 {
    let s3 = S3Server::start();
    let settings = s3.settings("purge");
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn_with(&settings).await;
    let org = org(&app).await;
    let target = new_target(&org.api, "https://shop.example.com/").await;
    let mut scans = Vec::new();
    for _ in 0..5 {
        scans.push(scanned(&app, &org, target).await);
    }
    for (scan, snap) in &scans {
        computed_changes(&org.api, *snap).await;
        age(&app, *scan, 500).await;
    }
    // The latest stays young; alerts the comparisons raised would keep their snapshots.
    age(&app, scans[4].0, 0).await;
    app.count("WITH r AS (UPDATE alerts SET state = 'resolved', resolved_at = now() RETURNING 1) SELECT count(*) AS n FROM r")
        .await;
    let store = BlobStore::open(&siteward::storage::StoreConfig::S3(s3.config(
        "purge",
        "us-east-1",
        S3_SECRET_KEY,
    )))
    .await
    .unwrap();
    let mut conn = app.db().await;

    // Interrupted after one batch of one row: that row and its queued deletion are one.
    let report = retention::pass(&mut conn, 1, |_, deleted| deleted == 0)
        .await
        .unwrap();
    assert_eq!(report.total(), 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM scans").await, 4);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM blob_deletions WHERE whole_folder")
            .await,
        1
    );

    // The store goes away: the next pass deletes the rest of the rows, the deletions wait.
    let mut s3 = s3;
    s3.stop();
    let (report, drained) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(report.of(Purged::Scans), 3);
    assert_eq!(app.count("SELECT count(*) AS n FROM scans").await, 1);
    assert_eq!(drained.done, 0);
    assert!(drained.failed >= 4, "{drained:?}");
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM blob_deletions WHERE attempts = 1 AND last_error IS NOT NULL
               AND next_attempt_at > now()"
        )
        .await,
        drained.failed as i64
    );
    // The store comes back; once the retry is due, every blob of the purged scans goes.
    s3.resume();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE blob_deletions SET next_attempt_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    let (_, drained) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(drained.failed, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM blob_deletions").await,
        0
    );
    assert_eq!(drained.objects, 4 * 3, "three objects per purged scan");
    // The kept scan's blobs are all there and read back through the API.
    let (_, kept_snap) = scans[4];
    for name in ["viewport.png", "fullpage.png"] {
        let response = org
            .api
            .get(&format!("/api/v1/snapshots/{kept_snap}/artifacts/{name}"))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    // A purged snapshot's blob is gone from the bucket itself.
    let (_, purged_snap) = scans[0];
    let key = siteward::storage::ObjectKey::snapshot_artifact(
        org.org_id,
        purged_snap,
        siteward::storage::Uploader::Attempt(1),
        "viewport.png",
    )
    .unwrap();
    assert!(matches!(
        store.get(&key).await,
        Err(siteward::storage::StoreError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_target_or_a_client_deletes_their_blobs_after_the_transaction() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let root = blob_root(&app);
    let first = new_target(&org.api, "https://one.example.com/").await;
    let (_, first_snap) = scanned(&app, &org, first).await;
    let (_, second_snap) = scanned(&app, &org, first).await;
    // A comparison, kept in the older snapshot's folder, goes with it.
    let compared = org.owner.get(&format!("/targets/{first}/compare")).await;
    assert_eq!(compared.status(), StatusCode::OK);
    let comparison_files = files_under(&root, &snapshot_folder(&org, first_snap));
    assert!(
        comparison_files
            .iter()
            .any(|f| f.starts_with(&format!("comparison/{first_snap}-{second_snap}/"))),
        "{comparison_files:?}"
    );
    let other = new_target(&org.api, "https://two.example.com/").await;
    let (_, other_snap) = scanned(&app, &org, other).await;

    let deleted = org
        .api
        .request(reqwest::Method::DELETE, &format!("/api/v1/targets/{first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // Queued in the deleting transaction; nothing is deleted from the store before the drain.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM blob_deletions").await,
        2
    );
    assert_eq!(
        files_under(&root, &snapshot_folder(&org, first_snap)),
        comparison_files
    );
    let store = local_store(&app).await;
    let mut conn = app.db().await;
    let drained = lifecycle::blob_deletions::drain(
        &mut conn,
        &store,
        100,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(drained.done, 2);
    assert_eq!(
        drained.objects,
        comparison_files.len() as u64 + 3,
        "both snapshots' artifacts and the comparison: {drained:?}"
    );
    assert!(files_under(&root, &snapshot_folder(&org, first_snap)).is_empty());
    assert!(files_under(&root, &snapshot_folder(&org, second_snap)).is_empty());
    assert_eq!(
        files_under(&root, &snapshot_folder(&org, other_snap)).len(),
        3
    );

    // A client: deleting it cascades to its targets and their scans.
    let client = app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {other}"
        ))
        .await;
    let deleted = org
        .api
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/clients/{client}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    lifecycle::blob_deletions::drain(&mut conn, &store, 100, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert!(files_under(&root, &snapshot_folder(&org, other_snap)).is_empty());
    assert_eq!(
        app.count("SELECT count(*) AS n FROM blob_deletions").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_set_retention_members_read_it_and_bad_days_change_nothing() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let defaults: serde_json::Value = org.api.get("/api/v1/retention").await.json().await.unwrap();
    assert_eq!(
        defaults,
        serde_json::json!({"snapshots_days": 400, "screenshots_days": 90,
                           "checkout_screenshots_days": 30, "history_days": 30})
    );
    let refused = org
        .owner
        .post_form(
            "/settings/retention",
            &[
                ("snapshots_days", "3"),
                ("screenshots_days", "ninety"),
                ("checkout_screenshots_days", "30"),
                ("history_days", "30"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("must be a number of days from 7 to 3650"),
        "{page}"
    );
    assert!(page.contains("must be a number of days from 1 to 3650"));
    let unchanged: serde_json::Value = org.api.get("/api/v1/retention").await.json().await.unwrap();
    assert_eq!(unchanged, defaults);

    let admin = app.invite_and_sign_up(&org.owner, "admin").await;
    let forbidden = admin
        .post_form(
            "/settings/retention",
            &[
                ("snapshots_days", "30"),
                ("screenshots_days", "30"),
                ("checkout_screenshots_days", "30"),
                ("history_days", "30"),
            ],
        )
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let shown = admin.get("/settings/retention").await.text().await.unwrap();
    assert!(shown.contains("Only owners change retention"));

    let saved = org
        .owner
        .post_form(
            "/settings/retention",
            &[
                ("snapshots_days", "365"),
                ("screenshots_days", "60"),
                ("checkout_screenshots_days", "14"),
                ("history_days", "20"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let now: serde_json::Value = org.api.get("/api/v1/retention").await.json().await.unwrap();
    assert_eq!(now["snapshots_days"], 365);
    assert_eq!(now["history_days"], 20);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {} AND action = 'retention.changed'
               AND detail::jsonb @> '{{\"from\": {{\"snapshots_days\": 400}}, \"to\": {{\"snapshots_days\": 365}}}}'",
            org.org_id
        ))
        .await,
        1
    );
}
