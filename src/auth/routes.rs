//! Sign-up, sign-in (with second factor), sign-out, password reset and account settings.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::extract::{PendingSecondFactor, load_viewer};
use super::queries::{self, looks_like_email, normalize_email};
use super::session::{self, STAGE_ACTIVE, STAGE_SECOND_FACTOR};
use super::views::*;
use super::{Viewer, password, totp};
use crate::audit;
use crate::crypto::new_token;
use crate::layout::{Nav, html, html_invalid, see_other};
use crate::orgs::queries as orgs;
use crate::state::AppState;
use crate::web::client_ip::client_ip;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::rate_limit::rules;
use crate::web::routes::{Route, RouteDoc, page_get, page_post, public};
use crate::web::{Access, AppError, FieldErrors, PageError, Surface};

type Page = Result<HttpResponse, PageError>;

pub fn routes() -> Vec<Route> {
    vec![
        public(Method::GET, "/", home),
        public(Method::GET, "/sign-in", sign_in_page),
        Route::new(
            RouteDoc::new(Method::POST, "/sign-in", Surface::Public, Access::Anyone),
            sign_in,
        ),
        public(Method::GET, "/sign-in/two-factor", second_factor_page),
        Route::new(
            RouteDoc::new(
                Method::POST,
                "/sign-in/two-factor",
                Surface::Public,
                Access::Anyone,
            ),
            second_factor,
        ),
        public(Method::GET, "/sign-up", sign_up_page),
        Route::new(
            RouteDoc::new(Method::POST, "/sign-up", Surface::Public, Access::Anyone),
            sign_up,
        ),
        public(Method::GET, "/password-reset", reset_request_page),
        Route::new(
            RouteDoc::new(
                Method::POST,
                "/password-reset",
                Surface::Public,
                Access::Anyone,
            ),
            reset_request,
        ),
        public(Method::GET, "/password-reset/confirm", reset_confirm_page),
        Route::new(
            RouteDoc::new(
                Method::POST,
                "/password-reset/confirm",
                Surface::Public,
                Access::Anyone,
            ),
            reset_confirm,
        ),
        page_post("/sign-out", Access::SignedIn, sign_out).ends_session(),
        page_post(
            "/sign-out-everywhere",
            Access::SignedIn,
            sign_out_everywhere,
        )
        .ends_session(),
        page_get("/settings", Access::SignedIn, settings_page),
        page_post("/settings/password", Access::SignedIn, change_password)
            .example("current_password=wrong-password&password=a+new+passphrase&password_confirm=a+new+passphrase"),
        page_post("/settings/two-factor", Access::SignedIn, two_factor_start),
        page_post(
            "/settings/two-factor/confirm",
            Access::SignedIn,
            two_factor_confirm,
        )
        .example("code=000000"),
        page_post(
            "/settings/two-factor/disable",
            Access::SignedIn,
            two_factor_disable,
        )
        .example("password=wrong-password"),
    ]
}

/// `/`: the dashboard for people signed in, the sign-in page for everyone else.
async fn home(req: HttpRequest) -> HttpResponse {
    match load_viewer(&req, STAGE_ACTIVE).await {
        // The overview answers "which clients need attention?" first.
        Ok(viewer) if viewer.current.is_some() => see_other("/overview"),
        Ok(_) => see_other("/clients"),
        Err(_) => see_other("/sign-in"),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NoticeQuery {
    notice: String,
}

fn notice_text(key: &str) -> Option<&'static str> {
    match key {
        "signed-out" => Some("You are signed out."),
        "signed-out-everywhere" => Some("You are signed out on every device."),
        "password-reset" => Some("Your password was changed. Sign in with the new one."),
        "password-changed" => Some("Your password was changed; your other devices are signed out."),
        "account-deleted" => Some("Your account is deleted."),
        _ => None,
    }
}

async fn sign_in_page(csrf: CsrfToken, query: web::Query<NoticeQuery>) -> Page {
    html(&SignInPage {
        nav: None,
        csrf: csrf.0,
        email: String::new(),
        notice: notice_text(&query.notice),
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignInForm {
    email: String,
    password: String,
}

fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn with_session(location: &str, state: &AppState, token: String) -> HttpResponse {
    let mut response = see_other(location);
    let _ = response.add_cookie(&session::cookie(&state.config, token));
    response
}

async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    Form(form): Form<SignInForm>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    let email = normalize_email(&form.email);
    state.limiter.check(rules::SIGN_IN_IP, &ip).await?;
    let wrong = |email: String| {
        let mut errors = FieldErrors::default();
        errors.add("password", "The email or password is not right.");
        html_invalid(&SignInPage {
            nav: None,
            csrf: csrf.0.clone(),
            email,
            notice: None,
            errors,
        })
    };
    if !looks_like_email(&email) {
        return wrong(String::new());
    }
    // Every attempt takes a slot of the account's limit before the password is checked, so
    // guesses sent side by side (to any process) cannot all pass the check before any is
    // counted; a right password gives its slot back, so signing in cannot lock anyone out.
    state.limiter.check(rules::SIGN_IN_ACCOUNT, &email).await?;
    // No database connection is held through bcrypt: a burst of sign-ins must not empty the pool.
    let user = queries::user_by_email(&mut *state.conn().await?, &email).await?;
    // Unknown addresses are checked against a dummy hash: same work, same time.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_password_hash.clone());
    let password_ok = password::verify(form.password, hash).await;
    let user = match user {
        Some(user) if password_ok => user,
        user => {
            queries::audit_person(
                &mut *state.conn().await?,
                user.map(|u| u.id),
                &email,
                &ip,
                "sign_in.failed",
                json!({"reason": "wrong email or password"}),
            )
            .await?;
            return wrong(email);
        }
    };
    state
        .limiter
        .give_back(rules::SIGN_IN_ACCOUNT, &email)
        .await?;
    let mut conn = state.conn().await?;
    let agent = user_agent(&req);
    let config = state.config.clone();
    let (location, token) = conn
        .transaction::<_, AppError, _>(async move |conn| {
            if user.two_factor_enabled() {
                let token =
                    session::create(conn, &config, user.id, STAGE_SECOND_FACTOR, &agent).await?;
                return Ok(("/sign-in/two-factor", token));
            }
            let token = session::create(conn, &config, user.id, STAGE_ACTIVE, &agent).await?;
            queries::audit_person(
                conn,
                Some(user.id),
                &user.email,
                &ip,
                "sign_in.succeeded",
                json!({"second_factor": "none"}),
            )
            .await?;
            Ok(("/", token))
        })
        .await?;
    Ok(with_session(location, &state, token))
}

async fn second_factor_page(_pending: PendingSecondFactor, csrf: CsrfToken) -> Page {
    html(&TwoFactorPage {
        nav: None,
        csrf: csrf.0,
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    code: String,
}

/// Checks a TOTP code or a recovery code; returns which one worked. Wrong codes count towards the
/// person's second-factor lock, and a locked second step refuses every code.
pub(crate) async fn check_second_factor(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    user_id: i64,
    code: &str,
) -> Result<Option<&'static str>, AppError> {
    if let Some(until) = queries::second_factor_locked_until(conn, user_id).await? {
        return Err(AppError::RateLimited {
            retry_after: (until - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(1) as u64,
        });
    }
    let method = code_matches(state, conn, user_id, code).await?;
    if method.is_some() {
        queries::clear_second_factor_failures(conn, user_id).await?;
    } else if let Some(until) = queries::record_second_factor_failure(conn, user_id).await? {
        return Err(AppError::RateLimited {
            retry_after: (until - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(1) as u64,
        });
    }
    Ok(method)
}

async fn code_matches(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    user_id: i64,
    code: &str,
) -> Result<Option<&'static str>, AppError> {
    let user = queries::user_by_id(conn, user_id).await?;
    let (Some(sealed), true) = (user.totp_secret.as_ref(), user.two_factor_enabled()) else {
        return Ok(None);
    };
    let code = code.trim();
    if code.chars().filter(|c| c.is_ascii_digit()).count() == 6 && code.len() <= 7 {
        let secret = state
            .config
            .master_keys
            .open(sealed, &totp::seal_context(user_id))
            .map_err(AppError::internal)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        return match totp::check(&secret, code, now) {
            Some(step) if queries::claim_totp_step(conn, user_id, step).await? => Ok(Some("totp")),
            _ => Ok(None),
        };
    }
    if code.len() <= 64
        && queries::use_recovery_code(conn, user_id, totp::recovery_hash(code)).await?
    {
        return Ok(Some("recovery_code"));
    }
    Ok(None)
}

async fn second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    PendingSecondFactor(pending): PendingSecondFactor,
    Form(form): Form<CodeForm>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    state.limiter.check(rules::SECOND_FACTOR_IP, &ip).await?;
    state
        .limiter
        .check(rules::SECOND_FACTOR_ACCOUNT, &pending.user_id.to_string())
        .await?;
    let mut conn = state.conn().await?;
    let method = match check_second_factor(&state, &mut conn, pending.user_id, &form.code).await {
        Ok(method) => method,
        Err(locked @ AppError::RateLimited { .. }) => {
            // Locked: the password has to be entered again after the wait.
            session::delete(&mut conn, pending.session_id).await?;
            queries::audit_person(
                &mut conn,
                Some(pending.user_id),
                &pending.email,
                &ip,
                "sign_in.second_factor_locked",
                json!({}),
            )
            .await?;
            return Err(locked.into());
        }
        Err(other) => return Err(other.into()),
    };
    let Some(method) = method else {
        queries::audit_person(
            &mut conn,
            Some(pending.user_id),
            &pending.email,
            &ip,
            "sign_in.failed",
            json!({"reason": "wrong second-factor code"}),
        )
        .await?;
        let mut errors = FieldErrors::default();
        errors.add(
            "code",
            "That code is not valid. Codes change every 30 seconds.",
        );
        return html_invalid(&TwoFactorPage {
            nav: None,
            csrf: csrf.0,
            errors,
        });
    };
    let agent = user_agent(&req);
    let config = state.config.clone();
    let token = conn
        .transaction::<_, AppError, _>(async move |conn| {
            // A new token for the signed-in session: the pre-2FA one is discarded.
            session::delete(conn, pending.session_id).await?;
            let token =
                session::create(conn, &config, pending.user_id, STAGE_ACTIVE, &agent).await?;
            queries::audit_person(
                conn,
                Some(pending.user_id),
                &pending.email,
                &ip,
                "sign_in.succeeded",
                json!({"second_factor": method}),
            )
            .await?;
            Ok(token)
        })
        .await?;
    Ok(with_session("/", &state, token))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteQuery {
    invite: String,
}

async fn sign_up_mode(
    state: &AppState,
    invite: &str,
) -> Result<Result<SignUpMode, NoticePage>, AppError> {
    let mut conn = state.conn().await?;
    if !invite.is_empty() {
        return Ok(match orgs::invitation_by_token(&mut conn, invite).await? {
            Some((invitation, org_name)) => Ok(SignUpMode::Invited {
                token: invite.to_string(),
                email: invitation.email,
                org_name,
            }),
            None => Err(NoticePage {
                nav: None,
                title: "Invitation not valid",
                message: "This invitation link is not valid: it may have expired, been revoked or been used already. Ask the organization's owner for a new one.".into(),
                link: Some(("/sign-in", "Sign in")),
            }),
        });
    }
    if queries::count_users(&mut conn).await? == 0 {
        return Ok(Ok(SignUpMode::FirstUser));
    }
    Ok(Err(NoticePage {
        nav: None,
        title: "Sign-up is by invitation",
        message: "Accounts on this siteward are created by invitation. Ask an owner of your organization to invite you, then open the link in the email.".into(),
        link: Some(("/sign-in", "Sign in")),
    }))
}

async fn sign_up_page(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    query: web::Query<InviteQuery>,
) -> Page {
    match sign_up_mode(&state, &query.invite).await? {
        Ok(mode) => {
            let email = match &mode {
                SignUpMode::Invited { email, .. } => email.clone(),
                SignUpMode::FirstUser => String::new(),
            };
            html(&SignUpPage {
                nav: None,
                csrf: csrf.0,
                mode,
                name: String::new(),
                email,
                org_name: String::new(),
                errors: FieldErrors::default(),
            })
        }
        Err(notice) => html(&notice),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignUpForm {
    name: String,
    email: String,
    password: String,
    org_name: String,
    invite: String,
}

pub fn check_name(value: &str, field: &str, errors: &mut FieldErrors) {
    let length = value.trim().chars().count();
    if length == 0 {
        errors.add(field, "is required");
    } else if length > 100 {
        errors.add(field, "must be at most 100 characters");
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
}

async fn sign_up(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    Form(form): Form<SignUpForm>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    state.limiter.check(rules::SIGN_UP_IP, &ip).await?;
    let mode = match sign_up_mode(&state, &form.invite).await? {
        Ok(mode) => mode,
        Err(notice) => {
            return crate::layout::html_with(actix_web::http::StatusCode::FORBIDDEN, &notice);
        }
    };
    let email = normalize_email(&form.email);
    let mut errors = FieldErrors::default();
    check_name(&form.name, "name", &mut errors);
    match &mode {
        SignUpMode::FirstUser => {
            check_name(&form.org_name, "org_name", &mut errors);
            if !looks_like_email(&email) {
                errors.add("email", "is not an email address");
            }
        }
        SignUpMode::Invited { email: invited, .. } => {
            if &email != invited {
                errors.add("email", "must be the address the invitation was sent to");
            }
        }
    }
    password::check_new(&form.password, "password", &mut errors);
    let show_again = |mode, errors| SignUpPage {
        nav: None,
        csrf: csrf.0.clone(),
        mode,
        name: form.name.clone(),
        email: email.clone(),
        org_name: form.org_name.clone(),
        errors,
    };
    if !errors.is_empty() {
        return html_invalid(&show_again(mode, errors));
    }
    let hash = password::hash(form.password.clone()).await;
    let mut conn = state.conn().await?;
    let name = form.name.trim().to_string();
    let org_name = form.org_name.trim().to_string();
    let invite = form.invite.clone();
    let actor_ip = ip.clone();
    let outcome: Result<Result<i64, &'static str>, AppError> = {
        let email = email.clone();
        conn.transaction::<_, AppError, _>(async move |conn| {
                // One sign-up at a time decides who is first.
                diesel_async::RunQueryDsl::execute(
                    diesel::sql_query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"),
                    conn,
                )
                .await?;
                if queries::user_by_email(conn, &email).await?.is_some() {
                    return Ok(Err(
                        "An account with this address exists already: sign in, then open the invitation link again.",
                    ));
                }
                let first = queries::count_users(conn).await? == 0;
                let user_id = queries::insert_user(conn, &email, &name, &hash).await?;
                let actor = super::Actor::User {
                    id: user_id,
                    email: email.clone(),
                };
                if invite.is_empty() {
                    if !first {
                        return Err(AppError::Forbidden("sign-up is by invitation"));
                    }
                    let org_id = orgs::create_org(conn, &org_name, user_id).await?;
                    audit::record(
                        conn,
                        audit::Entry::by_actor(Some(org_id), &actor, &actor_ip, "org.created", org_name.clone())
                            .detail(json!({"first_user": true})),
                    )
                    .await?;
                } else {
                    let (invitation, _) = orgs::invitation_by_token(conn, &invite)
                        .await?
                        .ok_or(AppError::Conflict("the invitation is no longer valid".into()))?;
                    if !orgs::accept_invitation(conn, invitation.id).await? {
                        return Err(AppError::Conflict("the invitation was used already".into()));
                    }
                    let role = super::Role::parse(&invitation.role).unwrap_or(super::Role::Member);
                    orgs::add_member(conn, invitation.org_id, user_id, role).await?;
                    audit::record(
                        conn,
                        audit::Entry::by_actor(Some(invitation.org_id), &actor, &actor_ip, "member.joined", email.clone())
                            .detail(json!({"role": role.as_str(), "invitation": invitation.id})),
                    )
                    .await?;
                }
                Ok(Ok(user_id))
            })
        .await
    };
    let user_id = match outcome? {
        Ok(user_id) => user_id,
        Err(message) => {
            let mut errors = FieldErrors::default();
            errors.add("email", message);
            return html_invalid(&show_again(mode, errors));
        }
    };
    let token = session::create(
        &mut conn,
        &state.config,
        user_id,
        STAGE_ACTIVE,
        &user_agent(&req),
    )
    .await?;
    Ok(with_session("/", &state, token))
}

async fn sign_out(req: HttpRequest, state: web::Data<AppState>, _form: Form<Empty>) -> Page {
    if let Some(token) = session::token_from(&req, &state.config) {
        let mut conn = state.conn().await?;
        if let Ok(row) = session::find_live(&mut conn, &state.config, &token).await? {
            session::delete(&mut conn, row.id).await?;
            let user = queries::user_by_id(&mut conn, row.user_id).await?;
            let ip = client_ip(&req, state.config.trust_forwarded_for);
            queries::audit_person(
                &mut conn,
                Some(user.id),
                &user.email,
                &ip,
                "sign_out",
                json!({}),
            )
            .await?;
        }
    }
    let mut response = see_other("/sign-in?notice=signed-out");
    let _ = response.add_removal_cookie(&session::removal_cookie(&state.config));
    Ok(response)
}

#[derive(Deserialize, Default)]
pub struct Empty {}

async fn sign_out_everywhere(
    state: web::Data<AppState>,
    viewer: Viewer,
    _form: Form<Empty>,
) -> Page {
    let mut conn = state.conn().await?;
    let ended = session::delete_all_for_user(&mut conn, viewer.user_id).await?;
    queries::audit_person(
        &mut conn,
        Some(viewer.user_id),
        &viewer.email,
        &viewer.ip,
        "sessions.ended_everywhere",
        json!({"sessions": ended}),
    )
    .await?;
    let mut response = see_other("/sign-in?notice=signed-out-everywhere");
    let _ = response.add_removal_cookie(&session::removal_cookie(&state.config));
    Ok(response)
}

async fn reset_request_page(csrf: CsrfToken) -> Page {
    html(&ResetRequestPage {
        nav: None,
        csrf: csrf.0,
        email: String::new(),
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetRequestForm {
    email: String,
}

async fn reset_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    Form(form): Form<ResetRequestForm>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    let email = normalize_email(&form.email);
    if !looks_like_email(&email) {
        let mut errors = FieldErrors::default();
        errors.add("email", "is not an email address");
        return html_invalid(&ResetRequestPage {
            nav: None,
            csrf: csrf.0,
            email,
            errors,
        });
    }
    state.limiter.check(rules::RESET_IP, &ip).await?;
    state.limiter.check(rules::RESET_ACCOUNT, &email).await?;
    // Everything that differs between known and unknown addresses happens after the answer.
    let (background, public_url) = (state.clone(), state.config.public_url.clone());
    let lookup = email.clone();
    tokio::spawn(async move {
        if let Err(error) = send_reset_link(&background, &lookup, &ip, public_url).await {
            tracing::error!(%error, "password reset not sent");
        }
    });
    // The same answer whether or not the address has an account.
    html(&NoticePage {
        nav: None,
        title: "Check your email",
        message: format!(
            "If an account exists for {email}, we have sent it a link to choose a new password. The link works for one hour."
        ),
        link: Some(("/sign-in", "Back to sign in")),
    })
}

/// Makes a reset token for the address's account, if there is one, and mails the link.
async fn send_reset_link(
    state: &AppState,
    email: &str,
    ip: &str,
    mut link: url::Url,
) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    let Some(user) = queries::user_by_email(&mut conn, email).await? else {
        return Ok(());
    };
    let token = new_token();
    queries::insert_reset(&mut conn, user.id, &token).await?;
    queries::audit_person(
        &mut conn,
        Some(user.id),
        &user.email,
        ip,
        "password.reset_requested",
        json!({}),
    )
    .await?;
    link.set_path("/password-reset/confirm");
    link.query_pairs_mut().append_pair("token", &token);
    let body = format!(
        "Hello {},\n\nsomeone (hopefully you) asked to reset the password of your siteward account.\nOpen this link within one hour to choose a new password:\n\n{link}\n\nIf you did not ask for this, ignore this mail; your password stays as it is.\n",
        user.name
    );
    state
        .mailer
        .send(&user.email, "Reset your siteward password", body)
        .await
        .map_err(AppError::internal)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

fn invalid_reset_link() -> NoticePage {
    NoticePage {
        nav: None,
        title: "Link not valid",
        message: "This password-reset link is not valid: it may have expired or been used. Ask for a new one.".into(),
        link: Some(("/password-reset", "Ask for a new link")),
    }
}

async fn reset_confirm_page(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    query: web::Query<TokenQuery>,
) -> Page {
    let mut conn = state.conn().await?;
    if queries::reset_user(&mut conn, &query.token)
        .await?
        .is_none()
    {
        return crate::layout::html_with(
            actix_web::http::StatusCode::NOT_FOUND,
            &invalid_reset_link(),
        );
    }
    html(&ResetConfirmPage {
        nav: None,
        csrf: csrf.0,
        token: query.token.clone(),
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetConfirmForm {
    token: String,
    password: String,
    password_confirm: String,
}

async fn reset_confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    csrf: CsrfToken,
    Form(form): Form<ResetConfirmForm>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    state.limiter.check(rules::RESET_IP, &ip).await?;
    let mut errors = FieldErrors::default();
    password::check_new(&form.password, "password", &mut errors);
    if form.password != form.password_confirm {
        errors.add("password_confirm", "does not match the password");
    }
    let mut conn = state.conn().await?;
    if queries::reset_user(&mut conn, &form.token).await?.is_none() {
        return crate::layout::html_with(
            actix_web::http::StatusCode::NOT_FOUND,
            &invalid_reset_link(),
        );
    }
    if !errors.is_empty() {
        return html_invalid(&ResetConfirmPage {
            nav: None,
            csrf: csrf.0,
            token: form.token,
            errors,
        });
    }
    let hash = password::hash(form.password).await;
    let token = form.token;
    let claimed = conn
        .transaction::<_, AppError, _>(async move |conn| {
            // Claimed in the transaction: of two racing submissions, one wins.
            let Some(user_id) = queries::claim_reset(conn, &token).await? else {
                return Ok(false);
            };
            let user = queries::user_by_id(conn, user_id).await?;
            queries::set_password(conn, user_id, &hash).await?;
            queries::finish_resets(conn, user_id).await?;
            let ended = session::delete_all_for_user(conn, user_id).await?;
            queries::audit_person(
                conn,
                Some(user_id),
                &user.email,
                &ip,
                "password.reset",
                json!({"sessions_ended": ended}),
            )
            .await?;
            Ok(true)
        })
        .await?;
    if !claimed {
        return crate::layout::html_with(
            actix_web::http::StatusCode::NOT_FOUND,
            &invalid_reset_link(),
        );
    }
    let mut response = see_other("/sign-in?notice=password-reset");
    let _ = response.add_removal_cookie(&session::removal_cookie(&state.config));
    Ok(response)
}

async fn settings_page(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    query: web::Query<NoticeQuery>,
) -> Page {
    let mut conn = state.conn().await?;
    let user = queries::user_by_id(&mut conn, viewer.user_id).await?;
    let recovery_codes_left = queries::unused_recovery_codes(&mut conn, viewer.user_id).await?;
    html(&SettingsPage {
        org_name: viewer
            .current
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        nav: Some(Nav::new(&viewer, &csrf)),
        two_factor: user.two_factor_enabled(),
        recovery_codes_left,
        errors: FieldErrors::default(),
        notice: notice_text(&query.notice),
    })
}

async fn two_factor_start(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    _form: Form<Empty>,
) -> Page {
    let mut conn = state.conn().await?;
    let user = queries::user_by_id(&mut conn, viewer.user_id).await?;
    if user.two_factor_enabled() {
        return Ok(see_other("/settings"));
    }
    let secret = totp::new_secret();
    let sealed = totp::seal(&state.config.master_keys, viewer.user_id, &secret);
    queries::set_pending_totp(&mut conn, viewer.user_id, sealed).await?;
    html(&TwoFactorSetupPage {
        nav: Some(Nav::new(&viewer, &csrf)),
        secret_base32: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(&secret, &viewer.email),
        errors: FieldErrors::default(),
    })
}

async fn two_factor_confirm(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Form(form): Form<CodeForm>,
) -> Page {
    state
        .limiter
        .check(rules::SECOND_FACTOR_ACCOUNT, &viewer.user_id.to_string())
        .await?;
    let mut conn = state.conn().await?;
    let user = queries::user_by_id(&mut conn, viewer.user_id).await?;
    let (Some(sealed), false) = (user.totp_secret.as_ref(), user.two_factor_enabled()) else {
        return Ok(see_other("/settings"));
    };
    let secret = state
        .config
        .master_keys
        .open(sealed, &totp::seal_context(viewer.user_id))
        .map_err(AppError::internal)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let Some(step) = totp::check(&secret, &form.code, now) else {
        let mut errors = FieldErrors::default();
        errors.add(
            "code",
            "That code is not valid. Check the app shows siteward and try the current code.",
        );
        return html_invalid(&TwoFactorSetupPage {
            nav: Some(Nav::new(&viewer, &csrf)),
            secret_base32: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(&secret, &viewer.email),
            errors,
        });
    };
    let codes = totp::new_recovery_codes();
    let hashes = codes.iter().map(|(_, hash)| hash.clone()).collect();
    {
        let viewer = viewer.clone();
        conn.transaction::<_, AppError, _>(async move |conn| {
            queries::enable_totp(conn, viewer.user_id, step, hashes).await?;
            // Other devices signed in with the password alone sign in again, with the code.
            session::delete_others(conn, viewer.user_id, viewer.session_id).await?;
            queries::audit_person(
                conn,
                Some(viewer.user_id),
                &viewer.email,
                &viewer.ip,
                "two_factor.enabled",
                json!({}),
            )
            .await?;
            Ok(())
        })
        .await?;
    }
    html(&RecoveryCodesPage {
        nav: Some(Nav::new(&viewer, &csrf)),
        codes: codes.into_iter().map(|(code, _)| code).collect(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DisableForm {
    disable_password: String,
    code: String,
}

async fn two_factor_disable(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Form(form): Form<DisableForm>,
) -> Page {
    state
        .limiter
        .check(rules::SECOND_FACTOR_ACCOUNT, &viewer.user_id.to_string())
        .await?;
    let mut conn = state.conn().await?;
    let user = queries::user_by_id(&mut conn, viewer.user_id).await?;
    let mut errors = FieldErrors::default();
    if !password::verify(form.disable_password, user.password_hash.clone()).await {
        errors.add("disable_password", "is not your current password");
    } else if check_second_factor(&state, &mut conn, viewer.user_id, &form.code)
        .await?
        .is_none()
    {
        errors.add(
            "code",
            "is not a valid code from your app or a recovery code",
        );
    }
    if !errors.is_empty() {
        queries::audit_person(
            &mut conn,
            Some(viewer.user_id),
            &viewer.email,
            &viewer.ip,
            "two_factor.disable_failed",
            json!({}),
        )
        .await?;
        return settings_with_errors(&mut conn, &viewer, &csrf, &user, errors).await;
    }
    {
        let viewer = viewer.clone();
        conn.transaction::<_, AppError, _>(async move |conn| {
            queries::disable_totp(conn, viewer.user_id).await?;
            queries::audit_person(
                conn,
                Some(viewer.user_id),
                &viewer.email,
                &viewer.ip,
                "two_factor.disabled",
                json!({}),
            )
            .await?;
            Ok(())
        })
        .await?;
    }
    Ok(see_other("/settings"))
}

/// The settings page again, with the errors of one of its forms.
async fn settings_with_errors(
    conn: &mut diesel_async::AsyncPgConnection,
    viewer: &Viewer,
    csrf: &CsrfToken,
    user: &queries::UserRow,
    errors: FieldErrors,
) -> Page {
    let recovery_codes_left = queries::unused_recovery_codes(conn, viewer.user_id).await?;
    html_invalid(&SettingsPage {
        org_name: viewer
            .current
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        nav: Some(Nav::new(viewer, csrf)),
        two_factor: user.two_factor_enabled(),
        recovery_codes_left,
        errors,
        notice: None,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordChangeForm {
    current_password: String,
    password: String,
    password_confirm: String,
}

/// Changes the password of the signed-in person; every other session of theirs ends.
async fn change_password(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Form(form): Form<PasswordChangeForm>,
) -> Page {
    state
        .limiter
        .check(rules::SIGN_IN_ACCOUNT, &viewer.email)
        .await?;
    let mut conn = state.conn().await?;
    let user = queries::user_by_id(&mut conn, viewer.user_id).await?;
    let mut errors = FieldErrors::default();
    if !password::verify(form.current_password, user.password_hash.clone()).await {
        errors.add("current_password", "is not your current password");
    }
    password::check_new(&form.password, "password", &mut errors);
    if form.password != form.password_confirm {
        errors.add("password_confirm", "does not match the new password");
    }
    if !errors.is_empty() {
        return settings_with_errors(&mut conn, &viewer, &csrf, &user, errors).await;
    }
    let hash = password::hash(form.password).await;
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::set_password(conn, viewer.user_id, &hash).await?;
        let ended = session::delete_others(conn, viewer.user_id, viewer.session_id).await?;
        queries::audit_person(
            conn,
            Some(viewer.user_id),
            &viewer.email,
            &viewer.ip,
            "password.changed",
            json!({"other_sessions_ended": ended}),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(see_other("/settings?notice=password-changed"))
}
