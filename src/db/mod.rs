//! PostgreSQL through diesel-async with a deadpool pool; embedded migrations; the embedded
//! cluster for the zero-configuration default.

pub mod embedded;
pub mod health;
pub mod schema;
pub mod signals;

use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("conflicts with existing data: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// How PostgreSQL words the errors of a server that is shutting down, crashed or starting up
/// (SQLSTATE 57P01–57P03).
const SERVER_GOING_AWAY: [&str; 2] = ["terminating connection", "the database system is"];

impl From<diesel::result::Error> for DbError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => DbError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Conflict(info.constraint_name().unwrap_or("unique").to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                DbError::Unavailable("connection closed".into())
            }
            // No SQLSTATE: the connection itself failed (closed, reset, the server gone).
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
                DbError::Unavailable(info.message().to_string())
            }
            // The server is going down, restarting or recovering (SQLSTATE class 57P, which
            // diesel does not expose: told by the server's own wording).
            Error::DatabaseError(DatabaseErrorKind::Unknown, info)
                if SERVER_GOING_AWAY
                    .iter()
                    .any(|start| info.message().starts_with(start)) =>
            {
                DbError::Unavailable(info.message().to_string())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        DbError::Unavailable(error.to_string())
    }
}

/// Builds the pool; connections are opened lazily.
pub fn pool(url: &SecretString, size: usize) -> Result<DbPool, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.expose_secret());
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Applies every pending migration, then brings the audit chains to the current version
/// (`audit::chain::upgrade`); returns the versions applied.
pub async fn migrate(url: &SecretString) -> Result<Vec<String>, DbError> {
    let applied = run_migrations(url).await?;
    let mut conn =
        <AsyncPgConnection as diesel_async::AsyncConnection>::establish(url.expose_secret())
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let upgrade = crate::audit::chain::upgrade(&mut conn)
        .await
        .map_err(|e| DbError::Migration(format!("re-chaining the audit log: {e}")))?;
    if upgrade.chains > 0 {
        tracing::info!(
            chains = upgrade.chains,
            rows = upgrade.rows,
            "audit chains re-chained as version 2"
        );
    }
    for (org_id, reason) in upgrade.refused {
        tracing::warn!(
            org_id,
            reason,
            "an audit chain stays at version 1: its rows cannot be pseudonymized"
        );
    }
    Ok(applied)
}

async fn run_migrations(url: &SecretString) -> Result<Vec<String>, DbError> {
    let url = url.expose_secret().to_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn db_error(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::from(Error::DatabaseError(kind, Box::new(message.to_string())))
    }

    #[test]
    fn a_server_going_away_is_unavailable_and_a_bad_query_is_not() {
        for (kind, message) in [
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to unexpected postmaster exit",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection because of crash of another server process",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            (DatabaseErrorKind::UnableToSendCommand, "connection closed"),
        ] {
            assert!(
                matches!(db_error(kind, message), DbError::Unavailable(_)),
                "{message}"
            );
        }
        assert!(matches!(
            db_error(
                DatabaseErrorKind::Unknown,
                "syntax error at or near \"SELEC\""
            ),
            DbError::Query(_)
        ));
        assert!(matches!(
            db_error(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout"
            ),
            DbError::Query(_)
        ));
    }
}
