//! `siteward bench-queue`: job-queue throughput (claim + complete) with 1, 8 and 32 simulated
//! runners that do no browser work, against the same number of connections doing bare
//! `SELECT 1` round trips in the same run. Runs in a scratch database it creates and drops on the
//! configured PostgreSQL server (or the embedded one).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use super::serve::ConfigArgs;
use crate::queue;

#[derive(Debug, Args)]
pub struct BenchQueueArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Jobs per run.
    #[arg(long, default_value_t = 5000)]
    pub jobs: i64,
    /// Runner counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub runners: Vec<usize>,
}

pub async fn run(args: BenchQueueArgs) -> ExitCode {
    super::scratch::in_scratch_database(&args.config, "queue_bench", async |url| {
        measure(url, &args).await
    })
    .await
}

async fn measure(url: &SecretString, args: &BenchQueueArgs) -> Result<(), String> {
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    println!(
        "queue benchmark: {} jobs per run, claim + complete, {} cores, PostgreSQL on the same machine",
        args.jobs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:>8} {:>12} {:>22} {:>10}",
        "runners", "jobs/s", "baseline SELECT 1/s", "ratio"
    );
    for &runners in &args.runners {
        let mut conn = AsyncPgConnection::establish(url.expose_secret())
            .await
            .map_err(|e| e.to_string())?;
        diesel::sql_query(format!(
            "INSERT INTO jobs (kind, payload, state, max_attempts)
             SELECT 'bench', jsonb_build_object('n', n), 'queued', 3 FROM generate_series(1, {}) n",
            args.jobs
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for runner in 0..runners {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = AsyncPgConnection::establish(url.expose_secret())
                    .await
                    .map_err(|e| e.to_string())?;
                let kinds = vec!["bench".to_string()];
                let mut done = 0u64;
                while let Some(job) = queue::claim(
                    &mut conn,
                    &format!("bench-{runner}"),
                    &kinds,
                    Duration::from_secs(60),
                )
                .await
                .map_err(|e| e.to_string())?
                {
                    if !queue::complete(&mut conn, job.id, &job.token)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Err(format!("job {} lost its lease", job.id));
                    }
                    done += 1;
                }
                Ok::<u64, String>(done)
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await.map_err(|e| e.to_string())??;
        }
        let elapsed = started.elapsed();
        if done != args.jobs as u64 {
            return Err(format!("{done} of {} jobs done", args.jobs));
        }
        let jobs_per_second = done as f64 / elapsed.as_secs_f64();
        let baseline = select_one_rate(url, runners, elapsed.min(Duration::from_secs(5))).await?;
        println!(
            "{runners:>8} {jobs_per_second:>12.0} {baseline:>22.0} {:>9.2}x",
            baseline / jobs_per_second
        );
        super::print_figure(
            &format!("queue.jobs_per_100_round_trips_{runners}_runners"),
            100.0 * jobs_per_second / baseline.max(f64::MIN_POSITIVE),
        );
        diesel::sql_query("DELETE FROM jobs")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    println!(
        "(ratio: bare round trips per claimed-and-completed job in the same time; 2 would mean the queue costs only its two statements)"
    );
    Ok(())
}

/// `SELECT 1` round trips per second over `connections` connections for `duration`.
async fn select_one_rate(
    url: &SecretString,
    connections: usize,
    duration: Duration,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(url.expose_secret())
                .await
                .map_err(|e| e.to_string())?;
            let mut count = 0u64;
            while started.elapsed() < duration {
                diesel::sql_query("SELECT 1")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok::<u64, String>(count)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
