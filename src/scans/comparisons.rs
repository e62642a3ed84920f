//! Comparisons computed on request (the compare page and API, diff images), kept sealed in the
//! blob store like artifacts, so asking again costs a read instead of PNG decodes and diffs.
//!
//! A cached result is named by the two snapshots, what is asked for, and a fingerprint of
//! everything else it depends on: the target's ignore selectors, ignore regions and threshold,
//! and the siteward version (whose diff engine made it). Changing any of these asks for a new
//! result; old ones are never read again. The blobs are sealed under the organization's data key
//! and bound to their key like every artifact, so a cached result cannot be altered or moved.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::scans::ingest::blob_error;
use crate::sites::queries::Target;
use crate::state::AppState;
use crate::storage::{EnvelopeError, ObjectKey, StoreError};
use crate::web::AppError;

/// What a cached comparison holds.
#[derive(Debug, Clone, Copy)]
pub enum Computed {
    /// The changes and visual figures between the two snapshots (JSON).
    Changes,
    /// The highlighted difference of the viewport screenshots (PNG).
    ViewportImage,
    /// The highlighted difference of the full-page screenshots (PNG).
    FullPageImage,
}

impl Computed {
    fn stem(self) -> &'static str {
        match self {
            Computed::Changes => "changes",
            Computed::ViewportImage => "diff-viewport",
            Computed::FullPageImage => "diff-full-page",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Computed::Changes => "json",
            Computed::ViewportImage | Computed::FullPageImage => "png",
        }
    }
}

/// The blob a comparison of `from` with `to` under the target's current settings is kept in.
pub fn key(
    org_id: i64,
    target: &Target,
    from: i64,
    to: i64,
    what: Computed,
) -> Result<ObjectKey, AppError> {
    let settings = format!(
        "{}\n{}\n{}\n{}",
        env!("CARGO_PKG_VERSION"),
        target.ignore_selectors,
        target.ignore_regions,
        target.visual_threshold
    );
    let fingerprint = hex::encode(&crate::crypto::sha256(settings.as_bytes())[..8]);
    let name = format!("{}-{fingerprint}.{}", what.stem(), what.extension());
    ObjectKey::comparison(org_id, from, to, &name).map_err(AppError::internal)
}

/// The bytes kept under `key`, or those `compute` makes (then kept for next time).
pub async fn bytes_or<F, Fut>(
    state: &AppState,
    key: &ObjectKey,
    compute: F,
) -> Result<Vec<u8>, AppError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<u8>, AppError>>,
{
    if let Some(bytes) = kept(state, key).await? {
        return Ok(bytes);
    }
    let bytes = compute().await?;
    keep(state, key, &bytes).await;
    Ok(bytes)
}

/// Like [`bytes_or`], for a value kept as JSON.
pub async fn value_or<T, F, Fut>(
    state: &AppState,
    key: &ObjectKey,
    compute: F,
) -> Result<T, AppError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    if let Some(bytes) = kept(state, key).await? {
        return serde_json::from_slice(&bytes).map_err(AppError::internal);
    }
    let value = compute().await?;
    keep(
        state,
        key,
        &serde_json::to_vec(&value).map_err(AppError::internal)?,
    )
    .await;
    Ok(value)
}

/// The result kept under `key`, if there is one.
async fn kept(state: &AppState, key: &ObjectKey) -> Result<Option<Vec<u8>>, AppError> {
    let mut conn = state.conn().await?;
    match state.blobs.get(&mut conn, key).await {
        Ok(bytes) => Ok(Some(bytes.to_vec())),
        Err(EnvelopeError::Store(StoreError::NotFound(_))) => Ok(None),
        Err(other) => Err(blob_error(other)),
    }
}

/// Keeps a computed result; failing to is logged and does not fail the request that made it.
async fn keep(state: &AppState, key: &ObjectKey, bytes: &[u8]) {
    let kept = match state.conn().await {
        Ok(mut conn) => state
            .blobs
            .put(&mut conn, key, bytes)
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = kept {
        tracing::warn!(%key, %error, "could not keep a computed comparison");
    }
}
