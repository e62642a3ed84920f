//! What every handler may reach: the pool, the configuration, the mailer and the rate limiter.

use crate::auth::KeyCache;
use crate::config::Config;
use crate::db::health::DatabaseHealth;
use crate::db::{DbConn, DbError, DbPool};
use crate::mail::Mailer;
use crate::storage::SealedBlobs;
use crate::web::AppError;
use crate::web::rate_limit::RateLimiter;

pub struct AppState {
    pub pool: DbPool,
    pub config: Config,
    pub mailer: Mailer,
    pub limiter: RateLimiter,
    pub keys: KeyCache,
    /// Encrypted blobs; read only after the caller's org and role are checked.
    pub blobs: SealedBlobs,
    /// A bcrypt hash of nothing in particular: verified against when an email matches no
    /// account, so that a wrong address takes as long as a wrong password.
    pub dummy_password_hash: String,
    /// Woken when scans are queued, so runners waiting in a long poll claim them at once.
    pub jobs_ready: tokio::sync::Notify,
    /// An outage of the embedded database that `serve` is repairing, for `/readyz`.
    pub database_health: DatabaseHealth,
}

impl AppState {
    pub async fn conn(&self) -> Result<DbConn, AppError> {
        self.pool
            .get()
            .await
            .map_err(|e| AppError::from(DbError::from(e)))
    }
}
