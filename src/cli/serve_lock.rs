//! One `siteward serve` per data folder on the embedded database. A second one would adopt the
//! first one's PostgreSQL, fail to bind its port and leave; it refuses at once instead, naming
//! the running one, before it touches the database.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = "serve.lock";

/// Held for as long as `serve` runs; the kernel releases it when the process ends.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeLockError {
    #[error(
        "another siteward serve ({holder}) uses the data folder {data_dir}: stop it first, or \
         give this one another SITEWARD_DATA_DIR"
    )]
    Held { holder: String, data_dir: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ServeLock {
    /// Takes the data folder for this process, recording its pid and listen address for the
    /// message a second `serve` prints.
    pub fn acquire(data_dir: &Path, listen: &str) -> Result<ServeLock, ServeLockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| ServeLockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(ServeLockError::Held {
                    holder: if holder.is_empty() {
                        "starting".to_string()
                    } else {
                        holder.chars().take(200).collect()
                    },
                    data_dir: data_dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "pid {}, listening on {listen}", std::process::id()).map_err(io)?;
        Ok(ServeLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_address() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = ServeLock::acquire(dir.path(), "127.0.0.1:8080");
        assert!(first.is_ok());
        let message = match ServeLock::acquire(dir.path(), "127.0.0.1:9090") {
            Err(error @ ServeLockError::Held { .. }) => error.to_string(),
            other => format!("unexpected: {other:?}"),
        };
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("127.0.0.1:8080"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        drop(first);
        assert!(ServeLock::acquire(dir.path(), "127.0.0.1:9090").is_ok());
        Ok(())
    }
}
