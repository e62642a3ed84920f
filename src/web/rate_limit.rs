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

const SWEEP_AT: usize = 100_000;

impl RateLimiter {
    /// Counts one attempt; refuses it with the seconds until the window ends once `max` is used.
    pub fn check(&self, rule: Rule, who: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|(name, _), w| {
                let window = rules_window(name).unwrap_or(Duration::from_secs(3600));
                now.duration_since(w.started) < window
            });
        }
        let window = windows
            .entry((rule.name, who.to_string()))
            .or_insert(Window {
                started: now,
                count: 0,
            });
        if now.duration_since(window.started) >= rule.window {
            window.started = now;
            window.count = 0;
        }
        if window.count >= rule.max {
            let left = rule
                .window
                .saturating_sub(now.duration_since(window.started));
            return Err(AppError::RateLimited {
                retry_after: left.as_secs().max(1),
            });
        }
        window.count += 1;
        Ok(())
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
}
