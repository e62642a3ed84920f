//! Server-side sessions: the cookie carries a random 256-bit token; the database keeps only its
//! SHA-256. Sessions end after an idle timeout, at an absolute lifetime, at sign-out, or when
//! the person signs out everywhere or resets their password.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::config::Config;
use crate::crypto::{new_token, token_hash};
use crate::db::schema::{memberships, sessions};

/// A password accepted but a second factor still due.
pub const STAGE_SECOND_FACTOR: &str = "second_factor";
pub const STAGE_ACTIVE: &str = "active";

/// How long the second-factor step may take.
pub const SECOND_FACTOR_WINDOW: time::Duration = time::Duration::minutes(10);

/// `last_seen_at` is written at most this often, so a busy session does not write on every
/// request.
pub const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

pub fn cookie_name(config: &Config) -> &'static str {
    if config.served_over_tls() {
        "__Host-sw_session"
    } else {
        "sw_session"
    }
}

pub fn cookie(config: &Config, token: String) -> Cookie<'static> {
    Cookie::build(cookie_name(config), token)
        .path("/")
        .http_only(true)
        .secure(config.served_over_tls())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(
            config.session_lifetime.as_secs() as i64
        ))
        .finish()
}

pub fn removal_cookie(config: &Config) -> Cookie<'static> {
    let mut cookie = cookie(config, String::new());
    cookie.make_removal();
    cookie
}

pub fn token_from(req: &HttpRequest, config: &Config) -> Option<String> {
    req.cookie(cookie_name(config))
        .map(|c| c.value().to_string())
}

/// Starts a session and returns the token for the cookie. The org is the one the person
/// belongs to longest, if any.
pub async fn create(
    conn: &mut AsyncPgConnection,
    config: &Config,
    user_id: i64,
    stage: &str,
    user_agent: &str,
) -> QueryResult<String> {
    let org_id: Option<i64> = memberships::table
        .filter(memberships::user_id.eq(user_id))
        .order((memberships::created_at.asc(), memberships::org_id.asc()))
        .select(memberships::org_id)
        .first(conn)
        .await
        .optional()?;
    let token = new_token();
    let now = OffsetDateTime::now_utc();
    let expires_at = if stage == STAGE_SECOND_FACTOR {
        now + SECOND_FACTOR_WINDOW
    } else {
        now + time::Duration::seconds(config.session_lifetime.as_secs() as i64)
    };
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash(&token)),
            sessions::user_id.eq(user_id),
            sessions::org_id.eq(org_id),
            sessions::stage.eq(stage),
            sessions::expires_at.eq(expires_at),
            sessions::user_agent.eq(user_agent.chars().take(200).collect::<String>()),
        ))
        .execute(conn)
        .await?;
    Ok(token)
}

pub async fn delete(conn: &mut AsyncPgConnection, session_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(session_id))
        .execute(conn)
        .await
}

/// Ends every session of a person; returns how many.
pub async fn delete_all_for_user(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
        .execute(conn)
        .await
}

/// Ends every session of a person but one (after a security change made in that one).
pub async fn delete_others(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    keep: i64,
) -> QueryResult<usize> {
    diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep)),
    )
    .execute(conn)
    .await
}

pub async fn switch_org(
    conn: &mut AsyncPgConnection,
    session_id: i64,
    org_id: i64,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(session_id))
        .set(sessions::org_id.eq(org_id))
        .execute(conn)
        .await
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub org_id: Option<i64>,
    pub stage: String,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Why a session token no longer works.
#[derive(Debug, PartialEq, Eq)]
pub enum Lapse {
    Unknown,
    Idle,
    Expired,
}

/// Finds a live session by its token; deletes it when it has lapsed; refreshes `last_seen_at`.
pub async fn find_live(
    conn: &mut AsyncPgConnection,
    config: &Config,
    token: &str,
) -> QueryResult<Result<SessionRow, Lapse>> {
    let Some(row) = sessions::table
        .filter(sessions::token_hash.eq(token_hash(token)))
        .select(SessionRow::as_select())
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(Err(Lapse::Unknown));
    };
    Ok(
        keep_alive(conn, config, row.id, row.last_seen_at, row.expires_at)
            .await?
            .map(|()| row),
    )
}

/// Ends a session that has lapsed (idle or past its lifetime) and refreshes `last_seen_at` of a
/// live one when it is due.
pub async fn keep_alive(
    conn: &mut AsyncPgConnection,
    config: &Config,
    id: i64,
    last_seen_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> QueryResult<Result<(), Lapse>> {
    let now = OffsetDateTime::now_utc();
    let idle = time::Duration::seconds(config.session_idle_timeout.as_secs() as i64);
    let lapse = if expires_at <= now {
        Some(Lapse::Expired)
    } else if last_seen_at + idle <= now {
        Some(Lapse::Idle)
    } else {
        None
    };
    if let Some(lapse) = lapse {
        delete(conn, id).await?;
        return Ok(Err(lapse));
    }
    // Touch often enough that the idle timeout never ends an active session.
    let touch_every = TOUCH_EVERY.min(idle / 4);
    if now - last_seen_at >= touch_every {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(Ok(()))
}
