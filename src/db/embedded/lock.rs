//! Which siteward processes use an embedded cluster, and who may start or stop its server.
//!
//! Two advisory locks (`flock`) in the cluster folder:
//!
//! - `control.lock` is held exclusively while a process decides whether to create, start, adopt
//!   or stop the server. Two commands starting at the same moment therefore cannot both start it,
//!   and no process stops it while another is about to use it.
//! - `users.lock` is held shared by every process that uses the server, for as long as it does.
//!   A process may stop the server only when it can take this lock exclusively, that is when no
//!   other siteward process uses the server.
//!
//! The kernel drops both locks when their process ends, however it ends, so a siteward killed
//! with SIGKILL leaves no stale claim behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::EmbeddedError;

const CONTROL_FILE: &str = "control.lock";
const USERS_FILE: &str = "users.lock";

/// The exclusive right to start or stop the server; released when dropped.
#[derive(Debug)]
pub(super) struct ControlLock {
    _file: File,
}

impl ControlLock {
    /// Waits for the control lock of the cluster in `root`. Blocking: call it off the async
    /// executor ([`ControlLock::acquire`] does).
    fn acquire_blocking(root: &Path) -> Result<ControlLock, EmbeddedError> {
        let path = root.join(CONTROL_FILE);
        let file = open_lock_file(&path)?;
        file.lock().map_err(lock_error(&path))?;
        Ok(ControlLock { _file: file })
    }

    /// Waits for the control lock without blocking the executor.
    pub(super) async fn acquire(root: &Path) -> Result<ControlLock, EmbeddedError> {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || ControlLock::acquire_blocking(&root))
            .await
            .map_err(|error| EmbeddedError::Io {
                action: "wait for the control lock in",
                path: PathBuf::new(),
                source: io::Error::other(error),
            })?
    }

    /// [`ControlLock::acquire`] for `Drop`, where no executor can be awaited.
    pub(super) fn acquire_now(root: &Path) -> Result<ControlLock, EmbeddedError> {
        ControlLock::acquire_blocking(root)
    }
}

/// This process's claim to use the server (a shared lock on `users.lock`).
#[derive(Debug)]
pub(super) struct UseClaim {
    file: File,
    path: PathBuf,
}

impl UseClaim {
    /// Registers this process as a user of the server. Take it while holding the
    /// [`ControlLock`], so that no one stops the server in between.
    pub(super) fn register(root: &Path, _control: &ControlLock) -> Result<UseClaim, EmbeddedError> {
        let path = root.join(USERS_FILE);
        let file = open_lock_file(&path)?;
        file.lock_shared().map_err(lock_error(&path))?;
        Ok(UseClaim { file, path })
    }

    /// Whether no other process holds a claim. Needs the [`ControlLock`]: the test briefly
    /// turns this claim into an exclusive one and back, which must not race with a newcomer.
    pub(super) fn is_sole_user(&self, _control: &ControlLock) -> Result<bool, EmbeddedError> {
        match self.file.try_lock() {
            Ok(()) => {
                self.file.lock_shared().map_err(lock_error(&self.path))?;
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => {
                // A failed conversion drops the shared lock on Linux: take it again (only shared
                // locks are held by others, so this does not wait).
                self.file.lock_shared().map_err(lock_error(&self.path))?;
                Ok(false)
            }
            Err(TryLockError::Error(source)) => Err(lock_error(&self.path)(source)),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, EmbeddedError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| EmbeddedError::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        })
}

fn lock_error(path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io {
        action: "lock",
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_sole_only_until_a_second_process_registers() -> Result<(), EmbeddedError> {
        let dir = tempfile::tempdir().map_err(|source| EmbeddedError::Io {
            action: "create",
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let control = ControlLock::acquire_now(dir.path())?;
        let first = UseClaim::register(dir.path(), &control)?;
        assert!(first.is_sole_user(&control)?);
        // A second open file description stands for a second process.
        let second = UseClaim::register(dir.path(), &control)?;
        assert!(!first.is_sole_user(&control)?);
        assert!(!second.is_sole_user(&control)?);
        // The failed check kept the first claim: the second still sees it.
        assert!(!second.is_sole_user(&control)?);
        drop(first);
        assert!(second.is_sole_user(&control)?);
        Ok(())
    }

    #[test]
    fn the_control_lock_excludes_a_second_holder_until_released() -> Result<(), EmbeddedError> {
        let dir = tempfile::tempdir().map_err(|source| EmbeddedError::Io {
            action: "create",
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let held = ControlLock::acquire_now(dir.path())?;
        let other = open_lock_file(&dir.path().join(CONTROL_FILE))?;
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        assert!(other.try_lock().is_ok());
        Ok(())
    }
}
