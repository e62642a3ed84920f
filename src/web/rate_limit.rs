//! Fixed-window rate limits kept in memory, keyed by rule and caller (an IP or an account).
//! Each `serve` process counts on its own; with N replicas the effective limit is up to N times
//! the configured one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AppError;

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

impl Rule {
    pub const fn new(name: &'static str, max: u32, window_secs: u64) -> Rule {
        Rule {
            name,
            max,
            window: Duration::from_secs(window_secs),
        }
    }
}

/// The limits of the auth endpoints, per IP and per account.
pub mod rules {
    use super::Rule;
    pub const SIGN_IN_IP: Rule = Rule::new("sign-in/ip", 30, 300);
    pub const SIGN_IN_ACCOUNT: Rule = Rule::new("sign-in/account", 10, 900);
    pub const SIGN_UP_IP: Rule = Rule::new("sign-up/ip", 30, 3600);
    pub const RESET_IP: Rule = Rule::new("reset/ip", 10, 3600);
    pub const RESET_ACCOUNT: Rule = Rule::new("reset/account", 3, 3600);
    pub const SECOND_FACTOR_IP: Rule = Rule::new("2fa/ip", 30, 300);
    pub const SECOND_FACTOR_ACCOUNT: Rule = Rule::new("2fa/account", 10, 300);
}

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<(&'static str, String), Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

/// Beyond this many tracked callers, lapsed windows are swept; if a flood keeps them all live,
/// the table starts over rather than grow without bound.
const MAX_TRACKED: usize = 100_000;
/// Callers are keyed by at most this many bytes of their address or account.
const MAX_KEY_BYTES: usize = 256;

fn key(rule: Rule, who: &str) -> (&'static str, String) {
    let mut end = who.len().min(MAX_KEY_BYTES);
    while !who.is_char_boundary(end) {
        end -= 1;
    }
    (rule.name, who[..end].to_string())
}

impl RateLimiter {
    /// Counts one attempt; refuses it with the seconds until the window ends once `max` is used.
    pub fn check(&self, rule: Rule, who: &str) -> Result<(), AppError> {
        self.refuse_if_exhausted(rule, who)?;
        self.count(rule, who);
        Ok(())
    }

    /// Refuses when the caller has used up the window, without counting this attempt (for
    /// limits that count only failures).
    pub fn refuse_if_exhausted(&self, rule: Rule, who: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(&key(rule, who)) {
            Some(w) if now.duration_since(w.started) < rule.window && w.count >= rule.max => {
                let left = rule.window.saturating_sub(now.duration_since(w.started));
                Err(AppError::RateLimited {
                    retry_after: left.as_secs().max(1),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts one attempt (or failure) against the caller's window.
    pub fn count(&self, rule: Rule, who: &str) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|(name, _), w| {
                let window = rules_window(name).unwrap_or(Duration::from_secs(3600));
                now.duration_since(w.started) < window
            });
            if windows.len() >= MAX_TRACKED {
                tracing::warn!(
                    tracked = windows.len(),
                    "rate-limit table full of live callers; starting over"
                );
                windows.clear();
            }
        }
        let window = windows.entry(key(rule, who)).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= rule.window {
            window.started = now;
            window.count = 0;
        }
        window.count += 1;
    }
}

fn rules_window(name: &str) -> Option<Duration> {
    use rules::*;
    [
        SIGN_IN_IP,
        SIGN_IN_ACCOUNT,
        SIGN_UP_IP,
        RESET_IP,
        RESET_ACCOUNT,
        SECOND_FACTOR_IP,
        SECOND_FACTOR_ACCOUNT,
    ]
    .iter()
    .find(|r| r.name == name)
    .map(|r| r.window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_after_the_limit_is_refused_with_retry_after() {
        let limiter = RateLimiter::default();
        let rule = Rule::new("test", 3, 60);
        for _ in 0..3 {
            limiter.check(rule, "1.2.3.4").unwrap();
        }
        match limiter.check(rule, "1.2.3.4") {
            Err(AppError::RateLimited { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        limiter.check(rule, "5.6.7.8").unwrap();
    }

    #[test]
    fn failure_only_limits_are_not_used_up_by_looking() {
        let limiter = RateLimiter::default();
        let rule = Rule::new("failures", 2, 60);
        for _ in 0..5 {
            limiter.refuse_if_exhausted(rule, "a@example.com").unwrap();
        }
        limiter.count(rule, "a@example.com");
        limiter.count(rule, "a@example.com");
        assert!(limiter.refuse_if_exhausted(rule, "a@example.com").is_err());
    }
}
