//! The test harness: a fresh database per test cloned from a migrated template, the real app on
//! a random port, an SMTP sink, and HTTP clients that act like people and API callers.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::StatusCode;
use secrecy::SecretString;

use super::smtp_sink::SmtpSink;

pub const PASSWORD: &str = "correct horse battery staple";

fn admin_url() -> String {
    std::env::var("SITEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(database: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("SITEWARD_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    url.to_string()
}

async fn admin_conn() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "integration tests need PostgreSQL at {} (set SITEWARD_TEST_DATABASE_URL): {e}",
                admin_url()
            )
        })
}

/// Table id sequences start far apart, so mixing up two tables' ids fails loudly.
const SEQUENCE_OFFSETS: &[(&str, i64)] = &[
    ("users", 1_000),
    ("orgs", 100_000),
    ("clients", 200_000),
    ("targets", 300_000),
    ("api_keys", 400_000),
    ("invitations", 500_000),
    ("sessions", 600_000),
    ("audit_log", 700_000),
    ("password_resets", 800_000),
    ("recovery_codes", 900_000),
    ("jobs", 1_100_000),
    ("scans", 1_200_000),
    ("snapshots", 1_300_000),
    ("runners", 1_400_000),
];

/// The template's name changes whenever a migration does.
fn template_name() -> String {
    let mut entries: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations folder")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut bytes = Vec::new();
    for dir in entries {
        for file in ["up.sql", "down.sql"] {
            bytes.extend(std::fs::read(dir.join(file)).unwrap_or_default());
        }
    }
    let hash = siteward::crypto::sha256(&bytes);
    format!("sw_template_{}", hex::encode(&hash[..6]))
}

/// Creates the migrated template once (across test processes, under an advisory lock).
async fn ensure_template() -> String {
    let name = template_name();
    let mut conn = admin_conn().await;
    diesel::sql_query("SELECT pg_advisory_lock(727274)")
        .execute(&mut conn)
        .await
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut conn)
            .await
            .unwrap();
    if found.n == 0 {
        let building = format!("{name}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}"))
            .execute(&mut conn)
            .await
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {building}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = SecretString::from(url_for(&building));
        siteward::db::migrate(&url).await.expect("migrations apply");
        let mut template = AsyncPgConnection::establish(&url_for(&building))
            .await
            .unwrap();
        for (table, offset) in SEQUENCE_OFFSETS {
            diesel::sql_query(format!(
                "ALTER SEQUENCE {table}_id_seq RESTART WITH {offset}"
            ))
            .execute(&mut template)
            .await
            .unwrap();
        }
        drop(template);
        diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        drop_stale_databases(&mut conn).await;
    }
    diesel::sql_query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut conn)
        .await
        .unwrap();
    name
}

/// Test databases of runs older than a day go.
async fn drop_stale_databases(conn: &mut AsyncPgConnection) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'sw_test_%'")
            .load(conn)
            .await
            .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for name in names {
        let created: i64 = name
            .datname
            .split('_')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - created > 86_400 {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                name.datname
            ))
            .execute(conn)
            .await;
        }
    }
}

/// A fresh database for one test.
pub async fn fresh_database() -> String {
    let template = ensure_template().await;
    let name = format!(
        "sw_test_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        hex::encode(siteward::crypto::random_bytes::<5>())
    );
    let mut conn = admin_conn().await;
    for attempt in 0..20 {
        match diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => return url_for(&name),
            Err(e) if attempt < 19 && e.to_string().contains("being accessed") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("cannot create the test database: {e}"),
        }
    }
    unreachable!()
}

/// A new database with nothing in it (for restores).
pub async fn empty_database() -> String {
    let name = format!(
        "sw_empty_{}",
        hex::encode(siteward::crypto::random_bytes::<6>())
    );
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin_conn().await)
        .await
        .expect("create an empty database");
    url_for(&name)
}

async fn start_app(
    env: &[(String, String)],
    database_url: &str,
) -> (u16, actix_web::dev::ServerHandle) {
    let config = siteward::config::Config::load(None, env.to_vec()).expect("test configuration");
    let url = SecretString::from(database_url.to_string());
    let app = siteward::app::Application::build(config, &url)
        .await
        .expect("the app starts");
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run());
    (port, handle)
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A fresh string for names and addresses.
pub fn unique() -> String {
    format!(
        "{}{}",
        UNIQUE.fetch_add(1, Ordering::Relaxed),
        hex::encode(siteward::crypto::random_bytes::<3>())
    )
}

const RUNNER_KEY_FILE: &str = "runner-checkout.key";

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub mail: SmtpSink,
    pub data_dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Starts the app with extra `SITEWARD_*` settings.
    pub async fn spawn_with(settings: &[(&str, &str)]) -> TestApp {
        let database_url = fresh_database().await;
        let mail = SmtpSink::start().await;
        let data_dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.clone()),
            ("SITEWARD_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "SITEWARD_DATA_DIR".into(),
                data_dir.path().to_string_lossy().into_owned(),
            ),
            ("SITEWARD_SMTP_URL".into(), mail.url()),
            ("SITEWARD_DATABASE_POOL_SIZE".into(), "6".into()),
            // Tests start the runners and scheduler they need themselves.
            ("SITEWARD_EMBEDDED_RUNNER".into(), "false".into()),
            ("SITEWARD_SCHEDULER".into(), "false".into()),
            (
                "SITEWARD_MASTER_KEYS".into(),
                "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            ),
        ];
        for (key, value) in settings {
            env.push((key.to_string(), value.to_string()));
        }
        let (port, handle) = start_app(&env, &database_url).await;
        env.push(("SITEWARD_LISTEN".into(), format!("127.0.0.1:{port}")));
        // The runners' key pair, as `siteward admin runner-keys` makes it: the private half in a
        // file for runners, the public half registered for sealing.
        let keys = checkout_runner::RunnerKeyPair::generate();
        siteward::checkouts::keys::write_key_file(
            &data_dir.path().join(RUNNER_KEY_FILE),
            &keys,
            false,
        )
        .expect("write the runner key");
        let mut conn = AsyncPgConnection::establish(&database_url).await.unwrap();
        siteward::checkouts::keys::register(&mut conn, keys.public())
            .await
            .expect("register the runner key");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            database_url,
            mail,
            data_dir,
            env,
            handle,
        }
    }

    /// The runners' private key file for this app.
    pub fn runner_key_file(&self) -> std::path::PathBuf {
        self.data_dir.path().join(RUNNER_KEY_FILE)
    }

    /// Stops the app at once (in-flight requests are dropped, as when a process dies).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Starts the app again on the same port, database and data folder.
    pub async fn start_again(&mut self) {
        let (_, handle) = start_app(&self.env, &self.database_url).await;
        self.handle = handle;
    }

    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap()
    }

    /// A browser with a cookie jar and no one signed in.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    pub fn api(&self, key: &str) -> ApiClient {
        ApiClient {
            base: self.base.clone(),
            key: key.to_string(),
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// The first person: owner of a new organization.
    pub async fn sign_up_first(&self, org: &str) -> Browser {
        let mut browser = self.browser();
        let email = format!("owner-{}@agency.example", unique());
        let response = browser
            .post_form(
                "/sign-up",
                &[
                    ("name", "Olga Owner"),
                    ("email", &email),
                    ("password", PASSWORD),
                    ("org_name", org),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "first sign-up");
        browser.email = email;
        browser
    }

    /// Someone invited by `owner` (into the owner's current org) who signs up by the mailed link.
    pub async fn invite_and_sign_up(&self, owner: &Browser, role: &str) -> Browser {
        let email = format!("{role}-{}@agency.example", unique());
        let token = self.invite(owner, &email, role).await;
        let mut browser = self.browser();
        let response = browser
            .post_form(
                "/sign-up",
                &[
                    ("name", "Invited Person"),
                    ("email", &email),
                    ("password", PASSWORD),
                    ("invite", &token),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "invited sign-up");
        browser.email = email;
        browser
    }

    /// Invites `email`; returns the token from the mail the invitee receives.
    pub async fn invite(&self, owner: &Browser, email: &str, role: &str) -> String {
        let before = self.mail.mails_to(email).len();
        let response = owner
            .post_form("/members/invitations", &[("email", email), ("role", role)])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "invitation");
        let mail = self.mail.wait_for(email, before + 1).await;
        let link = super::smtp_sink::link_in(&mail, "/invitations/accept");
        token_of(&link)
    }

    /// Creates an API key through the dashboard and returns it.
    pub async fn create_key(&self, admin: &Browser, scope: &str) -> String {
        let response = admin
            .post_form(
                "/keys",
                &[("name", &format!("key {}", unique())), ("scope", scope)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.unwrap();
        let start = page.find("sw_").expect("the new key is shown");
        let key: String = page[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        assert!(key.len() > 50, "key looks complete: {key}");
        key
    }

    pub async fn user_id(&self, email: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let mut conn = self.db().await;
        diesel::sql_query("SELECT id FROM users WHERE email = $1")
            .bind::<diesel::sql_types::Text, _>(email)
            .get_result::<Id>(&mut conn)
            .await
            .unwrap()
            .id
    }

    /// Runs a query that returns one bigint (`SELECT … AS n`).
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db().await;
        diesel::sql_query(sql)
            .get_result::<N>(&mut conn)
            .await
            .unwrap()
            .n
    }

    /// One text value: `sql` selects a single column `t`.
    pub async fn text(&self, sql: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        let mut conn = self.db().await;
        diesel::sql_query(sql)
            .get_result::<T>(&mut conn)
            .await
            .unwrap()
            .t
    }
}

pub fn token_of(link: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("a token in the link")
}

/// A person's browser: cookies, CSRF token from the pages, no automatic redirects.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    csrf: std::sync::Mutex<Option<String>>,
    pub email: String,
}

impl Browser {
    /// A fresh browser (cookie jar, no redirects followed) for the app at `base`.
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            csrf: std::sync::Mutex::new(None),
            email: String::new(),
        }
    }
}

/// The value of the first `name="_csrf"` field of a page.
pub fn csrf_in(page: &str) -> Option<String> {
    let at = page.find("name=\"_csrf\" value=\"")?;
    let rest = &page[at + 20..];
    Some(rest[..rest.find('"')?].to_string())
}

impl Browser {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn csrf(&self) -> String {
        if let Some(token) = self.csrf.lock().unwrap().clone() {
            return token;
        }
        let page = self.get("/sign-in").await.text().await.unwrap();
        let token = csrf_in(&page).expect("the sign-in page has a CSRF field");
        *self.csrf.lock().unwrap() = Some(token.clone());
        token
    }

    /// POSTs a form with this browser's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("_csrf", &token));
        self.client
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: String) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form("/sign-in", &[("email", email), ("password", password)])
            .await
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub struct ApiClient {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl ApiClient {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }
}

/// Registers a runner straight in the database and returns its token.
pub async fn runner_token(app: &TestApp, name: &str) -> String {
    use secrecy::ExposeSecret;
    let mut conn = app.db().await;
    let (_, token) = siteward::scans::runner_tokens::create(&mut conn, name)
        .await
        .unwrap();
    token.expose_secret().to_string()
}

/// A runner speaking `/internal/v1` by hand.
#[derive(Clone)]
pub struct RunnerApi {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// A claimed job as the tests need it.
#[derive(Debug, Clone)]
pub struct TestJob {
    pub id: i64,
    pub token: String,
    /// 0 for a checkout job.
    pub scan_id: i64,
    pub attempt: i64,
    pub url: String,
    /// The whole claim answer.
    pub body: serde_json::Value,
}

impl RunnerApi {
    pub fn new(app: &TestApp, token: &str) -> RunnerApi {
        RunnerApi {
            base: app.base.clone(),
            token: token.to_string(),
            client: reqwest::Client::new(),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn claim_raw(&self, wait_seconds: u32) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/internal/v1/jobs/claim")
            .json(&serde_json::json!({ "wait_seconds": wait_seconds }))
            .send()
            .await
            .unwrap()
    }

    /// Claims the next scan or checkout job. Report PDFs queued meanwhile are printed on the
    /// way, as a real runner would (a minimal PDF), so tests about scans see scans.
    pub async fn claim(&self, wait_seconds: u32) -> Option<TestJob> {
        loop {
            let response = self.claim_raw(wait_seconds).await;
            if response.status() == StatusCode::NO_CONTENT {
                return None;
            }
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "claim answers 200 or 204"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            if body["pdf"].is_object() {
                self.print_pdf(&body).await;
                continue;
            }
            return Some(Self::job_of(body));
        }
    }

    /// Claims the next scan or checkout job; lanes of crawls queued meanwhile (by tests that
    /// start crawls only for their rows) are completed on the way.
    pub async fn claim_no_lanes(&self, wait_seconds: u32) -> Option<TestJob> {
        loop {
            let job = self.claim(wait_seconds).await?;
            if !job.body["crawl"].is_object() {
                return Some(job);
            }
            let done = self.complete(&job, &serde_json::json!({})).await;
            assert_eq!(done.status(), StatusCode::OK);
        }
    }

    /// Delivers a claimed PDF job: a minimal PDF, then completion.
    async fn print_pdf(&self, body: &serde_json::Value) {
        let id = body["job_id"].as_i64().unwrap();
        let token = body["attempt_token"].as_str().unwrap();
        let uploaded = self
            .request(
                reqwest::Method::PUT,
                &format!("/internal/v1/jobs/{id}/artifacts/report.pdf"),
            )
            .header("siteward-attempt", token)
            .header("content-type", "application/pdf")
            .body(b"%PDF-1.4\n%%EOF\n".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), StatusCode::CREATED);
        let completed = self
            .request(
                reqwest::Method::POST,
                &format!("/internal/v1/jobs/{id}/complete"),
            )
            .header("siteward-attempt", token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(completed.status(), StatusCode::OK);
    }

    fn job_of(body: serde_json::Value) -> TestJob {
        TestJob {
            id: body["job_id"].as_i64().unwrap(),
            token: body["attempt_token"].as_str().unwrap().to_string(),
            scan_id: body["scan"]["scan_id"].as_i64().unwrap_or(0),
            attempt: body["attempt"].as_i64().unwrap(),
            // A crawl lane has no URL of its own.
            url: body["scan"]["url"]
                .as_str()
                .or(body["checkout"]["base_url"].as_str())
                .unwrap_or_default()
                .to_string(),
            body,
        }
    }

    pub async fn upload(&self, job: &TestJob, name: &str, bytes: &[u8]) -> reqwest::Response {
        self.request(
            reqwest::Method::PUT,
            &format!("/internal/v1/jobs/{}/artifacts/{name}", job.id),
        )
        .header("siteward-attempt", &job.token)
        .header("content-type", "image/png")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
    }

    pub async fn complete(&self, job: &TestJob, snapshot: &serde_json::Value) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("/internal/v1/jobs/{}/complete", job.id),
        )
        .header("siteward-attempt", &job.token)
        .json(snapshot)
        .send()
        .await
        .unwrap()
    }

    /// A crawl lane's `crawl/next`.
    pub async fn crawl_next(&self, lane: &TestJob) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("/internal/v1/jobs/{}/crawl/next", lane.id),
        )
        .header("siteward-attempt", &lane.token)
        .send()
        .await
        .unwrap()
    }

    /// The lane's next page as a job, or `None` when the crawl is done (waits while asked to).
    pub async fn crawl_page(&self, lane: &TestJob) -> Option<TestJob> {
        loop {
            let response = self.crawl_next(lane).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: serde_json::Value = response.json().await.unwrap();
            match body["next"].as_str() {
                Some("page") => return Some(Self::job_of(body["page"].clone())),
                Some("done") => return None,
                Some("wait") => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                other => panic!("unexpected crawl/next answer {other:?}: {body}"),
            }
        }
    }

    /// Uploads the screenshots and completes a crawl page with `snapshot` and `extra` fields
    /// (links, robots, sitemaps).
    pub async fn finish_crawl_page(
        &self,
        page: &TestJob,
        snapshot: impl FnOnce(serde_json::Value) -> serde_json::Value,
        extra: serde_json::Value,
    ) -> reqwest::Response {
        let viewport = fake_png(&format!("viewport {}", page.id));
        let full = fake_png(&format!("full {}", page.id));
        assert_eq!(
            self.upload(page, "viewport.png", &viewport).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            self.upload(page, "fullpage.png", &full).await.status(),
            StatusCode::CREATED
        );
        let mut body = serde_json::json!({
            "snapshot": snapshot(sample_snapshot(&page.url, &viewport, &full)),
            "links": [],
            "session": "lane 1 attempt 1 session 1",
        });
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            body[key] = value;
        }
        self.complete(page, &body).await
    }

    pub async fn heartbeat(&self, job: &TestJob) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("/internal/v1/jobs/{}/heartbeat", job.id),
        )
        .header("siteward-attempt", &job.token)
        .send()
        .await
        .unwrap()
    }

    pub async fn fail(&self, job: &TestJob, error: &str) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("/internal/v1/jobs/{}/fail", job.id),
        )
        .header("siteward-attempt", &job.token)
        .json(&serde_json::json!({ "error": error }))
        .send()
        .await
        .unwrap()
    }

    /// Uploads these screenshots and this snapshot; returns the completion response.
    pub async fn deliver(
        &self,
        job: &TestJob,
        viewport: &[u8],
        full: &[u8],
        snapshot: &serde_json::Value,
    ) -> reqwest::Response {
        assert_eq!(
            self.upload(job, "viewport.png", viewport).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            self.upload(job, "fullpage.png", full).await.status(),
            StatusCode::CREATED
        );
        self.complete(job, snapshot).await
    }

    /// Uploads both screenshots and a synthetic snapshot of the job's URL; returns the
    /// completion response.
    pub async fn finish(&self, job: &TestJob) -> reqwest::Response {
        let viewport = fake_png(&format!("viewport {}", job.id));
        let full = fake_png(&format!("full page {}", job.id));
        assert_eq!(
            self.upload(job, "viewport.png", &viewport).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            self.upload(job, "fullpage.png", &full).await.status(),
            StatusCode::CREATED
        );
        self.complete(job, &sample_snapshot(&job.url, &viewport, &full))
            .await
    }
}

/// A minimal checkout report of one passed step with its screenshot `step-1.png`, as a runner
/// would send it for `job` (no pages).
pub fn sample_checkout_result(screenshot: &[u8], outcome: &str) -> serde_json::Value {
    let failed = outcome == "failed";
    serde_json::json!({
        "report": {
            "format_version": 1,
            "outcome": outcome,
            "failure": if failed { serde_json::json!({"step": 1, "error": {"kind": "selector_not_found", "selector": "#buy"}, "summary": "step 1 (click #buy, line 2) failed: no element matches #buy"}) } else { serde_json::Value::Null },
            "stopped_at": null,
            "steps": [{
                "number": 1, "line": 2, "kind": "click", "name": null, "description": "click #buy",
                "status": if failed { "failed" } else { "passed" }, "duration_ms": 12, "url": "https://shop.example/",
                "screenshot": {"artifact": "step-1.png", "sha256": sha256_hex(screenshot), "width": 4, "height": 4},
                "console_errors": [], "failed_requests": [],
                "error": if failed { serde_json::json!({"kind": "selector_not_found", "selector": "#buy"}) } else { serde_json::Value::Null }
            }],
            "pages": [],
            "started_at": "2026-11-23T12:00:00Z",
            "duration_ms": 40
        },
        "pages": []
    })
}

impl RunnerApi {
    /// Uploads `step-1.png` and completes a checkout job with a one-step report.
    pub async fn finish_checkout(&self, job: &TestJob, outcome: &str) -> reqwest::Response {
        let shot = fake_png(&format!("step {}", job.id));
        assert_eq!(
            self.upload(job, "step-1.png", &shot).await.status(),
            StatusCode::CREATED
        );
        self.complete(job, &sample_checkout_result(&shot, outcome))
            .await
    }
}

/// A small real PNG whose colour depends on `seed`.
pub fn fake_png(seed: &str) -> Vec<u8> {
    let hash = siteward::crypto::sha256(seed.as_bytes());
    png_of(&image::RgbaImage::from_pixel(
        64,
        48,
        image::Rgba([hash[0], hash[1], hash[2], 255]),
    ))
}

pub fn png_of(picture: &image::RgbaImage) -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(picture.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(siteward::crypto::sha256(bytes))
}

/// A valid snapshot of `url` (as a runner would send it) that loads `analytics.test` and sets
/// `_ga` and `session`, with these screenshots.
pub fn sample_snapshot(url: &str, viewport_png: &[u8], full_png: &[u8]) -> serde_json::Value {
    let host = url::Url::parse(url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let shot = |bytes: &[u8]| serde_json::json!({"width": 1280, "height": 800, "sha256": sha256_hex(bytes), "size_bytes": bytes.len()});
    let cookie = |name: &str, domain: &str, party: &str| {
        serde_json::json!({"name": name, "domain": domain, "path": "/", "expires": null, "session": true,
            "secure": false, "http_only": false, "same_site": "lax", "party": party,
            "set_by_host": domain, "set_by": "script", "value_size": 10, "classification": null})
    };
    let request = |url: &str, host: &str, party: &str| {
        serde_json::json!({"url": url, "method": "GET", "resource_type": "Script", "host": host,
            "party": party, "status": 200, "failure": null, "blocked": false, "started_ms": 5,
            "duration_ms": 3, "encoded_bytes": 100})
    };
    let snapshot = serde_json::json!({
        "format_version": scanner::SNAPSHOT_FORMAT_VERSION,
        "scanner_version": "test",
        "requested_url": url,
        "final_url": url,
        "redirect_chain": [],
        "status": 200,
        "title": "A <b>shop</b>",
        "first_party_domain": host,
        "started_at": "2026-11-23T10:00:00Z",
        "finished_at": "2026-11-23T10:00:01Z",
        "timings": {"load_ms": 300, "network_quiet_ms": 800, "total_ms": 1000},
        "browser": {"product": "Chrome/156", "user_agent": "test", "third_party_cookies_allowed": true},
        "options": {"viewport_width": 1280, "viewport_height": 800, "quiet_period_ms": 500,
            "load_timeout_ms": 20000, "scan_timeout_ms": 60000, "consent_mode": "no_interaction",
            "policy_pages": false, "resolve": [], "private_destinations_allowed": false},
        "dom": {"html": "<html><script>alert(1)</script></html>", "size_bytes": 40, "truncated": false},
        "scripts": [
            {"kind": "external", "url": "http://analytics.test/a.js", "host": "analytics.test",
             "party": "third", "sha256": "ab".repeat(32), "size_bytes": 100, "frame_url": url},
            {"kind": "inline", "sha256": "cd".repeat(32), "size_bytes": 20, "first_bytes": "console.log(1)", "frame_url": url}
        ],
        "cookies": [cookie("_ga", ".analytics.test", "third"), cookie("session", &host, "first")],
        "storage": [],
        "requests": [request(url, &host, "first"), request("http://analytics.test/a.js", "analytics.test", "third")],
        "blocked": [{"host": "169.254.169.254", "port": 80, "address": "169.254.169.254", "reason": "link-local"}],
        "console_errors": [],
        "dialogs": [],
        "downloads": [],
        "third_party_hosts": ["analytics.test"],
        "listed_hosts": [],
        "screenshots": {"viewport": shot(viewport_png), "full_page": shot(full_png),
            "page_height": 800, "full_page_truncated": false, "full_page_max_height": 16384},
        "policy_pages": [],
        "consent": null,
        "limits_hit": []
    });
    // The app must accept it: prove it is a valid Snapshot here, not in each test.
    serde_json::from_value::<scanner::Snapshot>(snapshot.clone())
        .expect("sample snapshot is valid");
    snapshot
}

/// Creates a client and a target of `url` through the API; returns the target id.
pub async fn new_target(api: &ApiClient, url: &str) -> i64 {
    let client = api
        .send_json(
            reqwest::Method::POST,
            "/api/v1/clients",
            serde_json::json!({ "name": format!("Client {}", unique()) }),
        )
        .await;
    assert_eq!(client.status(), StatusCode::CREATED);
    let client: serde_json::Value = client.json().await.unwrap();
    let target = api
        .send_json(
            reqwest::Method::POST,
            &format!("/api/v1/clients/{}/targets", client["id"]),
            serde_json::json!({ "url": url, "wait_ms": 300 }),
        )
        .await;
    assert_eq!(target.status(), StatusCode::CREATED);
    target.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Asks for a scan through the API; returns the scan id.
pub async fn scan_now(api: &ApiClient, target_id: i64) -> i64 {
    let response = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/targets/{target_id}/scans"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// A real S3-compatible server (s3s-fs) on loopback, with its data in a temporary folder. It can
/// be stopped and started again on the same port with the same data.
pub struct S3Server {
    child: Option<std::process::Child>,
    pub port: u16,
    pub root: tempfile::TempDir,
}

pub const S3_ACCESS_KEY: &str = "siteward-test";
pub const S3_SECRET_KEY: &str = "siteward-test-secret-key";

impl S3Server {
    pub fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = S3Server {
            child: None,
            port,
            root: tempfile::tempdir().unwrap(),
        };
        server.resume();
        server
    }

    /// Starts the server (again).
    pub fn resume(&mut self) {
        let binary = std::env::var("SITEWARD_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = std::process::Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the S3 tests need s3s-fs (`cargo install s3s-fs@0.14.1 --features binary`, or SITEWARD_S3S_FS): {binary}: {e}")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("s3s-fs did not start listening on port {}", self.port);
    }

    /// Kills the server; its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn config(&self, bucket: &str, region: &str, secret: &str) -> siteward::storage::S3Config {
        siteward::storage::S3Config {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: Some(format!("http://127.0.0.1:{}", self.port).parse().unwrap()),
            path_style: true,
            access_key_id: S3_ACCESS_KEY.into(),
            secret_access_key: SecretString::from(secret.to_string()),
        }
    }

    /// The `SITEWARD_S3_*` settings of an app that keeps its blobs in `bucket` here (in
    /// us-east-1: s3s-fs reports every bucket there, and the app checks the region it is given).
    pub fn settings(&self, bucket: &str) -> Vec<(String, String)> {
        std::fs::create_dir_all(self.root.path().join(bucket)).unwrap();
        vec![
            ("SITEWARD_S3_BUCKET".into(), bucket.into()),
            ("SITEWARD_S3_REGION".into(), "us-east-1".into()),
            (
                "SITEWARD_S3_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("SITEWARD_S3_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
            ("SITEWARD_S3_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the app has compared the snapshot with its predecessor; returns the answer.
pub async fn computed_changes(api: &ApiClient, snapshot: i64) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let body: serde_json::Value = api
            .get(&format!("/api/v1/snapshots/{snapshot}/changes"))
            .await
            .json()
            .await
            .unwrap();
        if body["computed"] == true {
            return body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never compared: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The kinds of the changes, in order.
pub fn kinds(changes: &serde_json::Value) -> Vec<String> {
    changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Turns on a second factor for the signed-in person; returns its TOTP secret.
pub async fn enable_two_factor(browser: &Browser) -> Vec<u8> {
    let setup = browser.post_form("/settings/two-factor", &[]).await;
    let page = setup.text().await.unwrap();
    let start = page.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    let base32 = &page[start..start + page[start..].find("</code>").unwrap()];
    let secret = totp_rs::Secret::try_from_base32(base32).unwrap().to_vec();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let code = siteward::auth::totp::code_at(&secret, now).unwrap();
    let confirmed = browser
        .post_form("/settings/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    secret
}
