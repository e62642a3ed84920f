//! The local folder backend (the embedded default): one file per object, written atomically,
//! readable only by the owner.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{ObjectFolder, ObjectKey, StoreError};

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub async fn open(root: &Path) -> Result<LocalStore, StoreError> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|source| StoreError::Local {
                path: root.to_owned(),
                source,
            })?;
        Ok(LocalStore {
            root: root.to_owned(),
        })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        // Keys are ids and plain names (see `ObjectKey`), so this stays inside the root.
        self.root.join(key.as_str())
    }

    pub async fn put(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key);
        tokio::task::spawn_blocking(move || {
            write_atomically(&path, &bytes).map_err(|source| StoreError::Local { path, source })
        })
        .await
        .map_err(|e| StoreError::Local {
            path: self.path(key),
            source: std::io::Error::other(e),
        })?
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let path = self.path(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.to_string()))
            }
            Err(source) => Err(StoreError::Local { path, source }),
        }
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Local { path, source }),
        }
    }
}

impl LocalStore {
    pub async fn delete_folder(&self, folder: &ObjectFolder) -> Result<u64, StoreError> {
        // Folders are ids and plain names too (see `ObjectFolder`).
        let path = self.root.join(folder.as_str());
        tokio::task::spawn_blocking(move || match remove_tree(&path) {
            Ok(files) => Ok(files),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(StoreError::Local { path, source }),
        })
        .await
        .map_err(|e| StoreError::Local {
            path: self.root.join(folder.as_str()),
            source: std::io::Error::other(e),
        })?
    }
}

/// Removes a folder and everything in it; returns how many files it held.
fn remove_tree(path: &Path) -> std::io::Result<u64> {
    let mut files = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            files += remove_tree(&entry.path())?;
        } else {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => files += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(files),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(files),
        Err(e) => Err(e),
    }
}

/// Writes to a temporary file beside the target, syncs it, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(
        ".tmp-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, path)
}
