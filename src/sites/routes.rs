//! Client and target pages and API. Page and API handlers share one function per action, so
//! both check the same roles, validate the same way and write the same audit entries.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::queries::{self, Client, ClientFields, Target};
use super::target_input::{TargetInput, validate};
use super::views::*;
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::db::DbError;
use crate::layout::{Nav, html, html_form, see_other};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::pagination::{Page as ListPage, PageQuery};
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_get("/clients", member, clients_page),
        page_get("/clients/new", admin, new_client_page),
        page_post("/clients", admin, create_client_form).example("name=Client+{unique}&notes=Shop"),
        page_get("/clients/{client_id}", member, client_page),
        page_get("/clients/{client_id}/edit", admin, edit_client_page),
        page_post("/clients/{client_id}", admin, update_client_form)
            .example("name=Client+{unique}&notes=Renamed"),
        page_post("/clients/{client_id}/delete", admin, delete_client_form),
        page_get("/clients/{client_id}/targets/new", admin, new_target_page),
        page_post("/clients/{client_id}/targets", admin, create_target_form).example(
            "url=https%3A%2F%2Fshop-{unique}.example.com%2F&viewport_width=1280&viewport_height=800&consent_mode=none&wait_ms=1000&schedule=0+6+*+*+*&enabled=on",
        ),
        page_get("/targets/{target_id}", member, target_page),
        page_get("/targets/{target_id}/edit", admin, edit_target_page),
        page_post("/targets/{target_id}", admin, update_target_form).example(
            "url=https%3A%2F%2Fshop-{unique}.example.com%2Fnew&viewport_width=1280&viewport_height=800&consent_mode=accept&wait_ms=500&schedule=&enabled=on",
        ),
        page_post("/targets/{target_id}/delete", admin, delete_target_form),
        api(Method::GET, "/api/v1/clients", Role::Member, api_clients)
            .summary("List clients, newest first (cursor pagination)")
            .response::<ListPage<Client>>()
            .paginated(),
        api(Method::POST, "/api/v1/clients", Role::Admin, api_create_client)
            .summary("Create a client")
            .example(r#"{"name": "Client {unique}", "notes": "Online shop"}"#)
            .request::<ClientInput>()
            .response::<Client>()
            .success(201),
        api(Method::GET, "/api/v1/clients/{client_id}", Role::Member, api_client)
            .summary("Get a client")
            .response::<Client>(),
        api(Method::PATCH, "/api/v1/clients/{client_id}", Role::Admin, api_update_client)
            .summary("Change a client's name or notes")
            .example(r#"{"notes": "Renamed {unique}"}"#)
            .request::<ClientPatch>()
            .response::<Client>(),
        api(Method::DELETE, "/api/v1/clients/{client_id}", Role::Admin, api_delete_client)
            .summary("Delete a client and its targets")
            .success(204),
        api(Method::GET, "/api/v1/clients/{client_id}/targets", Role::Member, api_client_targets)
            .summary("List a client's targets, newest first")
            .response::<ListPage<TargetBody>>()
            .paginated(),
        api(Method::POST, "/api/v1/clients/{client_id}/targets", Role::Admin, api_create_target)
            .summary("Add a target to a client")
            .example(r#"{"url": "https://shop-{unique}.example.com/", "schedule": "0 6 * * *", "consent_mode": "reject"}"#)
            .request::<TargetInput>()
            .response::<TargetBody>()
            .success(201),
        api(Method::GET, "/api/v1/targets", Role::Member, api_targets)
            .summary("List all targets of the organization, newest first")
            .response::<ListPage<TargetBody>>()
            .paginated(),
        api(Method::GET, "/api/v1/targets/{target_id}", Role::Member, api_target)
            .summary("Get a target")
            .response::<TargetBody>(),
        api(Method::PATCH, "/api/v1/targets/{target_id}", Role::Admin, api_update_target)
            .summary("Change a target's settings (fields left out stay as they are)")
            .example(r#"{"enabled": false, "wait_ms": 2500, "dwell_ms": 5000}"#)
            .request::<TargetInput>()
            .response::<TargetBody>(),
        api(Method::DELETE, "/api/v1/targets/{target_id}", Role::Admin, api_delete_target)
            .summary("Delete a target")
            .success(204),
    ]
}

// ---- actions shared by pages and the API ----

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// 1–100 characters, unique in the organization (case-insensitive).
    pub name: String,
    #[serde(default)]
    pub notes: String,
    /// Whom the client's reports are for.
    #[serde(default)]
    pub contact_name: String,
    /// Where scheduled reports go; empty: nowhere.
    #[serde(default)]
    pub contact_email: String,
    /// `weekly` or `monthly`: mail the contact a report of each period; absent or empty: none.
    #[serde(default)]
    pub report_schedule: Option<String>,
    /// Scheduled mails carry the report's PDF (they wait for it to be printed).
    #[serde(default)]
    pub report_attach_pdf: bool,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub notes: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// `weekly`, `monthly`, or empty for none.
    pub report_schedule: Option<String>,
    pub report_attach_pdf: Option<bool>,
}

impl From<ClientInput> for ClientFields {
    fn from(input: ClientInput) -> ClientFields {
        ClientFields {
            name: input.name,
            notes: input.notes,
            contact_name: input.contact_name,
            contact_email: input.contact_email,
            report_schedule: input.report_schedule.unwrap_or_default(),
            report_attach_pdf: input.report_attach_pdf,
        }
    }
}

/// Checks a client's fields and returns them trimmed.
fn check_client(fields: ClientFields) -> Result<ClientFields, AppError> {
    let fields = ClientFields {
        name: fields.name.trim().to_string(),
        notes: fields.notes.trim().to_string(),
        contact_name: fields.contact_name.trim().to_string(),
        contact_email: fields.contact_email.trim().to_string(),
        report_schedule: fields.report_schedule.trim().to_string(),
        report_attach_pdf: fields.report_attach_pdf,
    };
    let mut errors = FieldErrors::default();
    crate::auth::routes::check_name(&fields.name, "name", &mut errors);
    if fields.notes.chars().count() > 2000 {
        errors.add("notes", "must be at most 2000 characters");
    }
    if fields.contact_name.chars().count() > 100 {
        errors.add("contact_name", "must be at most 100 characters");
    }
    if !fields.contact_email.is_empty()
        && (!crate::auth::queries::looks_like_email(&fields.contact_email)
            || fields
                .contact_email
                .parse::<lettre::message::Mailbox>()
                .is_err())
    {
        errors.add("contact_email", "is not an email address");
    }
    match fields.report_schedule.as_str() {
        "" => {}
        "weekly" | "monthly" if !fields.contact_email.is_empty() => {}
        "weekly" | "monthly" => errors.add("contact_email", "is needed to mail scheduled reports"),
        _ => errors.add("report_schedule", "must be weekly, monthly or empty"),
    }
    errors.into_result().map(|()| fields)
}

async fn save_client(
    state: &AppState,
    ctx: &OrgCtx,
    id: Option<i64>,
    fields: ClientFields,
) -> Result<Client, AppError> {
    let mut conn = state.conn().await?;
    if let Some(id) = id {
        queries::client(&mut conn, ctx, id).await?;
    }
    ctx.require(Role::Admin)?;
    let fields = check_client(fields)?;
    let ctx = ctx.clone();
    let result = conn
        .transaction::<_, DbError, _>(async move |conn| {
            let client = match id {
                None => queries::insert_client(conn, &ctx, &fields).await?,
                Some(id) => queries::update_client(conn, &ctx, id, &fields).await?,
            };
            let action = if id.is_none() {
                "client.created"
            } else {
                "client.updated"
            };
            audit::record(
                conn,
                Entry::by(&ctx, action, format!("client {}", client.id))
                    .detail(json!({"name": client.name})),
            )
            .await?;
            Ok::<_, DbError>(client)
        })
        .await;
    match result {
        Ok(client) => Ok(client),
        Err(DbError::Conflict(_)) => Err(AppError::invalid(
            "name",
            "another client of this organization has this name",
        )),
        Err(other) => Err(other.into()),
    }
}

async fn delete_client(state: &AppState, ctx: &OrgCtx, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    queries::client(&mut conn, ctx, id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let name = queries::delete_client(conn, &ctx, id).await?;
        audit::record(
            conn,
            Entry::by(&ctx, "client.deleted", format!("client {id}")).detail(json!({"name": name})),
        )
        .await?;
        Ok::<_, AppError>(())
    })
    .await
}

async fn save_target(
    state: &AppState,
    ctx: &OrgCtx,
    client_id: Option<i64>,
    target_id: Option<i64>,
    input: TargetInput,
) -> Result<Target, AppError> {
    let ctx = ctx.clone();
    let mut conn = state.conn().await?;
    let existing = match target_id {
        Some(id) => Some(queries::target(&mut conn, &ctx, id).await?),
        None => None,
    };
    if let Some(client_id) = client_id {
        queries::client(&mut conn, &ctx, client_id).await?;
    }
    ctx.require(Role::Admin)?;
    let values = validate(&input, existing.as_ref().map(Target::values).as_ref())
        .map_err(AppError::Invalid)?;
    if let Some(rules) = &values.crawl_rules {
        let limits = crate::crawls::progress::org_limits(&mut conn, ctx.org_id).await?;
        if let Err(error) = rules.validate(limits.max_pages) {
            let mut errors = crate::web::FieldErrors::default();
            errors.add(
                "crawl.max_pages",
                format!("{error} (your organization's cap)"),
            );
            return Err(AppError::Invalid(errors));
        }
    }
    conn.transaction::<_, AppError, _>(async move |conn| {
        let (target, action) = match (existing, client_id) {
            (Some(old), _) => (
                queries::update_target(conn, &ctx, old.id, &values).await?,
                "target.updated",
            ),
            (None, Some(client_id)) => (
                queries::insert_target(conn, &ctx, client_id, &values).await?,
                "target.created",
            ),
            (None, None) => return Err(AppError::NotFound),
        };
        audit::record(
            conn,
            Entry::by(&ctx, action, format!("target {}", target.id)).detail(json!({
                "url": target.url,
                "schedule": target.schedule,
                "compliance_schedule": target.compliance_schedule,
                "enabled": target.enabled,
                "consent_mode": target.consent_mode,
            })),
        )
        .await?;
        Ok(target)
    })
    .await
}

async fn delete_target(state: &AppState, ctx: &OrgCtx, id: i64) -> Result<Target, AppError> {
    let mut conn = state.conn().await?;
    queries::target(&mut conn, ctx, id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let target = queries::delete_target(conn, &ctx, id).await?;
        audit::record(
            conn,
            Entry::by(&ctx, "target.deleted", format!("target {id}"))
                .detail(json!({"url": target.url})),
        )
        .await?;
        Ok::<_, AppError>(target)
    })
    .await
}

// ---- pages ----

async fn clients_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<PageQuery>,
) -> Page {
    page.require(Role::Member)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list_clients(&mut conn, &page, request).await?;
    let list = ListPage::from_rows(rows, request, |c| c.id);
    html(&ClientsPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        clients: list.items,
        next_cursor: list.next_cursor,
    })
}

fn client_form(
    page: &PageCtx,
    csrf: &CsrfToken,
    client_id: Option<i64>,
    fields: ClientFields,
    errors: FieldErrors,
) -> Page {
    let view = ClientFormPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        client_id,
        fields,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn new_client_page(page: PageCtx, csrf: CsrfToken) -> Page {
    page.require(Role::Admin)?;
    client_form(
        &page,
        &csrf,
        None,
        ClientFields::default(),
        FieldErrors::default(),
    )
}

async fn create_client_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<ClientFields>,
) -> Page {
    match save_client(&state, &page, None, form.clone()).await {
        Ok(client) => Ok(see_other(&format!("/clients/{}", client.id))),
        Err(AppError::Invalid(errors)) => client_form(&page, &csrf, None, form, errors),
        Err(other) => Err(other.into()),
    }
}

async fn client_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Page {
    let id = object_id(&path)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let client = queries::client(&mut conn, &page, id).await?;
    let rows = queries::list_targets(&mut conn, &page, Some(id), request).await?;
    let list = ListPage::from_rows(rows, request, |t| t.id);
    let ids: Vec<i64> = list.items.iter().map(|t| t.id).collect();
    let compliance = crate::compliance::queries::latest_by_target(&mut conn, &page, &ids).await?;
    html(&ClientPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        client,
        targets: list.items,
        next_cursor: list.next_cursor,
        compliance,
    })
}

async fn edit_client_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let client = queries::client(&mut conn, &page, id).await?;
    page.require(Role::Admin)?;
    client_form(
        &page,
        &csrf,
        Some(id),
        client.fields(),
        FieldErrors::default(),
    )
}

async fn update_client_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    Form(form): Form<ClientFields>,
) -> Page {
    let id = object_id(&path)?;
    match save_client(&state, &page, Some(id), form.clone()).await {
        Ok(client) => Ok(see_other(&format!("/clients/{}", client.id))),
        Err(AppError::Invalid(errors)) => client_form(&page, &csrf, Some(id), form, errors),
        Err(other) => Err(other.into()),
    }
}

async fn delete_client_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    delete_client(&state, &page, object_id(&path)?).await?;
    Ok(see_other("/clients"))
}

impl TargetForm {
    fn from_target(target: &Target) -> TargetForm {
        TargetForm {
            name: target.name.clone(),
            url: target.url.clone(),
            viewport_width: target.viewport_width.to_string(),
            viewport_height: target.viewport_height.to_string(),
            consent_mode: target.consent_mode.clone(),
            capture_policy_pages: target.capture_policy_pages.then(|| "on".into()),
            wait_ms: target.wait_ms.to_string(),
            dwell_ms: target.dwell_ms.to_string(),
            device: target.device.clone(),
            languages: target.languages.clone(),
            timezone: target.timezone.clone(),
            schedule: target.schedule.clone().unwrap_or_default(),
            compliance_schedule: target.compliance_schedule.clone().unwrap_or_default(),
            compliance_gpc: target.compliance_gpc.then(|| "on".into()),
            enabled: target.enabled.then(|| "on".into()),
            page_kind: target.page_kind.clone(),
            visual_threshold: target.visual_threshold.to_string(),
            ignore_selectors: target.selectors().join("\n"),
            ignore_regions: target
                .regions()
                .iter()
                .map(|r| format!("{},{},{},{}", r.x, r.y, r.width, r.height))
                .collect::<Vec<_>>()
                .join("\n"),
            ..TargetForm::crawl_fields(target.kind.clone(), &target.rules().unwrap_or_default())
        }
    }

    /// The crawl fields of the form, showing `rules`.
    fn crawl_fields(kind: String, rules: &scanner::crawl::CrawlRules) -> TargetForm {
        let lines = |patterns: &[scanner::crawl::Pattern]| {
            patterns
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let on = |flag: bool| flag.then(|| "on".to_owned());
        TargetForm {
            kind,
            crawl_max_pages: rules.max_pages.to_string(),
            crawl_max_depth: rules.max_depth.to_string(),
            crawl_per_template: rules.per_template.to_string(),
            crawl_include: lines(&rules.include),
            crawl_exclude: lines(&rules.exclude),
            crawl_sitemaps: on(rules.sitemaps),
            crawl_one_session: on(rules.one_session),
            crawl_respect_robots: on(rules.respect_robots),
            ..TargetForm::default()
        }
    }

    fn blank() -> TargetForm {
        // The viewport stays empty: a new target gets its device's.
        TargetForm {
            consent_mode: "none".into(),
            capture_policy_pages: Some("on".into()),
            wait_ms: super::target_input::DEFAULT_WAIT_MS.to_string(),
            dwell_ms: super::target_input::DEFAULT_DWELL_MS.to_string(),
            device: scanner::profile::Device::default().as_str().into(),
            languages: scanner::profile::DEFAULT_LANGUAGES.join(","),
            timezone: scanner::profile::DEFAULT_TIMEZONE.into(),
            enabled: Some("on".into()),
            compliance_gpc: Some("on".into()),
            page_kind: "page".into(),
            visual_threshold: "1".into(),
            ..TargetForm::crawl_fields("page".into(), &scanner::crawl::CrawlRules::default())
        }
    }

    /// Numbers typed into the form; a non-number is a field error of its own.
    fn to_input(&self) -> Result<TargetInput, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut number = |text: &str, field: &str| -> Option<i64> {
            let text = text.trim();
            if text.is_empty() {
                return None;
            }
            match text.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.add(field, "must be a whole number");
                    None
                }
            }
        };
        let input = TargetInput {
            name: Some(self.name.clone()),
            url: Some(self.url.clone()),
            viewport_width: number(&self.viewport_width, "viewport_width"),
            viewport_height: number(&self.viewport_height, "viewport_height"),
            consent_mode: Some(self.consent_mode.clone()),
            capture_policy_pages: Some(self.capture_policy_pages.is_some()),
            wait_ms: number(&self.wait_ms, "wait_ms"),
            dwell_ms: number(&self.dwell_ms, "dwell_ms"),
            device: (!self.device.trim().is_empty()).then(|| self.device.clone()),
            languages: (!self.languages.trim().is_empty()).then(|| self.languages.clone()),
            timezone: (!self.timezone.trim().is_empty()).then(|| self.timezone.clone()),
            schedule: Some(self.schedule.clone()),
            compliance_schedule: Some(self.compliance_schedule.clone()),
            compliance_gpc: Some(self.compliance_gpc.is_some()),
            enabled: Some(self.enabled.is_some()),
            page_kind: (!self.page_kind.trim().is_empty()).then(|| self.page_kind.clone()),
            visual_threshold: None,
            ignore_selectors: Some(self.ignore_selectors.lines().map(str::to_string).collect()),
            ignore_regions: None,
            kind: (!self.kind.trim().is_empty()).then(|| self.kind.clone()),
            crawl: None,
        };
        let mut input = input;
        if self.kind == "site" {
            let lines = |text: &str| Some(text.lines().map(str::to_string).collect());
            input.crawl = Some(super::target_input::CrawlInput {
                max_pages: number(&self.crawl_max_pages, "crawl.max_pages"),
                max_depth: number(&self.crawl_max_depth, "crawl.max_depth"),
                per_template: number(&self.crawl_per_template, "crawl.per_template"),
                include: lines(&self.crawl_include),
                exclude: lines(&self.crawl_exclude),
                sitemaps: Some(self.crawl_sitemaps.is_some()),
                one_session: Some(self.crawl_one_session.is_some()),
                respect_robots: Some(self.crawl_respect_robots.is_some()),
            });
        }
        let threshold = self.visual_threshold.trim();
        if !threshold.is_empty() {
            match threshold.parse::<f64>() {
                Ok(value) => input.visual_threshold = Some(value),
                Err(_) => errors.add("visual_threshold", "must be a number"),
            }
        }
        match super::target_input::parse_regions(&self.ignore_regions) {
            Ok(regions) => input.ignore_regions = Some(regions),
            Err(message) => errors.add("ignore_regions", message),
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }
}

fn target_form(
    page: &PageCtx,
    csrf: &CsrfToken,
    client: Client,
    target_id: Option<i64>,
    form: TargetForm,
    errors: FieldErrors,
) -> Page {
    let view = TargetFormPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        client,
        target_id,
        form,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn new_target_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let client = queries::client(&mut conn, &page, id).await?;
    page.require(Role::Admin)?;
    target_form(
        &page,
        &csrf,
        client,
        None,
        TargetForm::blank(),
        FieldErrors::default(),
    )
}

async fn submit_target(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    client_id: Option<i64>,
    target_id: Option<i64>,
    form: TargetForm,
) -> Page {
    let mut conn = state.conn().await?;
    let client_of_form = match (client_id, target_id) {
        (Some(id), _) => queries::client(&mut conn, page, id).await?,
        (None, Some(id)) => {
            let target = queries::target(&mut conn, page, id).await?;
            queries::client(&mut conn, page, target.client_id).await?
        }
        (None, None) => return Err(AppError::NotFound.into()),
    };
    page.require(Role::Admin)?;
    drop(conn);
    let input = match form.to_input() {
        Ok(input) => input,
        Err(errors) => return target_form(page, csrf, client_of_form, target_id, form, errors),
    };
    match save_target(state, page, client_id, target_id, input).await {
        Ok(target) => Ok(see_other(&format!("/targets/{}", target.id))),
        Err(AppError::Invalid(errors)) => {
            target_form(page, csrf, client_of_form, target_id, form, errors)
        }
        Err(other) => Err(other.into()),
    }
}

async fn create_target_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    Form(form): Form<TargetForm>,
) -> Page {
    let id = object_id(&path)?;
    submit_target(&state, &page, &csrf, Some(id), None, form).await
}

async fn target_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = queries::target(&mut conn, &page, id).await?;
    let client = queries::client(&mut conn, &page, target.client_id).await?;
    let checkout_tests = crate::checkouts::queries::summaries(&mut conn, &page, id).await?;
    let payment_window = if target.page_kind == "payment" {
        Some(crate::payment::cadence::window(&mut conn, &target).await?)
    } else {
        None
    };
    html(&TargetPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        client,
        target,
        checkout_tests,
        payment_window,
    })
}

async fn edit_target_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = queries::target(&mut conn, &page, id).await?;
    let client = queries::client(&mut conn, &page, target.client_id).await?;
    page.require(Role::Admin)?;
    target_form(
        &page,
        &csrf,
        client,
        Some(id),
        TargetForm::from_target(&target),
        FieldErrors::default(),
    )
}

async fn update_target_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    Form(form): Form<TargetForm>,
) -> Page {
    let id = object_id(&path)?;
    submit_target(&state, &page, &csrf, None, Some(id), form).await
}

async fn delete_target_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let target = delete_target(&state, &page, object_id(&path)?).await?;
    Ok(see_other(&format!("/clients/{}", target.client_id)))
}

// ---- API ----

/// A target with when its schedule fires next.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TargetBody {
    #[serde(flatten)]
    pub target: Target,
    /// Next scheduled scan (UTC), if enabled and scheduled.
    pub next_run_at: Option<String>,
    /// Next scheduled compliance scan (UTC), if enabled and scheduled.
    pub next_compliance_run_at: Option<String>,
}

impl From<Target> for TargetBody {
    fn from(target: Target) -> TargetBody {
        TargetBody {
            next_run_at: target.next_run(),
            next_compliance_run_at: target.next_compliance_run(),
            target,
        }
    }
}

async fn api_clients(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<PageQuery>,
) -> Api<web::Json<ListPage<Client>>> {
    ctx.require(Role::Member)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list_clients(&mut conn, &ctx, request).await?;
    Ok(web::Json(ListPage::from_rows(rows, request, |c| c.id)))
}

async fn api_create_client(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    body: web::Json<ClientInput>,
) -> Api<HttpResponse> {
    let body = body.into_inner();
    let client = save_client(&state, &ctx, None, body.into()).await?;
    Ok(HttpResponse::Created().json(client))
}

async fn api_client(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Client>> {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::client(&mut conn, &ctx, id).await?))
}

async fn api_update_client(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<ClientPatch>,
) -> Api<web::Json<Client>> {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let current = queries::client(&mut conn, &ctx, id).await?;
    drop(conn);
    let body = body.into_inner();
    let fields = ClientFields {
        name: body.name.unwrap_or(current.name),
        notes: body.notes.unwrap_or(current.notes),
        contact_name: body.contact_name.unwrap_or(current.contact_name),
        contact_email: body.contact_email.unwrap_or(current.contact_email),
        report_schedule: body
            .report_schedule
            .or(current.report_schedule)
            .unwrap_or_default(),
        report_attach_pdf: body.report_attach_pdf.unwrap_or(current.report_attach_pdf),
    };
    let client = save_client(&state, &ctx, Some(id), fields).await?;
    Ok(web::Json(client))
}

async fn api_delete_client(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    delete_client(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_client_targets(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Api<web::Json<ListPage<TargetBody>>> {
    let id = object_id(&path)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    queries::client(&mut conn, &ctx, id).await?;
    let rows = queries::list_targets(&mut conn, &ctx, Some(id), request).await?;
    let page = ListPage::from_rows(rows, request, |t| t.id);
    Ok(web::Json(ListPage {
        items: page.items.into_iter().map(TargetBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn api_create_target(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<TargetInput>,
) -> Api<HttpResponse> {
    let id = object_id(&path)?;
    let target = save_target(&state, &ctx, Some(id), None, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(TargetBody::from(target)))
}

async fn api_targets(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<PageQuery>,
) -> Api<web::Json<ListPage<TargetBody>>> {
    ctx.require(Role::Member)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list_targets(&mut conn, &ctx, None, request).await?;
    let page = ListPage::from_rows(rows, request, |t| t.id);
    Ok(web::Json(ListPage {
        items: page.items.into_iter().map(TargetBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn api_target(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<TargetBody>> {
    let id = object_id(&path)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(
        queries::target(&mut conn, &ctx, id).await?.into(),
    ))
}

async fn api_update_target(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<TargetInput>,
) -> Api<web::Json<TargetBody>> {
    let id = object_id(&path)?;
    let target = save_target(&state, &ctx, None, Some(id), body.into_inner()).await?;
    Ok(web::Json(target.into()))
}

async fn api_delete_target(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    delete_target(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
