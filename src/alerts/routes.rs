//! The alerts inbox and API: list with filters, acknowledge (any member, one or many), resolve
//! by hand (admins), and the rule settings.

use std::collections::BTreeMap;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::notifications::{self, Channel, ChannelInput, Created, Delivery};
use super::queries::{self, Alert, Filter, RuleSetting};
use super::rules::{self, Severity};
use super::views::{ChannelForm, InboxPage, NotificationsPage};
use crate::audit::{self, Entry};
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, see_other};
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::pagination::{Page as ListPage, PageQuery};
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_get("/alerts", member, inbox_page),
        page_post("/alerts/acknowledge", member, acknowledge_form)
            .example("alert_{alert_id}=on"),
        page_post("/alerts/{alert_id}/resolve", admin, resolve_form),
        api(Method::GET, "/api/v1/alerts", Role::Member, api_alerts)
            .summary("List alerts, newest first; filter by state (live, open, acknowledged, resolved, all), severity, target_id, client_id")
            .response::<ListPage<Alert>>()
            .paginated(),
        api(Method::GET, "/api/v1/alerts/{alert_id}", Role::Member, api_alert)
            .summary("Get an alert")
            .response::<Alert>(),
        api(
            Method::POST,
            "/api/v1/alerts/{alert_id}/acknowledge",
            // A write: it silences repeat notifications. Read keys may not; members acknowledge
            // in the dashboard.
            Role::Admin,
            api_acknowledge,
        )
        .summary("Acknowledge an open alert (read-write keys)")
        .response::<Alert>(),
        api(Method::POST, "/api/v1/alerts/{alert_id}/resolve", Role::Admin, api_resolve)
            .summary("Resolve an alert by hand")
            .response::<Alert>(),
        page_get("/settings/notifications", admin, notifications_page),
        page_post("/settings/notifications", admin, create_channel_form)
            .example("name=Ops+{unique}&kind=email&to=ops%40example.com&min_severity=high"),
        page_post("/settings/notifications/{channel_id}/test", admin, test_channel_form),
        page_post("/settings/notifications/{channel_id}/delete", admin, delete_channel_form),
        api(Method::GET, "/api/v1/notification-channels", Role::Admin, api_channels)
            .summary("List notification channels (addresses and URLs redacted)")
            .response::<Vec<Channel>>(),
        api(Method::POST, "/api/v1/notification-channels", Role::Admin, api_create_channel)
            .summary("Add a channel: email, signed webhook (its secret is returned once) or Slack")
            .example(r#"{"name": "Ops {unique}", "kind": "email", "to": "ops@example.com", "min_severity": "high"}"#)
            .request::<ChannelInput>()
            .response::<Created>()
            .success(201),
        api(
            Method::DELETE,
            "/api/v1/notification-channels/{channel_id}",
            Role::Admin,
            api_delete_channel,
        )
        .summary("Delete a channel")
        .success(204),
        api(
            Method::POST,
            "/api/v1/notification-channels/{channel_id}/test",
            Role::Admin,
            api_test_channel,
        )
        .summary("Queue a test message to a channel")
        .success(202),
        api(Method::GET, "/api/v1/notification-deliveries", Role::Admin, api_deliveries)
            .summary("The latest 200 deliveries with status, attempts and response code")
            .response::<Vec<Delivery>>(),
        api(Method::GET, "/api/v1/alert-rules", Role::Member, api_rules)
            .summary("The alert rules with the organization's severities and target overrides")
            .response::<Vec<RuleSetting>>(),
        api(Method::PUT, "/api/v1/alert-rules/{rule}", Role::Admin, api_set_rule)
            .summary("Set a rule's severity and switch for the organization, or for one target")
            .example(r#"{"severity": "critical", "enabled": true}"#)
            .request::<RuleInput>()
            .response::<Vec<RuleSetting>>(),
    ]
}

// ---- actions shared by pages and the API ----

async fn acknowledge(state: &AppState, ctx: &OrgCtx, ids: &[i64]) -> Result<usize, AppError> {
    let mut conn = state.conn().await?;
    for id in ids {
        queries::alert(&mut conn, ctx, *id).await?;
    }
    ctx.require(Role::Member)?;
    let ctx = ctx.clone();
    let ids = ids.to_vec();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let mut done = 0;
        for id in ids {
            if queries::acknowledge(conn, &ctx, id, ctx.actor.user_id()).await? {
                audit::record(
                    conn,
                    Entry::by(&ctx, "alert.acknowledged", format!("alert {id}")),
                )
                .await?;
                done += 1;
            }
        }
        Ok(done)
    })
    .await
}

async fn resolve(state: &AppState, ctx: &OrgCtx, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    queries::alert(&mut conn, ctx, id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        if !queries::resolve(conn, &ctx, id, ctx.actor.user_id()).await? {
            return Err(AppError::Conflict("the alert is already resolved".into()));
        }
        audit::record(
            conn,
            Entry::by(&ctx, "alert.resolved", format!("alert {id}")),
        )
        .await?;
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct FilterQuery {
    state: Option<String>,
    severity: Option<String>,
    target_id: Option<String>,
    client_id: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

impl FilterQuery {
    fn parse(&self) -> Result<(Filter, PageQuery), AppError> {
        if let Some(state) = &self.state
            && !["live", "open", "acknowledged", "resolved", "all", ""].contains(&state.as_str())
        {
            return Err(AppError::invalid(
                "state",
                "must be live, open, acknowledged, resolved or all",
            ));
        }
        let severity = self.severity.clone().filter(|s| !s.is_empty());
        if let Some(severity) = &severity
            && Severity::parse(severity).is_none()
        {
            return Err(AppError::invalid(
                "severity",
                "must be info, low, medium, high or critical",
            ));
        }
        let id = |text: &Option<String>, field: &str| -> Result<Option<i64>, AppError> {
            match text.as_deref().filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) => t
                    .parse()
                    .map(Some)
                    .map_err(|_| AppError::invalid(field, "must be an id")),
            }
        };
        Ok((
            Filter {
                state: self.state.clone().filter(|s| !s.is_empty()),
                severity,
                target_id: id(&self.target_id, "target_id")?,
                client_id: id(&self.client_id, "client_id")?,
            },
            PageQuery {
                limit: self.limit,
                cursor: self.cursor.clone(),
            },
        ))
    }
}

// ---- pages ----

async fn inbox_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<FilterQuery>,
) -> Page {
    page.require(Role::Member)?;
    let (filter, paging) = query.parse()?;
    let request = paging.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list(&mut conn, &page, &filter, request).await?;
    let list = ListPage::from_rows(rows, request, |a| a.id);
    let rules = queries::rule_settings(&mut conn, &page).await?;
    let everything = crate::web::pagination::PageRequest {
        before_id: None,
        limit: 500,
    };
    let clients = sites::list_clients(&mut conn, &page, everything)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let targets = sites::list_targets(&mut conn, &page, filter.client_id, everything)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    html(&InboxPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        alerts: list.items,
        state: filter.state.unwrap_or_else(|| "live".into()),
        severity: filter.severity.unwrap_or_default(),
        client_id: filter.client_id,
        target_id: filter.target_id,
        clients,
        targets,
        next_cursor: list.next_cursor,
        rules,
        notice: None,
    })
}

/// Checkboxes are named `alert_<id>`.
fn selected(fields: &BTreeMap<String, String>) -> Result<Vec<i64>, AppError> {
    fields
        .keys()
        .filter_map(|k| k.strip_prefix("alert_"))
        .map(object_id)
        .collect()
}

async fn acknowledge_form(
    state: web::Data<AppState>,
    page: PageCtx,
    Form(fields): Form<BTreeMap<String, String>>,
) -> Page {
    let ids = selected(&fields)?;
    if ids.is_empty() {
        return Err(AppError::BadRequest("select at least one alert".into()).into());
    }
    acknowledge(&state, &page, &ids).await?;
    Ok(see_other("/alerts"))
}

async fn resolve_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<BTreeMap<String, String>>,
) -> Page {
    resolve(&state, &page, object_id(&path)?).await?;
    Ok(see_other("/alerts"))
}

// ---- API ----

async fn api_alerts(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<FilterQuery>,
) -> Api<web::Json<ListPage<Alert>>> {
    let (filter, paging) = query.parse()?;
    let request = paging.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list(&mut conn, &ctx, &filter, request).await?;
    Ok(web::Json(ListPage::from_rows(rows, request, |a| a.id)))
}

async fn api_alert(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Alert>> {
    let mut conn = state.conn().await?;
    Ok(web::Json(
        queries::alert(&mut conn, &ctx, object_id(&path)?).await?,
    ))
}

async fn api_acknowledge(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Alert>> {
    let id = object_id(&path)?;
    // Through the API, acknowledging is a write (it silences repeat notifications): read keys
    // may not. People acknowledge as members in the dashboard.
    ctx.require(Role::Admin)?;
    acknowledge(&state, &ctx, &[id]).await?;
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::alert(&mut conn, &ctx, id).await?))
}

async fn api_resolve(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Alert>> {
    let id = object_id(&path)?;
    resolve(&state, &ctx, id).await?;
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::alert(&mut conn, &ctx, id).await?))
}

async fn api_rules(state: web::Data<AppState>, ctx: ApiCtx) -> Api<web::Json<Vec<RuleSetting>>> {
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::rule_settings(&mut conn, &ctx).await?))
}

/// `PUT /api/v1/alert-rules/{rule}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub severity: String,
    pub enabled: bool,
    /// Set only this target's rule; absent: the organization's default.
    pub target_id: Option<i64>,
}

async fn api_set_rule(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<RuleInput>,
) -> Api<web::Json<Vec<RuleSetting>>> {
    let rule = path.into_inner();
    if rules::default_severity(&rule).is_none() {
        return Err(AppError::NotFound.into());
    }
    let mut conn = state.conn().await?;
    if let Some(target) = body.target_id {
        sites::target(&mut conn, &ctx, target).await?;
    }
    ctx.require(Role::Admin)?;
    let severity = Severity::parse(&body.severity).ok_or_else(|| {
        AppError::invalid("severity", "must be info, low, medium, high or critical")
    })?;
    let ctx2 = ctx.0.clone();
    let enabled = body.enabled;
    let target = body.target_id;
    conn.transaction::<_, AppError, _>(async move |conn| {
        queries::set_rule(conn, &ctx2, target, &rule, severity, enabled).await?;
        audit::record(
            conn,
            Entry::by(&ctx2, "alert_rule.changed", format!("rule {rule}")).detail(json!({
                "severity": severity.as_str(), "enabled": enabled, "target": target
            })),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(web::Json(queries::rule_settings(&mut conn, &ctx).await?))
}

// ---- notification channels ----

async fn add_channel(
    state: &AppState,
    ctx: &OrgCtx,
    input: ChannelInput,
) -> Result<Created, AppError> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    let ctx = ctx.clone();
    let keys = state.config.master_keys.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let created = notifications::create(conn, &keys, &ctx, &input).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "notification_channel.created",
                format!("channel {}", created.channel.id),
            )
            .detail(json!({"kind": created.channel.kind, "to": created.channel.display})),
        )
        .await?;
        Ok(created)
    })
    .await
}

async fn remove_channel(state: &AppState, ctx: &OrgCtx, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    notifications::channel(&mut conn, ctx, id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        notifications::delete(conn, &ctx, id).await?;
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "notification_channel.deleted",
                format!("channel {id}"),
            ),
        )
        .await?;
        Ok(())
    })
    .await
}

async fn test_channel(state: &AppState, ctx: &OrgCtx, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    notifications::channel(&mut conn, ctx, id).await?;
    ctx.require(Role::Admin)?;
    state
        .limiter
        .check_requested_mail(
            &mut conn,
            crate::web::rate_limit::rules::TEST_SEND_ORG,
            ctx.org_id,
            &format!("channel:{id}"),
        )
        .await?;
    notifications::test_send(&mut conn, ctx, id).await?;
    state.jobs_ready.notify_waiters();
    Ok(())
}

async fn render_notifications(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    form: ChannelForm,
    errors: crate::web::FieldErrors,
    signing_secret: Option<String>,
    notice: Option<String>,
) -> Page {
    let mut conn = state.conn().await?;
    let view = NotificationsPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        channels: notifications::list(&mut conn, page).await?,
        deliveries: notifications::deliveries(&mut conn, page, 50).await?,
        form,
        errors,
        signing_secret,
        notice,
    };
    crate::layout::html_form(&view, &view.errors)
}

async fn notifications_page(state: web::Data<AppState>, page: PageCtx, csrf: CsrfToken) -> Page {
    page.require(Role::Admin)?;
    let form = ChannelForm {
        kind: "email".into(),
        min_severity: "medium".into(),
        ..ChannelForm::default()
    };
    render_notifications(&state, &page, &csrf, form, Default::default(), None, None).await
}

async fn create_channel_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<ChannelForm>,
) -> Page {
    let input = ChannelInput {
        name: form.name.clone(),
        kind: form.kind.clone(),
        to: form.to.clone(),
        min_severity: Some(form.min_severity.clone()).filter(|s| !s.is_empty()),
    };
    match add_channel(&state, &page, input).await {
        Ok(created) => {
            render_notifications(
                &state,
                &page,
                &csrf,
                ChannelForm {
                    kind: "email".into(),
                    min_severity: "medium".into(),
                    ..Default::default()
                },
                Default::default(),
                created.signing_secret,
                Some(format!("Channel “{}” added.", created.channel.name)),
            )
            .await
        }
        Err(AppError::Invalid(errors)) => {
            render_notifications(&state, &page, &csrf, form, errors, None, None).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn test_channel_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<BTreeMap<String, String>>,
) -> Page {
    test_channel(&state, &page, object_id(&path)?).await?;
    Ok(see_other("/settings/notifications"))
}

async fn delete_channel_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<BTreeMap<String, String>>,
) -> Page {
    remove_channel(&state, &page, object_id(&path)?).await?;
    Ok(see_other("/settings/notifications"))
}

async fn api_channels(state: web::Data<AppState>, ctx: ApiCtx) -> Api<web::Json<Vec<Channel>>> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(notifications::list(&mut conn, &ctx).await?))
}

async fn api_create_channel(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    body: web::Json<ChannelInput>,
) -> Api<HttpResponse> {
    let created = add_channel(&state, &ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn api_delete_channel(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    remove_channel(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_test_channel(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    test_channel(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::Accepted().finish())
}

async fn api_deliveries(state: web::Data<AppState>, ctx: ApiCtx) -> Api<web::Json<Vec<Delivery>>> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(
        notifications::deliveries(&mut conn, &ctx, 200).await?,
    ))
}
