//! Runner tokens: how runners prove who they are to `/internal/v1`. A token is shown once as
//! `swr_<prefix>_<secret>`; only the prefix and the secret's SHA-256 are kept. A revoked runner's
//! token stops working on its next request.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::crypto::{constant_time_eq, new_token, random_bytes, token_hash};
use crate::db::schema::runners;
use crate::state::AppState;
use crate::web::{ApiError, AppError};

/// How often a runner's `last_seen_at` is written at most.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(30);

/// A runner as listed.
#[derive(Debug, Clone, Queryable)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    pub token_prefix: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Registers a runner and returns it with its token (shown once).
pub async fn create(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> QueryResult<(Runner, SecretString)> {
    let prefix = hex::encode(random_bytes::<6>());
    let secret = new_token();
    let runner = diesel::insert_into(runners::table)
        .values((
            runners::name.eq(name),
            runners::token_prefix.eq(&prefix),
            runners::token_hash.eq(token_hash(&secret)),
        ))
        .returning(COLUMNS)
        .get_result(conn)
        .await?;
    Ok((runner, SecretString::from(format!("swr_{prefix}_{secret}"))))
}

const COLUMNS: (
    runners::id,
    runners::name,
    runners::token_prefix,
    runners::created_at,
    runners::last_seen_at,
    runners::revoked_at,
) = (
    runners::id,
    runners::name,
    runners::token_prefix,
    runners::created_at,
    runners::last_seen_at,
    runners::revoked_at,
);

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Runner>> {
    runners::table
        .select(COLUMNS)
        .order(runners::id)
        .load(conn)
        .await
}

/// Revokes a runner by id; false if there is no such unrevoked runner.
pub async fn revoke(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        runners::table
            .filter(runners::id.eq(id))
            .filter(runners::revoked_at.is_null()),
    )
    .set(runners::revoked_at.eq(OffsetDateTime::now_utc()))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Revokes every unrevoked runner with this name (the embedded runner's old tokens).
pub async fn revoke_named(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<usize> {
    diesel::update(
        runners::table
            .filter(runners::name.eq(name))
            .filter(runners::revoked_at.is_null()),
    )
    .set(runners::revoked_at.eq(OffsetDateTime::now_utc()))
    .execute(conn)
    .await
}

/// Splits `swr_<prefix>_<secret>`.
fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("swr_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == 12 && prefix.chars().all(|c| c.is_ascii_hexdigit());
    (prefix_ok && !secret.is_empty() && secret.len() <= 100).then_some((prefix, secret))
}

/// The runner calling `/internal/v1`.
#[derive(Debug, Clone)]
pub struct RunnerCtx {
    pub id: i64,
    pub name: String,
}

impl RunnerCtx {
    /// Names this runner as a job holder.
    pub fn holder(&self) -> String {
        format!("runner {} ({})", self.id, self.name)
    }
}

impl FromRequest for RunnerCtx {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<RunnerCtx, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map_err(ApiError) })
    }
}

async fn authenticate(req: &HttpRequest) -> Result<RunnerCtx, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state missing"))?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(AppError::Unauthenticated)?;
    let (prefix, secret) = parse(presented).ok_or(AppError::Unauthenticated)?;
    let mut conn = state.conn().await?;
    let row: Option<(i64, String, Vec<u8>, Option<OffsetDateTime>)> = runners::table
        .filter(runners::token_prefix.eq(prefix))
        .filter(runners::revoked_at.is_null())
        .select((
            runners::id,
            runners::name,
            runners::token_hash,
            runners::last_seen_at,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    let (id, name, hash, last_seen) = row.ok_or(AppError::Unauthenticated)?;
    if !constant_time_eq(&token_hash(secret), &hash) {
        return Err(AppError::Unauthenticated);
    }
    let now = OffsetDateTime::now_utc();
    if last_seen.is_none_or(|seen| now - seen >= TOUCH_EVERY) {
        diesel::update(runners::table.find(id))
            .set(runners::last_seen_at.eq(now))
            .execute(&mut conn)
            .await?;
    }
    Ok(RunnerCtx { id, name })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn runner_tokens_parse_only_in_their_shape() {
        assert_eq!(
            parse("swr_0123456789ab_se_cr-et"),
            Some(("0123456789ab", "se_cr-et"))
        );
        assert_eq!(parse("sw_0123456789ab_secret"), None);
        assert_eq!(parse("swr_0123_secret"), None);
        assert_eq!(parse("swr_0123456789ab_"), None);
    }
}
