//! Fixed-window rate limits shared by every `serve` process: each window is a row of
//! `rate_limit_windows` keyed by rule and caller (an IP network or an account), counted with one
//! atomic upsert on the database's clock, so N replicas enforce the configured limit together
//! rather than N times it. The leading scheduler sweeps lapsed windows each round, so a flood
//! from many addresses costs rows for minutes, never memory in the app.
//!
//! An IPv6 caller is counted by its /64 (one subscriber's network: anyone holding one address
//! holds the other 2^64). Every rule and caller has its own row, so a flood from many addresses
//! cannot push out the per-account counters that stop password guessing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::AppError;
use crate::db::{DbConn, DbError, DbPool};

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

/// Every window, shared by all `serve` processes through PostgreSQL.
pub struct RateLimiter {
    pool: DbPool,
    /// Callers this process saw refused, until their window ends: a flood that is refused
    /// already is answered here rather than by another upsert. A window ends at the same moment
    /// for every process, so no process refuses longer than the shared count does.
    refused: Mutex<HashMap<(&'static str, String), Instant>>,
}

/// Beyond this many remembered refusals, lapsed ones are dropped; if all are live, all are.
const MAX_REFUSED: usize = 100_000;

/// A caller's window after counting (or as it would be after counting).
#[derive(QueryableByName)]
struct Window {
    #[diesel(sql_type = Integer)]
    count: i32,
    #[diesel(sql_type = Double)]
    seconds_left: f64,
}

impl Window {
    /// The refusal once more than `max` are counted, with the seconds until the window ends.
    fn refusal(&self, max: u32) -> Option<AppError> {
        (i64::from(self.count) > i64::from(max)).then(|| AppError::RateLimited {
            retry_after: (self.seconds_left.ceil() as u64).max(1),
        })
    }
}

/// Counts one attempt in one statement: a lapsed window starts again at 1; a live one counts up
/// to `max + 1` and no further, so "over the limit" is `count > max` and a refused flood does not
/// grow the number. Times are the database's, so every process agrees on them, and one statement's
/// (`statement_timestamp()`), so the count and the window's end are reset by the same clock
/// reading.
const COUNT: &str = "INSERT INTO rate_limit_windows AS w (rule, caller, expires_at, count)
     VALUES ($1, $2, statement_timestamp() + make_interval(secs => $3), 1)
     ON CONFLICT (rule, caller) DO UPDATE SET
       count = CASE WHEN w.expires_at <= statement_timestamp() THEN 1
                    ELSE LEAST(w.count + 1, $4 + 1) END,
       expires_at = CASE WHEN w.expires_at <= statement_timestamp() THEN EXCLUDED.expires_at
                         ELSE w.expires_at END
     RETURNING count, EXTRACT(EPOCH FROM expires_at - statement_timestamp())::float8 AS seconds_left";

impl RateLimiter {
    pub fn new(pool: DbPool) -> RateLimiter {
        RateLimiter {
            pool,
            refused: Mutex::default(),
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, String), Instant>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn conn(&self) -> Result<DbConn, AppError> {
        self.pool
            .get()
            .await
            .map_err(|e| AppError::from(DbError::from(e)))
    }

    /// Counts one attempt; refuses it with the seconds until the window ends once `max` is used.
    pub async fn check(&self, rule: Rule, who: &str) -> Result<(), AppError> {
        let key = (rule.name, caller(rule, who));
        let now = Instant::now();
        if let Some(until) = self.refused().get(&key).filter(|until| **until > now) {
            return Err(AppError::RateLimited {
                retry_after: until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        let mut conn = self.conn().await?;
        let window = count(&mut conn, rule, who).await?;
        if window.refusal(rule.max).is_some() {
            let mut refused = self.refused();
            if refused.len() >= MAX_REFUSED {
                refused.retain(|_, until| *until > now);
                if refused.len() >= MAX_REFUSED {
                    refused.clear();
                }
            }
            refused.insert(
                key,
                now + Duration::from_secs_f64(window.seconds_left.max(0.0)),
            );
        }
        refuse(window, rule)
    }

    /// Takes back one counted attempt (a sign-in that turned out right), so that only failures
    /// stay counted.
    pub async fn give_back(&self, rule: Rule, who: &str) -> Result<(), AppError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "UPDATE rate_limit_windows SET count = greatest(count - 1, 0)
             WHERE rule = $1 AND caller = $2 AND expires_at > statement_timestamp()",
        )
        .bind::<Text, _>(rule.name)
        .bind::<Text, _>(caller(rule, who))
        .execute(&mut conn)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }

    /// Counts one mail an organization asks for, to `recipient` (an address, or a channel as
    /// `channel:<id>`), under `org_rule`, the per-recipient limit and the daily one together:
    /// when one refuses, none is counted.
    /// Runs on the caller's connection (its handler holds one already: taking a second could
    /// wait on a pool that such handlers have emptied).
    pub async fn check_requested_mail(
        &self,
        conn: &mut AsyncPgConnection,
        org_rule: Rule,
        org_id: i64,
        recipient: &str,
    ) -> Result<(), AppError> {
        let org = format!("org:{org_id}");
        let recipient = recipient.to_string();
        conn.transaction::<_, AppError, _>(async move |conn| {
            for (rule, who) in [
                (org_rule, org.as_str()),
                (rules::MAIL_RECIPIENT, recipient.as_str()),
                (rules::MAIL_ORG_DAY, org.as_str()),
            ] {
                refuse(count(conn, rule, who).await?, rule)?;
            }
            Ok(())
        })
        .await
    }
}

fn refuse(window: Window, rule: Rule) -> Result<(), AppError> {
    window.refusal(rule.max).map_or(Ok(()), Err)
}

async fn count(conn: &mut AsyncPgConnection, rule: Rule, who: &str) -> Result<Window, DbError> {
    Ok(diesel::sql_query(COUNT)
        .bind::<Text, _>(rule.name)
        .bind::<Text, _>(caller(rule, who))
        .bind::<Double, _>(rule.window.as_secs_f64())
        .bind::<Integer, _>(i32::try_from(rule.max).unwrap_or(i32::MAX - 1))
        .get_result(conn)
        .await?)
}

/// Deletes lapsed windows (the leading scheduler does, each round); returns how many.
pub async fn sweep(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_limit_windows WHERE expires_at < statement_timestamp()")
        .execute(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_network_is_one_caller_and_ipv4_callers_stay_apart() {
        let rule = Rule::new("test", Per::Address, 2, 60);
        assert_eq!(caller(rule, "2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            caller(rule, "2001:db8:1:2:ffff:1:2:3"),
            caller(rule, "2001:db8:1:2::abcd")
        );
        assert_ne!(
            caller(rule, "2001:db8:1:2::1"),
            caller(rule, "2001:db8:1:3::1")
        );
        assert_eq!(caller(rule, "::ffff:192.0.2.1"), "192.0.2.1");
        assert_ne!(caller(rule, "192.0.2.1"), caller(rule, "192.0.2.2"));
    }

    #[test]
    fn accounts_are_counted_as_named_and_cut_on_a_character_boundary() {
        let rule = Rule::new("test", Per::Account, 2, 60);
        assert_eq!(
            caller(rule, "2001:db8::1"),
            "2001:db8::1",
            "not an address rule"
        );
        let long = "é".repeat(200);
        let cut = caller(rule, &long);
        assert!(
            cut.len() <= MAX_KEY_BYTES && long.starts_with(&cut),
            "{}",
            cut.len()
        );
    }
}
