//! Encrypted blob storage: envelope encryption with per-org data keys over the local folder and
//! over a real S3-compatible server (s3s-fs) through aws-sdk-s3.

use std::process::Command;

use base64::Engine;
use diesel::{ExpressionMethods, NullableExpressionMethods, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use siteward::crypto::MasterKeys;
use siteward::storage::{
    BlobStore, EnvelopeError, LocalStore, ObjectKey, SealedBlobs, StoreConfig, StoreError, Uploader,
};

use super::support::*;

fn master_keys(list: &[(&str, u8)], current: &str) -> MasterKeys {
    let text = list
        .iter()
        .map(|(id, byte)| {
            format!(
                "{id}:{}",
                base64::engine::general_purpose::STANDARD.encode([*byte; 32])
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    MasterKeys::parse(&text, Some(current)).unwrap()
}

async fn new_org(conn: &mut AsyncPgConnection, name: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    diesel::sql_query("INSERT INTO orgs (name) VALUES ($1) RETURNING id")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Id>(conn)
        .await
        .unwrap()
        .id
}

const SCREENSHOT: &[u8] = b"\x89PNG\r\n\x1a\n pretend this is a 5 MB full-page screenshot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_sealed_per_org_and_altered_or_moved_blobs_fail_to_open() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org_a = new_org(&mut conn, "A").await;
    let org_b = new_org(&mut conn, "B").await;
    let root = tempfile::tempdir().unwrap();
    let store = BlobStore::Local(LocalStore::open(root.path()).await.unwrap());
    let blobs = SealedBlobs::new(store, master_keys(&[("m1", 1)], "m1"));

    let a = ObjectKey::snapshot_artifact(org_a, 1, Uploader::Attempt(1), "fullpage.png").unwrap();
    let a2 = ObjectKey::snapshot_artifact(org_a, 2, Uploader::Attempt(1), "fullpage.png").unwrap();
    let b = ObjectKey::snapshot_artifact(org_b, 3, Uploader::Attempt(1), "fullpage.png").unwrap();
    blobs.put(&mut conn, &a, SCREENSHOT).await.unwrap();
    assert_eq!(
        blobs.get(&mut conn, &a).await.unwrap().as_slice(),
        SCREENSHOT
    );

    let path = root.path().join(a.as_str());
    let stored = std::fs::read(&path).unwrap();
    assert!(stored.starts_with(b"SWB\x01"));
    assert!(
        !stored.windows(8).any(|w| w == &SCREENSHOT[..8]),
        "no plaintext at rest"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // One flipped bit anywhere: a clear error, never garbage.
    for position in [5, 20, stored.len() - 1] {
        let mut altered = stored.clone();
        altered[position] ^= 0x01;
        std::fs::write(&path, &altered).unwrap();
        let error = blobs.get(&mut conn, &a).await.unwrap_err();
        assert!(
            matches!(
                error,
                EnvelopeError::Tampered { .. } | EnvelopeError::UnknownDataKey { .. }
            ),
            "byte {position}: {error}"
        );
    }
    std::fs::write(&path, &stored[..30]).unwrap();
    assert!(matches!(
        blobs.get(&mut conn, &a).await.unwrap_err(),
        EnvelopeError::Malformed { .. }
    ));
    std::fs::write(&path, &stored).unwrap();

    // Moved under another key of the same org, or into another org: refused.
    std::fs::create_dir_all(root.path().join(a2.as_str()).parent().unwrap()).unwrap();
    std::fs::write(root.path().join(a2.as_str()), &stored).unwrap();
    assert!(matches!(
        blobs.get(&mut conn, &a2).await.unwrap_err(),
        EnvelopeError::Tampered { .. }
    ));
    std::fs::create_dir_all(root.path().join(b.as_str()).parent().unwrap()).unwrap();
    std::fs::write(root.path().join(b.as_str()), &stored).unwrap();
    let error = blobs.get(&mut conn, &b).await.unwrap_err();
    assert!(
        matches!(error, EnvelopeError::UnknownDataKey { .. }),
        "{error}"
    );

    let missing =
        ObjectKey::snapshot_artifact(org_a, 9, Uploader::Attempt(1), "viewport.png").unwrap();
    assert!(matches!(
        blobs.get(&mut conn, &missing).await.unwrap_err(),
        EnvelopeError::Store(StoreError::NotFound(_))
    ));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM org_data_keys").await,
        1,
        "one data key, made on first use, for the one org that stored something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_master_keys_rotate_without_touching_blobs() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org = new_org(&mut conn, "A").await;
    let root = tempfile::tempdir().unwrap();
    let store = BlobStore::Local(LocalStore::open(root.path()).await.unwrap());
    let old_master = master_keys(&[("m1", 1)], "m1");
    let blobs = SealedBlobs::new(store.clone(), old_master.clone());
    let first =
        ObjectKey::snapshot_artifact(org, 1, Uploader::Attempt(1), "snapshot.json").unwrap();
    blobs.put(&mut conn, &first, b"{\"v\":1}").await.unwrap();

    // A new data key: new blobs use it, the old blob still opens.
    let new_key = siteward::storage::envelope::create_data_key(&mut conn, &old_master, org)
        .await
        .unwrap();
    let second =
        ObjectKey::snapshot_artifact(org, 2, Uploader::Attempt(1), "snapshot.json").unwrap();
    blobs.put(&mut conn, &second, b"{\"v\":2}").await.unwrap();
    let header = std::fs::read(root.path().join(second.as_str())).unwrap();
    assert_eq!(
        i64::from_be_bytes(header[4..12].try_into().unwrap()),
        new_key
    );
    assert_eq!(
        blobs.get(&mut conn, &first).await.unwrap().as_slice(),
        b"{\"v\":1}"
    );

    // A new master key: data keys are re-wrapped, blobs are byte-for-byte the same.
    let before = std::fs::read(root.path().join(first.as_str())).unwrap();
    let both = master_keys(&[("m1", 1), ("m2", 2)], "m2");
    let rewrapped = siteward::storage::envelope::rewrap_data_keys(&mut conn, &both)
        .await
        .unwrap();
    assert_eq!(rewrapped, 2);
    assert_eq!(
        std::fs::read(root.path().join(first.as_str())).unwrap(),
        before
    );
    let new_only = SealedBlobs::new(store.clone(), master_keys(&[("m2", 2)], "m2"));
    assert_eq!(
        new_only.get(&mut conn, &first).await.unwrap().as_slice(),
        b"{\"v\":1}"
    );
    assert_eq!(
        new_only.get(&mut conn, &second).await.unwrap().as_slice(),
        b"{\"v\":2}"
    );
    let old_only = SealedBlobs::new(store, old_master);
    assert!(matches!(
        old_only.get(&mut conn, &first).await.unwrap_err(),
        EnvelopeError::MasterKey(_)
    ));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM org_data_keys WHERE master_key_id = 'm2'")
            .await,
        2
    );
}

/// An S3-compatible server (s3s-fs: it checks request signatures) on a free port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_blobs_round_trip_through_a_real_s3_server_and_server_side_edits_are_caught() {
    let server = S3Server::start();
    // s3s-fs keeps each bucket as a folder.
    std::fs::create_dir(server.root.path().join("snapshots")).unwrap();
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org = new_org(&mut conn, "A").await;

    let wrong_region = BlobStore::open(&StoreConfig::S3(server.config(
        "snapshots",
        "ap-southeast-2",
        S3_SECRET_KEY,
    )))
    .await;
    let region = match wrong_region {
        Err(StoreError::RegionMismatch { actual, .. }) => actual,
        Err(other) => panic!("expected a region mismatch, got {other}"),
        Ok(_) => panic!("s3s-fs answers one region; ap-southeast-2 cannot match it"),
    };
    let bad_secret = BlobStore::open(&StoreConfig::S3(server.config(
        "snapshots",
        &region,
        "wrong-secret",
    )))
    .await;
    assert!(
        matches!(bad_secret, Err(StoreError::S3 { .. })),
        "a wrong secret is refused"
    );

    let store = BlobStore::open(&StoreConfig::S3(server.config(
        "snapshots",
        &region,
        S3_SECRET_KEY,
    )))
    .await
    .unwrap();
    let blobs = SealedBlobs::new(store.clone(), master_keys(&[("m1", 1)], "m1"));
    let key = ObjectKey::snapshot_artifact(org, 7, Uploader::Attempt(1), "fullpage.png").unwrap();
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    blobs.put(&mut conn, &key, &big).await.unwrap();
    assert_eq!(
        blobs.get(&mut conn, &key).await.unwrap().as_slice(),
        big.as_slice()
    );

    // Someone with write access to the bucket replaces the object (with a valid checksum):
    // envelope authentication refuses it.
    let mut sealed = store.get(&key).await.unwrap();
    assert!(sealed.starts_with(b"SWB\x01"));
    sealed[1000] ^= 0x80;
    store.put(&key, sealed.clone()).await.unwrap();
    let error = blobs.get(&mut conn, &key).await.unwrap_err();
    assert!(matches!(error, EnvelopeError::Tampered { .. }), "{error}");

    // Bytes changed behind the server's back fail its stored checksum already.
    sealed[1000] ^= 0x80;
    store.put(&key, sealed.clone()).await.unwrap();
    assert_eq!(
        blobs.get(&mut conn, &key).await.unwrap().as_slice(),
        big.as_slice()
    );
    let on_disk = server.root.path().join("snapshots").join(key.as_str());
    let mut stored = std::fs::read(&on_disk).expect("s3s-fs keeps the object as a file");
    stored[2000] ^= 0x01;
    std::fs::write(&on_disk, &stored).unwrap();
    let error = blobs.get(&mut conn, &key).await.unwrap_err().to_string();
    assert!(error.contains("checksum mismatch"), "{error}");

    blobs.delete(&key).await.unwrap();
    assert!(matches!(
        blobs.get(&mut conn, &key).await.unwrap_err(),
        EnvelopeError::Store(StoreError::NotFound(_))
    ));
}

const TEST_MASTER_KEY: &str = "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_commands_rotate_keys_and_serve_refuses_a_bucket_in_another_region() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org = new_org(&mut conn, "A").await;
    let blobs = SealedBlobs::new(
        BlobStore::Local(
            LocalStore::open(&app.data_dir.path().join("blobs"))
                .await
                .unwrap(),
        ),
        MasterKeys::parse(TEST_MASTER_KEY, None).unwrap(),
    );
    let key = ObjectKey::snapshot_artifact(org, 1, Uploader::Attempt(1), "snapshot.json").unwrap();
    blobs.put(&mut conn, &key, b"{}").await.unwrap();
    // Secrets sealed with the master key itself: a person's two-factor secret and a channel's
    // settings (made through the API, sealed by the app).
    let owner = app.sign_up_first("Sealed").await;
    let owner_id = app.user_id(&owner.email).await;
    let totp = siteward::auth::totp::seal(
        &MasterKeys::parse(TEST_MASTER_KEY, None).unwrap(),
        owner_id,
        b"twenty-byte-secret!!",
    );
    diesel::update(siteward::db::schema::users::table.find(owner_id))
        .set(siteward::db::schema::users::totp_secret.eq(totp))
        .execute(&mut conn)
        .await
        .unwrap();
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let channel = api
        .send_json(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            serde_json::json!({"name": "Ops", "kind": "email", "to": "ops@agency.example", "min_severity": "info"}),
        )
        .await;
    assert_eq!(channel.status(), reqwest::StatusCode::CREATED);
    let channel_id = channel.json::<serde_json::Value>().await.unwrap()["channel"]["id"]
        .as_i64()
        .unwrap();

    let siteward = |args: &[&str], keys: &str| {
        Command::new(env!("CARGO_BIN_EXE_siteward"))
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("SITEWARD_DATA_DIR", app.data_dir.path())
            .env("SITEWARD_MASTER_KEYS", keys)
            .output()
            .unwrap()
    };
    let next = format!(
        "{TEST_MASTER_KEY},next:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let output = siteward(&["admin", "rotate-master-key"], &next);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("re-wrapped 1 data key(s) and sealed 1 two-factor secret(s) and 1 notification channel setting(s) again under master key `next`"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let output = siteward(
        &["admin", "rotate-data-key", "--org", &org.to_string()],
        &next,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = siteward(&["admin", "rotate-data-key", "--org", "999999999"], &next);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no organization has the id 999999999")
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM org_data_keys").await,
        2
    );
    // The old master key can go: everything opens with the new one alone, including a blob
    // sealed after the data-key rotation.
    let next_only = format!(
        "next:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let reopened = SealedBlobs::new(
        BlobStore::Local(
            LocalStore::open(&app.data_dir.path().join("blobs"))
                .await
                .unwrap(),
        ),
        MasterKeys::parse(&next_only, None).unwrap(),
    );
    assert_eq!(
        reopened.get(&mut conn, &key).await.unwrap().as_slice(),
        b"{}"
    );
    let next_keys = MasterKeys::parse(&next_only, None).unwrap();
    let (totp, channel_org, settings): (Vec<u8>, i64, Vec<u8>) = {
        use siteward::db::schema::{notification_channels, users};
        let totp = users::table
            .find(owner_id)
            .select(users::totp_secret.assume_not_null())
            .get_result(&mut conn)
            .await
            .unwrap();
        let (org, settings) = notification_channels::table
            .find(channel_id)
            .select((
                notification_channels::org_id,
                notification_channels::config_sealed,
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
        (totp, org, settings)
    };
    assert_eq!(
        next_keys
            .open(&totp, &siteward::auth::totp::seal_context(owner_id))
            .unwrap()
            .as_slice(),
        b"twenty-byte-secret!!"
    );
    let opened = next_keys
        .open(
            &settings,
            &format!("notification_channels:{channel_org}:{channel_id}"),
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&opened).contains("ops@agency.example"));
    let later =
        ObjectKey::snapshot_artifact(org, 2, Uploader::Attempt(1), "snapshot.json").unwrap();
    reopened.put(&mut conn, &later, b"{}").await.unwrap();
    assert_eq!(
        reopened.get(&mut conn, &later).await.unwrap().as_slice(),
        b"{}"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM org_data_keys WHERE master_key_id <> 'next'")
            .await,
        0
    );

    let server = S3Server::start();
    std::fs::create_dir(server.root.path().join("snapshots")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("serve")
        .env("DATABASE_URL", &app.database_url)
        .env("SITEWARD_DATA_DIR", app.data_dir.path())
        .env("SITEWARD_LISTEN", "127.0.0.1:0")
        .env("SITEWARD_MASTER_KEYS", &next)
        .env("SITEWARD_S3_BUCKET", "snapshots")
        .env("SITEWARD_S3_REGION", "ap-southeast-2")
        .env(
            "SITEWARD_S3_ENDPOINT",
            format!("http://127.0.0.1:{}", server.port),
        )
        .env("SITEWARD_S3_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("SITEWARD_S3_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is in region") && stderr.contains("ap-southeast-2"),
        "{stderr}"
    );
    assert!(!stderr.contains(S3_SECRET_KEY), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_writes_of_an_org_make_one_data_key() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org = new_org(&mut conn, "A").await;
    let root = tempfile::tempdir().unwrap();
    let blobs = SealedBlobs::new(
        BlobStore::Local(LocalStore::open(root.path()).await.unwrap()),
        master_keys(&[("m1", 1)], "m1"),
    );
    let mut writers = Vec::new();
    for n in 0..8 {
        let blobs = blobs.clone();
        let url = app.database_url.clone();
        writers.push(tokio::spawn(async move {
            let mut conn = <AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url)
                .await
                .unwrap();
            let key =
                ObjectKey::snapshot_artifact(org, n, Uploader::Attempt(1), "viewport.png").unwrap();
            blobs
                .put(&mut conn, &key, b"png")
                .await
                .map_err(|e| e.to_string())
        }));
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM org_data_keys").await,
        1
    );
}
