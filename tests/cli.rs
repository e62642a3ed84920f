//! `siteward scan` as a user runs it: a real process, real Chromium, the fixture sites.

use std::path::Path;
use std::process::Output;

use fixture_sites::{ANALYTICS, COOKIE_VALUES, FixtureSites, SHOP, STORAGE_VALUES};

fn siteward() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_siteward"));
    command.kill_on_drop(true);
    command
}

/// `siteward scan URL --out OUT` with the fixture hosts mapped and the fixture certificate trusted.
async fn scan(sites: &FixtureSites, url: &str, out: &Path, extra: &[&str]) -> Output {
    let mut command = siteward();
    command.args(["scan", url, "--out"]).arg(out).args([
        "--trust-spki",
        sites.spki(),
        "--quiet",
        "2s",
    ]);
    for mapping in sites.resolve_args() {
        command.args(["--resolve", &mapping]);
    }
    command.args(extra).output().await.expect("siteward runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_writes_snapshot_screenshots_and_a_self_contained_report() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let cookie_db = fixture_sites::open_cookie_database();
    let cookie_db = cookie_db.to_str().expect("utf-8 path");
    let output = scan(
        &sites,
        &sites.url(SHOP, "/"),
        out.path(),
        &["--policy-pages", "--cookie-db", cookie_db],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    for stage in [
        "launching browser",
        "navigating",
        "waiting for the page to settle",
        "capturing",
        "reading policy pages",
        "wrote",
    ] {
        assert!(
            err.contains(stage),
            "progress {stage:?} missing from:\n{err}"
        );
    }

    let snapshot: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("snapshot.json")).expect("snapshot.json"),
    )
    .expect("JSON");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../docs/snapshot.schema.json")).expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&snapshot)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snapshot["title"], "Fixture Shop");
    assert_eq!(snapshot["policy_pages"].as_array().map(Vec::len), Some(3));

    for png in ["viewport.png", "fullpage.png"] {
        let bytes = std::fs::read(out.path().join(png)).expect(png);
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png} is a PNG");
    }
    let report = std::fs::read_to_string(out.path().join("report.html")).expect("report.html");
    assert!(report.contains("<h1>Fixture Shop</h1>"));
    assert!(report.contains("Content-Security-Policy"));
    assert!(
        !report.to_ascii_lowercase().contains("<script"),
        "the report runs no script"
    );
    assert!(
        !report.contains("http://") || !report.contains("src=\"http"),
        "the report loads nothing remote"
    );
    assert!(
        report.contains("data:image/png;base64,"),
        "screenshots are embedded"
    );
    assert!(report.contains("analytics.test"));
    assert!(
        report.contains("Analytics <span class=\"muted\">(Google Analytics)</span>"),
        "cookies are classified"
    );

    // No cookie or storage value anywhere in what was written, screenshots included.
    for entry in std::fs::read_dir(out.path()).expect("out dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read output file");
        for secret in COOKIE_VALUES.iter().chain(STORAGE_VALUES.iter()) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} found in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_rules_give_exit_1_with_the_reasons() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let known = out.path().join("known-hosts.txt");
    std::fs::write(
        &known,
        "# hosts we expect\nshop.test\ncdn.test\n*.widget.test\nwidget.test\nads.test\n",
    )
    .expect("write list");
    let new_host = format!("new-host:{}", known.display());
    let trackers = out.path().join("services.json");
    std::fs::write(&trackers, fixture_sites::TRACKER_LIST_JSON).expect("write tracker list");
    let trackers = trackers.to_str().expect("utf-8 path").to_owned();
    let output = scan(
        &sites,
        &sites.url(SHOP, "/"),
        &out.path().join("scan"),
        &[
            "-q",
            "--fail-on",
            "third-party-cookie",
            "--fail-on",
            &new_host,
            "--fail-on",
            "console-error",
            "--host-list",
            &trackers,
            "--fail-on",
            "listed-host",
        ],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("third-party cookie IDE on ads.test"), "{err}");
    assert!(
        err.contains("third-party cookie widget_session on widget.test"),
        "{err}"
    );
    assert!(err.contains(&format!("new host {ANALYTICS}")), "{err}");
    assert!(
        !err.contains("new host cdn.test"),
        "listed hosts are not new: {err}"
    );
    assert!(
        err.contains("console.error: fixture console error"),
        "{err}"
    );
    assert!(
        err.contains("listed host ads.test (Advertising, Fixture Ads Inc.)"),
        "{err}"
    );
    assert!(
        out.path().join("scan/report.html").exists(),
        "the report is written even when a rule fails"
    );

    let clean = scan(
        &sites,
        &sites.url(SHOP, "/simple"),
        &out.path().join("clean"),
        &[
            "-q",
            "--fail-on",
            "third-party-cookie",
            "--fail-on",
            &new_host,
        ],
    )
    .await;
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_requests_can_fail_a_scan() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let url = sites.url(SHOP, "/egress?trap=9");
    let output = scan(
        &sites,
        &url,
        out.path(),
        &["-q", "--fail-on", "blocked-request"],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("blocked connection to 169.254.169.254:80"),
        "{err}"
    );
}

/// Exit code 2, and exactly one line on stderr saying what went wrong.
fn assert_one_line_error(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{err}");
    assert!(lines[0].starts_with("siteward: error: "), "{err}");
    assert!(lines[0].contains(expected), "{expected:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_runs() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = |args: Vec<String>| async move {
        siteward().args(args).output().await.expect("siteward runs")
    };
    let out_dir = out.path().join("never").display().to_string();
    let base = |url: &str| {
        vec![
            "scan".to_owned(),
            url.to_owned(),
            "--out".to_owned(),
            out_dir.clone(),
        ]
    };

    assert_one_line_error(
        &run(base("ftp://example.com/")).await,
        "only http and https URLs can be scanned",
    );
    assert_one_line_error(&run(base("not a url")).await, "invalid URL");
    assert_one_line_error(
        &run(base("https://user:pw@example.com/")).await,
        "credentials in URLs are not accepted",
    );
    let mut rule = base("http://shop.test/");
    rule.extend(["--fail-on".into(), "everything".into()]);
    assert_one_line_error(&run(rule).await, "unknown --fail-on rule");
    let mut resolve = base("http://shop.test/");
    resolve.extend(["--resolve".into(), "shop.test:127.0.0.1".into()]);
    assert_one_line_error(&run(resolve).await, "invalid --resolve");
    let mut database = base("http://shop.test/");
    database.extend(["--cookie-db".into(), "/nonexistent/ocd.csv".into()]);
    assert_one_line_error(
        &run(database).await,
        "cannot read the cookie database /nonexistent/ocd.csv",
    );
    let unwritable = run(vec![
        "scan".into(),
        "http://shop.test/".into(),
        "--out".into(),
        "/proc/siteward-out".into(),
    ])
    .await;
    assert_one_line_error(&unwritable, "cannot create /proc/siteward-out");
    let mut hosts = base("http://shop.test/");
    hosts.extend(["--host-list".into(), "/nonexistent/services.json".into()]);
    assert_one_line_error(
        &run(hosts).await,
        "cannot read the host list /nonexistent/services.json",
    );
    let mut missing = base("http://shop.test/");
    missing.extend(["--fail-on".into(), "new-host:/nonexistent/list.txt".into()]);
    assert_one_line_error(&run(missing).await, "/nonexistent/list.txt");
    let mut lists = base("http://shop.test/");
    lists.extend(["--filter-lists".into(), "/nonexistent/lists".into()]);
    assert_one_line_error(
        &run(lists).await,
        "cannot read the filter list /nonexistent/lists/easyprivacy.txt",
    );
    let mut finding = base("http://shop.test/");
    finding.extend(["--fail-on".into(), "compliance-finding".into()]);
    assert_one_line_error(
        &run(finding).await,
        "--fail-on compliance-finding needs --compliance",
    );
    assert!(
        !out.path().join("never").exists(),
        "nothing was written for bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hosts_tls_failures_and_timeouts_are_one_line_errors() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // The port was bound and released: nothing listens there now.
    let unreachable = scan(
        &sites,
        &format!("http://{SHOP}:{closed}/"),
        out.path(),
        &["-q"],
    )
    .await;
    assert_one_line_error(&unreachable, "could not reach");

    let mut command = siteward();
    command
        .args(["scan", &sites.https_url(SHOP, "/"), "--out"])
        .arg(out.path())
        .arg("-q");
    for mapping in sites.resolve_args() {
        command.args(["--resolve", &mapping]);
    }
    let untrusted = command.output().await.expect("siteward runs");
    assert_one_line_error(&untrusted, "TLS failure");

    let timeout = scan(
        &sites,
        &sites.url(SHOP, "/no-response"),
        out.path(),
        &["-q", "--load-timeout", "2s"],
    )
    .await;
    assert_one_line_error(
        &timeout,
        "timed out after 2 s waiting for the page to respond",
    );

    let refused = scan(
        &sites,
        "http://169.254.169.254/latest/meta-data/",
        out.path(),
        &["-q"],
    )
    .await;
    assert_one_line_error(&refused, "link-local");

    let unresolvable = scan(&sites, "http://no-such-host.invalid/", out.path(), &["-q"]).await;
    assert_one_line_error(&unresolvable, "cannot resolve no-such-host.invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_private_says_loudly_that_the_guard_is_off() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let output = scan(
        &sites,
        &sites.url("127.0.0.1", "/simple"),
        out.path(),
        &["-q", "--allow-private"],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        err.contains("WARNING: --allow-private turns the egress guard OFF"),
        "{err}"
    );
    let report = std::fs::read_to_string(out.path().join("report.html")).expect("report");
    assert!(report.contains("The egress guard was off"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_accept_answers_the_banner_and_the_report_says_so() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let output = scan(
        &sites,
        &sites.url(SHOP, "/consent"),
        out.path(),
        &["-q", "--consent", "accept"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = std::fs::read_to_string(out.path().join("report.html")).expect("report");
    assert!(
        report.contains("answered the banner with <strong>Sure thing</strong>"),
        "{report}"
    );
    let bad = scan(
        &sites,
        &sites.url(SHOP, "/consent"),
        out.path(),
        &["-q", "--consent", "maybe"],
    )
    .await;
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap rejects unknown values with exit 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_scan_writes_each_visit_and_its_findings_and_gates_on_them() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let output = scan(
        &sites,
        &sites.url(SHOP, "/compliance/tracks-after-reject"),
        out.path(),
        &["--compliance", "--gpc", "--fail-on", "compliance-finding"],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    for visit in ["first_visit", "reject_all", "accept_all", "gpc"] {
        assert!(
            err.contains(&format!("{visit}: capturing")),
            "{visit} progress in:\n{err}"
        );
        for file in [
            "snapshot.json",
            "viewport.png",
            "fullpage.png",
            "report.html",
        ] {
            assert!(
                out.path().join(visit).join(file).is_file(),
                "{visit}/{file}"
            );
        }
    }
    assert!(
        err.contains("siteward: fail-on: facebook.net tracks visitors after they rejected all"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("compliance.json")).expect("compliance.json"),
    )
    .expect("json");
    let fingerprints: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["fingerprint"].as_str().expect("fingerprint"))
        .collect();
    assert_eq!(
        fingerprints,
        [
            "tracking_after_reject:reject_all:facebook.com",
            "tracking_after_reject:reject_all:facebook.net"
        ]
    );
    assert_eq!(report["gpc"], "nothing_to_opt_out_of");
    let html =
        std::fs::read_to_string(out.path().join("compliance.html")).expect("compliance.html");
    assert!(
        html.contains("facebook.net tracks visitors after they rejected all"),
        "{html}"
    );
    assert!(html.contains("2 critical"));
    assert_eq!(report["filter_lists"][0]["name"], "easyprivacy");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("2 findings:"), "{printed}");
    assert!(
        printed.contains("[critical] facebook.com tracks visitors after they rejected all"),
        "{printed}"
    );
}

/// Runs the HAR checker (`tests/har/check_har.py`: the HAR 1.2 JSON Schema, then haralyzer
/// reading the file) on `har`, and returns what the reader saw. Fails loudly when the checker is
/// not installed (`scripts/test` installs it).
fn check_har(har: &Path) -> serde_json::Value {
    let python = std::env::var("SITEWARD_HAR_PYTHON")
        .expect("SITEWARD_HAR_PYTHON is set (scripts/test installs the HAR checkers)");
    let schema = std::env::var("SITEWARD_HAR_SCHEMA")
        .expect("SITEWARD_HAR_SCHEMA is set (scripts/test installs the HAR checkers)");
    let output = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/har/check_har.py"
        ))
        .arg(schema)
        .arg(har)
        .output()
        .expect("the HAR checker runs");
    assert!(
        output.status.success(),
        "the HAR does not validate or read: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the checker prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_har_validates_against_har_1_2_reads_in_a_har_reader_and_holds_no_secret() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let har_path = out.path().join("requests.har");
    let output = scan(
        &sites,
        &sites.url(SHOP, "/har"),
        out.path(),
        &["--har", har_path.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let bytes = std::fs::read(&har_path).expect("the HAR file is written");
    for secret in COOKIE_VALUES.iter().chain([&fixture_sites::AUTH_TOKEN]) {
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "{secret} is in the HAR");
    }
    let read = check_har(&har_path);
    assert_eq!(read["creator"]["name"], "siteward");
    let pages = read["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0]["title"], "HAR fixture");
    let entries = pages[0]["entries"].as_array().expect("entries");
    let entry = |suffix: &str| {
        entries
            .iter()
            .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no entry for {suffix} in {entries:#?}"))
    };
    let header = |headers: &serde_json::Value, name: &str| -> Option<String> {
        headers.as_array()?.iter().find_map(|h| {
            (h["name"] == name).then(|| h["value"].as_str().unwrap_or_default().to_owned())
        })
    };

    let document = entry("/har");
    assert_eq!(document["status"], 200);
    assert_eq!(document["mime_type"], "text/html");
    assert_eq!(
        document["response_cookies"][0]["name"], "session_id",
        "{document:#?}"
    );
    assert_eq!(document["response_cookies"][0]["value"], "[redacted]");
    assert_eq!(document["response_cookies"][0]["httpOnly"], true);
    for phase in ["send", "wait", "receive"] {
        assert!(
            document["timings"][phase]
                .as_f64()
                .is_some_and(|t| t >= 0.0),
            "{phase}: {:?}",
            document["timings"]
        );
    }

    // The redirect is an entry of its own that says where it went.
    let redirect = entry("/har/old.gif");
    assert_eq!(redirect["status"], 302);
    assert!(
        redirect["redirect_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/har/pixel.gif?from=old")),
        "{redirect:#?}"
    );
    assert_eq!(entry("/har/pixel.gif?from=old")["status"], 200);

    // The script's fetch: the credential it sent and the cookie the browser added are
    // redacted, the query is parsed, and the script is named as its initiator.
    let api = entry("/har/api?q=shoes&page=2");
    assert_eq!(
        header(&api["request_headers"], "authorization").as_deref(),
        Some("Bearer [redacted]")
    );
    assert_eq!(
        header(&api["request_headers"], "cookie").as_deref(),
        Some("session_id=[redacted]"),
        "the Cookie header the browser sent is recorded, redacted: {api:#?}"
    );
    assert_eq!(api["request_cookies"][0]["name"], "session_id");
    assert_eq!(api["response_cookies"][0]["name"], "api_state");
    assert_eq!(api["initiator"]["type"], "script");
    assert!(
        api["initiator"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/har")),
        "{api:#?}"
    );
    let beacon = entry("/collect");
    assert_eq!(beacon["method"], "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_refuses_a_har_path_it_cannot_write_before_starting_the_browser() {
    let out = tempfile::tempdir().expect("tempdir");
    let missing = out.path().join("no-such-folder/requests.har");
    let output = siteward()
        .args(["scan", "https://shop.test/", "--out"])
        .arg(out.path())
        .arg("--har")
        .arg(&missing)
        .output()
        .await
        .expect("siteward runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write the HAR file"), "{err}");
    assert!(!err.contains("launching browser"), "{err}");
    assert!(!missing.exists());

    let output = siteward()
        .args(["scan", "https://shop.test/", "--compliance", "--out"])
        .arg(out.path())
        .args(["--har", "x.har"])
        .output()
        .await
        .expect("siteward runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot be used with"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_crawl_writes_the_site_snapshot_and_a_folder_per_page() {
    let sites = FixtureSites::start().await.expect("fixture sites");
    let out = tempfile::tempdir().expect("tempdir");
    let start = sites.url(fixture_sites::outdoor::OUTDOOR, "/");
    let mut command = siteward();
    command
        .args(["scan", &start, "--crawl", "--out"])
        .arg(out.path())
        .args([
            "--max-pages",
            "3",
            "--no-sitemaps",
            "--exclude",
            "/products",
            "--trust-spki",
            sites.spki(),
            "--quiet",
            "300ms",
            "--dwell",
            "200ms",
        ]);
    for mapping in sites.resolve_args() {
        command.args(["--resolve", &mapping]);
    }
    let output = command.output().await.expect("siteward runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(err.contains("page 1: "), "{err}");
    assert!(err.contains("3 pages, 0 unreachable"), "{err}");

    let site: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("site.json")).expect("site.json"))
            .expect("JSON");
    let pages = site["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["url"], start);
    assert_eq!(site["skipped_counts"]["excluded"], 1);
    for n in 1..=3 {
        let folder = out.path().join(format!("pages/{n:03}"));
        for file in [
            "snapshot.json",
            "viewport.png",
            "fullpage.png",
            "report.html",
            "requests.har",
        ] {
            assert!(
                folder.join(file).is_file(),
                "{} missing",
                folder.join(file).display()
            );
        }
        let snapshot: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("snapshot.json")).unwrap()).unwrap();
        assert_eq!(snapshot["final_url"], pages[n - 1]["final_url"]);
    }
    check_har(&out.path().join("pages/002/requests.har"));

    // Bad rules are refused before any browser starts.
    let output = siteward()
        .args(["scan", &start, "--crawl", "--exclude", "products", "--out"])
        .arg(out.path())
        .output()
        .await
        .expect("siteward runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a path pattern"), "{err}");
    let output = siteward()
        .args(["scan", &start, "--max-pages", "5", "--out"])
        .arg(out.path())
        .output()
        .await
        .expect("siteward runs");
    assert_eq!(output.status.code(), Some(2), "--max-pages needs --crawl");
}
