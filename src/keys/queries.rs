use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::OrgCtx;
use crate::crypto::{new_token, random_bytes, token_hash};
use crate::db::schema::api_keys;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Reads, like a member.
    Read,
    /// Reads and changes clients and targets, like an admin.
    ReadWrite,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::ReadWrite => "read_write",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "read_write" => Some(Scope::ReadWrite),
            _ => None,
        }
    }
}

/// A key as listed (never its secret).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The public part, `sw_<prefix>_…`, to recognise a key.
    pub prefix: String,
    pub scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<OffsetDateTime>,
}

type Row = (
    i64,
    String,
    String,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

fn from_row(row: Row) -> ApiKey {
    ApiKey {
        id: row.0,
        name: row.1,
        prefix: row.2,
        scope: Scope::parse(&row.3).unwrap_or(Scope::Read),
        created_at: row.4,
        last_used_at: row.5,
        revoked_at: row.6,
    }
}

pub async fn list(conn: &mut AsyncPgConnection, ctx: &OrgCtx) -> QueryResult<Vec<ApiKey>> {
    let rows: Vec<Row> = api_keys::table
        .filter(api_keys::org_id.eq(ctx.org_id))
        .order(api_keys::id.desc())
        .select((
            api_keys::id,
            api_keys::name,
            api_keys::prefix,
            api_keys::scope,
            api_keys::created_at,
            api_keys::last_used_at,
            api_keys::revoked_at,
        ))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Whether a live key of the caller's org has this id.
pub async fn is_live(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::org_id.eq(ctx.org_id))
            .filter(api_keys::revoked_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// Creates a key and returns its id and the full key, which is never shown again.
pub async fn create(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    name: &str,
    scope: Scope,
) -> QueryResult<(i64, String)> {
    let prefix = hex::encode(random_bytes::<6>());
    let secret = new_token();
    let id = diesel::insert_into(api_keys::table)
        .values((
            api_keys::org_id.eq(ctx.org_id),
            api_keys::name.eq(name),
            api_keys::prefix.eq(&prefix),
            api_keys::secret_hash.eq(token_hash(&secret)),
            api_keys::scope.eq(scope.as_str()),
            api_keys::created_by.eq(ctx.actor.user_id()),
        ))
        .returning(api_keys::id)
        .get_result(conn)
        .await?;
    Ok((id, format!("sw_{prefix}_{secret}")))
}

/// Revokes a live key of the caller's org; returns its name and prefix, or NotFound.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<(String, String)> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::org_id.eq(ctx.org_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(OffsetDateTime::now_utc())))
    .returning((api_keys::name, api_keys::prefix))
    .get_result(conn)
    .await
}

/// Revokes every live key `user_id` created in the caller's org (they are leaving it); returns
/// how many.
pub async fn revoke_created_by(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    user_id: i64,
) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::org_id.eq(ctx.org_id))
            .filter(api_keys::created_by.eq(user_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(OffsetDateTime::now_utc())))
    .execute(conn)
    .await
}
