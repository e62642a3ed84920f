//! The PostgreSQL job queue: exclusive claims, leases, attempt tokens, backoff, dead jobs.

use std::collections::HashSet;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use siteward::queue::{self, FailOutcome};
use time::OffsetDateTime;

use super::support::*;

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap()
}

fn kinds() -> Vec<String> {
    vec!["scan".to_string()]
}

async fn count(url: &str, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = connect(url).await;
    diesel_async::RunQueryDsl::get_result::<N>(diesel::sql_query(sql), &mut conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_exists_only_if_the_transaction_that_asked_for_it_commits() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    let rolled_back: Result<(), diesel::result::Error> = conn
        .transaction(async |conn| {
            queue::enqueue(
                conn,
                "scan",
                &json!({"target": 1}),
                3,
                OffsetDateTime::now_utc(),
            )
            .await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(count(&url, "SELECT count(*) AS n FROM jobs").await, 0);
    queue::enqueue(
        &mut conn,
        "scan",
        &json!({"target": 2}),
        3,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(count(&url, "SELECT count(*) AS n FROM jobs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_take_every_job_exactly_once() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    for n in 0..300 {
        queue::enqueue(
            &mut conn,
            "scan",
            &json!({"n": n}),
            3,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    }
    queue::enqueue(&mut conn, "other", &json!({}), 3, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let mut runners = Vec::new();
    for runner in 0..8 {
        let url = url.clone();
        runners.push(tokio::spawn(async move {
            let mut conn = connect(&url).await;
            let mut taken = Vec::new();
            while let Some(job) = queue::claim(
                &mut conn,
                &format!("runner-{runner}"),
                &kinds(),
                Duration::from_secs(30),
            )
            .await
            .unwrap()
            {
                assert_eq!(job.attempt, 1);
                assert!(
                    queue::complete(&mut conn, job.id, &job.token)
                        .await
                        .unwrap()
                );
                taken.push(job.id);
            }
            taken
        }));
    }
    let mut all = Vec::new();
    for runner in runners {
        all.extend(runner.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "every scan job claimed once");
    assert_eq!(distinct.len(), 300, "no job claimed twice");
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM jobs WHERE state = 'done'").await,
        300
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM jobs WHERE kind = 'other' AND state = 'queued'"
        )
        .await,
        1,
        "claimers take only their kinds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_reclaimed_once_and_the_stale_holder_is_refused() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    let id = queue::enqueue(&mut conn, "scan", &json!({}), 3, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let first = queue::claim(&mut conn, "runner-a", &kinds(), Duration::from_millis(500))
        .await
        .unwrap()
        .unwrap();
    assert!(
        queue::heartbeat(&mut conn, id, &first.token, Duration::from_millis(500))
            .await
            .unwrap()
    );
    assert!(
        queue::claim(&mut conn, "runner-b", &kinds(), Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "a leased job is not handed out again"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(queue::reap(&mut conn).await.unwrap(), (1, 0));
    assert_eq!(
        queue::reap(&mut conn).await.unwrap(),
        (0, 0),
        "reclaimed once"
    );
    let second = queue::claim(&mut conn, "runner-b", &kinds(), Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the job is back in the queue");
    assert_eq!((second.id, second.attempt), (id, 2));
    assert_ne!(first.token, second.token);
    // Runner A wakes up: everything it says about the job is refused.
    assert!(
        !queue::heartbeat(&mut conn, id, &first.token, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(!queue::complete(&mut conn, id, &first.token).await.unwrap());
    assert_eq!(
        queue::fail(&mut conn, id, &first.token, "late")
            .await
            .unwrap(),
        FailOutcome::NotHolder
    );
    assert!(queue::complete(&mut conn, id, &second.token).await.unwrap());
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM jobs WHERE state = 'done' AND attempts = 2"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_with_jitter_and_the_last_one_is_dead_with_its_error() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    let id = queue::enqueue(&mut conn, "scan", &json!({}), 2, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let job = queue::claim(&mut conn, "r", &kinds(), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let FailOutcome::Retrying(run_at) = queue::fail(&mut conn, id, &job.token, "DNS failure")
        .await
        .unwrap()
    else {
        panic!("the first failure is retried");
    };
    let wait = (run_at - OffsetDateTime::now_utc()).as_seconds_f64();
    assert!((7.0..=12.5).contains(&wait), "about 10 s ± 20 %: {wait}");
    assert!(
        queue::claim(&mut conn, "r", &kinds(), Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "not before its time"
    );
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE jobs SET run_at = now()"),
        &mut conn,
    )
    .await
    .unwrap();
    let job = queue::claim(&mut conn, "r", &kinds(), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.attempt, 2);
    assert_eq!(
        queue::fail(&mut conn, id, &job.token, "DNS failure again")
            .await
            .unwrap(),
        FailOutcome::Dead
    );
    assert!(
        queue::claim(&mut conn, "r", &kinds(), Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM jobs WHERE state = 'dead' AND last_error = 'DNS failure again'").await,
        1
    );
    // Jitter: twenty jobs failing at once come back at different times.
    let mut run_ats = HashSet::new();
    for _ in 0..20 {
        let id = queue::enqueue(&mut conn, "scan", &json!({}), 5, OffsetDateTime::now_utc())
            .await
            .unwrap();
        let job = queue::claim(&mut conn, "r", &kinds(), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.id, id);
        let FailOutcome::Retrying(at) = queue::fail(&mut conn, id, &job.token, "x").await.unwrap()
        else {
            panic!("retried");
        };
        run_ats.insert(at.unix_timestamp_nanos() / 1_000_000);
    }
    assert!(
        run_ats.len() > 15,
        "jitter spreads retries: {} distinct times",
        run_ats.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_was_taken_over_cannot_fail_the_new_attempt() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    let id = queue::enqueue(&mut conn, "scan", &json!({}), 3, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let a = queue::claim(&mut conn, "runner-a", &kinds(), Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    queue::reap(&mut conn).await.unwrap();
    let b = queue::claim(&mut conn, "runner-b", &kinds(), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        queue::fail(&mut conn, id, &a.token, "late failure")
            .await
            .unwrap(),
        FailOutcome::NotHolder
    );
    assert!(
        queue::heartbeat(&mut conn, id, &b.token, Duration::from_secs(30))
            .await
            .unwrap(),
        "B still holds it"
    );
    assert!(queue::complete(&mut conn, id, &b.token).await.unwrap());
    assert!(
        !format!("{b:?}").contains(&b.token),
        "Debug never shows the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_lapses_on_the_last_attempt_kills_the_job() {
    let url = fresh_database().await;
    let mut conn = connect(&url).await;
    queue::enqueue(&mut conn, "scan", &json!({}), 1, OffsetDateTime::now_utc())
        .await
        .unwrap();
    queue::claim(&mut conn, "runner-a", &kinds(), Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queue::reap(&mut conn).await.unwrap(), (0, 1));
    assert_eq!(
        count(&url, "SELECT count(*) AS n FROM jobs WHERE state = 'dead' AND last_error LIKE '%lease lapsed%runner-a%'").await,
        1
    );
}
