//! Checkout test pages and API. Page and API handlers share one function per action, so both
//! check the same roles, validate the same way and write the same audit entries. Secrets go in
//! and never come out: the app seals them to the runners' key and keeps only the sealed form.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::analysis::read_artifact;
use super::internal::is_step_screenshot;
use super::queries::{self, CheckoutTest, Run, RunPage, RunStep, SecretInfo, TestFields};
use super::views::*;
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, html_form, see_other};
use crate::scans::queries::Trigger;
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

/// Runs shown on a test's page and in its API listing.
const RECENT_RUNS: i64 = 50;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_get("/targets/{target_id}/checkout-tests", member, tests_page),
        page_get("/targets/{target_id}/checkout-tests/new", admin, new_test_page),
        page_post("/targets/{target_id}/checkout-tests", admin, create_test_form)
            .example("name=Guest+checkout+{unique}&script=steps%3A%0A++-+goto%3A+%2F%0A++-+stop%0A&schedule=&enabled=on"),
        page_get("/checkout-tests/{test_id}", member, test_page),
        page_post("/checkout-tests/{test_id}", admin, update_test_form)
            .example("name=Renamed+{unique}&script=steps%3A%0A++-+goto%3A+%2Fcart%0A++-+stop%0A&schedule=0+6+*+*+*&enabled=on"),
        page_post("/checkout-tests/{test_id}/delete", admin, delete_test_form),
        page_post("/checkout-tests/{test_id}/secrets", admin, set_secret_form)
            .example("name=card_number&value=4242424242424242"),
        page_post("/checkout-tests/{test_id}/secrets/{secret}/delete", admin, delete_secret_form),
        page_post("/checkout-tests/{test_id}/runs", admin, run_now_form),
        page_get("/checkout-runs/{run_id}", member, run_page),
        page_get("/checkout-runs/{run_id}/screenshots/{screenshot}", member, screenshot_page),
        api(Method::GET, "/api/v1/targets/{target_id}/checkout-tests", Role::Member, api_tests)
            .summary("List a target's checkout tests")
            .response::<Vec<TestBody>>(),
        api(Method::POST, "/api/v1/targets/{target_id}/checkout-tests", Role::Admin, api_create_test)
            .summary("Add a checkout test to a target (the script is checked first; problems answer 422 with line and column)")
            .example(r#"{"name": "Guest checkout {unique}", "script": "steps:\n  - goto: /\n  - stop\n"}"#)
            .request::<TestInput>()
            .response::<TestBody>()
            .success(201),
        api(Method::POST, "/api/v1/checkout-tests/validate", Role::Member, api_validate)
            .summary("Check a script without saving it (422 lists every problem with its line and column)")
            .example(r#"{"script": "steps:\n  - goto: /\n  - click: '#buy'\n  - stop\n"}"#)
            .request::<ValidateInput>()
            .response::<Validation>(),
        api(Method::GET, "/api/v1/checkout-tests/{test_id}", Role::Member, api_test)
            .summary("Get a checkout test, with which secrets are set (never their values)")
            .response::<TestBody>(),
        api(Method::PUT, "/api/v1/checkout-tests/{test_id}", Role::Admin, api_update_test)
            .summary("Replace a checkout test's name, script, schedule and state")
            .example(r#"{"name": "Renamed {unique}", "script": "steps:\n  - goto: /cart\n  - stop\n", "schedule": "0 6 * * *"}"#)
            .request::<TestInput>()
            .response::<TestBody>(),
        api(Method::DELETE, "/api/v1/checkout-tests/{test_id}", Role::Admin, api_delete_test)
            .summary("Delete a checkout test, its secrets and its runs")
            .success(204),
        api(Method::PUT, "/api/v1/checkout-tests/{test_id}/secrets/{secret}", Role::Admin, api_set_secret)
            .summary("Set a secret: sealed to the runners' key at once; it can be replaced, never read back")
            .example(r#"{"value": "4242424242424242"}"#)
            .request::<SecretInput>()
            .response::<SecretInfo>(),
        api(Method::DELETE, "/api/v1/checkout-tests/{test_id}/secrets/{secret}", Role::Admin, api_delete_secret)
            .summary("Delete a secret")
            .success(204),
        api(Method::POST, "/api/v1/checkout-tests/{test_id}/runs", Role::Admin, api_run_now)
            .summary("Run a checkout test now (202; poll the run)")
            .response::<Run>()
            .success(202),
        api(Method::GET, "/api/v1/checkout-tests/{test_id}/runs", Role::Member, api_runs)
            .summary("A checkout test's runs, newest first (the last 50)")
            .response::<Vec<Run>>(),
        api(Method::GET, "/api/v1/checkout-runs/{run_id}", Role::Member, api_run)
            .summary("A run with its steps and the pages it reached")
            .response::<RunBody>(),
        api(Method::GET, "/api/v1/checkout-runs/{run_id}/screenshots/{screenshot}", Role::Member, api_screenshot)
            .summary("A step's screenshot (PNG); secret fields are masked before capture"),
    ]
}

/// A checkout test as written by a person or a program.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    pub name: String,
    /// The steps, in the YAML step language (docs/checkout-tests.md).
    pub script: String,
    /// Cron (UTC, five fields); empty or absent for on demand only.
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateInput {
    pub script: String,
}

/// A script that passed its check (problems answer 422, each with its line and column).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Validation {
    pub valid: bool,
    pub steps: usize,
    /// The secrets the steps fill in.
    pub secrets: Vec<String>,
}

/// A secret's new value. Never stored or logged as given.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    pub value: String,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretInput([hidden])")
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TestBody {
    #[serde(flatten)]
    pub test: CheckoutTest,
    pub secrets: Vec<SecretInfo>,
    /// Secrets the script fills in that have not been set.
    pub missing_secrets: Vec<String>,
    /// Secrets set for other hosts than the test may now open (its `allowed_hosts` or its
    /// target's URL changed since): they no longer open, so runs fail until they are set again.
    pub stale_secrets: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunBody {
    #[serde(flatten)]
    pub run: Run,
    pub steps: Vec<RunStep>,
    pub pages: Vec<RunPage>,
}

// ---- actions shared by pages and the API ----

/// Checks a test's fields: the script is parsed and every problem reported with its place.
fn check(input: &TestInput) -> Result<TestFields, AppError> {
    let mut errors = FieldErrors::default();
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.add("name", "must be 1 to 200 characters");
    }
    if let Err(problems) = checkout_runner::parse(&input.script) {
        for problem in problems.0 {
            errors.add("script", problem.to_string());
        }
    }
    let schedule = input
        .schedule
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(text) = &schedule
        && let Err(error) = crate::sites::schedule::parse(text)
    {
        errors.add("schedule", error.to_string());
    }
    errors.into_result()?;
    Ok(TestFields {
        name,
        script: input.script.replace('\0', ""),
        schedule,
        enabled: input.enabled,
    })
}

fn validation(script: &str) -> Result<Validation, AppError> {
    match checkout_runner::parse(script) {
        Ok(plan) => Ok(Validation {
            valid: true,
            steps: plan.steps.len(),
            secrets: plan.secret_names().iter().map(|s| s.to_string()).collect(),
        }),
        Err(problems) => {
            let mut errors = FieldErrors::default();
            for problem in problems.0 {
                errors.add("script", problem.to_string());
            }
            Err(AppError::Invalid(errors))
        }
    }
}

async fn create_test(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    input: &TestInput,
) -> Result<CheckoutTest, AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    ctx.require(Role::Admin)?;
    let fields = check(input)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let test = queries::create(conn, &ctx, target.id, &fields).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "checkout_test.created",
                format!("checkout test {}", test.id),
            )
            .detail(json!({"target": target.id, "name": test.name})),
        )
        .await?;
        Ok(test)
    })
    .await
}

async fn update_test(
    state: &AppState,
    ctx: &OrgCtx,
    test_id: i64,
    input: &TestInput,
) -> Result<CheckoutTest, AppError> {
    let mut conn = state.conn().await?;
    queries::test(&mut conn, ctx, test_id).await?;
    ctx.require(Role::Admin)?;
    let fields = check(input)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let test = queries::update(conn, &ctx, test_id, &fields).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "checkout_test.updated",
                format!("checkout test {test_id}"),
            )
            .detail(json!({"name": test.name})),
        )
        .await?;
        Ok(test)
    })
    .await
}

async fn delete_test(state: &AppState, ctx: &OrgCtx, test_id: i64) -> Result<i64, AppError> {
    let mut conn = state.conn().await?;
    let test = queries::test(&mut conn, ctx, test_id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::delete(conn, &ctx, test_id).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "checkout_test.deleted",
                format!("checkout test {test_id}"),
            )
            .detail(json!({"name": test.name})),
        )
        .await?;
        Ok(test.target_id)
    })
    .await
}

/// Seals `value` to the runners' key, bound to this test and name, and stores only that.
async fn set_secret(
    state: &AppState,
    ctx: &OrgCtx,
    test_id: i64,
    name: &str,
    value: Zeroizing<String>,
) -> Result<SecretInfo, AppError> {
    let mut conn = state.conn().await?;
    let test = queries::test(&mut conn, ctx, test_id).await?;
    ctx.require(Role::Admin)?;
    if !checkout_runner::plan::valid_secret_name(name) {
        return Err(AppError::invalid(
            "name",
            checkout_runner::plan::secret_name_problem(name),
        ));
    }
    if value.is_empty() || value.len() > checkout_runner::sealing::MAX_SECRET_BYTES {
        return Err(AppError::invalid(
            "value",
            format!(
                "must be 1 to {} bytes",
                checkout_runner::sealing::MAX_SECRET_BYTES
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "value",
            "must not contain control characters",
        ));
    }
    let key = super::keys::active(&mut conn).await?.ok_or_else(|| {
        AppError::Conflict(
            "no runner key is registered, so secrets cannot be sealed; run `siteward admin runner-keys` (serve registers one for its embedded runner)".into(),
        )
    })?;
    let target = sites::target(&mut conn, ctx, test.target_id).await?;
    let hosts = checkout_runner::parse(&test.script)
        .ok()
        .and_then(|plan| host_binding(&plan, &target))
        .ok_or_else(|| {
            AppError::Conflict(
                "the test's script does not parse, so the hosts its secrets are for are unknown; fix the script first".into(),
            )
        })?;
    let place = checkout_runner::sealing::secret_place(test_id, name, &hosts);
    let sealed = key
        .seal(&place, value.as_bytes())
        .map_err(|e| AppError::invalid("value", e.to_string()))?;
    drop(value);
    let ctx = ctx.clone();
    let name = name.to_string();
    let key_id = key.id();
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::put_secret(conn, &ctx, test_id, &name, &sealed, &key_id, &hosts).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "checkout_test.secret_set",
                format!("checkout test {test_id}"),
            )
            .detail(json!({"secret": name, "runner_key": key_id, "hosts": hosts})),
        )
        .await?;
        let info = queries::secrets(conn, &ctx, test_id)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or(AppError::NotFound)?;
        Ok(info)
    })
    .await
}

async fn delete_secret(
    state: &AppState,
    ctx: &OrgCtx,
    test_id: i64,
    name: &str,
) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    queries::test(&mut conn, ctx, test_id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    let name = name.to_string();
    conn.transaction::<_, AppError, _>(async move |conn| {
        if queries::delete_secret(conn, &ctx, test_id, &name).await? == 0 {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "checkout_test.secret_deleted",
                format!("checkout test {test_id}"),
            )
            .detail(json!({"secret": name})),
        )
        .await?;
        Ok(())
    })
    .await
}

async fn run_now(
    state: &AppState,
    ctx: &OrgCtx,
    test_id: i64,
    trigger: Trigger,
) -> Result<i64, AppError> {
    let mut conn = state.conn().await?;
    let test = queries::test(&mut conn, ctx, test_id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    let attempts = state.config.runners.scan_attempts;
    let run_id = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let run_id =
                queries::request_run(conn, &test, trigger, ctx.actor.user_id(), attempts).await?;
            audit::record(
                conn,
                Entry::by(
                    &ctx,
                    "checkout_test.run_requested",
                    format!("checkout test {test_id}"),
                )
                .detail(json!({"run": run_id})),
            )
            .await?;
            Ok(run_id)
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(run_id)
}

/// The hosts a test with `plan` on `target` may open, in the form its secrets are sealed for.
fn host_binding(plan: &checkout_runner::Plan, target: &sites::Target) -> Option<String> {
    let base_url = url::Url::parse(&target.url).ok()?;
    let hosts = checkout_runner::run::allowed_hosts(plan, &base_url);
    Some(checkout_runner::sealing::host_binding(&hosts))
}

/// [`test_body`] for one test, loading its target.
async fn body_of(
    conn: &mut diesel_async::AsyncPgConnection,
    ctx: &OrgCtx,
    test: CheckoutTest,
) -> Result<TestBody, AppError> {
    let target = sites::target(conn, ctx, test.target_id).await?;
    test_body(conn, ctx, test, &target).await
}

/// A test with which secrets are set, missing, or sealed for other hosts. `target` is the test's.
async fn test_body(
    conn: &mut diesel_async::AsyncPgConnection,
    ctx: &OrgCtx,
    test: CheckoutTest,
    target: &sites::Target,
) -> Result<TestBody, AppError> {
    let secrets = queries::secrets(conn, ctx, test.id).await?;
    let (missing_secrets, stale_secrets) = match checkout_runner::parse(&test.script) {
        Ok(plan) => {
            let missing = plan
                .secret_names()
                .into_iter()
                .filter(|n| !secrets.iter().any(|s| s.name == *n))
                .map(str::to_string)
                .collect();
            let hosts = host_binding(&plan, target);
            let stale = secrets
                .iter()
                .filter(|s| hosts.as_ref().is_some_and(|h| s.hosts != *h))
                .map(|s| s.name.clone())
                .collect();
            (missing, stale)
        }
        Err(_) => (Vec::new(), Vec::new()),
    };
    Ok(TestBody {
        test,
        secrets,
        missing_secrets,
        stale_secrets,
    })
}

async fn screenshot(
    state: &AppState,
    ctx: &OrgCtx,
    run_id: i64,
    name: &str,
) -> Result<HttpResponse, AppError> {
    if !is_step_screenshot(name) {
        return Err(AppError::NotFound);
    }
    let mut conn = state.conn().await?;
    queries::run(&mut conn, ctx, run_id).await?;
    drop(conn);
    let bytes = read_artifact(state, ctx.org_id, run_id, name).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("cache-control", "private, max-age=3600"))
        .body(bytes))
}

// ---- pages ----

/// The fields of the test form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TestForm {
    pub name: String,
    pub script: String,
    pub schedule: String,
    pub enabled: Option<String>,
}

impl TestForm {
    fn input(&self) -> TestInput {
        TestInput {
            name: self.name.clone(),
            script: self.script.clone(),
            schedule: Some(self.schedule.clone()),
            enabled: self.enabled.is_some(),
        }
    }

    fn from_test(test: &CheckoutTest) -> TestForm {
        TestForm {
            name: test.name.clone(),
            script: test.script.clone(),
            schedule: test.schedule.clone().unwrap_or_default(),
            enabled: test.enabled.then(|| "on".into()),
        }
    }
}

#[derive(Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl Drop for SecretForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

async fn tests_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    let checkout_tests = queries::summaries(&mut conn, &page, target_id).await?;
    html(&TestsPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        target,
        checkout_tests,
    })
}

async fn new_test_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    page.require(Role::Admin)?;
    html(&TestFormPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        target,
        test_id: None,
        form: TestForm {
            script: STARTER_SCRIPT.into(),
            enabled: Some("on".into()),
            ..TestForm::default()
        },
        errors: FieldErrors::default(),
    })
}

/// What a new test's editor starts with.
const STARTER_SCRIPT: &str = "# Steps run in order; `stop` ends the run before money moves.\n# See docs/checkout-tests.md for every step.\ntimeout: 10s\nsteps:\n  - goto: /\n  - click: \"text=Add to cart\"\n  - click: test=checkout\n  - fill: { selector: \"#card-number\", secret: card_number }\n  - stop: before paying\n";

async fn create_test_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    form: Form<TestForm>,
) -> Page {
    let target_id = object_id(&path)?;
    match create_test(&state, &page, target_id, &form.0.input()).await {
        Ok(test) => Ok(see_other(&format!("/checkout-tests/{}", test.id))),
        Err(AppError::Invalid(errors)) => {
            let mut conn = state.conn().await?;
            let target = sites::target(&mut conn, &page, target_id).await?;
            let view = TestFormPage {
                nav: Some(Nav::new(&page.viewer, &csrf)),
                target,
                test_id: None,
                form: form.0,
                errors,
            };
            html_form(&view, &view.errors)
        }
        Err(other) => Err(other.into()),
    }
}

async fn test_view(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    test_id: i64,
    form: Option<TestForm>,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let test = queries::test(&mut conn, page, test_id).await?;
    let target = sites::target(&mut conn, page, test.target_id).await?;
    let runs = queries::runs(&mut conn, page, test_id, RECENT_RUNS).await?;
    let body = test_body(&mut conn, page, test, &target).await?;
    let view = TestPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        target,
        form: form.unwrap_or_else(|| TestForm::from_test(&body.test)),
        body,
        runs,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn test_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    test_view(
        &state,
        &page,
        &csrf,
        object_id(&path)?,
        None,
        FieldErrors::default(),
    )
    .await
}

async fn update_test_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    form: Form<TestForm>,
) -> Page {
    let test_id = object_id(&path)?;
    match update_test(&state, &page, test_id, &form.0.input()).await {
        Ok(_) => Ok(see_other(&format!("/checkout-tests/{test_id}"))),
        Err(AppError::Invalid(errors)) => {
            test_view(&state, &page, &csrf, test_id, Some(form.0), errors).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn delete_test_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let target_id = delete_test(&state, &page, object_id(&path)?).await?;
    Ok(see_other(&format!("/targets/{target_id}/checkout-tests")))
}

async fn set_secret_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    form: Form<SecretForm>,
) -> Page {
    let test_id = object_id(&path)?;
    let value = Zeroizing::new(form.0.value.clone());
    match set_secret(&state, &page, test_id, form.0.name.trim(), value).await {
        Ok(_) => Ok(see_other(&format!("/checkout-tests/{test_id}#secrets"))),
        Err(AppError::Invalid(errors)) => {
            test_view(&state, &page, &csrf, test_id, None, errors).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn delete_secret_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<(String, String)>,
    _form: Form<Empty>,
) -> Page {
    let (test, name) = path.into_inner();
    let test_id = object_id(&test)?;
    delete_secret(&state, &page, test_id, &name).await?;
    Ok(see_other(&format!("/checkout-tests/{test_id}#secrets")))
}

async fn run_now_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let run_id = run_now(&state, &page, object_id(&path)?, Trigger::Dashboard).await?;
    Ok(see_other(&format!("/checkout-runs/{run_id}")))
}

async fn run_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let run_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let run = queries::run(&mut conn, &page, run_id).await?;
    let test = queries::test(&mut conn, &page, run.test_id).await?;
    let steps = queries::steps(&mut conn, &page, run_id).await?;
    let pages = queries::pages(&mut conn, &page, run_id).await?;
    html(&RunPageView {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        test,
        steps: steps.into_iter().map(StepView::from).collect(),
        pages: pages.into_iter().map(PageView::from).collect(),
        run,
    })
}

async fn screenshot_page(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<(String, String)>,
) -> Page {
    let (run, name) = path.into_inner();
    Ok(screenshot(&state, &page, object_id(&run)?, &name).await?)
}

// ---- API ----

async fn api_tests(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Vec<TestBody>>> {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &ctx, target_id).await?;
    let tests = queries::tests_of_target(&mut conn, &ctx, target_id).await?;
    let mut bodies = Vec::with_capacity(tests.len());
    for test in tests {
        bodies.push(test_body(&mut conn, &ctx, test, &target).await?);
    }
    Ok(web::Json(bodies))
}

async fn api_create_test(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    input: web::Json<TestInput>,
) -> Api<HttpResponse> {
    let test = create_test(&state, &ctx, object_id(&path)?, &input).await?;
    let mut conn = state.conn().await?;
    let body = body_of(&mut conn, &ctx, test).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/checkout-tests/{}", body.test.id),
        ))
        .json(body))
}

async fn api_validate(
    _state: web::Data<AppState>,
    _ctx: ApiCtx,
    input: web::Json<ValidateInput>,
) -> Api<web::Json<Validation>> {
    Ok(web::Json(validation(&input.script)?))
}

async fn api_test(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<TestBody>> {
    let mut conn = state.conn().await?;
    let test = queries::test(&mut conn, &ctx, object_id(&path)?).await?;
    Ok(web::Json(body_of(&mut conn, &ctx, test).await?))
}

async fn api_update_test(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    input: web::Json<TestInput>,
) -> Api<web::Json<TestBody>> {
    let test = update_test(&state, &ctx, object_id(&path)?, &input).await?;
    let mut conn = state.conn().await?;
    Ok(web::Json(body_of(&mut conn, &ctx, test).await?))
}

async fn api_delete_test(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    delete_test(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_set_secret(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<(String, String)>,
    input: web::Json<SecretInput>,
) -> Api<web::Json<SecretInfo>> {
    let (test, name) = path.into_inner();
    let value = Zeroizing::new(input.into_inner().value);
    Ok(web::Json(
        set_secret(&state, &ctx, object_id(&test)?, &name, value).await?,
    ))
}

async fn api_delete_secret(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<(String, String)>,
) -> Api<HttpResponse> {
    let (test, name) = path.into_inner();
    delete_secret(&state, &ctx, object_id(&test)?, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_run_now(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let run_id = run_now(&state, &ctx, object_id(&path)?, Trigger::Api).await?;
    let mut conn = state.conn().await?;
    let run = queries::run(&mut conn, &ctx, run_id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/v1/checkout-runs/{run_id}")))
        .json(run))
}

async fn api_runs(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Vec<Run>>> {
    let test_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    queries::test(&mut conn, &ctx, test_id).await?;
    Ok(web::Json(
        queries::runs(&mut conn, &ctx, test_id, RECENT_RUNS).await?,
    ))
}

async fn api_run(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<RunBody>> {
    let run_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let run = queries::run(&mut conn, &ctx, run_id).await?;
    let steps = queries::steps(&mut conn, &ctx, run_id).await?;
    let pages = queries::pages(&mut conn, &ctx, run_id).await?;
    Ok(web::Json(RunBody { run, steps, pages }))
}

async fn api_screenshot(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<(String, String)>,
) -> Api<HttpResponse> {
    let (run, name) = path.into_inner();
    Ok(screenshot(&state, &ctx, object_id(&run)?, &name).await?)
}
