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

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A fresh string for names and addresses.
pub fn unique() -> String {
    format!(
        "{}{}",
        UNIQUE.fetch_add(1, Ordering::Relaxed),
        hex::encode(siteward::crypto::random_bytes::<3>())
    )
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub mail: SmtpSink,
    pub data_dir: tempfile::TempDir,
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
            ("SITEWARD_DATABASE_POOL_SIZE".into(), "4".into()),
            (
                "SITEWARD_MASTER_KEYS".into(),
                "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            ),
        ];
        for (key, value) in settings {
            env.push((key.to_string(), value.to_string()));
        }
        let config = siteward::config::Config::load(None, env).expect("test configuration");
        let url = SecretString::from(database_url.clone());
        let app = siteward::app::Application::build(config, &url)
            .await
            .expect("the app starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
        TestApp {
            base,
            database_url,
            mail,
            data_dir,
        }
    }

    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap()
    }

    /// A browser with a cookie jar and no one signed in.
    pub fn browser(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            csrf: std::sync::Mutex::new(None),
            email: String::new(),
        }
    }

    pub fn api(&self, key: &str) -> ApiClient {
        ApiClient {
            base: self.base.clone(),
            key: key.to_string(),
            client: reqwest::Client::builder()
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
