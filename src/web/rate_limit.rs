//! Fixed-window rate limits kept in memory, keyed by rule and caller (an IP network or an
//! account). Each `serve` process counts on its own; with N replicas the effective limit is up
//! to N times the configured one.
//!
//! An IPv6 caller is counted by its /64 (one subscriber's network: anyone holding one address
//! holds the other 2^64). Callers by address and by account are kept apart, so a flood from many
//! addresses cannot push out the per-account counters that stop password guessing; when a table
//! is full of live callers, the oldest windows make room, never the whole table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AppError;

/// Whom a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// The client's address (IPv6 by /64).
    Address,
    /// An account, a recipient or an organization: anything named by text.
    Account,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub per: Per,
    pub max: u32,
    pub window: Duration,
}

impl Rule {
    pub const fn new(name: &'static str, per: Per, max: u32, window_secs: u64) -> Rule {
        Rule {
            name,
            per,
            max,
            window: Duration::from_secs(window_secs),
        }
    }
}

/// The limits of the auth endpoints, per address and per account.
pub mod rules {
    use super::{Per, Rule};
    pub const SIGN_IN_IP: Rule = Rule::new("sign-in/ip", Per::Address, 30, 300);
    pub const SIGN_IN_ACCOUNT: Rule = Rule::new("sign-in/account", Per::Account, 10, 900);
    pub const SIGN_UP_IP: Rule = Rule::new("sign-up/ip", Per::Address, 30, 3600);
    pub const RESET_IP: Rule = Rule::new("reset/ip", Per::Address, 10, 3600);
    pub const RESET_ACCOUNT: Rule = Rule::new("reset/account", Per::Account, 3, 3600);
    pub const SECOND_FACTOR_IP: Rule = Rule::new("2fa/ip", Per::Address, 30, 300);
    pub const SECOND_FACTOR_ACCOUNT: Rule = Rule::new("2fa/account", Per::Account, 10, 300);
    // Mail that people ask for (invitations, test sends of channels): per organization, per
    // recipient, and a daily cap per organization, so no one can use siteward to flood a
    // mailbox or spend its sender's reputation.
    pub const INVITE_ORG: Rule = Rule::new("mail/invite/org", Per::Account, 20, 3600);
    pub const TEST_SEND_ORG: Rule = Rule::new("mail/test-send/org", Per::Account, 10, 3600);
    pub const MAIL_RECIPIENT: Rule = Rule::new("mail/recipient", Per::Account, 3, 3600);
    pub const MAIL_ORG_DAY: Rule = Rule::new("mail/org/day", Per::Account, 100, 86_400);
    /// Comparisons computed on request (two snapshots' DOMs and screenshots decoded and diffed):
    /// plenty for people paging through history, not enough to keep the cores busy in a loop.
    /// Reading shared reports without signing in: plenty for people, not for a token scanner.
    pub const SHARE_VIEW_IP: Rule = Rule::new("share/ip", Per::Address, 60, 60);
    pub const COMPARE_ORG: Rule = Rule::new("compare/org", Per::Account, 60, 60);
}

impl RateLimiter {
    /// Counts one mail an organization asks for, to `recipient` (an address, or a channel as
    /// `channel:<id>`), under `org_rule`; refuses once a limit is used up.
    pub fn check_requested_mail(
        &self,
        org_rule: Rule,
        org_id: i64,
        recipient: &str,
    ) -> Result<(), AppError> {
        let org = format!("org:{org_id}");
        self.refuse_if_exhausted(org_rule, &org)?;
        self.refuse_if_exhausted(rules::MAIL_RECIPIENT, recipient)?;
        self.refuse_if_exhausted(rules::MAIL_ORG_DAY, &org)?;
        self.count(org_rule, &org);
        self.count(rules::MAIL_RECIPIENT, recipient);
        self.count(rules::MAIL_ORG_DAY, &org);
        Ok(())
    }
}

#[derive(Default)]
pub struct RateLimiter {
    by_address: Mutex<Table>,
    by_account: Mutex<Table>,
}

type Key = (&'static str, String);

#[derive(Default)]
struct Table {
    windows: HashMap<Key, Window>,
}

struct Window {
    started: Instant,
    /// How long this window lasts (its rule's), for sweeping.
    length: Duration,
    count: u32,
}

/// Beyond this many tracked callers in one table, lapsed windows are swept; if a flood keeps
/// them all live, the oldest tenth make room.
const MAX_TRACKED: usize = 100_000;
/// Callers are keyed by at most this many bytes of their address or account.
const MAX_KEY_BYTES: usize = 256;

/// The caller as counted: an IPv6 address by its /64, an IPv4-mapped one as IPv4, anything else
/// as given (cut to [`MAX_KEY_BYTES`]).
fn caller(rule: Rule, who: &str) -> String {
    if rule.per == Per::Address
        && let Ok(ip) = who.parse::<IpAddr>()
    {
        return match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            v4 => v4.to_string(),
        };
    }
    let mut end = who.len().min(MAX_KEY_BYTES);
    while !who.is_char_boundary(end) {
        end -= 1;
    }
    who[..end].to_string()
}

impl Table {
    /// Makes room for one more caller: lapsed windows go first, then the oldest tenth.
    fn make_room(&mut self, now: Instant) {
        if self.windows.len() < MAX_TRACKED {
            return;
        }
        self.windows
            .retain(|_, w| now.duration_since(w.started) < w.length);
        if self.windows.len() < MAX_TRACKED {
            return;
        }
        let mut starts: Vec<Instant> = self.windows.values().map(|w| w.started).collect();
        let cut = starts.len() / 10;
        let (_, oldest_kept, _) = starts.select_nth_unstable(cut);
        let oldest_kept = *oldest_kept;
        tracing::warn!(
            tracked = self.windows.len(),
            "rate-limit table full of live callers; dropping the oldest tenth"
        );
        self.windows.retain(|_, w| w.started >= oldest_kept);
    }
}

impl RateLimiter {
    fn table(&self, rule: Rule) -> std::sync::MutexGuard<'_, Table> {
        match rule.per {
            Per::Address => &self.by_address,
            Per::Account => &self.by_account,
        }
        .lock()
        .unwrap_or_else(|e| e.into_inner())
    }

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
        let table = self.table(rule);
        match table.windows.get(&(rule.name, caller(rule, who))) {
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
        let mut table = self.table(rule);
        let key = (rule.name, caller(rule, who));
        if !table.windows.contains_key(&key) {
            table.make_room(now);
        }
        let window = table.windows.entry(key).or_insert(Window {
            started: now,
            length: rule.window,
            count: 0,
        });
        if now.duration_since(window.started) >= rule.window {
            window.started = now;
            window.count = 0;
        }
        window.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_after_the_limit_is_refused_with_retry_after() {
        let limiter = RateLimiter::default();
        let rule = Rule::new("test", Per::Address, 3, 60);
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
        let rule = Rule::new("failures", Per::Account, 2, 60);
        for _ in 0..5 {
            limiter.refuse_if_exhausted(rule, "a@example.com").unwrap();
        }
        limiter.count(rule, "a@example.com");
        limiter.count(rule, "a@example.com");
        assert!(limiter.refuse_if_exhausted(rule, "a@example.com").is_err());
    }

    #[test]
    fn an_ipv6_network_is_one_caller_and_ipv4_callers_stay_apart() {
        let limiter = RateLimiter::default();
        let rule = Rule::new("test", Per::Address, 2, 60);
        limiter.check(rule, "2001:db8:1:2::1").unwrap();
        limiter.check(rule, "2001:db8:1:2:ffff:1:2:3").unwrap();
        assert!(
            limiter.check(rule, "2001:db8:1:2::abcd").is_err(),
            "the same /64"
        );
        limiter.check(rule, "2001:db8:1:3::1").unwrap();
        limiter.check(rule, "::ffff:192.0.2.1").unwrap();
        limiter.check(rule, "192.0.2.1").unwrap();
        assert!(
            limiter.check(rule, "192.0.2.1").is_err(),
            "mapped and plain IPv4 are one caller"
        );
        limiter.check(rule, "192.0.2.2").unwrap();
    }

    #[test]
    fn a_flood_of_addresses_keeps_account_counters_and_recent_callers() {
        let limiter = RateLimiter::default();
        let account = Rule::new("account", Per::Account, 2, 900);
        let address = Rule::new("address", Per::Address, 5, 900);
        limiter.count(account, "victim@example.com");
        limiter.count(account, "victim@example.com");
        assert!(
            limiter
                .refuse_if_exhausted(account, "victim@example.com")
                .is_err()
        );
        limiter.count(address, "198.51.100.1");
        for i in 0..MAX_TRACKED as u32 + 10 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            limiter.count(address, &ip.to_string());
        }
        assert!(
            limiter
                .refuse_if_exhausted(account, "victim@example.com")
                .is_err(),
            "the account stays locked"
        );
        let tracked = limiter.by_address.lock().unwrap().windows.len();
        assert!(
            tracked <= MAX_TRACKED && tracked > MAX_TRACKED / 2,
            "{tracked}"
        );
        let newest = std::net::Ipv4Addr::from(0x0a00_0000 + MAX_TRACKED as u32 + 9);
        assert!(
            limiter
                .by_address
                .lock()
                .unwrap()
                .windows
                .contains_key(&("address", newest.to_string())),
            "the newest callers are kept"
        );
    }

    #[test]
    fn requested_mail_is_limited_per_recipient_per_org_and_per_day() {
        let limiter = RateLimiter::default();
        let org_rule = rules::TEST_SEND_ORG;
        for _ in 0..rules::MAIL_RECIPIENT.max {
            limiter
                .check_requested_mail(org_rule, 7, "channel:1")
                .unwrap();
        }
        assert!(
            limiter
                .check_requested_mail(org_rule, 7, "channel:1")
                .is_err(),
            "one recipient"
        );
        let mut recipient = 2;
        while limiter
            .check_requested_mail(org_rule, 7, &format!("channel:{recipient}"))
            .is_ok()
        {
            recipient += 1;
        }
        assert_eq!(
            recipient - 2 + rules::MAIL_RECIPIENT.max,
            org_rule.max,
            "the organization's hourly limit"
        );
        limiter
            .check_requested_mail(org_rule, 8, "channel:99")
            .unwrap();
    }
}
