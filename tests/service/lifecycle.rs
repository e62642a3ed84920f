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
    org_of(app, owner).await
}

/// A second organization, made by someone invited to the first who then founds their own.
async fn another_org(app: &TestApp, first: &Org) -> Org {
    let founder = app.invite_and_sign_up(&first.owner, "member").await;
    let made = founder
        .post_form("/orgs", &[("name", &format!("Other {}", unique()))])
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    org_of(app, founder).await
}

async fn org_of(app: &TestApp, owner: Browser) -> Org {
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
    for snap in [
        baseline_snap,
        alerted_snap,
        older_snap,
        latest_snap,
        quiet_latest_snap,
    ] {
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

/// Sets the state of the diff job comparing `snapshot` with its predecessor (a queued one is
/// put an hour ahead, out of the workers' reach).
async fn set_diff_job(app: &TestApp, snapshot: i64, state: &str) {
    let mut conn = app.db().await;
    let changed = diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE jobs SET state = '{state}', run_at = now() + interval '1 hour',
                             finished_at = CASE WHEN '{state}' = 'dead' THEN now() END
             WHERE kind = 'diff' AND (payload->>'snapshot_id')::bigint = {snapshot}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(changed, 1, "snapshot {snapshot} has one diff job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_is_kept_while_its_comparison_waits_and_not_once_that_comparison_is_dead() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let page = new_target(&org.api, "https://shop.example.com/").await;
    let (first, first_snap) = scanned(&app, &org, page).await;
    let (second, second_snap) = scanned(&app, &org, page).await;
    let (_latest, latest_snap) = scanned(&app, &org, page).await;
    for snap in [second_snap, latest_snap] {
        computed_changes(&org.api, snap).await;
    }
    for scan in [first, second] {
        age(&app, scan, 500).await;
    }
    // The latest snapshot's comparison is to run again (as after a retry): the second is its
    // baseline and stays; the first, whose comparison is done, goes. (No alert holds them.)
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE alerts SET state = 'resolved', resolved_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "DELETE FROM snapshot_diffs WHERE snapshot_id = {latest_snap}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    set_diff_job(&app, latest_snap, "queued").await;
    let store = local_store(&app).await;
    let (report, _) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(report.of(Purged::Scans), 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots WHERE id IN ({first_snap}, {second_snap})"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots WHERE id = {second_snap}"
        ))
        .await,
        1,
        "the baseline of a pending comparison is kept"
    );
    // A comparison that gave up will never need its baseline.
    set_diff_job(&app, latest_snap, "dead").await;
    let (report, _) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(report.of(Purged::Scans), 1);
    assert!(files_under(&blob_root(&app), &snapshot_folder(&org, second_snap)).is_empty());
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots WHERE id = {latest_snap}"
        ))
        .await,
        1,
        "the latest stays"
    );
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

/// Every table with an `org_id` column and how many of its rows belong to `org_id`.
async fn rows_of_org(app: &TestApp, org_id: i64) -> Vec<(String, i64)> {
    use diesel::QueryableByName;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        table_name: String,
    }
    let mut conn = app.db().await;
    let tables: Vec<Table> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT table_name::TEXT AS table_name FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name = 'org_id' ORDER BY table_name",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let n = app
            .count(&format!(
                "SELECT count(*) AS n FROM {} WHERE org_id = {org_id}",
                table.table_name
            ))
            .await;
        out.push((table.table_name, n));
    }
    out.push((
        "orgs".into(),
        app.count(&format!(
            "SELECT count(*) AS n FROM orgs WHERE id = {org_id}"
        ))
        .await,
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_organization_leaves_no_row_and_a_copy_of_its_blobs_cannot_be_opened() {
    let app = TestApp::spawn().await;
    let stays = org(&app).await;
    let gone = another_org(&app, &stays).await;
    let gone_target = new_target(&gone.api, "https://gone.example.com/").await;
    let (_, gone_snap) = scanned(&app, &gone, gone_target).await;
    let stays_target = new_target(&stays.api, "https://stays.example.com/").await;
    let (_, stays_snap) = scanned(&app, &stays, stays_target).await;
    // A copy of a sealed blob, as a backup of the store would hold it.
    let key = siteward::storage::ObjectKey::snapshot_artifact(
        gone.org_id,
        gone_snap,
        siteward::storage::Uploader::Attempt(1),
        "viewport.png",
    )
    .unwrap();
    let root = blob_root(&app);
    let copy = std::fs::read(root.join(key.as_str())).unwrap();
    let org_name = app
        .text(&format!(
            "SELECT name AS t FROM orgs WHERE id = {}",
            gone.org_id
        ))
        .await;

    // The typed name must match; nothing is scheduled otherwise.
    let refused = gone
        .owner
        .post_form("/settings/erase", &[("name", "Some other name")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orgs WHERE erase_after IS NOT NULL")
            .await,
        0
    );
    // Scheduled with seven days' grace, undone, scheduled again.
    let asked = gone
        .owner
        .post_form("/settings/erase", &[("name", &org_name)])
        .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM orgs WHERE id = {} AND erase_after BETWEEN now() + interval '6 days 23 hours' AND now() + interval '7 days 1 minute'",
            gone.org_id
        ))
        .await,
        1
    );
    let page = gone
        .owner
        .get("/settings/erase")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("will be erased at"), "{page}");
    // Every owner is told, with the link to undo it.
    let owner_email = app
        .text(&format!(
            "SELECT u.email AS t FROM users u JOIN memberships m ON m.user_id = u.id
             WHERE m.org_id = {} AND m.role = 'owner'",
            gone.org_id
        ))
        .await;
    // (Their first mail was the invitation to the other organization.)
    let told = app.mail.wait_for(&owner_email, 2).await;
    assert!(told.text.contains("/settings/erase"), "{}", told.text);
    assert!(told.text.contains("is going to be erased"));
    // Undoing needs the form's CSRF token like every other change.
    let forged = gone
        .owner
        .post_raw("/settings/erase/cancel", String::new())
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orgs WHERE erase_after IS NOT NULL")
            .await,
        1
    );
    let undone = gone.owner.post_form("/settings/erase/cancel", &[]).await;
    assert_eq!(undone.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orgs WHERE erase_after IS NOT NULL")
            .await,
        0
    );
    gone.owner
        .post_form("/settings/erase", &[("name", &org_name)])
        .await;
    // Not before the grace period has passed.
    let store = local_store(&app).await;
    let mut conn = app.db().await;
    lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM orgs WHERE id = {}",
            gone.org_id
        ))
        .await,
        1
    );
    // Seven days later (the clock moved by hand), the purge erases it.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE orgs SET erase_after = now() - interval '1 second' WHERE id = {}",
            gone.org_id
        )),
        &mut conn,
    )
    .await
    .unwrap();
    lifecycle::purge_now(&mut conn, &store).await.unwrap();

    for (table, n) in rows_of_org(&app, gone.org_id).await {
        assert_eq!(n, 0, "{table} still holds rows of the erased organization");
    }
    assert!(files_under(&root, &format!("org/{}", gone.org_id)).is_empty());
    assert!(
        rows_of_org(&app, stays.org_id)
            .await
            .iter()
            .any(|(table, n)| table == "snapshots" && *n == 1),
        "the other organization keeps its snapshot"
    );
    // The copy, put back where it was, cannot be opened: its data key is gone.
    std::fs::create_dir_all(root.join(key.as_str()).parent().unwrap()).unwrap();
    std::fs::write(root.join(key.as_str()), &copy).unwrap();
    let blobs = siteward::storage::SealedBlobs::new(
        local_store(&app).await,
        siteward::crypto::MasterKeys::parse(
            "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            None,
        )
        .unwrap(),
    );
    assert!(matches!(
        blobs.get(&mut conn, &key).await,
        Err(siteward::storage::EnvelopeError::UnknownDataKey { .. })
    ));
    // The other organization's blobs still open, and every audit chain verifies; the instance's
    // chain records the erasure by number, without the name.
    let still = stays
        .api
        .get(&format!(
            "/api/v1/snapshots/{stays_snap}/artifacts/viewport.png"
        ))
        .await;
    assert_eq!(still.status(), StatusCode::OK);
    let verified = siteward::audit::chain::verify_all(&mut conn).await.unwrap();
    assert!(verified.breaks.is_empty(), "{:?}", verified.breaks);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id IS NULL AND action = 'org.erased'
               AND subject = 'org {}' AND detail NOT LIKE '%{}%'",
            gone.org_id,
            org_name.replace('\'', "''")
        ))
        .await,
        1
    );
    // Its people keep their accounts, with no organization.
    assert_eq!(gone.owner.get("/orgs").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_refuses_deleting_a_chain_that_is_not_being_erased() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let mut conn = app.db().await;
    // Naming the organization is not enough: its erasure must be due.
    let refused = diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "WITH s AS (SELECT set_config('siteward.erasing_org', '{0}', false))
             DELETE FROM audit_log WHERE org_id = {0} AND EXISTS (SELECT 1 FROM s)",
            org.org_id
        )),
        &mut conn,
    )
    .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("audit_log is append-only"),
    );
    assert!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {}",
            org.org_id
        ))
        .await
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_with_a_second_factor_must_give_a_code_to_erase() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let secret = enable_two_factor(&org.owner).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let name = app
        .text(&format!(
            "SELECT name AS t FROM orgs WHERE id = {}",
            org.org_id
        ))
        .await;

    for code in ["", "000000"] {
        let refused = org
            .owner
            .post_form("/settings/erase", &[("name", &name), ("code", code)])
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code:?}"
        );
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("this code is not right")
        );
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orgs WHERE erase_after IS NOT NULL")
            .await,
        0
    );
    let next = siteward::auth::totp::code_at(&secret, now + 30).unwrap();
    let asked = org
        .owner
        .post_form("/settings/erase", &[("name", &name), ("code", &next)])
        .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {} AND action = 'org.erasure_requested'",
            org.org_id
        ))
        .await,
        1
    );
}

pub fn admin(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("SITEWARD_DATA_DIR", app.data_dir.path())
        .env(
            "SITEWARD_MASTER_KEYS",
            "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .expect("run siteward admin");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_purge_and_erase_an_organization_only_with_its_exact_name() {
    let app = TestApp::spawn().await;
    let org = org(&app).await;
    let target = new_target(&org.api, "https://shop.example.com/").await;
    let (old_scan, old_snap) = scanned(&app, &org, target).await;
    let (_, latest_snap) = scanned(&app, &org, target).await;
    computed_changes(&org.api, latest_snap).await;
    app.count("WITH r AS (UPDATE alerts SET state = 'resolved', resolved_at = now() RETURNING 1) SELECT count(*) AS n FROM r")
        .await;
    age(&app, old_scan, 500).await;
    let root = blob_root(&app);

    let (ok, output) = admin(&app, &["purge"]);
    assert!(ok, "{output}");
    assert!(output.contains("Scans: 1"), "{output}");
    assert!(files_under(&root, &snapshot_folder(&org, old_snap)).is_empty());

    let name = app
        .text(&format!(
            "SELECT name AS t FROM orgs WHERE id = {}",
            org.org_id
        ))
        .await;
    let org_id = org.org_id.to_string();
    let (ok, output) = admin(
        &app,
        &["erase-org", "--org", &org_id, "--confirm", "Wrong", "--now"],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("--confirm must be the organization's name"),
        "{output}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM orgs WHERE id = {org_id}"
        ))
        .await,
        1
    );
    assert_eq!(
        files_under(&root, &snapshot_folder(&org, latest_snap)).len(),
        3
    );

    let (ok, output) = admin(
        &app,
        &["erase-org", "--org", &org_id, "--confirm", &name, "--now"],
    );
    assert!(ok, "{output}");
    assert!(output.contains("data keys destroyed"), "{output}");
    for (table, n) in rows_of_org(&app, org.org_id).await {
        assert_eq!(n, 0, "{table}");
    }
    assert!(files_under(&root, &format!("org/{org_id}")).is_empty());
    let (ok, output) = admin(&app, &["verify-audit"]);
    assert!(ok, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_organization_keeps_history_by_its_own_settings_and_report_mails_outlive_their_period()
{
    let app = TestApp::spawn().await;
    let brief = org(&app).await;
    let long = another_org(&app, &brief).await;
    let set = brief
        .owner
        .post_form(
            "/settings/retention",
            &[
                ("snapshots_days", "400"),
                ("screenshots_days", "90"),
                ("checkout_screenshots_days", "30"),
                ("history_days", "1"),
            ],
        )
        .await;
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    let mut conn = app.db().await;
    for org in [&brief, &long] {
        let target = new_target(&org.api, "https://shop.example.com/").await;
        let client = app
            .count(&format!(
                "SELECT client_id AS n FROM targets WHERE id = {target}"
            ))
            .await;
        for sql in [
            format!(
                "INSERT INTO notification_channels (org_id, name, kind, min_severity, config_sealed, display)
                 VALUES ({0}, 'Ops', 'email', 'info', '\\x00', 'ops@example.com')",
                org.org_id
            ),
            format!(
                "INSERT INTO notification_deliveries (org_id, channel_id, dedupe_key, status, attempts, created_at)
                 SELECT {0}, id, 'k{0}-' || n, CASE WHEN n = 3 THEN 'pending' ELSE 'delivered' END, 1,
                        now() - make_interval(days => n * 5)
                 FROM notification_channels, generate_series(1, 3) n WHERE org_id = {0}",
                org.org_id
            ),
            format!(
                "INSERT INTO report_deliveries (org_id, client_id, period, status, created_at)
                 VALUES ({0}, {client}, '2026-11', 'sent', now() - interval '20 days'),
                        ({0}, {client}, '2026-10', 'sent', now() - interval '50 days')",
                org.org_id
            ),
        ] {
            diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut conn)
                .await
                .unwrap();
        }
    }
    let store = local_store(&app).await;
    let (report, _) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    let left =
        |org: i64, table: &str| format!("SELECT count(*) AS n FROM {table} WHERE org_id = {org}");
    // One day of history: its two delivered notifications (5 and 10 days old) go, the pending
    // one (15 days) stays; thirty days: all three stay.
    assert_eq!(
        app.count(&left(brief.org_id, "notification_deliveries"))
            .await,
        1
    );
    assert_eq!(
        app.count(&left(long.org_id, "notification_deliveries"))
            .await,
        3
    );
    assert_eq!(report.of(Purged::Notifications), 2);
    // Sent report mails stay until their period is surely over (35 days), whatever the setting.
    for org in [&brief, &long] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM report_deliveries WHERE org_id = {} AND period = '2026-11'",
                org.org_id
            ))
            .await,
            1
        );
        assert_eq!(app.count(&left(org.org_id, "report_deliveries")).await, 1);
    }
    assert_eq!(report.of(Purged::ReportDeliveries), 2);
}
