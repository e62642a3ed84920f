//! `siteward bench-queue`: job-queue throughput (claim + complete) with 1, 8 and 32 simulated
//! runners that do no browser work, against the same connections doing bare `SELECT 1` round
//! trips right after each round. Runs in a scratch database it creates and drops on the
//! configured PostgreSQL server (or the embedded one).
//!
//! Connections are opened before the clock starts, and the figure is the median over several
//! rounds of (jobs per second / round trips per second): one round of a few hundred jobs lasts a
//! fraction of a second, and on two shared cores a single round swings by a fifth either way.

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
    /// Jobs per round.
    #[arg(long, default_value_t = 5000)]
    pub jobs: i64,
    /// Rounds per runner count; the median ratio is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
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
    if args.rounds == 0 || args.jobs <= 0 {
        return Err("--rounds and --jobs must be at least 1".into());
    }
    crate::db::migrate(url).await.map_err(|e| e.to_string())?;
    println!(
        "queue benchmark: {} jobs per round, median of {} rounds, claim + complete, {} cores, PostgreSQL on the same machine",
        args.jobs,
        args.rounds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:>8} {:>12} {:>22} {:>10}",
        "runners", "jobs/s", "baseline SELECT 1/s", "ratio"
    );
    let mut admin = connect(url).await?;
    for &runners in &args.runners {
        let mut connections = Vec::with_capacity(runners);
        for _ in 0..runners {
            connections.push(connect(url).await?);
        }
        let mut rounds = Vec::with_capacity(args.rounds);
        for _ in 0..args.rounds {
            diesel::sql_query(format!(
                "INSERT INTO jobs (kind, payload, state, max_attempts)
                 SELECT 'bench', jsonb_build_object('n', n), 'queued', 3 FROM generate_series(1, {}) n",
                args.jobs
            ))
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
            let (returned, jobs_per_second) = drain_queue(connections, args.jobs).await?;
            let (returned, round_trips_per_second) = select_one_rate(
                returned,
                Duration::from_secs_f64(args.jobs as f64 / jobs_per_second),
            )
            .await?;
            connections = returned;
            rounds.push(Round {
                jobs_per_second,
                round_trips_per_second,
            });
            diesel::sql_query("DELETE FROM jobs")
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
        }
        rounds.sort_by(|a, b| {
            a.jobs_per_100_round_trips()
                .total_cmp(&b.jobs_per_100_round_trips())
        });
        let median = &rounds[rounds.len() / 2];
        println!(
            "{runners:>8} {:>12.0} {:>22.0} {:>9.2}x",
            median.jobs_per_second,
            median.round_trips_per_second,
            median.round_trips_per_second / median.jobs_per_second
        );
        super::print_figure(
            &format!("queue.jobs_per_100_round_trips_{runners}_runners"),
            median.jobs_per_100_round_trips(),
        );
    }
    println!(
        "(ratio: bare round trips per claimed-and-completed job in the same time; 2 would mean the queue costs only its two statements)"
    );
    Ok(())
}

struct Round {
    jobs_per_second: f64,
    round_trips_per_second: f64,
}

impl Round {
    fn jobs_per_100_round_trips(&self) -> f64 {
        100.0 * self.jobs_per_second / self.round_trips_per_second.max(f64::MIN_POSITIVE)
    }
}

async fn connect(url: &SecretString) -> Result<AsyncPgConnection, String> {
    AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| e.to_string())
}

/// Claims and completes queued jobs on every connection at once until none is left; returns the
/// connections and the jobs per second. Fails unless exactly `expected` jobs were done.
async fn drain_queue(
    connections: Vec<AsyncPgConnection>,
    expected: i64,
) -> Result<(Vec<AsyncPgConnection>, f64), String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (runner, mut conn) in connections.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
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
            Ok::<_, String>((conn, done))
        }));
    }
    let mut connections = Vec::with_capacity(tasks.len());
    let mut done = 0;
    for task in tasks {
        let (conn, count) = task.await.map_err(|e| e.to_string())??;
        connections.push(conn);
        done += count;
    }
    let elapsed = started.elapsed();
    if done != expected as u64 {
        return Err(format!("{done} of {expected} jobs done"));
    }
    Ok((connections, done as f64 / elapsed.as_secs_f64()))
}

/// `SELECT 1` round trips per second over every connection at once for `duration`; returns the
/// connections and the rate.
async fn select_one_rate(
    connections: Vec<AsyncPgConnection>,
    duration: Duration,
) -> Result<(Vec<AsyncPgConnection>, f64), String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in connections {
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while started.elapsed() < duration {
                diesel::sql_query("SELECT 1")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok::<_, String>((conn, count))
        }));
    }
    let mut connections = Vec::with_capacity(tasks.len());
    let mut total = 0;
    for task in tasks {
        let (conn, count) = task.await.map_err(|e| e.to_string())??;
        connections.push(conn);
        total += count;
    }
    Ok((connections, total as f64 / started.elapsed().as_secs_f64()))
}
