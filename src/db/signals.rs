//! Signals between `serve` processes through PostgreSQL `LISTEN/NOTIFY` on one channel: jobs
//! became ready (so long-polling runners and workers wake on every process, not only on the one
//! that queued the job), an API key was revoked, API keys' roles may have changed. The database
//! sends them itself, from triggers on `jobs`, `api_keys` and `memberships` (migration
//! `shared_limits_and_signals`), so no code path can change what the processes depend on without
//! telling them; a signal is delivered when its transaction commits, and not at all if it rolls
//! back.
//!
//! Each process listens on one dedicated connection ([`listen`]). While it is not listening (the
//! database restarted, the connection broke) signals may be missed, so the listener says so
//! ([`Event::Deaf`]) and says when it listens again ([`Event::Listening`]); the app stops
//! trusting its caches in between and wakes its pollers after, so nothing waits for a lost
//! signal.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};

/// The one channel siteward's processes talk on.
pub const CHANNEL: &str = "siteward";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Jobs were queued or returned to the queue.
    JobsReady,
    /// The API key with this prefix was revoked.
    ApiKeyRevoked(String),
    /// Members or roles changed: any API key may now act with less.
    ApiKeysChanged,
}

impl Signal {
    /// The signal a payload carries; `None` for one this version does not know (sent by the
    /// triggers of a newer version during an upgrade).
    fn parse(payload: &str) -> Option<Signal> {
        match payload {
            "jobs" => Some(Signal::JobsReady),
            "keys-changed" => Some(Signal::ApiKeysChanged),
            other => other
                .strip_prefix("key-revoked:")
                .map(|prefix| Signal::ApiKeyRevoked(prefix.to_string())),
        }
    }
}

/// What the listener tells the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Listening (again): signals sent from now on arrive; any sent before may have been missed.
    Listening,
    /// Not listening: signals sent now are missed.
    Deaf,
    Signal(Signal),
}

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// How often a quiet listening connection is checked: a connection that died without a word (a
/// dropped NAT mapping, a failover) would otherwise look quiet for hours.
const CHECK_EVERY: Duration = Duration::from_secs(10);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens forever on a dedicated connection, handing every event to `on`.
pub async fn listen(database_url: SecretString, on: impl Fn(Event) + Send + Sync) {
    loop {
        match listening_connection(&database_url).await {
            Ok(mut conn) => {
                tracing::info!("listening for signals from other processes");
                on(Event::Listening);
                if let Err(error) = follow(&mut conn, &on).await {
                    tracing::warn!(%error, "signal listener lost its connection");
                }
                on(Event::Deaf);
            }
            Err(error) => tracing::warn!(%error, "signal listener cannot listen"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// Hands on notifications until the connection fails or stops answering. Notifications that
/// arrive while the connection is checked wait in its buffer: none is lost.
async fn follow(conn: &mut AsyncPgConnection, on: &impl Fn(Event)) -> Result<(), String> {
    loop {
        let quiet = {
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            tokio::select! {
                next = notifications.next() => match next {
                    Some(Ok(n)) => {
                        if n.channel == CHANNEL && let Some(signal) = Signal::parse(&n.payload) {
                            on(Event::Signal(signal));
                        }
                        false
                    }
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Err("the connection closed".into()),
                },
                _ = tokio::time::sleep(CHECK_EVERY) => true,
            }
        };
        if quiet {
            match tokio::time::timeout(CHECK_TIMEOUT, diesel::sql_query("SELECT 1").execute(conn))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("the connection stopped answering".into()),
            }
        }
    }
}

async fn listening_connection(
    database_url: &SecretString,
) -> Result<AsyncPgConnection, diesel::result::Error> {
    let mut conn = AsyncPgConnection::establish(database_url.expose_secret())
        .await
        .map_err(|e| {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UnableToSendCommand,
                Box::new(e.to_string()),
            )
        })?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn the_triggers_payloads_parse_and_unknown_ones_are_ignored() {
        // As the triggers of migration `shared_limits_and_signals` send them.
        assert_eq!(Signal::parse("jobs"), Some(Signal::JobsReady));
        assert_eq!(
            Signal::parse("key-revoked:0123456789ab"),
            Some(Signal::ApiKeyRevoked("0123456789ab".into()))
        );
        assert_eq!(Signal::parse("keys-changed"), Some(Signal::ApiKeysChanged));
        assert_eq!(Signal::parse("something-newer"), None);
    }
}
