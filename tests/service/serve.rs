//! `siteward serve` with no configuration: its own PostgreSQL cluster, started, shared with the
//! commands run beside it, kept alive, and stopped on exit.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::support::{Browser, PASSWORD, location};

/// A `siteward serve` child on the embedded defaults, its stderr in a file.
struct Serve {
    child: Child,
    base: String,
    port: u16,
    stderr: PathBuf,
}

/// A data folder the embedded server's user can traverse.
fn data_folder() -> tempfile::TempDir {
    let data = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    data
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `siteward <args>` on the embedded defaults in `data`.
fn siteward(data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siteward"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SITEWARD_DATABASE_URL")
        .env_remove("SITEWARD_MASTER_KEYS")
        .env("SITEWARD_DATA_DIR", data)
        .env("SITEWARD_LOG", "info,chromiumoxide=error");
    command
}

impl Serve {
    /// Starts serve (with its embedded runner, allowed to scan loopback) and waits for /readyz.
    async fn start(data: &Path, label: &str) -> Serve {
        let serve = Serve::spawn(data, label);
        serve.wait_ready(Duration::from_secs(90)).await;
        serve
    }

    fn spawn(data: &Path, label: &str) -> Serve {
        let port = free_port();
        let stderr = data.join(format!("{label}.stderr"));
        let child = siteward(data, &["serve"])
            .env("SITEWARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("SITEWARD_RUNNER_ALLOW_PRIVATE", "true")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start siteward serve");
        Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    async fn readyz(&self) -> Option<reqwest::StatusCode> {
        reqwest::Client::new()
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
            .map(|response| response.status())
    }

    async fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        while self.readyz().await != Some(reqwest::StatusCode::OK) {
            assert!(
                started.elapsed() < within,
                "serve not ready within {within:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        (status, self.stderr())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&self.child),
                rustix::process::Signal::TERM,
            );
            let _ = self.child.wait();
        }
    }
}

/// Polls /readyz every 100 ms until stopped, counting answers that are not 200.
struct ReadyWatch {
    failures: Arc<AtomicUsize>,
    checks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyWatch {
    fn start(base: &str) -> ReadyWatch {
        let failures = Arc::new(AtomicUsize::new(0));
        let checks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/readyz");
        let task = tokio::spawn({
            let (failures, checks, stop) = (failures.clone(), checks.clone(), stop.clone());
            async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::SeqCst) {
                    let ok = matches!(
                        client.get(&url).timeout(Duration::from_secs(5)).send().await,
                        Ok(response) if response.status().is_success()
                    );
                    checks.fetch_add(1, Ordering::SeqCst);
                    if !ok {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        ReadyWatch {
            failures,
            checks,
            stop,
            task,
        }
    }

    /// (checks, failures)
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        (
            self.checks.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }
}

/// Runs a one-shot command beside serve and returns its output.
async fn run_beside(data: &Path, args: &[&str]) -> Output {
    let mut command = siteward(data, args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn first_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn postmaster_pid(data: &Path) -> Option<i32> {
    let text =
        std::fs::read_to_string(data.join("postgres").join("data").join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// A connection to the embedded database, with the password and port serve keeps.
async fn embedded_connection(data: &Path) -> AsyncPgConnection {
    let cluster = data.join("postgres");
    let password = std::fs::read_to_string(cluster.join("password")).unwrap();
    let port = std::fs::read_to_string(cluster.join("port")).unwrap();
    let url = format!(
        "postgres://siteward:{}@127.0.0.1:{}/siteward",
        password.trim(),
        port.trim()
    );
    AsyncPgConnection::establish(&url).await.unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .count
}

/// Signs up the first owner and makes a target that scans serve's own /healthz; returns the
/// browser and the target's page.
async fn owner_with_target(serve: &Serve) -> (Browser, String) {
    let owner = Browser::new(&serve.base);
    let response = owner
        .post_form(
            "/sign-up",
            &[
                ("name", "Olga Owner"),
                ("email", "olga@agency.example"),
                ("password", PASSWORD),
                ("org_name", "Agency"),
            ],
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let client_page = location(&owner.post_form("/clients", &[("name", "Self")]).await);
    let target_url = format!("http://127.0.0.1:{}/healthz", serve.port);
    let response = owner
        .post_form(
            &format!("{client_page}/targets"),
            &[
                ("url", target_url.as_str()),
                ("viewport_width", "1280"),
                ("viewport_height", "800"),
                ("consent_mode", "none"),
                ("wait_ms", "200"),
                ("enabled", "on"),
            ],
        )
        .await;
    (owner, location(&response))
}

async fn wait_for_scan(owner: &Browser, scan_page: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let page = owner.get(scan_page).await.text().await.unwrap();
        if page.contains("succeeded") {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the embedded runner did not finish the scan:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_database_url_runs_its_own_postgres_and_stops_it_on_exit() {
    let data = data_folder();
    let serve = Serve::start(data.path(), "serve").await;
    let sign_up = reqwest::get(format!("{}/sign-up", serve.base))
        .await
        .unwrap();
    assert!(sign_up.text().await.unwrap().contains("first person"));

    // The embedded runner child takes a scan asked for in the dashboard.
    let (owner, target_page) = owner_with_target(&serve).await;
    let scan_page = location(&owner.post_form(&format!("{target_page}/scans"), &[]).await);
    assert!(scan_page.starts_with("/scans/"), "{scan_page}");
    wait_for_scan(&owner, &scan_page, Duration::from_secs(90)).await;

    let pid_file = data
        .path()
        .join("postgres")
        .join("data")
        .join("postmaster.pid");
    assert!(pid_file.exists(), "the embedded server runs");
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    assert!(!pid_file.exists(), "the embedded server stopped");

    // What serve printed holds no secret it generated.
    let password = std::fs::read_to_string(data.path().join("postgres").join("password")).unwrap();
    let keys = std::fs::read_to_string(data.path().join("master-keys")).unwrap();
    let key = keys.trim().split_once(':').unwrap().1;
    assert!(!stderr.contains(password.trim()), "{stderr}");
    assert!(!stderr.contains(key), "{stderr}");
    assert!(stderr.contains("embedded PostgreSQL"), "{stderr}");
    assert!(stderr.contains("unfit for production"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_beside_a_running_serve_leave_its_database_running_and_a_second_serve_is_refused()
{
    let data = data_folder();
    let serve = Serve::start(data.path(), "serve").await;
    let watch = ReadyWatch::start(&serve.base);

    let token = run_beside(data.path(), &["admin", "runner-token", "--name", "probe"]).await;
    assert!(token.status.success(), "{token:?}");
    let cluster = data.path().join("postgres");
    let cluster = std::fs::canonicalize(&cluster).unwrap();
    assert_eq!(
        first_line(&token),
        format!(
            "database: the embedded PostgreSQL in {}",
            data.path().join("postgres").display()
        ),
        "the first line names the database"
    );
    assert!(
        String::from_utf8_lossy(&token.stdout).starts_with("swr_"),
        "{token:?}"
    );
    for args in [&["admin", "verify-audit"][..], &["migrate"][..]] {
        let output = run_beside(data.path(), args).await;
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(
            first_line(&output).starts_with("database: the embedded PostgreSQL in "),
            "{args:?}: {output:?}"
        );
    }

    // A second serve on the same folder: one line naming the first, exit 2, nothing touched.
    let mut second = siteward(data.path(), &["serve"])
        .env("SITEWARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the second serve did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", serve.child.id()))
            && stderr.contains(&format!("127.0.0.1:{}", serve.port)),
        "{stderr}"
    );

    let (checks, failures) = watch.finish().await;
    assert!(checks >= 5, "only {checks} readiness checks ran");
    assert_eq!(
        failures,
        0,
        "/readyz failed {failures} of {checks} times:\n{}",
        serve.stderr()
    );
    assert_eq!(serve.readyz().await, Some(reqwest::StatusCode::OK));
    assert!(postmaster_pid(data.path()).is_some());

    // serve, the last user, stops the cluster it kept.
    let (status, stderr) = serve.terminate();
    assert!(status.success(), "{stderr}");
    assert!(postmaster_pid(data.path()).is_none(), "{stderr}");
    assert!(cluster.join("data").join("PG_VERSION").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_embedded_database_comes_back_and_a_scan_asked_during_the_outage_runs_once() {
    let data = data_folder();
    let serve = Serve::start(data.path(), "serve").await;
    let (owner, target_page) = owner_with_target(&serve).await;

    let pid = postmaster_pid(data.path()).expect("the embedded server runs");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let killed = Instant::now();

    // The app notices: `/readyz` says the database is out. (A request sent at once may still
    // be served by a backend that has not yet seen its postmaster die, so the outage is watched
    // here, not inferred from the scan request.)
    loop {
        if serve.readyz().await == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the outage was never reported:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Ask for a scan during the outage, as a person would: retry while the app says it is
    // unavailable.
    let mut refusals = 0;
    let scan_page = loop {
        let response = owner.post_form(&format!("{target_page}/scans"), &[]).await;
        let at = location(&response);
        if response.status() == reqwest::StatusCode::SEE_OTHER && at.starts_with("/scans/") {
            break at;
        }
        assert_eq!(
            response.status(),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "during the outage the app answers 503:\n{}",
            serve.stderr()
        );
        refusals += 1;
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the database was not back within 15 s:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("the scan request was refused {refusals} times while the database was out");
    serve
        .wait_ready(Duration::from_secs(15).saturating_sub(killed.elapsed()))
        .await;
    let back_after = killed.elapsed();
    assert_ne!(postmaster_pid(data.path()), Some(pid), "a new server runs");

    wait_for_scan(&owner, &scan_page, Duration::from_secs(90)).await;
    let mut conn = embedded_connection(data.path()).await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM scans").await,
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM snapshots").await,
        1
    );
    let stderr = serve.stderr();
    assert!(
        stderr.contains("stopped unexpectedly") && stderr.contains("running again"),
        "back after {back_after:?}:\n{stderr}"
    );
    let (status, _) = serve.terminate();
    assert!(status.success());
    assert!(postmaster_pid(data.path()).is_none());
}

/// The newest PostgreSQL tool `name` on this machine (as `siteward` finds it).
fn pg_tool(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|tool| tool.exists());
    versions.sort_by_key(|tool| {
        tool.components()
            .nth(4)
            .and_then(|v| v.as_os_str().to_str()?.parse::<u32>().ok())
    });
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_beside_serve_restores_with_every_blob_and_the_audit_log_intact() {
    let data = data_folder();
    let serve = Serve::start(data.path(), "serve").await;
    let (owner, target_page) = owner_with_target(&serve).await;
    let scan_page = location(&owner.post_form(&format!("{target_page}/scans"), &[]).await);
    wait_for_scan(&owner, &scan_page, Duration::from_secs(90)).await;

    let backups = tempfile::tempdir().unwrap();
    let out = backups.path().to_str().unwrap();
    let output = run_beside(data.path(), &["admin", "backup", "--out", out]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(serve.readyz().await, Some(reqwest::StatusCode::OK));
    let folder = std::fs::read_dir(backups.path())
        .unwrap()
        .flatten()
        .next()
        .expect("a backup folder")
        .path();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("backup.json")).unwrap()).unwrap();
    let dump = std::fs::read(folder.join("database.dump")).unwrap();
    assert_eq!(manifest["database"]["bytes"], dump.len() as u64);
    assert_eq!(
        manifest["database"]["sha256"].as_str().unwrap(),
        super::support::sha256_hex(&dump)
    );
    let blob_files = manifest["blobs"]["files"].as_u64().unwrap();
    assert!(blob_files >= 2, "{manifest}");
    // The master keys stay out of the backup.
    let keys = std::fs::read_to_string(data.path().join("master-keys")).unwrap();
    let secret = keys.trim().rsplit(':').next().unwrap();
    assert!(!folder.join("master-keys").exists());
    let dumped = Command::new(pg_tool("pg_restore"))
        .args(["--file", "-"])
        .arg(folder.join("database.dump"))
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{dumped:?}");
    let dumped = String::from_utf8_lossy(&dumped.stdout);
    assert!(dumped.contains("olga@agency.example"), "the dump as SQL");
    assert!(!dumped.contains(secret), "the dump holds a master key");

    // Restored into a new database, with the copied blobs and the same keys.
    let restored = super::support::empty_database().await;
    let restore = Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname", &restored])
        .arg(folder.join("database.dump"))
        .output()
        .unwrap();
    assert!(restore.status.success(), "{restore:?}");
    let on_restored = |args: &[&str]| {
        let mut command = siteward(data.path(), args);
        command
            .env("DATABASE_URL", &restored)
            .env("SITEWARD_BLOB_DIR", folder.join("blobs"));
        command.output().unwrap()
    };
    let audit = on_restored(&["admin", "verify-audit"]);
    assert!(audit.status.success(), "{audit:?}");
    let blobs = on_restored(&["admin", "verify-blobs"]);
    let said = String::from_utf8_lossy(&blobs.stdout).to_string();
    assert!(blobs.status.success(), "{blobs:?}");
    let intact: u64 = said
        .strip_prefix("blobs intact: ")
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(intact >= 2 && intact <= blob_files, "{said}");

    // A blob changed in the copy is named, and the check fails.
    let mut blob = folder.join("blobs");
    while blob.is_dir() {
        blob = std::fs::read_dir(&blob)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .max()
            .unwrap();
    }
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let broken = on_restored(&["admin", "verify-blobs"]);
    let said = String::from_utf8_lossy(&broken.stdout).to_string();
    assert_eq!(broken.status.code(), Some(1), "{said}");
    assert!(said.starts_with("blobs BROKEN: 1 problem(s)"), "{said}");
}
