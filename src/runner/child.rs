//! The embedded default: `serve` starts one `siteward runner` child process and restarts it if
//! it dies. The child gets a clean environment — the app URL, its runner token and its settings,
//! never the database URL, master keys or blob-store credentials.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::process::Command;
use tokio::sync::watch;
use url::Url;

use crate::config::RunnerSettings;

/// A supervised runner child; stops it on `stop`.
pub struct RunnerChild {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunnerChild {
    /// Starts supervising `exe runner` against `app_url`.
    pub fn spawn(
        exe: PathBuf,
        app_url: Url,
        token: SecretString,
        settings: &RunnerSettings,
        key_file: PathBuf,
    ) -> RunnerChild {
        let (stop, mut stopped) = watch::channel(false);
        let settings = settings.clone();
        let task = tokio::spawn(async move {
            let mut restarts = 0u32;
            loop {
                let mut command = Command::new(&exe);
                command
                    .arg("runner")
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("SITEWARD_APP_URL", app_url.as_str())
                    .env("SITEWARD_RUNNER_TOKEN", token.expose_secret())
                    .env(
                        "SITEWARD_RUNNER_CONCURRENCY",
                        settings.runner_concurrency.to_string(),
                    )
                    .env("SITEWARD_CHROMIUM", &settings.chromium)
                    .env("SITEWARD_RUNNER_KEY_FILE", &key_file)
                    .kill_on_drop(true);
                for name in ["HOME", "TMPDIR", "SITEWARD_LOG", "LANG"] {
                    if let Some(value) = std::env::var_os(name) {
                        command.env(name, value);
                    }
                }
                if settings.runner_allow_private {
                    command.arg("--allow-private");
                }
                let started = std::time::Instant::now();
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(error) => {
                        tracing::error!(%error, exe = %exe.display(), "cannot start the embedded runner");
                        if wait_or_stop(&mut stopped, Duration::from_secs(10)).await {
                            return;
                        }
                        continue;
                    }
                };
                tracing::info!(pid = child.id(), "embedded runner started");
                tokio::select! {
                    status = child.wait() => {
                        tracing::warn!(?status, "the embedded runner exited; restarting it");
                    }
                    _ = stopped.changed() => {
                        // SIGTERM lets the runner close Chromium; SIGKILL if it does not go.
                        if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
                            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                        }
                        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                            let _ = child.start_kill();
                            let _ = child.wait().await;
                        }
                        return;
                    }
                }
                // Quick deaths back off up to a minute; a long-lived runner restarts at once.
                restarts = if started.elapsed() > Duration::from_secs(60) {
                    0
                } else {
                    restarts + 1
                };
                let delay = Duration::from_secs((1u64 << restarts.min(6)).min(60));
                if wait_or_stop(&mut stopped, delay).await {
                    return;
                }
            }
        });
        RunnerChild { stop, task }
    }

    /// Stops the child and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Sleeps; true if told to stop meanwhile.
async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stopped.changed() => true,
    }
}
