//! Database access for accounts: users, recovery codes, password resets, and audit entries that
//! concern a person rather than one organization.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::audit::{self, Entry};
use crate::crypto::token_hash;
use crate::db::schema::{memberships, password_resets, recovery_codes, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled_at: Option<OffsetDateTime>,
    pub totp_last_step: Option<i64>,
}

impl UserRow {
    pub fn two_factor_enabled(&self) -> bool {
        self.totp_enabled_at.is_some()
    }
}

/// Addresses are compared in lower case; surrounding space is dropped.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible address: one `@`, something on both sides, a dot in the domain, no spaces.
pub fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
        && email.len() <= 254
}

pub async fn user_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(normalize_email(email)))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn user_by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<UserRow> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
}

pub async fn count_users(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn).await
}

pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    email: &str,
    name: &str,
    password_hash: &str,
) -> QueryResult<i64> {
    diesel::insert_into(users::table)
        .values((
            users::email.eq(normalize_email(email)),
            users::name.eq(name),
            users::password_hash.eq(password_hash),
        ))
        .returning(users::id)
        .get_result(conn)
        .await
}

pub async fn set_password(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    password_hash: &str,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)
        .await
}

/// Records an event about a person in the chain of every organization they belong to (or the
/// instance's chain if none, or if the address matched no account), so each org's admins see
/// their members' sign-ins. `label` is the address as typed.
pub async fn audit_person(
    conn: &mut AsyncPgConnection,
    user_id: Option<i64>,
    label: &str,
    ip: &str,
    action: &'static str,
    detail: serde_json::Value,
) -> QueryResult<()> {
    let org_ids: Vec<i64> = match user_id {
        Some(id) => {
            memberships::table
                .filter(memberships::user_id.eq(id))
                .select(memberships::org_id)
                .load(conn)
                .await?
        }
        None => Vec::new(),
    };
    let entry = |org_id| Entry {
        org_id,
        actor_user_id: user_id,
        actor_key_id: None,
        actor: label.to_string(),
        action,
        subject: label.to_string(),
        detail: detail.clone(),
        ip: ip.to_string(),
    };
    let entries: Vec<Entry> = if org_ids.is_empty() {
        vec![entry(None)]
    } else {
        org_ids.into_iter().map(|id| entry(Some(id))).collect()
    };
    conn.transaction(async move |conn| {
        for entry in entries {
            audit::record(conn, entry).await?;
        }
        Ok(())
    })
    .await
}

/// Stores a pending TOTP secret (enabled only once a code from it is confirmed).
pub async fn set_pending_totp(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    sealed: Vec<u8>,
) -> QueryResult<usize> {
    diesel::update(
        users::table
            .find(user_id)
            .filter(users::totp_enabled_at.is_null()),
    )
    .set((
        users::totp_secret.eq(Some(sealed)),
        users::totp_last_step.eq(None::<i64>),
    ))
    .execute(conn)
    .await
}

pub async fn enable_totp(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    step: i64,
    recovery_hashes: Vec<Vec<u8>>,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::totp_enabled_at.eq(Some(OffsetDateTime::now_utc())),
            users::totp_last_step.eq(Some(step)),
        ))
        .execute(conn)
        .await?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = recovery_hashes
        .into_iter()
        .map(|hash| {
            (
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash),
            )
        })
        .collect();
    diesel::insert_into(recovery_codes::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn disable_totp(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::totp_secret.eq(None::<Vec<u8>>),
            users::totp_enabled_at.eq(None::<OffsetDateTime>),
            users::totp_last_step.eq(None::<i64>),
        ))
        .execute(conn)
        .await?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Accepts a TOTP step once: only a step later than the last accepted one moves the mark.
pub async fn claim_totp_step(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    step: i64,
) -> QueryResult<bool> {
    let updated = diesel::update(
        users::table.find(user_id).filter(
            users::totp_last_step
                .is_null()
                .or(users::totp_last_step.lt(step)),
        ),
    )
    .set(users::totp_last_step.eq(Some(step)))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Uses up a recovery code; false when it is unknown or already used.
pub async fn use_recovery_code(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    code_hash: Vec<u8>,
) -> QueryResult<bool> {
    let updated = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(OffsetDateTime::now_utc())))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

pub async fn unused_recovery_codes(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
        .await
}

pub const RESET_LIFETIME: time::Duration = time::Duration::hours(1);

pub async fn insert_reset(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    token: &str,
) -> QueryResult<usize> {
    diesel::insert_into(password_resets::table)
        .values((
            password_resets::user_id.eq(user_id),
            password_resets::token_hash.eq(token_hash(token)),
            password_resets::expires_at.eq(OffsetDateTime::now_utc() + RESET_LIFETIME),
        ))
        .execute(conn)
        .await
}

/// The user a live, unused reset token belongs to.
pub async fn reset_user(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> QueryResult<Option<(i64, i64)>> {
    password_resets::table
        .filter(password_resets::token_hash.eq(token_hash(token)))
        .filter(password_resets::used_at.is_null())
        .filter(password_resets::expires_at.gt(OffsetDateTime::now_utc()))
        .select((password_resets::id, password_resets::user_id))
        .first(conn)
        .await
        .optional()
}

/// Uses up a live reset token at once (so two racing submissions cannot both use it); returns
/// whose it was.
pub async fn claim_reset(conn: &mut AsyncPgConnection, token: &str) -> QueryResult<Option<i64>> {
    diesel::update(
        password_resets::table
            .filter(password_resets::token_hash.eq(token_hash(token)))
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(OffsetDateTime::now_utc())),
    )
    .set(password_resets::used_at.eq(Some(OffsetDateTime::now_utc())))
    .returning(password_resets::user_id)
    .get_result(conn)
    .await
    .optional()
}

/// Wrong second-factor codes allowed before the second step locks.
pub const SECOND_FACTOR_FAILURES_PER_LOCK: i32 = 5;

/// Until when the person's second step is locked, if it is.
pub async fn second_factor_locked_until(
    conn: &mut AsyncPgConnection,
    user_id: i64,
) -> QueryResult<Option<OffsetDateTime>> {
    let until: Option<OffsetDateTime> = users::table
        .find(user_id)
        .select(users::second_factor_locked_until)
        .first(conn)
        .await?;
    Ok(until.filter(|t| *t > OffsetDateTime::now_utc()))
}

/// Counts a wrong code; every fifth locks the second step for 15 minutes, doubling each time
/// (at most a day). Returns the lock, if one began.
pub async fn record_second_factor_failure(
    conn: &mut AsyncPgConnection,
    user_id: i64,
) -> QueryResult<Option<OffsetDateTime>> {
    let failures: i32 = diesel::update(users::table.find(user_id))
        .set(users::second_factor_failures.eq(users::second_factor_failures + 1))
        .returning(users::second_factor_failures)
        .get_result(conn)
        .await?;
    if failures % SECOND_FACTOR_FAILURES_PER_LOCK != 0 {
        return Ok(None);
    }
    let round = (failures / SECOND_FACTOR_FAILURES_PER_LOCK - 1).clamp(0, 7) as u32;
    let minutes = (15i64 << round).min(24 * 60);
    let until = OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    diesel::update(users::table.find(user_id))
        .set(users::second_factor_locked_until.eq(Some(until)))
        .execute(conn)
        .await?;
    Ok(Some(until))
}

pub async fn clear_second_factor_failures(
    conn: &mut AsyncPgConnection,
    user_id: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set((
            users::second_factor_failures.eq(0),
            users::second_factor_locked_until.eq(None::<OffsetDateTime>),
        ))
        .execute(conn)
        .await
}

/// Marks the reset used, and every other open reset of the person too.
pub async fn finish_resets(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<usize> {
    diesel::update(
        password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(Some(OffsetDateTime::now_utc())))
    .execute(conn)
    .await
}
