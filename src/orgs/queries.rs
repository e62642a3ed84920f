//! Organizations, memberships and invitations.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::{OrgCtx, Role};
use crate::crypto::token_hash;
use crate::db::schema::{invitations, memberships, orgs, users};

pub const INVITATION_LIFETIME: time::Duration = time::Duration::days(7);

pub async fn create_org(
    conn: &mut AsyncPgConnection,
    name: &str,
    owner_id: i64,
) -> QueryResult<i64> {
    let org_id: i64 = diesel::insert_into(orgs::table)
        .values(orgs::name.eq(name))
        .returning(orgs::id)
        .get_result(conn)
        .await?;
    add_member(conn, org_id, owner_id, Role::Owner).await?;
    Ok(org_id)
}

pub async fn add_member(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> QueryResult<usize> {
    diesel::insert_into(memberships::table)
        .values((
            memberships::org_id.eq(org_id),
            memberships::user_id.eq(user_id),
            memberships::role.eq(role.as_str()),
        ))
        .on_conflict((memberships::org_id, memberships::user_id))
        .do_nothing()
        .execute(conn)
        .await
}

pub async fn org_name(conn: &mut AsyncPgConnection, ctx: &OrgCtx) -> QueryResult<String> {
    orgs::table
        .find(ctx.org_id)
        .select(orgs::name)
        .first(conn)
        .await
}

pub async fn rename_org(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    name: &str,
) -> QueryResult<usize> {
    diesel::update(orgs::table.find(ctx.org_id))
        .set(orgs::name.eq(name))
        .execute(conn)
        .await
}

pub async fn is_member(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    user_id: i64,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        memberships::table
            .filter(memberships::org_id.eq(org_id))
            .filter(memberships::user_id.eq(user_id)),
    ))
    .get_result(conn)
    .await
}

/// One member as shown and as served by the API.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Member {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub joined_at: OffsetDateTime,
}

pub async fn members(conn: &mut AsyncPgConnection, ctx: &OrgCtx) -> QueryResult<Vec<Member>> {
    let rows: Vec<(i64, String, String, String, OffsetDateTime)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::org_id.eq(ctx.org_id))
        .order(users::email.asc())
        .select((
            users::id,
            users::name,
            users::email,
            memberships::role,
            memberships::created_at,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, name, email, role, joined_at)| {
            Some(Member {
                user_id,
                name,
                email,
                role: Role::parse(&role)?,
                joined_at,
            })
        })
        .collect())
}

pub async fn member(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    user_id: i64,
) -> QueryResult<Member> {
    let (name, email, role, joined_at): (String, String, String, OffsetDateTime) =
        memberships::table
            .inner_join(users::table)
            .filter(memberships::org_id.eq(ctx.org_id))
            .filter(memberships::user_id.eq(user_id))
            .select((
                users::name,
                users::email,
                memberships::role,
                memberships::created_at,
            ))
            .first(conn)
            .await?;
    Ok(Member {
        user_id,
        name,
        email,
        role: Role::parse(&role).ok_or(diesel::result::Error::NotFound)?,
        joined_at,
    })
}

/// Whether an invitation of the caller's org is still open.
pub async fn invitation_is_open(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        invitations::table
            .filter(invitations::id.eq(id))
            .filter(invitations::org_id.eq(ctx.org_id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(OffsetDateTime::now_utc())),
    ))
    .get_result(conn)
    .await
}

/// Changes the role of a member who is not the owner; returns rows changed (0 or 1).
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    user_id: i64,
    role: Role,
) -> QueryResult<usize> {
    diesel::update(
        memberships::table
            .filter(memberships::org_id.eq(ctx.org_id))
            .filter(memberships::user_id.eq(user_id))
            .filter(memberships::role.ne(Role::Owner.as_str())),
    )
    .set(memberships::role.eq(role.as_str()))
    .execute(conn)
    .await
}

/// Moves ownership from `from` to `to` inside the caller's transaction: locks the org's
/// memberships, checks `from` still owns and `to` is still a member, then demotes and promotes.
/// Returns false (change nothing) if either check fails.
pub async fn move_ownership(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    from: i64,
    to: i64,
) -> QueryResult<bool> {
    let locked: Vec<(i64, String)> = memberships::table
        .filter(memberships::org_id.eq(ctx.org_id))
        .select((memberships::user_id, memberships::role))
        .for_update()
        .load(conn)
        .await?;
    let owns = locked
        .iter()
        .any(|(id, role)| *id == from && role == Role::Owner.as_str());
    let member = locked.iter().any(|(id, _)| *id == to);
    if !owns || !member || from == to {
        return Ok(false);
    }
    let target = |user_id: i64| {
        memberships::table
            .filter(memberships::org_id.eq(ctx.org_id))
            .filter(memberships::user_id.eq(user_id))
    };
    let demoted = diesel::update(target(from))
        .set(memberships::role.eq(Role::Admin.as_str()))
        .execute(conn)
        .await?;
    let promoted = diesel::update(target(to))
        .set(memberships::role.eq(Role::Owner.as_str()))
        .execute(conn)
        .await?;
    Ok(demoted == 1 && promoted == 1)
}

pub async fn remove_member(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    user_id: i64,
) -> QueryResult<usize> {
    diesel::delete(
        memberships::table
            .filter(memberships::org_id.eq(ctx.org_id))
            .filter(memberships::user_id.eq(user_id))
            .filter(memberships::role.ne(Role::Owner.as_str())),
    )
    .execute(conn)
    .await
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub async fn create_invitation(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    email: &str,
    role: Role,
    token: &str,
) -> QueryResult<i64> {
    diesel::insert_into(invitations::table)
        .values((
            invitations::org_id.eq(ctx.org_id),
            invitations::email.eq(email),
            invitations::role.eq(role.as_str()),
            invitations::token_hash.eq(token_hash(token)),
            invitations::invited_by.eq(ctx.actor.user_id()),
            invitations::expires_at.eq(OffsetDateTime::now_utc() + INVITATION_LIFETIME),
        ))
        .returning(invitations::id)
        .get_result(conn)
        .await
}

/// Invitations still open (not accepted, revoked or expired).
pub async fn open_invitations(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
) -> QueryResult<Vec<InvitationRow>> {
    invitations::table
        .filter(invitations::org_id.eq(ctx.org_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(OffsetDateTime::now_utc()))
        .order(invitations::id.desc())
        .select(InvitationRow::as_select())
        .load(conn)
        .await
}

pub async fn revoke_invitation(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<usize> {
    diesel::update(
        invitations::table
            .filter(invitations::id.eq(id))
            .filter(invitations::org_id.eq(ctx.org_id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null()),
    )
    .set(invitations::revoked_at.eq(Some(OffsetDateTime::now_utc())))
    .execute(conn)
    .await
}

/// An open invitation by the token from its link, with its organization's name.
pub async fn invitation_by_token(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> QueryResult<Option<(InvitationRow, String)>> {
    invitations::table
        .inner_join(orgs::table)
        .filter(invitations::token_hash.eq(token_hash(token)))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(OffsetDateTime::now_utc()))
        .select((InvitationRow::as_select(), orgs::name))
        .first(conn)
        .await
        .optional()
}

/// Marks an invitation accepted; false if someone else got there first.
pub async fn accept_invitation(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        invitations::table
            .filter(invitations::id.eq(id))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::expires_at.gt(OffsetDateTime::now_utc())),
    )
    .set(invitations::accepted_at.eq(Some(OffsetDateTime::now_utc())))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}
