//! Checkout tests, their sealed secrets and their runs in PostgreSQL, always scoped to the
//! caller's organization.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::OrgCtx;
use crate::db::schema::{checkout_run_pages, checkout_run_steps, checkout_secrets, checkout_tests};
use crate::queue;
use crate::runner::protocol::CHECKOUT_JOB;
use crate::scans::queries::{ScanState, Trigger};

/// A checkout test as people see it. The script names secrets; their values are never here.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = checkout_tests)]
pub struct CheckoutTest {
    pub id: i64,
    pub org_id: i64,
    pub target_id: i64,
    pub name: String,
    pub script: String,
    pub schedule: Option<String>,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
}

/// A secret's presence: its name and when it was last set, never its value.
#[derive(Debug, Clone, Serialize, Queryable, schemars::JsonSchema)]
pub struct SecretInfo {
    pub name: String,
    /// The runner key it is sealed to.
    pub key_id: String,
    /// The hosts it opens for (the test's allowed hosts when it was set, comma-separated).
    pub hosts: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
}

pub async fn tests_of_target(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
) -> QueryResult<Vec<CheckoutTest>> {
    checkout_tests::table
        .filter(checkout_tests::org_id.eq(ctx.org_id))
        .filter(checkout_tests::target_id.eq(target_id))
        .order(checkout_tests::id.asc())
        .select(CheckoutTest::as_select())
        .load(conn)
        .await
}

pub async fn test(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<CheckoutTest> {
    checkout_tests::table
        .filter(checkout_tests::org_id.eq(ctx.org_id))
        .filter(checkout_tests::id.eq(id))
        .select(CheckoutTest::as_select())
        .first(conn)
        .await
}

/// A checked test's fields, ready to store.
pub struct TestFields {
    pub name: String,
    pub script: String,
    pub schedule: Option<String>,
    pub enabled: bool,
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    fields: &TestFields,
) -> QueryResult<CheckoutTest> {
    diesel::insert_into(checkout_tests::table)
        .values((
            checkout_tests::org_id.eq(ctx.org_id),
            checkout_tests::target_id.eq(target_id),
            checkout_tests::name.eq(&fields.name),
            checkout_tests::script.eq(&fields.script),
            checkout_tests::schedule.eq(&fields.schedule),
            checkout_tests::enabled.eq(fields.enabled),
        ))
        .returning(CheckoutTest::as_returning())
        .get_result(conn)
        .await
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
    fields: &TestFields,
) -> QueryResult<CheckoutTest> {
    diesel::update(
        checkout_tests::table
            .filter(checkout_tests::org_id.eq(ctx.org_id))
            .filter(checkout_tests::id.eq(id)),
    )
    .set((
        checkout_tests::name.eq(&fields.name),
        checkout_tests::script.eq(&fields.script),
        checkout_tests::schedule.eq(&fields.schedule),
        checkout_tests::enabled.eq(fields.enabled),
        checkout_tests::updated_at.eq(diesel::dsl::now),
    ))
    .returning(CheckoutTest::as_returning())
    .get_result(conn)
    .await
}

pub async fn delete(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<usize> {
    diesel::delete(
        checkout_tests::table
            .filter(checkout_tests::org_id.eq(ctx.org_id))
            .filter(checkout_tests::id.eq(id)),
    )
    .execute(conn)
    .await
}

pub async fn secrets(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    test_id: i64,
) -> QueryResult<Vec<SecretInfo>> {
    checkout_secrets::table
        .filter(checkout_secrets::org_id.eq(ctx.org_id))
        .filter(checkout_secrets::test_id.eq(test_id))
        .order(checkout_secrets::name.asc())
        .select((
            checkout_secrets::name,
            checkout_secrets::key_id,
            checkout_secrets::hosts,
            checkout_secrets::updated_at,
        ))
        .load(conn)
        .await
}

/// Stores a sealed secret, replacing any earlier one of the same name.
pub async fn put_secret(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    test_id: i64,
    name: &str,
    sealed: &[u8],
    key_id: &str,
    hosts: &str,
) -> QueryResult<()> {
    diesel::insert_into(checkout_secrets::table)
        .values((
            checkout_secrets::test_id.eq(test_id),
            checkout_secrets::name.eq(name),
            checkout_secrets::org_id.eq(ctx.org_id),
            checkout_secrets::sealed.eq(sealed),
            checkout_secrets::key_id.eq(key_id),
            checkout_secrets::hosts.eq(hosts),
            checkout_secrets::updated_by.eq(ctx.actor.user_id()),
        ))
        .on_conflict((checkout_secrets::test_id, checkout_secrets::name))
        .do_update()
        .set((
            checkout_secrets::sealed.eq(sealed),
            checkout_secrets::key_id.eq(key_id),
            checkout_secrets::hosts.eq(hosts),
            checkout_secrets::updated_at.eq(diesel::dsl::now),
            checkout_secrets::updated_by.eq(ctx.actor.user_id()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_secret(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    test_id: i64,
    name: &str,
) -> QueryResult<usize> {
    diesel::delete(
        checkout_secrets::table
            .filter(checkout_secrets::org_id.eq(ctx.org_id))
            .filter(checkout_secrets::test_id.eq(test_id))
            .filter(checkout_secrets::name.eq(name)),
    )
    .execute(conn)
    .await
}

/// Queues a run of `test`: the run row and its job in the caller's transaction. The job's
/// payload names the run only; the runner gets the script and sealed secrets when it claims it.
pub async fn request_run(
    conn: &mut AsyncPgConnection,
    test: &CheckoutTest,
    trigger: Trigger,
    requested_by: Option<i64>,
    max_attempts: i32,
) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let run_id = diesel::sql_query("SELECT nextval('checkout_runs_id_seq') AS id")
        .get_result::<Id>(conn)
        .await?
        .id;
    let job_id = queue::enqueue(
        conn,
        CHECKOUT_JOB,
        &serde_json::json!({ "run_id": run_id }),
        max_attempts,
        OffsetDateTime::now_utc(),
    )
    .await?;
    diesel::sql_query(
        "INSERT INTO checkout_runs (id, org_id, test_id, target_id, job_id, trigger, requested_by, script)
         SELECT $1, org_id, id, target_id, $2, $3, $4, script FROM checkout_tests WHERE id = $5",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<BigInt, _>(job_id)
    .bind::<Text, _>(trigger.as_str())
    .bind::<Nullable<BigInt>, _>(requested_by)
    .bind::<BigInt, _>(test.id)
    .execute(conn)
    .await?;
    Ok(run_id)
}

/// Whether the test has a run waiting or running.
pub async fn has_open_run(conn: &mut AsyncPgConnection, test_id: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        open: bool,
    }
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM checkout_runs r JOIN jobs j ON j.id = r.job_id
                        WHERE r.test_id = $1 AND j.state IN ('queued', 'running')) AS open",
    )
    .bind::<BigInt, _>(test_id)
    .get_result::<Open>(conn)
    .await
    .map(|o| o.open)
}

/// A run as people see it; its state comes from its job.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Run {
    pub id: i64,
    pub test_id: i64,
    pub target_id: i64,
    pub state: ScanState,
    /// `passed` or `failed` once the run has reported.
    pub outcome: Option<String>,
    pub failed_step: Option<i32>,
    /// Why the run failed: the failing step's summary, or why it could not run at all.
    pub failure: Option<String>,
    pub stopped_at: Option<i32>,
    pub duration_ms: Option<i64>,
    pub trigger: String,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(QueryableByName)]
struct RunRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    test_id: i64,
    #[diesel(sql_type = BigInt)]
    target_id: i64,
    #[diesel(sql_type = Text)]
    job_state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    failed_step: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    failure: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    stopped_at: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    duration_ms: Option<i64>,
    #[diesel(sql_type = Text)]
    trigger: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<OffsetDateTime>,
}

impl From<RunRow> for Run {
    fn from(row: RunRow) -> Run {
        let state = ScanState::of(&row.job_state, row.attempts);
        // A run that never reported failed for the job's reason.
        let (outcome, failure) = match (row.outcome, state) {
            (None, ScanState::Failed) => (Some("failed".to_string()), row.last_error),
            (outcome, _) => (outcome, row.failure),
        };
        Run {
            id: row.id,
            test_id: row.test_id,
            target_id: row.target_id,
            state,
            outcome,
            failed_step: row.failed_step,
            failure,
            stopped_at: row.stopped_at,
            duration_ms: row.duration_ms,
            trigger: row.trigger,
            attempts: row.attempts,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

impl Run {
    /// The test's outcome in words: what a person asks first.
    pub fn outcome_words(&self) -> String {
        match (self.outcome.as_deref(), self.failed_step) {
            (Some("passed"), _) => "passed".into(),
            (Some("failed"), Some(step)) => format!("failed at step {step}"),
            (Some("failed"), None) => "could not run".into(),
            (Some(other), _) => other.to_owned(),
            (None, _) => "not finished yet".into(),
        }
    }

    /// The run's job in words, apart from the test's outcome: whether a runner has done it.
    pub fn job_words(&self) -> &'static str {
        match self.state {
            ScanState::Queued => "waiting for a runner",
            ScanState::Retrying => "waiting to be tried again",
            ScanState::Running => "a runner is running it",
            ScanState::Succeeded => "done",
            ScanState::Failed => "given up: no runner could run it",
        }
    }
}

/// A test with its latest run, for lists.
pub struct TestSummary {
    pub test: CheckoutTest,
    pub last_run: Option<Run>,
}

/// The target's tests, each with its latest run.
pub async fn summaries(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
) -> QueryResult<Vec<TestSummary>> {
    let tests = tests_of_target(conn, ctx, target_id).await?;
    let mut out = Vec::with_capacity(tests.len());
    for test in tests {
        let last_run = runs(conn, ctx, test.id, 1).await?.into_iter().next();
        out.push(TestSummary { test, last_run });
    }
    Ok(out)
}

const RUN_SELECT: &str = "SELECT r.id, r.test_id, r.target_id, j.state AS job_state, j.attempts,
        j.last_error, r.outcome, r.failed_step, r.failure, r.stopped_at, r.duration_ms, r.trigger,
        r.created_at, r.finished_at
    FROM checkout_runs r JOIN jobs j ON j.id = r.job_id";

pub async fn run(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Run> {
    diesel::sql_query(format!("{RUN_SELECT} WHERE r.id = $1 AND r.org_id = $2"))
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result::<RunRow>(conn)
        .await
        .map(Run::from)
}

/// A test's runs, newest first.
pub async fn runs(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    test_id: i64,
    limit: i64,
) -> QueryResult<Vec<Run>> {
    diesel::sql_query(format!(
        "{RUN_SELECT} WHERE r.test_id = $1 AND r.org_id = $2 ORDER BY r.id DESC LIMIT $3"
    ))
    .bind::<BigInt, _>(test_id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(limit)
    .load::<RunRow>(conn)
    .await
    .map(|rows| rows.into_iter().map(Run::from).collect())
}

/// One step of a run, as reported.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = checkout_run_steps)]
pub struct RunStep {
    pub number: i32,
    pub line: i32,
    pub kind: String,
    pub name: Option<String>,
    pub description: String,
    pub status: String,
    pub duration_ms: i64,
    pub url: String,
    pub error: Option<serde_json::Value>,
    pub console_errors: serde_json::Value,
    pub failed_requests: serde_json::Value,
    /// The artifact name of the step's screenshot.
    pub screenshot: Option<String>,
    /// For a failed step, what the page showed as wrong (redacted).
    #[schemars(with = "Vec<String>")]
    pub page_says: serde_json::Value,
    /// Requests the egress guard refused during the step.
    #[schemars(with = "Vec<String>")]
    pub refused_requests: serde_json::Value,
}

pub async fn steps(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    run_id: i64,
) -> QueryResult<Vec<RunStep>> {
    checkout_run_steps::table
        .filter(checkout_run_steps::org_id.eq(ctx.org_id))
        .filter(checkout_run_steps::run_id.eq(run_id))
        .order(checkout_run_steps::number.asc())
        .select(RunStep::as_select())
        .load(conn)
        .await
}

/// A page the run reached and what changed on it since the test's previous run.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = checkout_run_pages)]
pub struct RunPage {
    pub index: i32,
    pub after_step: i32,
    pub url: String,
    pub path: String,
    pub script_count: i32,
    pub third_party_hosts: serde_json::Value,
    /// `null` until compared; the changes as typed objects.
    pub changes: Option<serde_json::Value>,
    pub previous_run_id: Option<i64>,
}

pub async fn pages(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    run_id: i64,
) -> QueryResult<Vec<RunPage>> {
    checkout_run_pages::table
        .filter(checkout_run_pages::org_id.eq(ctx.org_id))
        .filter(checkout_run_pages::run_id.eq(run_id))
        .order(checkout_run_pages::index.asc())
        .select(RunPage::as_select())
        .load(conn)
        .await
}
