//! `siteward bench-purge`: retention purge throughput on a scratch database of N snapshots (each
//! with its scan, job, three artifacts, two hosts and three blobs in a local store), nine in ten
//! of them expired. The baseline is a plain batched `DELETE` of the same scans and their jobs
//! (cascading to the same rows) with siteward's deletion triggers off, measured on the same data
//! seeded again, so the figures show what the retention rules, the deletion queue and the blob
//! side cost on top of deleting rows.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use super::serve::ConfigArgs;
use crate::lifecycle::{BATCH, blob_deletions, retention};
use crate::storage::{BlobStore, LocalStore};

#[derive(Debug, Args)]
pub struct BenchPurgeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Snapshots in the scratch database (nine in ten expired).
    #[arg(long, default_value_t = 100_000)]
    pub snapshots: i64,
}

pub async fn run(args: BenchPurgeArgs) -> ExitCode {
    super::scratch::in_scratch_database(&args.config, "purge_bench", async |url| {
        measure(url, args.snapshots).await
    })
    .await
}

const TARGETS: i64 = 100;
const ARTIFACTS: [(&str, &str); 3] = [
    ("snapshot.json", "application/json"),
    ("viewport.png", "image/png"),
    ("fullpage.png", "image/png"),
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> Result<i64, String> {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .map_err(|e| e.to_string())
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> Result<usize, String> {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .map_err(|e| format!("{e}: {sql}"))
}

async fn measure(url: &SecretString, snapshots: i64) -> Result<(), String> {
    if snapshots < 10 {
        return Err("--snapshots must be at least 10".into());
    }
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    let mut conn = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())?;
    let org_id = seed_org(&mut conn).await?;
    println!(
        "purge benchmark: {snapshots} snapshots over {TARGETS} targets (each: scan, job, snapshot, 3 artifacts, 2 hosts, 3 blobs), nine in ten expired; batches of {BATCH}; {} cores, PostgreSQL on the same machine",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // Baseline: plain DELETE of the expired scans and their jobs, siteward's triggers off.
    seed_snapshots(&mut conn, org_id, snapshots).await?;
    let expired = count(
        &mut conn,
        "SELECT count(*) AS n FROM scans WHERE created_at < now() - interval '400 days'",
    )
    .await?;
    execute(&mut conn, "ALTER TABLE scans DISABLE TRIGGER USER").await?;
    let started = Instant::now();
    let mut plain_deleted = 0;
    loop {
        let n = count(
            &mut conn,
            &format!(
                "WITH gone AS (
                     DELETE FROM scans WHERE id IN (
                         SELECT id FROM scans WHERE created_at < now() - interval '400 days'
                         ORDER BY created_at LIMIT {BATCH})
                     RETURNING job_id),
                 jobs_gone AS (DELETE FROM jobs WHERE id IN (SELECT job_id FROM gone))
                 SELECT count(*) AS n FROM gone"
            ),
        )
        .await?;
        plain_deleted += n;
        if n < BATCH {
            break;
        }
    }
    let plain = started.elapsed();
    execute(&mut conn, "ALTER TABLE scans ENABLE TRIGGER USER").await?;
    if plain_deleted != expired {
        return Err(format!(
            "the plain DELETE removed {plain_deleted} scans, expected {expired}"
        ));
    }

    // The purge, on the same data seeded again, with its blobs in a local store.
    execute(&mut conn, "TRUNCATE scans, jobs, blob_deletions CASCADE").await?;
    seed_snapshots(&mut conn, org_id, snapshots).await?;
    let blobs = ScratchFolder(std::env::temp_dir().join(format!(
        "siteward-bench-purge-{}",
        hex::encode(crate::crypto::random_bytes::<4>())
    )));
    write_blobs(&mut conn, blobs.path()).await?;
    let store = BlobStore::Local(
        LocalStore::open(blobs.path())
            .await
            .map_err(|e| e.to_string())?,
    );
    let started = Instant::now();
    let report = retention::pass(&mut conn, BATCH, |_, _| true)
        .await
        .map_err(|e| e.to_string())?;
    let pass = started.elapsed();
    let started = Instant::now();
    let drained = blob_deletions::drain(&mut conn, &store, BATCH, Duration::from_secs(3600))
        .await
        .map_err(|e| e.to_string())?;
    let drain = started.elapsed();
    let purged = report.of(retention::Purged::Scans) as i64;
    if purged != expired || drained.failed > 0 {
        return Err(format!(
            "the purge removed {purged} scans (expected {expired}); {} blob deletions failed",
            drained.failed
        ));
    }
    let left = count(&mut conn, "SELECT count(*) AS n FROM scans").await?;
    let files_left = count_files(blobs.path());
    if left != snapshots - expired || files_left as i64 != 3 * left {
        return Err(format!(
            "after the purge {left} scans and {files_left} blob files remain; expected {} and {}",
            snapshots - expired,
            3 * (snapshots - expired)
        ));
    }

    let rate = |n: f64, d: Duration| n / d.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "{:<44} {:>10} {:>12} {:>14}",
        "", "seconds", "snapshots/s", "blobs/s"
    );
    println!(
        "{:<44} {:>10.2} {:>12.0} {:>14}",
        "plain DELETE (baseline)",
        plain.as_secs_f64(),
        rate(expired as f64, plain),
        "-"
    );
    println!(
        "{:<44} {:>10.2} {:>12.0} {:>14}",
        "retention pass (rows, blob deletions queued)",
        pass.as_secs_f64(),
        rate(expired as f64, pass),
        "-"
    );
    println!(
        "{:<44} {:>10.2} {:>12.0} {:>14.0}",
        "blob deletion queue drained",
        drain.as_secs_f64(),
        rate(expired as f64, drain),
        rate(drained.objects as f64, drain)
    );
    println!(
        "{:<44} {:>10.2} {:>12.0} {:>14.0}",
        "whole purge",
        (pass + drain).as_secs_f64(),
        rate(expired as f64, pass + drain),
        rate(drained.objects as f64, pass + drain)
    );
    super::print_figure(
        "purge.rows_vs_plain_delete",
        pass.as_secs_f64() / plain.as_secs_f64().max(f64::MIN_POSITIVE),
    );
    super::print_figure(
        "purge.with_blobs_vs_plain_delete",
        (pass + drain).as_secs_f64() / plain.as_secs_f64().max(f64::MIN_POSITIVE),
    );
    Ok(())
}

async fn seed_org(conn: &mut AsyncPgConnection) -> Result<i64, String> {
    let org_id = count(
        conn,
        "INSERT INTO orgs (name) VALUES ('Purge bench') RETURNING id AS n",
    )
    .await?;
    let client_id = count(
        conn,
        &format!(
            "INSERT INTO clients (org_id, name) VALUES ({org_id}, 'Client') RETURNING id AS n"
        ),
    )
    .await?;
    execute(
        conn,
        &format!(
            "INSERT INTO targets (org_id, client_id, name, url, viewport_width, viewport_height,
                                  consent_mode, capture_policy_pages, wait_ms, enabled)
             SELECT {org_id}, {client_id}, 'Page ' || n, 'https://shop.example/' || n, 1280, 800,
                    'none', false, 1000, true
             FROM generate_series(1, {TARGETS}) n"
        ),
    )
    .await?;
    Ok(org_id)
}

/// Scans n = 0..N-1: every tenth (the last of each ten) is a day old, the rest 500 days; the targets take turns in
/// tens, so every target has recent scans (and its latest is never an expired one).
async fn seed_snapshots(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    snapshots: i64,
) -> Result<(), String> {
    let age = "make_interval(days => CASE WHEN n % 10 = 9 THEN 1 ELSE 500 END)";
    execute(
        conn,
        &format!(
            "WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM targets WHERE org_id = {org_id}),
             j AS (INSERT INTO jobs (kind, payload, state, max_attempts, attempts, finished_at)
                   SELECT 'scan', jsonb_build_object('n', n), 'done', 3, 1, now() - {age}
                   FROM generate_series(0, {snapshots} - 1) n
                   RETURNING id, (payload->>'n')::bigint AS n)
             INSERT INTO scans (org_id, target_id, job_id, trigger, created_at)
             SELECT {org_id}, t.ids[1 + (j.n / 10) % {TARGETS}], j.id, 'schedule', now() - {age}
             FROM j, t ORDER BY j.n"
        ),
    )
    .await?;
    execute(
        conn,
        "INSERT INTO snapshots (id, org_id, target_id, scan_id, attempt, requested_url, final_url,
                                http_status, title, scan_ms, request_count, console_error_count,
                                limits_hit, captured_at)
         SELECT snapshot_id, org_id, target_id, id, 1, 'https://shop.example/', 'https://shop.example/',
                200, 'Shop', 2100, 48, 0, '[]', created_at FROM scans",
    )
    .await?;
    for (name, content_type) in ARTIFACTS {
        execute(
            conn,
            &format!(
                "INSERT INTO scan_artifacts (scan_id, name, org_id, content_type, size_bytes, sha256,
                                             attempt, uploaded_at, keyed_by_attempt)
                 SELECT id, '{name}', org_id, '{content_type}', 64, repeat('0', 64), 1, created_at, true
                 FROM scans"
            ),
        )
        .await?;
    }
    execute(
        conn,
        "INSERT INTO snapshot_hosts (snapshot_id, host, org_id, party, requests)
         SELECT s.id, h.host, s.org_id, h.party, 3 FROM snapshots s,
                (VALUES ('shop.example', 'first'), ('cdn.tracker.example', 'third')) AS h(host, party)",
    )
    .await?;
    execute(conn, "ANALYZE").await?;
    Ok(())
}

/// Three small files per scan, where the object keys put them.
async fn write_blobs(conn: &mut AsyncPgConnection, root: &Path) -> Result<(), String> {
    #[derive(QueryableByName)]
    struct Snap {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = BigInt)]
        snapshot_id: i64,
    }
    let snaps: Vec<Snap> = diesel::sql_query("SELECT org_id, snapshot_id FROM scans")
        .load(conn)
        .await
        .map_err(|e| e.to_string())?;
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for snap in snaps {
            let folder = root.join(format!(
                "org/{}/snapshot/{}/attempt-1",
                snap.org_id, snap.snapshot_id
            ));
            std::fs::create_dir_all(&folder)?;
            for (name, _) in ARTIFACTS {
                std::fs::write(folder.join(name), [0u8; 64])?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot write the blobs: {e}"))
}

/// A folder removed with everything in it when dropped.
struct ScratchFolder(std::path::PathBuf);

impl ScratchFolder {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn count_files(root: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            if entry.path().is_dir() {
                count_files(&entry.path())
            } else {
                1
            }
        })
        .sum()
}
