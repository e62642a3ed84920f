//! Organization pages and the members API.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::queries::{self, Member};
use super::views::*;
use crate::audit::{self, Entry};
use crate::auth::queries::{looks_like_email, normalize_email};
use crate::auth::routes::{Empty, check_name};
use crate::auth::session;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role, Viewer};
use crate::crypto::new_token;
use crate::layout::{Nav, html, html_form, html_invalid, see_other};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post, public};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError, object_id};

type Page = Result<HttpResponse, PageError>;

pub fn routes() -> Vec<Route> {
    vec![
        page_get("/orgs", Access::SignedIn, orgs_page),
        page_post("/orgs", Access::SignedIn, create_org).example("name=Agency+{unique}"),
        page_post("/orgs/switch", Access::SignedIn, switch_org).example("org_id={org_id}"),
        page_post("/settings/org", Access::Role(Role::Owner), rename_org)
            .example("name=Renamed+{unique}"),
        page_get("/members", Access::Role(Role::Member), members_page),
        page_post("/members/invitations", Access::Role(Role::Owner), invite)
            .example("email=invitee-{unique}%40example.com&role=member"),
        page_post(
            "/members/invitations/{invitation_id}/revoke",
            Access::Role(Role::Owner),
            revoke_invitation,
        ),
        page_post(
            "/members/{user_id}/role",
            Access::Role(Role::Owner),
            change_role,
        )
        .example("role=admin"),
        page_post(
            "/members/{user_id}/remove",
            Access::Role(Role::Owner),
            remove_member,
        ),
        page_post(
            "/members/{user_id}/transfer-ownership",
            Access::Role(Role::Owner),
            transfer_ownership,
        ),
        public(Method::GET, "/invitations/accept", accept_page),
        page_post("/invitations/accept", Access::SignedIn, accept)
            .example("token={invitation_token}"),
        api(Method::GET, "/api/v1/org", Role::Member, api_org)
            .summary("The organization of the API key, and the key's role")
            .response::<OrgBody>(),
        api(Method::GET, "/api/v1/members", Role::Member, api_members)
            .summary("Members of the organization")
            .response::<Vec<Member>>(),
    ]
}

async fn orgs_page(viewer: Viewer, csrf: CsrfToken) -> Page {
    html(&OrgsPage {
        nav: Some(Nav::new(&viewer, &csrf)),
        name: String::new(),
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameForm {
    name: String,
}

async fn create_org(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Form(form): Form<NameForm>,
) -> Page {
    let mut errors = FieldErrors::default();
    check_name(&form.name, "name", &mut errors);
    if !errors.is_empty() {
        return html_invalid(&OrgsPage {
            nav: Some(Nav::new(&viewer, &csrf)),
            name: form.name,
            errors,
        });
    }
    let name = form.name.trim().to_string();
    let mut conn = state.conn().await?;
    let actor = viewer.actor();
    let (user_id, session_id, ip) = (viewer.user_id, viewer.session_id, viewer.ip.clone());
    conn.transaction::<_, AppError, _>(async move |conn| {
        let org_id = queries::create_org(conn, &name, user_id).await?;
        audit::record(
            conn,
            Entry::by_actor(Some(org_id), &actor, &ip, "org.created", name.clone()),
        )
        .await?;
        session::switch_org(conn, session_id, org_id).await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/clients"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SwitchForm {
    org_id: String,
}

async fn switch_org(
    state: web::Data<AppState>,
    viewer: Viewer,
    Form(form): Form<SwitchForm>,
) -> Page {
    let org_id = object_id(&form.org_id)?;
    if !viewer.orgs.iter().any(|o| o.id == org_id) {
        return Err(AppError::NotFound.into());
    }
    let mut conn = state.conn().await?;
    session::switch_org(&mut conn, viewer.session_id, org_id).await?;
    Ok(see_other("/clients"))
}

async fn rename_org(state: web::Data<AppState>, page: PageCtx, Form(form): Form<NameForm>) -> Page {
    page.require(Role::Owner)?;
    let mut errors = FieldErrors::default();
    check_name(&form.name, "name", &mut errors);
    errors.into_result()?;
    let name = form.name.trim().to_string();
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::rename_org(conn, &ctx, &name).await?;
        audit::record(conn, Entry::by(&ctx, "org.renamed", name.clone())).await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/settings"))
}

async fn render_members(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    form: (String, String),
    new_link: Option<String>,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let members = queries::members(&mut conn, page).await?;
    let invitations = if page.role == Role::Owner {
        queries::open_invitations(&mut conn, page).await?
    } else {
        Vec::new()
    };
    let view = MembersPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        members,
        invitations,
        me: page.viewer.user_id,
        invite_email: form.0,
        invite_role: form.1,
        new_link,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn members_page(state: web::Data<AppState>, page: PageCtx, csrf: CsrfToken) -> Page {
    render_members(
        &state,
        &page,
        &csrf,
        (String::new(), "member".into()),
        None,
        FieldErrors::default(),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<InviteForm>,
) -> Page {
    page.require(Role::Owner)?;
    let email = normalize_email(&form.email);
    let mut errors = FieldErrors::default();
    if !looks_like_email(&email) {
        errors.add("email", "is not an email address");
    }
    let role = match form.role.as_str() {
        "admin" => Some(Role::Admin),
        "member" => Some(Role::Member),
        _ => {
            errors.add("role", "must be admin or member");
            None
        }
    };
    let mut conn = state.conn().await?;
    if errors.is_empty()
        && queries::members(&mut conn, &page)
            .await?
            .iter()
            .any(|m| m.email == email)
    {
        errors.add("email", "is already a member");
    }
    let (Some(role), true) = (role, errors.is_empty()) else {
        return render_members(&state, &page, &csrf, (email, form.role), None, errors).await;
    };
    state
        .limiter
        .check_requested_mail(
            &mut conn,
            crate::web::rate_limit::rules::INVITE_ORG,
            page.ctx.org_id,
            &email,
        )
        .await?;
    let token = new_token();
    let ctx = page.ctx.clone();
    let (invite_email, invite_token) = (email.clone(), token.clone());
    conn.transaction::<_, AppError, _>(async move |conn| {
        let id = queries::create_invitation(conn, &ctx, &invite_email, role, &invite_token).await?;
        audit::record(
            conn,
            Entry::by(&ctx, "member.invited", invite_email.clone())
                .detail(json!({"role": role.as_str(), "invitation": id})),
        )
        .await?;
        Ok(())
    })
    .await?;
    let mut link = state.config.public_url.clone();
    link.set_path("/invitations/accept");
    link.query_pairs_mut().append_pair("token", &token);
    state.mailer.send_later(
        email.clone(),
        "You are invited to siteward",
        format!(
            "Hello,\n\n{} invited you to the organization “{}” on siteward as {}.\nOpen this link within 7 days to accept:\n\n{link}\n",
            page.viewer.name,
            page.viewer.current.as_ref().map(|c| c.name.as_str()).unwrap_or(""),
            role.as_str()
        ),
    );
    render_members(
        &state,
        &page,
        &csrf,
        (String::new(), "member".into()),
        Some(link.to_string()),
        FieldErrors::default(),
    )
    .await
}

async fn revoke_invitation(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let id = object_id(&path)?;
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    // Another org's invitation is not found; only then does the role matter.
    if !queries::invitation_is_open(&mut conn, &ctx, id).await? {
        return Err(AppError::NotFound.into());
    }
    page.require(Role::Owner)?;
    conn.transaction::<_, AppError, _>(async move |conn| {
        if queries::revoke_invitation(conn, &ctx, id).await? == 0 {
            return Err(AppError::NotFound);
        }
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "member.invitation_revoked",
                format!("invitation {id}"),
            ),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/members"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    role: String,
}

async fn change_role(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let user_id = object_id(&path)?;
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    let target = queries::member(&mut conn, &ctx, user_id).await?;
    page.require(Role::Owner)?;
    let role = match form.role.as_str() {
        "admin" => Role::Admin,
        "member" => Role::Member,
        _ => {
            return Err(AppError::invalid(
                "role",
                "must be admin or member (use transfer ownership to make someone the owner)",
            )
            .into());
        }
    };
    if target.role == Role::Owner {
        return Err(AppError::Conflict(
            "the owner's role changes only by transferring ownership".into(),
        )
        .into());
    }
    let keys = &state.keys;
    conn.transaction::<_, AppError, _>(async move |conn| {
        if queries::set_role(conn, &ctx, user_id, role).await? != 1 {
            return Err(AppError::Conflict(
                "the member left or became the owner meanwhile; reload the page".into(),
            ));
        }
        audit::record(
            conn,
            Entry::by(&ctx, "member.role_changed", target.email.clone())
                .detail(json!({"from": target.role.as_str(), "to": role.as_str()})),
        )
        .await?;
        Ok(())
    })
    .await?;
    // Their API keys act with the new role from the next request on.
    keys.clear();
    Ok(see_other("/members"))
}

async fn remove_member(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let user_id = object_id(&path)?;
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    let target = queries::member(&mut conn, &ctx, user_id).await?;
    page.require(Role::Owner)?;
    if target.role == Role::Owner {
        return Err(AppError::Conflict(
            "the owner cannot be removed: transfer ownership first".into(),
        )
        .into());
    }
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::remove_member(conn, &ctx, user_id).await?;
        let revoked = crate::keys::queries::revoke_created_by(conn, &ctx, user_id).await?;
        audit::record(
            conn,
            Entry::by(&ctx, "member.removed", target.email.clone())
                .detail(json!({"role": target.role.as_str(), "api_keys_revoked": revoked})),
        )
        .await?;
        Ok(())
    })
    .await?;
    state.keys.clear();
    Ok(see_other("/members"))
}

async fn transfer_ownership(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let user_id = object_id(&path)?;
    let ctx = page.ctx.clone();
    let me = page.viewer.user_id;
    let mut conn = state.conn().await?;
    let target = queries::member(&mut conn, &ctx, user_id).await?;
    page.require(Role::Owner)?;
    if user_id == me {
        return Err(AppError::Conflict("you are the owner already".into()).into());
    }
    conn.transaction::<_, AppError, _>(async move |conn| {
        // Demote first: the one-owner index holds after every statement.
        if !queries::move_ownership(conn, &ctx, me, user_id).await? {
            return Err(AppError::Conflict(
                "ownership changed meanwhile; reload the page".into(),
            ));
        }
        audit::record(
            conn,
            Entry::by(&ctx, "org.ownership_transferred", target.email.clone())
                .detail(json!({"previous_owner_becomes": "admin"})),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/members"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

async fn accept_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    query: web::Query<TokenQuery>,
) -> Page {
    let mut conn = state.conn().await?;
    let Some((invitation, org_name)) =
        queries::invitation_by_token(&mut conn, &query.token).await?
    else {
        return Err(AppError::NotFound.into());
    };
    drop(conn);
    let viewer = crate::auth::extract_viewer(&req).await.ok();
    html(&AcceptPage {
        nav: viewer.as_ref().map(|v| Nav::new(v, &csrf)),
        csrf: csrf.0,
        token: query.token.clone(),
        org_name,
        email: invitation.email,
        role: invitation.role,
        signed_in_as: viewer.map(|v| v.email),
    })
}

async fn accept(state: web::Data<AppState>, viewer: Viewer, Form(form): Form<TokenQuery>) -> Page {
    let mut conn = state.conn().await?;
    let Some((invitation, _)) = queries::invitation_by_token(&mut conn, &form.token).await? else {
        return Err(AppError::NotFound.into());
    };
    if invitation.email != viewer.email {
        return Err(AppError::Forbidden(
            "this invitation was sent to another address: sign in with that account",
        )
        .into());
    }
    let role = Role::parse(&invitation.role).unwrap_or(Role::Member);
    let actor = viewer.actor();
    let (user_id, session_id, ip, email) = (
        viewer.user_id,
        viewer.session_id,
        viewer.ip.clone(),
        viewer.email.clone(),
    );
    conn.transaction::<_, AppError, _>(async move |conn| {
        if !queries::accept_invitation(conn, invitation.id).await? {
            return Err(AppError::NotFound);
        }
        if queries::add_member(conn, invitation.org_id, user_id, role).await? == 0 {
            return Err(AppError::Conflict(
                "you are a member of this organization already".into(),
            ));
        }
        audit::record(
            conn,
            Entry::by_actor(Some(invitation.org_id), &actor, &ip, "member.joined", email)
                .detail(json!({"role": role.as_str(), "invitation": invitation.id})),
        )
        .await?;
        session::switch_org(conn, session_id, invitation.org_id).await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/clients"))
}

/// The organization an API key belongs to.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrgBody {
    pub id: i64,
    pub name: String,
    /// The key's role: `member` for read keys, `admin` for read-write keys.
    pub role: Role,
}

async fn api_org(state: web::Data<AppState>, ctx: ApiCtx) -> Result<web::Json<OrgBody>, ApiError> {
    let mut conn = state.conn().await?;
    let name = queries::org_name(&mut conn, &ctx).await?;
    Ok(web::Json(OrgBody {
        id: ctx.org_id,
        name,
        role: ctx.role,
    }))
}

async fn api_members(
    state: web::Data<AppState>,
    ctx: ApiCtx,
) -> Result<web::Json<Vec<Member>>, ApiError> {
    ctx.require(Role::Member)?;
    let mut conn = state.conn().await?;
    let ctx: &OrgCtx = &ctx;
    Ok(web::Json(queries::members(&mut conn, ctx).await?))
}
