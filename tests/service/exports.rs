//! Exports: an owner's archive holds every artifact with the hash recorded for it, every record
//! of the organization (or of one client) and no secret value; its link works once, for an owner,
//! until it expires, and then its parts go.

use std::path::Path;

use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use siteward::lifecycle::{self, Purged};
use siteward::storage::{BlobStore, LocalStore};

use crate::support::*;

const CARD: &str = "4000000000000002";

struct Shop {
    app: TestApp,
    owner: Browser,
    org_id: i64,
    /// (client, target) of the two clients.
    first: (i64, i64),
    second: (i64, i64),
}

async fn client_of(app: &TestApp, target: i64) -> i64 {
    app.count(&format!(
        "SELECT client_id AS n FROM targets WHERE id = {target}"
    ))
    .await
}

/// Two clients' pages scanned (the first twice) and a checkout test with a secret run once.
async fn shop() -> Shop {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    let org: serde_json::Value = api.get("/api/v1/org").await.json().await.unwrap();
    let runner = RunnerApi::new(&app, &runner_token(&app, "export").await);
    let first = new_target(&api, "https://shop.example.com/").await;
    let second = new_target(&api, "https://other.example.com/").await;
    for target in [first, first, second] {
        scan_now(&api, target).await;
        let job = runner.claim(5).await.expect("a scan job");
        assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    }
    let test = api
        .send_json(
            Method::POST,
            &format!("/api/v1/targets/{first}/checkout-tests"),
            serde_json::json!({"name": "Checkout", "script": "steps:\n  - goto: /\n  - fill: {selector: '#card', secret: card_number}\n  - stop\n"}),
        )
        .await;
    assert_eq!(test.status(), StatusCode::CREATED);
    let test = test.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let secret = api
        .send_json(
            Method::PUT,
            &format!("/api/v1/checkout-tests/{test}/secrets/card_number"),
            serde_json::json!({"value": CARD}),
        )
        .await;
    assert_eq!(secret.status(), StatusCode::OK);
    let run = api
        .request(Method::POST, &format!("/api/v1/checkout-tests/{test}/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::ACCEPTED);
    let job = runner.claim(5).await.expect("a checkout job");
    assert_eq!(
        runner.finish_checkout(&job, "passed").await.status(),
        StatusCode::OK
    );
    Shop {
        org_id: org["id"].as_i64().unwrap(),
        first: (client_of(&app, first).await, first),
        second: (client_of(&app, second).await, second),
        app,
        owner,
    }
}

/// Asks for an export and returns the download path from the mail that says it is ready.
async fn ask(shop: &Shop, client_id: &str) -> String {
    let before = shop.app.mail.mails_to(&shop.owner.email).len();
    let asked = shop
        .owner
        .post_form("/settings/export", &[("client_id", client_id)])
        .await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&asked), "/settings/export?asked=1");
    let mail = shop.app.mail.wait_for(&shop.owner.email, before + 1).await;
    assert!(mail.text.contains("Your siteward export is ready"));
    let link = smtp_link(&mail);
    link[link.find("/exports/download/").unwrap()..].to_string()
}

fn smtp_link(mail: &crate::smtp_sink::Mail) -> String {
    crate::smtp_sink::link_in(mail, "/exports/download/")
}

/// Downloads and unpacks an archive with the system's `tar`; returns the folder and the bytes.
async fn download(shop: &Shop, path: &str) -> (tempfile::TempDir, Vec<u8>) {
    let response = shop.owner.get(path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/gzip"
    );
    let announced = response.headers()["x-siteward-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), announced);
    let folder = tempfile::tempdir().unwrap();
    let archive = folder.path().join("export.tar.gz");
    std::fs::write(&archive, &bytes).unwrap();
    let unpacked = std::process::Command::new("tar")
        .args(["-xzf", "export.tar.gz"])
        .current_dir(folder.path())
        .output()
        .unwrap();
    assert!(
        unpacked.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    std::fs::remove_file(&archive).unwrap();
    (folder, bytes)
}

fn json_of(folder: &Path, path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join(path)).unwrap()).unwrap()
}

fn every_file(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            every_file(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

/// (archive path, recorded SHA-256) of every artifact recorded for the org, or one client.
async fn recorded_artifacts(
    app: &TestApp,
    org_id: i64,
    client: Option<i64>,
) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        path: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        sha256: String,
    }
    let filter = client
        .map(|c| format!("AND t.client_id = {c}"))
        .unwrap_or_default();
    let mut conn = app.db().await;
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT 'artifacts/snapshots/' || s.snapshot_id || '/' || a.name AS path, a.sha256
             FROM scan_artifacts a JOIN scans s ON s.id = a.scan_id JOIN targets t ON t.id = s.target_id
             WHERE a.org_id = {org_id} {filter}
             UNION ALL
             SELECT 'artifacts/checkout-runs/' || r.id || '/' || a.name, a.sha256
             FROM checkout_run_artifacts a JOIN checkout_runs r ON r.id = a.run_id
             JOIN targets t ON t.id = r.target_id
             WHERE a.org_id = {org_id} {filter}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.path, r.sha256)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_every_artifact_with_its_recorded_hash_and_no_secret_and_downloads_once() {
    let shop = shop().await;
    let path = ask(&shop, "").await;
    let (folder, bytes) = download(&shop, &path).await;
    let root = folder.path();

    // Every artifact, decrypted, with the hash recorded for it.
    let recorded = recorded_artifacts(&shop.app, shop.org_id, None).await;
    assert!(
        recorded.len() >= 10,
        "{} artifacts recorded",
        recorded.len()
    );
    assert!(
        recorded
            .iter()
            .any(|(p, _)| p.starts_with("artifacts/checkout-runs/"))
    );
    for (path, sha256) in &recorded {
        let contents =
            std::fs::read(root.join(path)).unwrap_or_else(|_| panic!("{path} is missing"));
        assert_eq!(&hex::encode(Sha256::digest(&contents)), sha256, "{path}");
    }
    let manifest = json_of(root, "manifest.json");
    assert_eq!(manifest["artifacts"], recorded.len());
    assert_eq!(manifest["unreadable"], serde_json::json!([]));
    assert_eq!(manifest["organization"]["id"], shop.org_id);
    let listed = manifest["files"].as_array().unwrap();
    let mut files = Vec::new();
    every_file(root, &mut files);
    assert_eq!(
        listed.len() + 1,
        files.len(),
        "the manifest lists every other file"
    );
    for file in listed {
        let contents = std::fs::read(root.join(file["path"].as_str().unwrap())).unwrap();
        assert_eq!(
            file["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&contents))
        );
    }

    // The records.
    assert_eq!(
        json_of(root, "data/clients.json").as_array().unwrap().len(),
        2
    );
    assert_eq!(
        json_of(root, "data/targets.json").as_array().unwrap().len(),
        2
    );
    assert_eq!(
        json_of(root, "data/scans.json").as_array().unwrap().len(),
        3
    );
    assert_eq!(
        json_of(root, "data/changes.json").as_array().unwrap().len() as i64,
        shop.app
            .count(&format!(
                "SELECT count(*) AS n FROM snapshot_diffs WHERE org_id = {}",
                shop.org_id
            ))
            .await
    );
    let tests = json_of(root, "data/checkout_tests.json");
    assert_eq!(tests[0]["secrets_by_name"][0]["name"], "card_number");
    assert_eq!(
        json_of(root, "data/checkout_runs.json")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit = json_of(root, "data/audit_log.json");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "export.requested")
    );

    // No secret value anywhere: not in any file, not in the compressed or the plain stream.
    for file in &files {
        let contents = std::fs::read(file).unwrap();
        assert!(
            !contents.windows(CARD.len()).any(|w| w == CARD.as_bytes()),
            "{} holds the card number",
            file.display()
        );
    }
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain).unwrap();
    assert!(!plain.windows(CARD.len()).any(|w| w == CARD.as_bytes()));

    // Once only; audited; listed with its hash.
    assert_eq!(shop.owner.get(&path).await.status(), StatusCode::NOT_FOUND);
    for action in ["export.requested", "export.ready", "export.downloaded"] {
        assert_eq!(
            shop.app
                .count(&format!(
                    "SELECT count(*) AS n FROM audit_log WHERE org_id = {} AND action = '{action}'",
                    shop.org_id
                ))
                .await,
            1,
            "{action}"
        );
    }
    let page = shop
        .owner
        .get("/settings/export")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("downloaded") && page.contains(&hex::encode(Sha256::digest(&bytes))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_export_holds_only_that_clients_history_and_an_unused_link_expires() {
    let shop = shop().await;
    let (second_client, second_target) = shop.second;
    let path = ask(&shop, &second_client.to_string()).await;
    let (folder, _) = download(&shop, &path).await;
    let root = folder.path();
    let clients = json_of(root, "data/clients.json");
    assert_eq!(clients.as_array().unwrap().len(), 1);
    assert_eq!(clients[0]["id"], second_client);
    let targets = json_of(root, "data/targets.json");
    assert_eq!(targets[0]["id"], second_target);
    assert_eq!(
        json_of(root, "data/scans.json").as_array().unwrap().len(),
        1
    );
    assert_eq!(
        json_of(root, "data/checkout_tests.json"),
        serde_json::json!([])
    );
    assert!(
        !root.join("data/audit_log.json").exists(),
        "the agency's own log stays with it"
    );
    let recorded = recorded_artifacts(&shop.app, shop.org_id, Some(second_client)).await;
    let mut files = Vec::new();
    every_file(&root.join("artifacts"), &mut files);
    assert_eq!(files.len(), recorded.len());
    assert!(!root.join("artifacts/checkout-runs").exists());
    assert_ne!(shop.first.0, second_client);

    // Someone else's client, or not a number: refused, nothing asked.
    let exports_before = shop.app.count("SELECT count(*) AS n FROM exports").await;
    for bad in ["999999999", "-1", "shop"] {
        let refused = shop
            .owner
            .post_form("/settings/export", &[("client_id", bad)])
            .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(
        shop.app.count("SELECT count(*) AS n FROM exports").await,
        exports_before
    );

    // A link nobody used expires: the purge expires it and its parts leave the store.
    let unused = ask(&shop, "").await;
    let export_id = shop.app.count("SELECT max(id) AS n FROM exports").await;
    let parts = shop
        .app
        .data_dir
        .path()
        .join(format!("blobs/org/{}/export/{export_id}", shop.org_id));
    assert!(parts.join("attempt-1/part-00000").exists());
    let mut conn = shop.app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = {export_id}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    let store = BlobStore::Local(
        LocalStore::open(&shop.app.data_dir.path().join("blobs"))
            .await
            .unwrap(),
    );
    let (report, drained) = lifecycle::purge_now(&mut conn, &store).await.unwrap();
    assert_eq!(report.of(Purged::Exports), 1);
    assert_eq!(drained.failed, 0);
    assert!(
        !parts.join("attempt-1/part-00000").exists(),
        "the parts are deleted"
    );
    assert_eq!(
        shop.owner.get(&unused).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        shop.app
            .text(&format!(
                "SELECT state AS t FROM exports WHERE id = {export_id}"
            ))
            .await,
        "expired"
    );
}
