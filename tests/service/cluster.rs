//! Two `siteward serve` processes and two runners on one PostgreSQL and one S3-compatible store —
//! the topology `docker/compose.yaml` describes, run natively: rate limits are counted across
//! both processes, a revoked key is refused by both within a second, and a `serve` killed with
//! SIGKILL in the middle of scans loses and duplicates none.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixture_sites::{FixtureSites, SHOP};
use reqwest::StatusCode;

use super::support::{ApiClient, Browser, PASSWORD, S3Server, fresh_database, new_target, unique};

const MASTER_KEYS: &str = "cluster-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One `siteward serve` child process with its own data folder, on a fixed port (so it can be
/// started again where it was, as a supervisor would).
struct ServeProcess {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl ServeProcess {
    fn spawn(env: &[(String, String)]) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = tempfile::tempdir().unwrap();
        let child = start_serve(env, port, data.path());
        ServeProcess {
            child,
            port,
            data,
            env: env.to_vec(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.data.path().join("serve.stderr")).unwrap_or_default()
    }

    /// Waits for /readyz and for the process to listen for signals (before that it trusts no
    /// cached key, which would make the revocation check pass without signals).
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/readyz", self.base()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready && self.stderr().contains("listening for signals") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "serve on {} not ready:\n{}",
                self.port,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts it again on the same port and data folder.
    fn restart(&mut self) {
        self.child = start_serve(&self.env, self.port, self.data.path());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(env: &[(String, String)], port: u16, data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SITEWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SITEWARD_DATA_DIR", data)
        .env("SITEWARD_LOG", "info,chromiumoxide=error")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.join("serve.stderr")).unwrap())
        .spawn()
        .expect("siteward serve starts")
}

/// A `siteward runner` child that talks to one app process.
struct RunnerProcess(Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_runner(app_base: &str, token: &str, sites: &FixtureSites, log: PathBuf) -> RunnerProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("runner")
        .args([
            "--allow-private",
            "--deliver-for",
            "90s",
            "--concurrency",
            "2",
        ])
        .arg("--resolve")
        .arg(sites.resolve_args().join(","))
        .args(["--trust-spki", sites.spki()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("SITEWARD_LOG", "info,chromiumoxide=error")
        .env("SITEWARD_APP_URL", app_base)
        .env("SITEWARD_RUNNER_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("siteward runner starts");
    RunnerProcess(child)
}

fn api(base: &str, key: &str) -> ApiClient {
    ApiClient {
        base: base.to_string(),
        key: key.to_string(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

async fn create_key(admin: &Browser, scope: &str) -> String {
    let response = admin
        .post_form(
            "/keys",
            &[("name", &format!("key {}", unique())), ("scope", scope)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    let start = page.find("sw_").expect("the new key is shown");
    page[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel_async::RunQueryDsl::get_result::<N>(diesel::sql_query(sql), conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serves_share_limits_and_revocations_and_a_killed_one_loses_no_scan() {
    use diesel_async::AsyncConnection;
    let database_url = fresh_database().await;
    let s3 = S3Server::start();
    let sites = FixtureSites::start().await.unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.clone()),
        ("SITEWARD_MASTER_KEYS".into(), MASTER_KEYS.into()),
        ("SITEWARD_EMBEDDED_RUNNER".into(), "false".into()),
        ("SITEWARD_SCHEDULER_INTERVAL".into(), "1s".into()),
        ("SITEWARD_DATABASE_POOL_SIZE".into(), "6".into()),
    ];
    env.extend(s3.settings("cluster-blobs"));
    let mut a = ServeProcess::spawn(&env);
    let b = ServeProcess::spawn(&env);
    a.wait_ready().await;
    b.wait_ready().await;

    // An owner signs up on A and signs in on B: one database.
    let owner = Browser::new(&a.base());
    let email = format!("owner-{}@agency.example", unique());
    let response = owner
        .post_form(
            "/sign-up",
            &[
                ("name", "Olga Owner"),
                ("email", &email),
                ("password", PASSWORD),
                ("org_name", "Cluster Agency"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let owner_on_b = Browser::new(&b.base());
    assert_eq!(
        owner_on_b.sign_in(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    // A revoked key: refused by the process that revoked it at once, by the other within 1 s,
    // though both had it cached.
    let admin_key = create_key(&owner, "read_write").await;
    let doomed = create_key(&owner, "read").await;
    for base in [a.base(), b.base(), a.base(), b.base()] {
        let status = api(&base, &doomed).get("/api/v1/clients").await.status();
        assert_eq!(status, StatusCode::OK, "{base}");
    }
    let keys: serde_json::Value = api(&a.base(), &admin_key)
        .get("/api/v1/keys")
        .await
        .json()
        .await
        .unwrap();
    let doomed_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| doomed.contains(k["prefix"].as_str().unwrap()))
        .expect("the key is listed")["id"]
        .as_i64()
        .unwrap();
    let revoked = api(&a.base(), &admin_key)
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/keys/{doomed_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    assert_eq!(
        api(&a.base(), &doomed)
            .get("/api/v1/clients")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    loop {
        let status = api(&b.base(), &doomed)
            .get("/api/v1/clients")
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts the revoked key after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "revoked key refused by the other process after {:?}",
        revoked_at.elapsed()
    );

    // Wrong passwords alternately on A and B: the account's limit (10 failures) is one limit.
    let guesser_a = Browser::new(&a.base());
    let guesser_b = Browser::new(&b.base());
    for attempt in 0..10 {
        let guesser = if attempt % 2 == 0 {
            &guesser_a
        } else {
            &guesser_b
        };
        let status = guesser.sign_in(&email, "not the password").await.status();
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "attempt {attempt}");
    }
    for guesser in [&guesser_a, &guesser_b] {
        let refused = guesser.sign_in(&email, PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key("retry-after"));
    }

    // Scans through both processes, one runner on each; A is killed while they run.
    let mut conn = diesel_async::AsyncPgConnection::establish(&database_url)
        .await
        .unwrap();
    let runner_a = {
        let (_, token) = siteward::scans::runner_tokens::create(&mut conn, "runner-a")
            .await
            .unwrap();
        spawn_runner(
            &a.base(),
            secrecy::ExposeSecret::expose_secret(&token),
            &sites,
            b.data.path().join("runner-a.stderr"),
        )
    };
    let runner_b = {
        let (_, token) = siteward::scans::runner_tokens::create(&mut conn, "runner-b")
            .await
            .unwrap();
        spawn_runner(
            &b.base(),
            secrecy::ExposeSecret::expose_secret(&token),
            &sites,
            b.data.path().join("runner-b.stderr"),
        )
    };
    let on_a = api(&a.base(), &admin_key);
    let on_b = api(&b.base(), &admin_key);
    let mut targets = Vec::new();
    for path in ["/", "/simple", "/privacy"] {
        targets.push(new_target(&on_b, &sites.url(SHOP, path)).await);
    }
    let ask = async |api: &ApiClient, target: i64| -> i64 {
        let response = api
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/targets/{target}/scans"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let mut scans = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        scans.push(ask(if i % 2 == 0 { &on_a } else { &on_b }, *target).await);
    }
    // Mid-load: once runners hold scans, A dies without a word.
    let started = Instant::now();
    while count(
        &mut conn,
        "SELECT count(*) AS n FROM jobs WHERE kind = 'scan' AND state = 'running'",
    )
    .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no scan started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill();
    eprintln!("A killed with {} scans asked", scans.len());
    for target in &targets {
        scans.push(ask(&on_b, *target).await);
    }
    // A supervisor starts it again; its runner delivers what it held.
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.restart();
    a.wait_ready().await;
    for target in &targets {
        scans.push(ask(&on_a, *target).await);
    }

    eprintln!("A back; waiting for {} scans", scans.len());
    let started = Instant::now();
    for scan in &scans {
        loop {
            let body: serde_json::Value = on_b
                .get(&format!("/api/v1/scans/{scan}"))
                .await
                .json()
                .await
                .unwrap();
            if body["state"] == "succeeded" {
                break;
            }
            assert_ne!(body["state"], "failed", "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "scan {scan} not done: {body}\nA:\n{}\nB:\n{}",
                a.stderr(),
                b.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("all scans done after {:?}", started.elapsed());
    drop((runner_a, runner_b));
    // Exactly the scans asked for, each with exactly one snapshot, no job dead or left over.
    let asked = scans.len() as i64;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM scans").await,
        asked
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM snapshots").await,
        asked,
        "one snapshot per scan"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT scan_id) AS n FROM snapshots"
        )
        .await,
        asked
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM jobs WHERE kind = 'scan' AND state <> 'done'"
        )
        .await,
        0
    );
}
