//! `serve` keeps its embedded server alive: a task that notices within a second when the server
//! died (killed, crashed, stopped by someone) and starts it again on the same port, with
//! backoff, reporting the outage through [`DatabaseHealth`] meanwhile. The app's connection
//! pool reconnects on its own once the server answers, and queued work resumes.

use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::lock::ControlLock;
use super::{EmbeddedError, EmbeddedPostgres, StopOutcome, port_from_pid_file};
use crate::db::health::DatabaseHealth;

/// How often the server's process is looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The pause after the first failed restart; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A supervised embedded server; [`Supervised::stop`] ends the supervision and releases it.
#[derive(Debug)]
pub struct Supervised {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<EmbeddedPostgres>,
}

impl EmbeddedPostgres {
    /// Watches the server and restarts it whenever it dies, until [`Supervised::stop`].
    pub fn supervise(self, health: DatabaseHealth) -> Supervised {
        let (shutdown, stop_requested) = oneshot::channel();
        let task = tokio::spawn(watch(self, health, stop_requested));
        Supervised { shutdown, task }
    }
}

impl Supervised {
    /// Ends the supervision, then releases the server like [`EmbeddedPostgres::stop`].
    pub async fn stop(self) -> Result<StopOutcome, EmbeddedError> {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(server) => server.stop().await,
            Err(error) => Err(EmbeddedError::StopFailed {
                stderr: format!("the supervisor of the embedded PostgreSQL failed: {error}"),
            }),
        }
    }
}

async fn watch(
    mut server: EmbeddedPostgres,
    health: DatabaseHealth,
    mut stop_requested: oneshot::Receiver<()>,
) -> EmbeddedPostgres {
    let mut failed_restarts = 0u32;
    loop {
        let pause = if failed_restarts == 0 {
            CHECK_INTERVAL
        } else {
            backoff(failed_restarts)
        };
        tokio::select! {
            _ = &mut stop_requested => return server,
            _ = tokio::time::sleep(pause) => {}
        }
        if failed_restarts == 0 && postmaster_alive(&server.paths.data, server.port) {
            continue;
        }
        if failed_restarts == 0 {
            tracing::error!(
                dir = %server.paths.root.display(),
                "the embedded PostgreSQL stopped unexpectedly; starting it again"
            );
            health.set_down(0);
        }
        match server.restart().await {
            Ok(()) => {
                failed_restarts = 0;
                health.set_up();
                tracing::info!(
                    port = server.port,
                    "the embedded PostgreSQL is running again"
                );
            }
            Err(error) => {
                failed_restarts += 1;
                health.set_down(failed_restarts);
                tracing::warn!(
                    %error,
                    attempt = failed_restarts,
                    retry_in_ms = backoff(failed_restarts).as_millis() as u64,
                    "could not start the embedded PostgreSQL again"
                );
            }
        }
    }
}

impl EmbeddedPostgres {
    /// Starts the server again on its port, under the control lock; adopts it if another
    /// siteward process already did.
    async fn restart(&mut self) -> Result<(), EmbeddedError> {
        let _control = ControlLock::acquire(&self.paths.root).await?;
        if self.is_running().await? && port_from_pid_file(&self.paths.data) == Some(self.port) {
            return Ok(());
        }
        self.launch(self.port).await?;
        self.started_here = true;
        Ok(())
    }
}

/// The pause before restart attempt `failed_restarts + 1`.
fn backoff(failed_restarts: u32) -> Duration {
    let doublings = failed_restarts.saturating_sub(1).min(8);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Whether the postmaster recorded in `data/postmaster.pid` is alive and listens on `port`. A
/// server killed with SIGKILL leaves its pid file behind, so the process itself is checked.
fn postmaster_alive(data: &Path, port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return false;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    if port_from_pid_file(data) != Some(port) {
        return false;
    }
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // The process exists but belongs to a user we may not signal.
        Err(error) => error == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_from_half_a_second_to_ten() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(6), Duration::from_secs(10));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn a_pid_file_of_a_dead_process_or_another_port_is_not_alive() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(!postmaster_alive(dir.path(), 5432), "no pid file");
        let own = std::process::id();
        std::fs::write(
            dir.path().join("postmaster.pid"),
            format!("{own}\n/data\n1700000000\n5432\n"),
        )?;
        assert!(postmaster_alive(dir.path(), 5432));
        assert!(!postmaster_alive(dir.path(), 5433), "another port");
        // Pids above the kernel's maximum (4194304) never belong to a live process.
        std::fs::write(
            dir.path().join("postmaster.pid"),
            "99999999\n/data\n1700000000\n5432\n",
        )?;
        assert!(!postmaster_alive(dir.path(), 5432));
        Ok(())
    }
}
