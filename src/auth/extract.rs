//! Extractors that carry authority: `Viewer` (a signed-in person), `PageCtx` (a person in their
//! current organization, for dashboard pages) and `ApiCtx` (an API key, for `/api/v1`).

use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use time::OffsetDateTime;

use super::session::{self, STAGE_ACTIVE, STAGE_SECOND_FACTOR};
use super::{Actor, OrgCtx, Role};
use crate::crypto::{constant_time_eq, token_hash};
use crate::db::schema::{api_keys, memberships, orgs, sessions, users};
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::{ApiError, AppError, PageError};

/// One organization the viewer belongs to.
#[derive(Debug, Clone)]
pub struct OrgChoice {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// A signed-in person (password and, if enrolled, second factor done).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session_id: i64,
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub orgs: Vec<OrgChoice>,
    /// The organization the dashboard shows, if the person belongs to any.
    pub current: Option<OrgChoice>,
    pub ip: String,
}

impl Viewer {
    pub fn actor(&self) -> Actor {
        Actor::User {
            id: self.user_id,
            email: self.email.clone(),
        }
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state missing"))
}

/// The session behind a cookie, with its person.
#[derive(Queryable)]
struct ViewerRow {
    id: i64,
    user_id: i64,
    org_id: Option<i64>,
    stage: String,
    last_seen_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    email: String,
    name: String,
}

/// Loads the session behind the cookie, in the given stage. Two queries, both prepared once per
/// connection: the session with its person, then their organizations.
pub(crate) async fn load_viewer(req: &HttpRequest, stage: &str) -> Result<Viewer, AppError> {
    let state = state(req)?;
    let token = session::token_from(req, &state.config).ok_or(AppError::Unauthenticated)?;
    let mut conn = state.conn().await?;
    let row: ViewerRow = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash(&token)))
        .select((
            sessions::id,
            sessions::user_id,
            sessions::org_id,
            sessions::stage,
            sessions::last_seen_at,
            sessions::expires_at,
            users::email,
            users::name,
        ))
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(AppError::Unauthenticated)?;
    session::keep_alive(
        &mut conn,
        &state.config,
        row.id,
        row.last_seen_at,
        row.expires_at,
    )
    .await?
    .map_err(|_| AppError::Unauthenticated)?;
    if row.stage != stage {
        return Err(AppError::Unauthenticated);
    }
    let orgs: Vec<OrgChoice> = memberships::table
        .inner_join(orgs::table)
        .filter(memberships::user_id.eq(row.user_id))
        .order((orgs::name.asc(), orgs::id.asc()))
        .select((orgs::id, orgs::name, memberships::role))
        .load::<(i64, String, String)>(&mut conn)
        .await?
        .into_iter()
        .filter_map(|(id, name, role)| {
            Some(OrgChoice {
                id,
                name,
                role: Role::parse(&role)?,
            })
        })
        .collect();
    let current = row
        .org_id
        .and_then(|id| orgs.iter().find(|o| o.id == id).cloned());
    Ok(Viewer {
        session_id: row.id,
        user_id: row.user_id,
        email: row.email,
        name: row.name,
        orgs,
        current,
        ip: client_ip(req, state.config.trust_forwarded_for),
    })
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Viewer, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(load_viewer(&req, STAGE_ACTIVE).await?) })
    }
}

/// A session that has passed the password but still owes the second factor.
#[derive(Debug, Clone)]
pub struct PendingSecondFactor(pub Viewer);

impl FromRequest for PendingSecondFactor {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<PendingSecondFactor, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(PendingSecondFactor(
                load_viewer(&req, STAGE_SECOND_FACTOR).await?,
            ))
        })
    }
}

/// A dashboard caller in their current organization.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub viewer: Viewer,
    pub ctx: OrgCtx,
}

impl Deref for PageCtx {
    type Target = OrgCtx;
    fn deref(&self) -> &OrgCtx {
        &self.ctx
    }
}

impl FromRequest for PageCtx {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<PageCtx, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let viewer = load_viewer(&req, STAGE_ACTIVE).await?;
            let current = viewer.current.clone().ok_or(PageError(AppError::Forbidden(
                "you are not in an organization yet: create one or accept an invitation on the Organizations page",
            )))?;
            let ctx = OrgCtx {
                org_id: current.id,
                role: current.role,
                actor: viewer.actor(),
                ip: viewer.ip.clone(),
            };
            Ok(PageCtx { viewer, ctx })
        })
    }
}

/// An API caller: an organization's API key.
#[derive(Debug, Clone)]
pub struct ApiCtx(pub OrgCtx);

impl Deref for ApiCtx {
    type Target = OrgCtx;
    fn deref(&self) -> &OrgCtx {
        &self.0
    }
}

/// Splits `sw_<prefix>_<secret>`.
pub fn parse_api_key(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("sw_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == 12 && prefix.chars().all(|c| c.is_ascii_hexdigit());
    (prefix_ok && !secret.is_empty() && secret.len() <= 100).then_some((prefix, secret))
}

#[derive(Queryable)]
struct KeyRow {
    id: i64,
    org_id: i64,
    name: String,
    secret_hash: Vec<u8>,
    scope: String,
    last_used_at: Option<OffsetDateTime>,
    /// The creator's current role in the key's organization; `None` once they left it.
    creator_role: Option<String>,
}

/// Verified API keys, kept for a while so that a busy client costs one database round trip per
/// request instead of two. Every process forgets a revoked key as soon as the revocation commits
/// (a [`Signal`](crate::db::signals::Signal) through PostgreSQL), and all keys when members or
/// roles change. The cache is trusted only while this process listens for those signals: when
/// the listener is deaf, every request checks the database.
#[derive(Default)]
pub struct KeyCache {
    inner: std::sync::Mutex<CacheInner>,
    /// Whether revocations reach this process (its signal listener is connected).
    trusted: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct CacheInner {
    entries: std::collections::HashMap<String, CachedKey>,
    /// Counts evictions and clearings: a key read from the database before one of them may have
    /// been revoked since, so it is not cached (see [`KeyCache::put`]).
    generation: u64,
}

#[derive(Clone)]
struct CachedKey {
    secret_hash: Vec<u8>,
    ctx: OrgCtx,
    cached_at: std::time::Instant,
}

/// A safety net only: revocations evict at once.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trusted(&self) -> bool {
        // (Called as a function: diesel's `RunQueryDsl::load` would shadow the method.)
        std::sync::atomic::AtomicBool::load(&self.trusted, std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, prefix: &str, secret_hash: &[u8]) -> Option<OrgCtx> {
        if !self.trusted() {
            return None;
        }
        let inner = self.lock();
        let entry = inner.entries.get(prefix)?;
        (entry.cached_at.elapsed() < KEY_CACHE_TTL
            && constant_time_eq(&entry.secret_hash, secret_hash))
        .then(|| entry.ctx.clone())
    }

    /// Where the cache stands before a key is read from the database.
    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches a key read from the database when the cache stood at `read_at`, unless a key was
    /// evicted or the cache cleared since: the revocation that did it may have committed after
    /// the read, and caching the row would bring the revoked key back.
    fn put(&self, prefix: &str, secret_hash: Vec<u8>, ctx: OrgCtx, read_at: u64) {
        let mut inner = self.lock();
        if inner.generation != read_at || !self.trusted() {
            return;
        }
        if inner.entries.len() >= KEY_CACHE_MAX {
            inner
                .entries
                .retain(|_, e| e.cached_at.elapsed() < KEY_CACHE_TTL);
            if inner.entries.len() >= KEY_CACHE_MAX {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            prefix.to_string(),
            CachedKey {
                secret_hash,
                ctx,
                cached_at: std::time::Instant::now(),
            },
        );
    }

    /// Forgets every key (when members leave or change roles: a key acts with at most its
    /// creator's current role).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
    }

    /// Trusts the cache from now on (the signal listener listens) or not at all (it is deaf);
    /// either way what it held is forgotten, since revocations may have been missed.
    pub fn set_trusted(&self, trusted: bool) {
        let mut inner = self.lock();
        self.trusted
            .store(trusted, std::sync::atomic::Ordering::Release);
        inner.entries.clear();
        inner.generation += 1;
    }

    /// Forgets a key (on revocation).
    pub fn evict(&self, prefix: &str) {
        let mut inner = self.lock();
        inner.entries.remove(prefix);
        inner.generation += 1;
    }
}

async fn load_api_ctx(req: &HttpRequest) -> Result<ApiCtx, AppError> {
    let state = state(req)?;
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Unauthenticated)?;
    let presented = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or(AppError::Unauthenticated)?;
    let (prefix, secret) = parse_api_key(presented).ok_or(AppError::Unauthenticated)?;
    let presented_hash = token_hash(secret);
    let ip = client_ip(req, state.config.trust_forwarded_for);
    if let Some(ctx) = state.keys.get(prefix, &presented_hash) {
        return Ok(ApiCtx(OrgCtx { ip, ..ctx }));
    }
    let read_at = state.keys.generation();
    let mut conn = state.conn().await?;
    let key: KeyRow = api_keys::table
        .left_join(
            memberships::table.on(memberships::org_id
                .eq(api_keys::org_id)
                .and(memberships::user_id.nullable().eq(api_keys::created_by))),
        )
        .filter(api_keys::prefix.eq(prefix))
        .filter(api_keys::revoked_at.is_null())
        .select((
            api_keys::id,
            api_keys::org_id,
            api_keys::name,
            api_keys::secret_hash,
            api_keys::scope,
            api_keys::last_used_at,
            memberships::role.nullable(),
        ))
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(AppError::Unauthenticated)?;
    if !constant_time_eq(&presented_hash, &key.secret_hash) {
        return Err(AppError::Unauthenticated);
    }
    let now = OffsetDateTime::now_utc();
    if key
        .last_used_at
        .is_none_or(|used| now - used >= session::TOUCH_EVERY)
    {
        diesel::update(api_keys::table.find(key.id))
            .set(api_keys::last_used_at.eq(now))
            .execute(&mut conn)
            .await?;
    }
    let scope_role = if key.scope == "read_write" {
        Role::Admin
    } else {
        Role::Member
    };
    // A key acts with at most its creator's current role: none once they left the organization.
    let creator_role = key
        .creator_role
        .as_deref()
        .and_then(Role::parse)
        .ok_or(AppError::Unauthenticated)?;
    let role = scope_role.min(creator_role);
    let ctx = OrgCtx {
        org_id: key.org_id,
        role,
        actor: Actor::Key {
            id: key.id,
            name: key.name,
        },
        ip,
    };
    state
        .keys
        .put(prefix, key.secret_hash, ctx.clone(), read_at);
    Ok(ApiCtx(ctx))
}

impl FromRequest for ApiCtx {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiCtx, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(load_api_ctx(&req).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_api_key;

    #[test]
    fn api_keys_parse_only_in_their_shape() {
        assert_eq!(
            parse_api_key("sw_0123456789ab_se_cr-et"),
            Some(("0123456789ab", "se_cr-et"))
        );
        assert_eq!(parse_api_key("sw_0123_secret"), None);
        assert_eq!(parse_api_key("xx_0123456789ab_secret"), None);
        assert_eq!(parse_api_key("sw_0123456789ab_"), None);
    }
}
