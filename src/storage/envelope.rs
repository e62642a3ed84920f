//! Envelope encryption over every blob. Each organization has a data key, stored only wrapped by
//! a master key; each blob is AES-256-GCM under its org's data key with a fresh random nonce and
//! its own object key as associated data, behind a small versioned header:
//!
//! `"SWB"` | format version (1) | data key id (8 bytes, big-endian) | nonce (12) | ciphertext+tag
//!
//! A blob altered, truncated, or moved to another key fails to open with `Tampered`; it never
//! returns garbage. Rotating the master key re-wraps data keys without touching blobs; rotating an
//! org's data key makes new blobs use the new key while old ones stay readable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{BlobStore, ObjectKey, StoreError};
use crate::crypto::{MasterKeys, OpenError, random_bytes};
use crate::db::schema::org_data_keys;

const MAGIC: &[u8; 3] = b"SWB";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 3 + 1 + 8 + 12;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("blob {key} failed authentication: it was altered, truncated or belongs elsewhere")]
    Tampered { key: String },
    #[error("blob {key} is not a sealed blob of a known format")]
    Malformed { key: String },
    #[error("blob {key} names data key {data_key}, which does not exist for its organization")]
    UnknownDataKey { key: String, data_key: i64 },
    #[error("a data key could not be unwrapped: {0}")]
    MasterKey(#[from] OpenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

/// The context a data key is wrapped under: its org and its own id.
fn wrap_context(org_id: i64, data_key_id: i64) -> String {
    format!("org_data_keys:{org_id}:{data_key_id}")
}

/// Unwrapped data keys by id, each with the org it belongs to.
type DataKeyCache = Arc<Mutex<HashMap<i64, (i64, Zeroizing<[u8; 32]>)>>>;

/// Encrypting access to a blob store.
#[derive(Clone)]
pub struct SealedBlobs {
    store: BlobStore,
    master_keys: MasterKeys,
    data_keys: DataKeyCache,
}

impl SealedBlobs {
    pub fn new(store: BlobStore, master_keys: MasterKeys) -> SealedBlobs {
        SealedBlobs {
            store,
            master_keys,
            data_keys: Arc::default(),
        }
    }

    /// Encrypts and stores `plain` under the org's current data key (made on first use).
    pub async fn put(
        &self,
        conn: &mut AsyncPgConnection,
        key: &ObjectKey,
        plain: &[u8],
    ) -> Result<(), EnvelopeError> {
        let (data_key_id, data_key) = self.current_data_key(conn, key.org_id()).await?;
        let sealed = seal_blob(data_key_id, &data_key, key, plain);
        self.store.put(key, sealed).await?;
        Ok(())
    }

    /// Reads and decrypts a blob. Call only after the caller's org and role are checked.
    pub async fn get(
        &self,
        conn: &mut AsyncPgConnection,
        key: &ObjectKey,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let sealed = self.store.get(key).await?;
        let data_key_id = blob_data_key(&sealed).ok_or_else(|| EnvelopeError::Malformed {
            key: key.to_string(),
        })?;
        let data_key = self
            .data_key(conn, key.org_id(), data_key_id)
            .await
            .map_err(|e| match e {
                EnvelopeError::Database(diesel::result::Error::NotFound) => {
                    EnvelopeError::UnknownDataKey {
                        key: key.to_string(),
                        data_key: data_key_id,
                    }
                }
                other => other,
            })?;
        open_blob(&data_key, key, &sealed)
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<(), EnvelopeError> {
        Ok(self.store.delete(key).await?)
    }

    /// The store beneath, for work on sealed bytes as they are (deletion, verification).
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The org's current data key, created (wrapped by the current master key) if it has none.
    async fn current_data_key(
        &self,
        conn: &mut AsyncPgConnection,
        org_id: i64,
    ) -> Result<(i64, Zeroizing<[u8; 32]>), EnvelopeError> {
        let id = match current_data_key_id(conn, org_id).await? {
            Some(id) => id,
            None => ensure_data_key(conn, &self.master_keys, org_id).await?,
        };
        Ok((id, self.data_key(conn, org_id, id).await?))
    }

    /// A data key by id, only if it belongs to `org_id`.
    async fn data_key(
        &self,
        conn: &mut AsyncPgConnection,
        org_id: i64,
        id: i64,
    ) -> Result<Zeroizing<[u8; 32]>, EnvelopeError> {
        if let Some((owner, key)) = self
            .data_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            && *owner == org_id
        {
            return Ok(key.clone());
        }
        let wrapped: Vec<u8> = org_data_keys::table
            .filter(org_data_keys::id.eq(id))
            .filter(org_data_keys::org_id.eq(org_id))
            .select(org_data_keys::wrapped_key)
            .first(conn)
            .await?;
        let plain = self.master_keys.open(&wrapped, &wrap_context(org_id, id))?;
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::Malformed)?;
        let key = Zeroizing::new(key);
        self.data_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (org_id, key.clone()));
        Ok(key)
    }
}

/// Seals `plain` for `key` under a data key: header, then AES-256-GCM with a fresh nonce and the
/// header plus the object key as associated data.
pub fn seal_blob(data_key_id: i64, data_key: &[u8; 32], key: &ObjectKey, plain: &[u8]) -> Vec<u8> {
    let nonce = random_bytes::<12>();
    let mut sealed = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
    sealed.extend_from_slice(MAGIC);
    sealed.push(VERSION);
    sealed.extend_from_slice(&data_key_id.to_be_bytes());
    sealed.extend_from_slice(&nonce);
    let aad = associated_data(&sealed, key);
    // Encrypted in place behind the header: one buffer, one pass.
    sealed.extend_from_slice(plain);
    let tag = Aes256Gcm::new_from_slice(data_key)
        .expect("32-byte key")
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut sealed[HEADER_LEN..])
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    sealed.extend_from_slice(&tag);
    sealed
}

/// The data key id a sealed blob names, if it has the sealed-blob format.
pub fn blob_data_key(sealed: &[u8]) -> Option<i64> {
    if sealed.len() < HEADER_LEN + 16 || &sealed[..3] != MAGIC || sealed[3] != VERSION {
        return None;
    }
    Some(i64::from_be_bytes(sealed[4..12].try_into().ok()?))
}

/// Opens a sealed blob of `key` with its data key; any change to header, body or key fails.
pub fn open_blob(
    data_key: &[u8; 32],
    key: &ObjectKey,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if blob_data_key(sealed).is_none() {
        return Err(EnvelopeError::Malformed {
            key: key.to_string(),
        });
    }
    let aad = associated_data(&sealed[..HEADER_LEN], key);
    Aes256Gcm::new_from_slice(data_key)
        .expect("32-byte key")
        .decrypt(
            Nonce::from_slice(&sealed[12..HEADER_LEN]),
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Tampered {
            key: key.to_string(),
        })
}

fn associated_data(header: &[u8], key: &ObjectKey) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(key.as_str().as_bytes());
    aad
}

async fn current_data_key_id(
    conn: &mut AsyncPgConnection,
    org_id: i64,
) -> QueryResult<Option<i64>> {
    org_data_keys::table
        .filter(org_data_keys::org_id.eq(org_id))
        .filter(org_data_keys::retired_at.is_null())
        .select(org_data_keys::id)
        .first(conn)
        .await
        .optional()
}

/// Serializes data-key changes of one org until the end of the transaction.
async fn lock_org_keys(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(format!("siteward.data_keys:{org_id}"))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The org's current data key, made if it has none yet (racing first writers make one key).
async fn ensure_data_key(
    conn: &mut AsyncPgConnection,
    master_keys: &MasterKeys,
    org_id: i64,
) -> Result<i64, EnvelopeError> {
    let master_keys = master_keys.clone();
    conn.transaction::<_, EnvelopeError, _>(async move |conn| {
        lock_org_keys(conn, org_id).await?;
        match current_data_key_id(conn, org_id).await? {
            Some(id) => Ok(id),
            None => insert_data_key(conn, &master_keys, org_id).await,
        }
    })
    .await
}

/// Makes a fresh data key for an org, wrapped by the current master key, and retires the one
/// before it (which keeps opening the blobs it sealed). Returns the new key's id.
pub async fn create_data_key(
    conn: &mut AsyncPgConnection,
    master_keys: &MasterKeys,
    org_id: i64,
) -> Result<i64, EnvelopeError> {
    let master_keys = master_keys.clone();
    conn.transaction::<_, EnvelopeError, _>(async move |conn| {
        lock_org_keys(conn, org_id).await?;
        insert_data_key(conn, &master_keys, org_id).await
    })
    .await
}

/// Retires the current key (if any) and inserts a new one; inside the caller's transaction.
async fn insert_data_key(
    conn: &mut AsyncPgConnection,
    master_keys: &MasterKeys,
    org_id: i64,
) -> Result<i64, EnvelopeError> {
    {
        diesel::update(
            org_data_keys::table
                .filter(org_data_keys::org_id.eq(org_id))
                .filter(org_data_keys::retired_at.is_null()),
        )
        .set(org_data_keys::retired_at.eq(Some(OffsetDateTime::now_utc())))
        .execute(conn)
        .await?;
        // The id is part of the wrapping context, so take it first.
        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "nextval('org_data_keys_id_seq')",
        ))
        .get_result(conn)
        .await?;
        let key = Zeroizing::new(random_bytes::<32>());
        let wrapped = master_keys.seal(key.as_slice(), &wrap_context(org_id, id));
        diesel::insert_into(org_data_keys::table)
            .values((
                org_data_keys::id.eq(id),
                org_data_keys::org_id.eq(org_id),
                org_data_keys::wrapped_key.eq(wrapped),
                org_data_keys::master_key_id.eq(master_keys.current_id()),
            ))
            .execute(conn)
            .await?;
        Ok(id)
    }
}

/// Re-wraps every data key not wrapped by the current master key; blobs are not touched.
/// Returns how many keys were re-wrapped.
pub async fn rewrap_data_keys(
    conn: &mut AsyncPgConnection,
    master_keys: &MasterKeys,
) -> Result<usize, EnvelopeError> {
    let master_keys = master_keys.clone();
    conn.transaction::<_, EnvelopeError, _>(async move |conn| {
        let stale: Vec<(i64, i64, Vec<u8>)> = org_data_keys::table
            .filter(org_data_keys::master_key_id.ne(master_keys.current_id()))
            .select((
                org_data_keys::id,
                org_data_keys::org_id,
                org_data_keys::wrapped_key,
            ))
            .for_update()
            .load(conn)
            .await?;
        for (id, org_id, wrapped) in &stale {
            let context = wrap_context(*org_id, *id);
            let plain = master_keys.open(wrapped, &context)?;
            diesel::update(org_data_keys::table.find(id))
                .set((
                    org_data_keys::wrapped_key.eq(master_keys.seal(&plain, &context)),
                    org_data_keys::master_key_id.eq(master_keys.current_id()),
                ))
                .execute(conn)
                .await?;
        }
        Ok(stale.len())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Uploader;

    #[test]
    fn any_changed_bit_or_other_key_fails_to_open() {
        let key = ObjectKey::snapshot_artifact(1, 2, Uploader::Attempt(1), "fullpage.png").unwrap();
        let data_key = [7u8; 32];
        let sealed = seal_blob(5, &data_key, &key, b"pixels");
        assert_eq!(blob_data_key(&sealed), Some(5));
        assert_eq!(
            open_blob(&data_key, &key, &sealed).unwrap().as_slice(),
            b"pixels"
        );
        assert_ne!(
            sealed,
            seal_blob(5, &data_key, &key, b"pixels"),
            "fresh nonce each time"
        );
        for byte in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[byte] ^= 0x04;
            assert!(open_blob(&data_key, &key, &altered).is_err(), "byte {byte}");
        }
        let other =
            ObjectKey::snapshot_artifact(1, 3, Uploader::Attempt(1), "fullpage.png").unwrap();
        assert!(matches!(
            open_blob(&data_key, &other, &sealed),
            Err(EnvelopeError::Tampered { .. })
        ));
        assert!(matches!(
            open_blob(&[8u8; 32], &key, &sealed),
            Err(EnvelopeError::Tampered { .. })
        ));
        assert!(matches!(
            open_blob(&data_key, &key, &sealed[..20]),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}
