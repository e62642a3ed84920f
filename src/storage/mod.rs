//! Blob storage: object keys made of ids only, two backends behind one type (a local folder for
//! the embedded default, S3 through aws-sdk-s3), and envelope encryption over every blob.

pub mod envelope;
mod key;
mod local;
mod s3;
pub mod verify;

use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

pub use envelope::{EnvelopeError, SealedBlobs};
pub use key::{KeyError, ObjectFolder, ObjectKey, Uploader};
pub use local::LocalStore;
pub use s3::S3Store;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} does not exist")]
    NotFound(String),
    #[error("the blob folder {path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("S3 {operation} failed: {message}")]
    S3 {
        operation: &'static str,
        message: String,
    },
    #[error(
        "the S3 bucket `{bucket}` is in region `{actual}`, but siteward is configured for `{configured}`; set SITEWARD_S3_REGION to the bucket's region or use a bucket in `{configured}`"
    )]
    RegionMismatch {
        bucket: String,
        configured: String,
        actual: String,
    },
}

/// Where blobs go, from the configuration.
#[derive(Clone)]
pub enum StoreConfig {
    Local(PathBuf),
    S3(S3Config),
}

#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Defaults to `eu-west-1`; checked against the bucket's own region at start.
    pub region: String,
    /// For S3-compatible servers.
    pub endpoint: Option<Url>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

/// The blob store of a running app.
#[derive(Clone)]
pub enum BlobStore {
    Local(LocalStore),
    S3(S3Store),
}

impl BlobStore {
    /// Opens the configured store; for S3 this checks the bucket's region.
    pub async fn open(config: &StoreConfig) -> Result<BlobStore, StoreError> {
        match config {
            StoreConfig::Local(root) => Ok(BlobStore::Local(LocalStore::open(root).await?)),
            StoreConfig::S3(s3) => Ok(BlobStore::S3(S3Store::open(s3).await?)),
        }
    }

    pub async fn put(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            BlobStore::Local(store) => store.put(key, bytes).await,
            BlobStore::S3(store) => store.put(key, bytes).await,
        }
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        match self {
            BlobStore::Local(store) => store.get(key).await,
            BlobStore::S3(store) => store.get(key).await,
        }
    }

    /// Deletes one object; an object already gone counts as deleted.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self {
            BlobStore::Local(store) => store.delete(key).await,
            BlobStore::S3(store) => store.delete(key).await,
        }
    }

    /// Deletes every object under `folder`; returns how many there were. A folder already
    /// empty or gone counts as deleted.
    pub async fn delete_folder(&self, folder: &ObjectFolder) -> Result<u64, StoreError> {
        match self {
            BlobStore::Local(store) => store.delete_folder(folder).await,
            BlobStore::S3(store) => store.delete_folder(folder).await,
        }
    }
}
