//! The single-page shop's journey in Playwright (Python, from PyPI), as the benchmark's outside
//! yardstick: a child process that runs the journey once per request and says how long it took.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The journey in Playwright's Python API (see its docstring).
const SCRIPT: &str = include_str!("playwright.py");

/// What the journey needs to know.
pub struct JourneySettings<'a> {
    pub chromium: &'a Path,
    /// `http://shop.test:PORT/`.
    pub base_url: &'a str,
    /// Where each fixture host name points (`HOST=127.0.0.1`).
    pub resolve: &'a [String],
    pub user: &'a str,
    pub secrets: &'a [(&'a str, &'a str)],
    pub total: &'a str,
}

pub struct Playwright {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pub version: String,
}

/// Why Playwright does not run.
pub enum Unavailable {
    /// `python` is missing, or has no `playwright` package.
    NotInstalled(String),
    /// It is there but failed.
    Failed(String),
}

impl Playwright {
    /// Starts `python` on the journey script and launches the browser.
    pub async fn start(python: &str, settings: &JourneySettings<'_>) -> Result<Self, Unavailable> {
        let script = std::env::temp_dir().join(format!(
            "siteward-bench-playwright-{}.py",
            std::process::id()
        ));
        std::fs::write(&script, SCRIPT)
            .map_err(|e| Unavailable::Failed(format!("cannot write {}: {e}", script.display())))?;
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Unavailable::NotInstalled(format!("cannot run {python}: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut playwright = Self {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        // The fixture hosts on loopback, every other name unresolvable: as the egress guard
        // gives the runner, without its proxy.
        let rules: Vec<String> = settings
            .resolve
            .iter()
            .filter_map(|mapping| mapping.split_once('='))
            .map(|(host, address)| format!("MAP {host} {address}"))
            .chain(["MAP * ~NOTFOUND".to_owned()])
            .collect();
        let config = json!({
            "chromium": settings.chromium,
            "base_url": settings.base_url,
            "user": settings.user,
            "total": settings.total,
            "secrets": settings
                .secrets
                .iter()
                .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
                .collect::<serde_json::Map<String, Value>>(),
            "args": [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--host-resolver-rules={}", rules.join(", ")),
            ],
        });
        let first = playwright
            .exchange(&config.to_string())
            .await
            .map_err(Unavailable::Failed)?;
        if let Some(reason) = first.get("unavailable").and_then(Value::as_str) {
            return Err(Unavailable::NotInstalled(reason.to_owned()));
        }
        playwright.version = first
            .get("ready")
            .and_then(Value::as_str)
            .ok_or_else(|| Unavailable::Failed(format!("unexpected answer {first}")))?
            .to_owned();
        Ok(playwright)
    }

    /// One run of the journey: its time as Playwright measured it, and its screenshot count.
    pub async fn run(&mut self) -> Result<(Duration, u64), String> {
        let answer = self.exchange("run").await?;
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            return Err(format!("the Playwright journey failed: {error}"));
        }
        let ms = answer
            .get("ms")
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("unexpected answer {answer}"))?;
        let shots = answer
            .get("screenshots")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok((Duration::from_secs_f64(ms / 1000.0), shots))
    }

    pub async fn stop(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Writes one line and reads the answer line (the first line only reads).
    async fn exchange(&mut self, line: &str) -> Result<Value, String> {
        let write = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.write_all(b"\n").await?;
            self.stdin.flush().await
        };
        // The script prints `unavailable` without reading: a closed pipe is its answer.
        let _ = write.await;
        let read = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line());
        match read.await {
            Ok(Ok(Some(answer))) => serde_json::from_str(&answer)
                .map_err(|e| format!("unexpected answer from Playwright ({e}): {answer}")),
            Ok(Ok(None)) => Err("the Playwright process ended".into()),
            Ok(Err(e)) => Err(format!("reading from Playwright: {e}")),
            Err(_) => Err("Playwright did not answer within 120 s".into()),
        }
    }
}
