//! What `/readyz` knows of the database beyond "does it answer": an outage of the embedded
//! server that `serve`'s supervisor is repairing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shared between the supervisor that writes it and the app that reports it.
#[derive(Debug, Clone, Default)]
pub struct DatabaseHealth(Arc<Mutex<Option<Outage>>>);

/// The embedded server is down and being restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    since: Instant,
    /// Restart attempts that failed so far.
    pub failed_restarts: u32,
}

impl Outage {
    pub fn duration(&self) -> Duration {
        self.since.elapsed()
    }
}

impl DatabaseHealth {
    /// The current outage, if any.
    pub fn outage(&self) -> Option<Outage> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that the server went down (now, unless it was already down).
    pub fn set_down(&self, failed_restarts: u32) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let since = state
            .map(|outage| outage.since)
            .unwrap_or_else(Instant::now);
        *state = Some(Outage {
            since,
            failed_restarts,
        });
    }

    /// Records that the server is back.
    pub fn set_up(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_keeps_its_start_until_the_server_is_back() {
        let health = DatabaseHealth::default();
        assert_eq!(health.outage(), None);
        health.set_down(0);
        let first = health.outage().map(|outage| outage.since);
        health.set_down(2);
        let second = health.outage();
        assert_eq!(second.map(|outage| outage.since), first);
        assert_eq!(second.map(|outage| outage.failed_restarts), Some(2));
        health.set_up();
        assert_eq!(health.outage(), None);
    }
}
