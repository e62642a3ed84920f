//! `siteward serve` with no configuration: its own PostgreSQL cluster, started and stopped.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Browser, PASSWORD, location};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_database_url_runs_its_own_postgres_and_stops_it_on_exit() {
    let data = tempfile::tempdir_in("/tmp").unwrap();
    // The embedded server may run as an unprivileged user, who must reach the folder.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_siteward"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("SITEWARD_MASTER_KEYS")
        .env("SITEWARD_DATA_DIR", data.path())
        .env("SITEWARD_LISTEN", format!("127.0.0.1:{port}"))
        // The embedded runner may scan this loopback app itself.
        .env("SITEWARD_RUNNER_ALLOW_PRIVATE", "true")
        .env("SITEWARD_LOG", "info,chromiumoxide=error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start siteward serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("serve did not become ready:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sign_up = client.get(format!("{base}/sign-up")).send().await.unwrap();
    assert!(sign_up.text().await.unwrap().contains("first person"));

    // The embedded runner child takes a scan asked for in the dashboard.
    let owner = Browser::new(&base);
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
    let target_url = format!("http://127.0.0.1:{port}/healthz");
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
    let target_page = location(&response);
    let scan_page = location(&owner.post_form(&format!("{target_page}/scans"), &[]).await);
    assert!(scan_page.starts_with("/scans/"), "{scan_page}");
    let started = Instant::now();
    loop {
        let page = owner.get(&scan_page).await.text().await.unwrap();
        if page.contains("succeeded") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the embedded runner did not finish the scan:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let cluster = data.path().join("postgres").join("data");
    assert!(
        cluster.join("postmaster.pid").exists(),
        "the embedded server runs"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !cluster.join("postmaster.pid").exists(),
        "the embedded server stopped"
    );

    // What serve printed holds no secret it generated.
    let password = std::fs::read_to_string(data.path().join("postgres").join("password")).unwrap();
    let keys = std::fs::read_to_string(data.path().join("master-keys")).unwrap();
    let key = keys.trim().split_once(':').unwrap().1;
    assert!(!stderr.contains(password.trim()), "{stderr}");
    assert!(!stderr.contains(key), "{stderr}");
    assert!(stderr.contains("embedded PostgreSQL"), "{stderr}");
    assert!(stderr.contains("unfit for production"), "{stderr}");
}
