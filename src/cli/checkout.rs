//! `siteward checkout TEST.yaml URL --out DIR`: runs a checkout test on this machine with the
//! runner's own code, for writing and debugging a journey before it is saved in the service.
//!
//! Secrets come from the environment (`SITEWARD_SECRET_<NAME>`, the name upper-cased) or from a
//! file named by `--secrets-file` (`name=value` lines), never from the command line, where other
//! users of the machine and the shell history would see them. Writes `report.json`, each step's
//! screenshot, each page reached (`page-N.json` and its screenshots) and a self-contained
//! `report.html`. Exit code 0: passed; 1: a step failed (which and why on stderr); 2: the test
//! could not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use askama::Template;
use base64::Engine;
use checkout_runner::{Outcome, RunOutput, RunReport, RunSettings, SecretValue, Secrets};
use clap::Args;
use scanner::{ScanOptions, Scanner, Supervisor};
use zeroize::Zeroizing;

use super::{BrowserArgs, EgressArgs, exit, fail, parse_viewport};

/// The environment variables secrets are read from: this prefix and the name upper-cased.
const SECRET_ENV_PREFIX: &str = "SITEWARD_SECRET_";
/// Pages reached are captured after this quiet period, as on the service's runners.
const QUIET_PERIOD: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// The checkout test (YAML, as saved in the service).
    pub test: PathBuf,
    /// The target's URL: the first `goto` and relative URLs resolve against it.
    pub url: String,
    /// Folder for report.json, report.html and the screenshots (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Read secrets from this file: `name=value` per line, `#` for comments. Secrets it does not
    /// name come from SITEWARD_SECRET_<NAME>.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Viewport WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_viewport, default_value = "1366x768")]
    pub viewport: (u32, u32),
    #[command(flatten)]
    pub egress: EgressArgs,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: CheckoutArgs) -> ExitCode {
    let prepared = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(error) => return fail(error),
    };
    let scanner = Scanner::new(Supervisor::new(args.browser.browser_options(1)));
    let result = checkout_runner::run(
        &scanner,
        &prepared.plan,
        &prepared.secrets,
        &prepared.settings,
    )
    .await;
    scanner.supervisor().shutdown().await;
    // The secrets are zeroized here, before anything is written.
    drop(prepared.secrets);
    let output = match result {
        Ok(output) => output,
        Err(error) => return fail(error),
    };
    if let Err(error) = write_output(&args.out, &output) {
        return fail(error);
    }
    let report = &output.report;
    eprintln!(
        "siteward: {} in {} ms; wrote {}",
        match report.outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
        },
        report.duration_ms,
        args.out.join("report.html").display()
    );
    match &report.failure {
        None => ExitCode::SUCCESS,
        Some(failure) => {
            eprintln!("siteward: {}", failure.summary);
            ExitCode::from(exit::RULE_FAILED)
        }
    }
}

struct Prepared {
    plan: checkout_runner::Plan,
    secrets: Secrets,
    settings: RunSettings,
}

/// Everything that can be wrong with the input, checked before the browser starts.
fn prepare(args: &CheckoutArgs) -> Result<Prepared, String> {
    let text = std::fs::read_to_string(&args.test)
        .map_err(|e| format!("cannot read {}: {e}", args.test.display()))?;
    let plan = checkout_runner::parse(&text)
        .map_err(|problems| format!("{} does not parse: {problems}", args.test.display()))?;
    scanner::validate_url(&args.url).map_err(|e| e.to_string())?;
    let base_url = url::Url::parse(&args.url).map_err(|e| format!("invalid URL: {e}"))?;
    let file = match &args.secrets_file {
        Some(path) => read_secrets_file(path)?,
        None => BTreeMap::new(),
    };
    let secrets = gather_secrets(&plan.secret_names(), file, |name| std::env::var(name).ok())?;
    let egress = args.egress.policy()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    Ok(Prepared {
        plan,
        secrets,
        settings: RunSettings {
            base_url,
            capture_pages: true,
            options: ScanOptions {
                viewport_width: args.viewport.0,
                viewport_height: args.viewport.1,
                quiet_period: QUIET_PERIOD,
                egress,
                ..ScanOptions::default()
            },
        },
    })
}

/// `name=value` lines; blank lines and `#` comments are skipped. Errors name lines, never values.
fn read_secrets_file(path: &Path) -> Result<BTreeMap<String, Zeroizing<String>>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let mut secrets = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!(
                "{} line {}: expected name=value",
                path.display(),
                number + 1
            ));
        };
        secrets.insert(name.trim().to_owned(), Zeroizing::new(value.to_owned()));
    }
    Ok(secrets)
}

/// The secrets the plan fills in, from the file first, then from `SITEWARD_SECRET_<NAME>`.
fn gather_secrets(
    wanted: &[&str],
    mut file: BTreeMap<String, Zeroizing<String>>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, String> {
    let mut secrets = Secrets::default();
    let mut missing = Vec::new();
    for name in wanted {
        let variable = format!("{SECRET_ENV_PREFIX}{}", name.to_uppercase());
        match file
            .remove(*name)
            .or_else(|| env(&variable).map(Zeroizing::new))
        {
            Some(value) if !value.is_empty() => {
                secrets.insert((*name).to_owned(), SecretValue::local(value))
            }
            _ => missing.push(format!(
                "{name} (set {variable} or put {name}=… in --secrets-file)"
            )),
        }
    }
    if missing.is_empty() {
        Ok(secrets)
    } else {
        Err(format!(
            "the test fills secrets that were not given: {}",
            missing.join(", ")
        ))
    }
}

fn write_output(out: &Path, output: &RunOutput) -> Result<(), String> {
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes)
            .map_err(|e| format!("cannot write {}: {e}", out.join(name).display()))
    };
    let json = serde_json::to_vec_pretty(&output.report)
        .map_err(|e| format!("cannot encode the report: {e}"))?;
    write("report.json", &json)?;
    for (name, png) in &output.screenshots {
        write(name, png)?;
    }
    for (index, page) in output.pages.iter().enumerate() {
        let json = serde_json::to_vec_pretty(&page.snapshot)
            .map_err(|e| format!("cannot encode a page: {e}"))?;
        write(&format!("page-{index}.json"), &json)?;
        write(&format!("page-{index}-viewport.png"), &page.viewport_png)?;
    }
    let html = CheckoutReport::new(&output.report, &output.screenshots)
        .render()
        .map_err(|e| format!("cannot render the report: {e}"))?;
    write("report.html", html.as_bytes())
}

/// The self-contained HTML report: the steps with their screenshots inline, the failing step's
/// first.
#[derive(Template)]
#[template(path = "checkout_report.html")]
struct CheckoutReport<'r> {
    report: &'r RunReport,
    steps: Vec<ReportStep<'r>>,
    failed: Option<usize>,
}

struct ReportStep<'r> {
    step: &'r checkout_runner::StepResult,
    status: &'static str,
    error: Option<String>,
    /// The screenshot as a `data:` URL.
    image: Option<String>,
}

impl<'r> CheckoutReport<'r> {
    fn new(report: &'r RunReport, screenshots: &[(String, Vec<u8>)]) -> Self {
        let image = |step: &checkout_runner::StepResult| {
            let shot = step.screenshot.as_ref()?;
            let (_, png) = screenshots
                .iter()
                .find(|(name, _)| *name == shot.artifact)?;
            Some(format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            ))
        };
        let steps: Vec<ReportStep> = report
            .steps
            .iter()
            .map(|step| ReportStep {
                step,
                status: match step.status {
                    checkout_runner::StepStatus::Passed => "passed",
                    checkout_runner::StepStatus::Failed => "failed",
                    checkout_runner::StepStatus::Skipped => "skipped",
                },
                error: step.error.as_ref().map(ToString::to_string),
                image: image(step),
            })
            .collect();
        let failed = steps.iter().position(|s| s.status == "failed");
        Self {
            report,
            steps,
            failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_file_then_the_environment_and_missing_ones_are_named() {
        let mut file = BTreeMap::new();
        file.insert(
            "password".to_owned(),
            Zeroizing::new("from-file".to_owned()),
        );
        let env = |name: &str| (name == "SITEWARD_SECRET_CARD_NUMBER").then(|| "4242".to_owned());
        let secrets = gather_secrets(&["password", "card_number"], file.clone(), env).unwrap();
        assert_eq!(format!("{secrets:?}"), r#"["card_number", "password"]"#);
        let error = gather_secrets(&["password", "cvc"], file, env).unwrap_err();
        assert!(error.contains("cvc (set SITEWARD_SECRET_CVC"), "{error}");
        assert!(!error.contains("from-file"), "{error}");
    }

    #[test]
    fn a_malformed_secrets_file_names_the_line_not_the_value() {
        let dir = std::env::temp_dir().join(format!("siteward-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets");
        std::fs::write(
            &path,
            "# mine\npassword=hunter2=x\n\nno-equals-sign-s3cret\n",
        )
        .unwrap();
        let error = read_secrets_file(&path).unwrap_err();
        assert!(error.ends_with("line 4: expected name=value"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        std::fs::write(&path, "password = hunter2=x\n").unwrap();
        let secrets = read_secrets_file(&path).unwrap();
        assert_eq!(secrets["password"].as_str(), " hunter2=x");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
