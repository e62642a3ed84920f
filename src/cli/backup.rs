//! `siteward admin backup --out DIR`: a consistent copy of a single-machine installation — the
//! database as a `pg_dump` archive (a snapshot of one transaction, taken while `serve` runs), then
//! the local blob folder — with a manifest of sizes and hashes. Blobs are written before the rows
//! that name them commit and are never rewritten, so every blob the dump names is in the copy.
//!
//! Installations on a PostgreSQL server and an S3 bucket back up with the server's and the
//! bucket's own means (base backup with WAL archiving, bucket versioning: docs/deploy.md); this
//! command then copies the database only and says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::fail;
use crate::config::Config;
use crate::storage::StoreConfig;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the backup folder {0} exists already")]
    Exists(PathBuf),
    #[error("the database URL is not valid")]
    Url,
    #[error(
        "pg_dump not found (install PostgreSQL's client tools, e.g. Debian's postgresql-client)"
    )]
    NoPgDump,
    #[error("pg_dump failed: {0}")]
    Dump(String),
    #[error("copying the blobs: {path}: {source}")]
    CopyBlobs {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one backup holds.
#[derive(Debug, serde::Serialize)]
pub struct Manifest {
    pub created_at: String,
    pub siteward_version: &'static str,
    pub database: DumpFile,
    pub blobs: Blobs,
    pub master_keys: &'static str,
    pub restore: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct DumpFile {
    pub file: &'static str,
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct Blobs {
    /// `folder` (copied into `blobs/`) or `s3` (not copied).
    pub store: &'static str,
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
}

const DUMP_FILE: &str = "database.dump";

pub async fn run(config: &Config, url: &SecretString, out: &Path) -> ExitCode {
    match backup(config, url, out).await {
        Ok((folder, manifest)) => {
            println!("backup written to {}", folder.display());
            println!(
                "  database  {} bytes in {:.1} s",
                manifest.database.bytes, manifest.database.seconds
            );
            println!(
                "  blobs     {} file(s), {} bytes in {:.1} s ({})",
                manifest.blobs.files,
                manifest.blobs.bytes,
                manifest.blobs.seconds,
                manifest.blobs.store
            );
            println!("  keys      {}", manifest.master_keys);
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

async fn backup(
    config: &Config,
    url: &SecretString,
    out: &Path,
) -> Result<(PathBuf, Manifest), BackupError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let folder = out.join(format!("siteward-backup-{stamp}"));
    create_private_dir(out)?;
    // Not recursive: a folder of the same name (a backup started the same second) is refused.
    if let Err(source) =
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&folder)
    {
        return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists(folder)
        } else {
            BackupError::Create {
                path: folder,
                source,
            }
        });
    }

    let started = Instant::now();
    dump(url, &folder.join(DUMP_FILE)).await?;
    let dump_seconds = started.elapsed().as_secs_f64();
    let (bytes, sha256) =
        size_and_hash(&folder.join(DUMP_FILE)).map_err(|source| BackupError::Create {
            path: folder.join(DUMP_FILE),
            source,
        })?;

    let started = Instant::now();
    let (store, files, blob_bytes) = match &config.blob_store {
        StoreConfig::Local(root) => {
            let (files, bytes) = copy_tree(root, &folder.join("blobs"))?;
            ("folder", files, bytes)
        }
        StoreConfig::S3(_) => ("s3 (not copied: keep bucket versioning on)", 0, 0),
    };
    let blobs = Blobs {
        store,
        files,
        bytes: blob_bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let master_keys = if config.master_keys_generated {
        "NOT in this backup: copy <data_dir>/master-keys separately and keep it apart from the backup"
    } else {
        "NOT in this backup: they come from your configuration; keep them in your secret store"
    };
    let manifest = Manifest {
        created_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        siteward_version: env!("CARGO_PKG_VERSION"),
        database: DumpFile {
            file: DUMP_FILE,
            bytes,
            sha256,
            seconds: dump_seconds,
        },
        blobs,
        master_keys,
        restore: vec![
            "createdb <new database>; pg_restore --no-owner --dbname <new database URL> database.dump".into(),
            "copy blobs/ to the new blob_dir (or point SITEWARD_BLOB_DIR at it)".into(),
            "start siteward with the same master keys; run `siteward admin verify-audit` and `siteward admin verify-blobs`".into(),
        ],
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    std::fs::write(folder.join("backup.json"), json).map_err(|source| BackupError::Create {
        path: folder.join("backup.json"),
        source,
    })?;
    Ok((folder, manifest))
}

fn create_private_dir(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(source) => Err(BackupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `pg_dump --format=custom` of the whole database, the password passed in the environment (an
/// argument would show in the process list). Rate-limit counters are left out.
async fn dump(url: &SecretString, file: &Path) -> Result<(), BackupError> {
    let mut parsed = url::Url::parse(url.expose_secret()).map_err(|_| BackupError::Url)?;
    let password = parsed.password().map(str::to_string);
    parsed.set_password(None).map_err(|_| BackupError::Url)?;
    let pg_dump = crate::db::embedded::client_tool("pg_dump").ok_or(BackupError::NoPgDump)?;
    let mut command = tokio::process::Command::new(pg_dump);
    command
        .args(["--format=custom", "--no-unlogged-table-data", "--file"])
        .arg(file)
        .arg("--dbname")
        .arg(parsed.as_str())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", percent_decoded(&password));
    }
    let output = command
        .output()
        .await
        .map_err(|e| BackupError::Dump(e.to_string()))?;
    if !output.status.success() {
        return Err(BackupError::Dump(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// A URL's percent-escaped userinfo as the bytes it stands for.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn size_and_hash(file: &Path) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut reader = std::fs::File::open(file)?;
    let bytes = std::io::copy(&mut reader, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Copies a folder tree (regular files and folders only); returns files and bytes copied.
fn copy_tree(from: &Path, to: &Path) -> Result<(u64, u64), BackupError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::CopyBlobs { path, source }
    };
    create_private_dir(to)?;
    let (mut files, mut bytes) = (0, 0);
    if !from.exists() {
        return Ok((0, 0));
    }
    for entry in std::fs::read_dir(from).map_err(err(from))? {
        let entry = entry.map_err(err(from))?;
        // A blob being written (`.tmp-…`, renamed when complete) is not one yet.
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let kind = entry.file_type().map_err(err(&entry.path()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            let (f, b) = copy_tree(&entry.path(), &target)?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            match std::fs::copy(entry.path(), &target) {
                Ok(copied) => {
                    bytes += copied;
                    files += 1;
                }
                // Deleted since it was listed (a superseded attempt's blob): no row names it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(&entry.path())(e)),
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaped_passwords_are_decoded_and_plain_ones_kept() {
        assert_eq!(super::percent_decoded("p%40ss%2Fw%25rd"), "p@ss/w%rd");
        assert_eq!(super::percent_decoded("plain-100%"), "plain-100%");
    }
}
