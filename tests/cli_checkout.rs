//! `siteward checkout` as a person writing a test runs it: a real process, real Chromium, the
//! single-page fixture shop, secrets from the environment and from a file.

use std::path::Path;
use std::process::Output;

use fixture_sites::spa_shop::{self, SECRETS};
use fixture_sites::{FixtureSites, SHOP};

/// `siteward checkout TEST URL --out OUT EXTRA…` with the fixture hosts mapped and only `env`'s
/// secrets set.
async fn checkout(
    sites: &FixtureSites,
    test: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_siteward"));
    command
        .kill_on_drop(true)
        .args(["checkout"])
        .arg(test)
        .arg(sites.url(SHOP, "/spa/"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .arg("--resolve")
        .arg(sites.resolve_args().join(","))
        .env_remove("SITEWARD_SECRET_PASSWORD")
        .env_remove("SITEWARD_SECRET_CARD_NUMBER")
        .env_remove("SITEWARD_SECRET_CARD_CVC");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("siteward runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir`, as text where it is text.
fn all_text(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .expect("out dir")
        .map(|e| {
            String::from_utf8_lossy(&std::fs::read(e.expect("entry").path()).expect("read"))
                .into_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_checkout_run_passes_fails_and_refuses_with_the_right_exit_codes() {
    fixture_sites::packages::packages_dir();
    let sites = FixtureSites::start().await.expect("fixture sites");
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets_file = dir.path().join("secrets");
    // The password from a file, the card from the environment.
    std::fs::write(
        &secrets_file,
        format!("# test shop\npassword={}\n", SECRETS[0].1),
    )
    .unwrap();
    let card_env = [
        ("SITEWARD_SECRET_CARD_NUMBER", SECRETS[1].1),
        ("SITEWARD_SECRET_CARD_CVC", SECRETS[2].1),
    ];

    let passing = dir.path().join("passing.yaml");
    std::fs::write(&passing, spa_shop::journey("standard_user")).unwrap();
    let out = dir.path().join("out-pass");
    let file_arg = secrets_file.to_string_lossy().into_owned();
    let output = checkout(
        &sites,
        &passing,
        &out,
        &["--secrets-file", &file_arg],
        &card_env,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["stopped_at"], spa_shop::steps::STOP);
    assert!(
        out.join(format!("step-{}.png", spa_shop::steps::FILL_CARD))
            .is_file()
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Checkout test passed"), "the report says so");
    assert!(
        html.contains("data:image/png;base64,"),
        "screenshots are inline"
    );
    assert!(!html.contains("src=\"http"), "the report loads nothing");
    let written = all_text(&out);
    for (name, value) in SECRETS {
        assert!(
            !written.contains(value),
            "an output file holds the secret {name}"
        );
        assert!(
            !stderr(&output).contains(value),
            "stderr holds the secret {name}"
        );
    }

    // A refused login: exit 1, and stderr says what the page said.
    let failing = dir.path().join("failing.yaml");
    std::fs::write(&failing, spa_shop::journey("locked_out_user")).unwrap();
    let mut env = card_env.to_vec();
    env.push(("SITEWARD_SECRET_PASSWORD", SECRETS[0].1));
    let output = checkout(&sites, &failing, &dir.path().join("out-fail"), &[], &env).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Sorry, this user has been locked out."),
        "{}",
        stderr(&output)
    );

    // A secret not given: exit 2 before any browser starts, naming what to set.
    let output = checkout(
        &sites,
        &passing,
        &dir.path().join("out-missing"),
        &[],
        &card_env,
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("password (set SITEWARD_SECRET_PASSWORD"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("out-missing").join("report.json").exists());
}
