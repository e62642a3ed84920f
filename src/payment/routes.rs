//! Payment-page integrity in the dashboard and the API: a payment target's script inventory with
//! its decisions, the proposed CSP against the page's own, deciding about a version (admins),
//! and the organization's pre-authorization rules (owners set them, everyone reads them).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::csp::{self, DirectiveDifference};
use super::evidence::{self, Evidence};
use super::queries::{
    self, Decision, DecisionRecord, InventoryScript, MAX_JUSTIFICATION_CHARS, Rule,
};
use super::views::{EvidencePage, PaymentPage, RulesPage};
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, html_invalid, see_other};
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    let owner = Access::Role(Role::Owner);
    vec![
        page_get("/targets/{target_id}/payment", member, payment_page),
        page_post(
            "/payment-script-versions/{version_id}/decisions",
            admin,
            decide_form,
        ),
        page_get("/payment-rules", member, rules_page),
        page_get(
            "/clients/{client_id}/payment-evidence",
            member,
            evidence_page,
        ),
        page_get(
            "/clients/{client_id}/payment-evidence/csv",
            member,
            evidence_csv_page,
        ),
        page_post(
            "/clients/{client_id}/payment-evidence/reports",
            admin,
            freeze_form,
        )
        .example("days=90"),
        page_post("/payment-rules", owner, add_rule_form),
        page_post("/payment-rules/{rule_id}/revoke", owner, revoke_rule_form),
        api(
            Method::GET,
            "/api/v1/targets/{target_id}/payment-scripts",
            Role::Member,
            api_inventory,
        )
        .summary("A payment target's script inventory (PCI DSS 6.4.3): every script that ran with its versions, how each got onto the page, its SRI, where it stands and every decision; and the proposed Content-Security-Policy against the page's own")
        .response::<PaymentInventory>(),
        api(
            Method::POST,
            "/api/v1/payment-script-versions/{version_id}/decisions",
            Role::Admin,
            api_decide,
        )
        .summary("Authorize or reject a script version with a written justification; the latest decision stands, earlier ones stay on record")
        .request::<DecisionInput>()
        .response::<DecisionRecord>()
        .example(r#"{"decision": "authorized", "justification": "Loads the card fields"}"#)
        .success(201),
        api(
            Method::GET,
            "/api/v1/payment-script-rules",
            Role::Member,
            api_rules,
        )
        .summary("The organization's pre-authorization rules, revoked ones too")
        .response::<Vec<Rule>>(),
        api(
            Method::POST,
            "/api/v1/payment-script-rules",
            Role::Owner,
            api_add_rule,
        )
        .summary("Pre-authorize every version of the scripts from a host (or `*.domain` for its subdomains) with one justification; unreviewed versions it covers are authorized at once")
        .request::<RuleInput>()
        .response::<RuleCreated>()
        .example(r#"{"host": "js.stripe.com", "justification": "Stripe's card fields"}"#)
        .success(201),
        api(
            Method::POST,
            "/api/v1/payment-script-rules/{rule_id}/revoke",
            Role::Owner,
            api_revoke_rule,
        )
        .summary("Revoke a rule: what it authorized stays on record; new versions are unreviewed again")
        .response::<Rule>(),
        api(
            Method::GET,
            "/api/v1/clients/{client_id}/payment-evidence",
            Role::Member,
            api_evidence,
        )
        .summary("Evidence for an assessor over the last `days` days (default 90): per payment target of the client, its scan dates, the script inventory with each version's justification and decision history, every detected change, and every alert live in the period with who acknowledged and resolved it; written to the audit log")
        .example("days=90")
        .response::<Evidence>(),
        api(
            Method::GET,
            "/api/v1/clients/{client_id}/payment-evidence/csv",
            Role::Member,
            api_evidence_csv,
        )
        .summary("The same evidence as one CSV table (`record`: scan, script_version, decision, change or alert); written to the audit log")
        .example("days=90"),
        api(
            Method::POST,
            "/api/v1/clients/{client_id}/payment-evidence/reports",
            Role::Admin,
            api_freeze,
        )
        .summary("Freeze the evidence as a client report: rendered once, stored sealed, printed to PDF by a runner and shareable by link like every report; written to the audit log")
        .example(r#"{"days": 90}"#)
        .request::<FreezeRequest>()
        .response::<crate::client_reports::queries::Report>()
        .success(201),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EvidenceQuery {
    days: Option<String>,
}

/// The evidence to freeze as a report.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FreezeRequest {
    /// The period: the last `days` days (default 90, at most 400).
    pub days: Option<u32>,
}

/// How the evidence is handed over.
#[derive(Debug, Clone, Copy)]
enum Format {
    Page,
    Csv,
    Json,
    Report,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Page => "page",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Report => "report",
        }
    }
}

/// Freezes the evidence of a client of the caller's organization as a report.
async fn freeze(
    state: &AppState,
    ctx: &OrgCtx,
    client_id: i64,
    query: &EvidenceQuery,
) -> Result<crate::client_reports::queries::Report, AppError> {
    ctx.require(Role::Admin)?;
    let gathered = evidence(state, ctx, client_id, query, Format::Report).await?;
    let mut conn = state.conn().await?;
    let branding = crate::branding::queries::branding(&mut conn, ctx.org_id).await?;
    drop(conn);
    let html = evidence::render_report(&gathered, &branding, &ctx.actor.label())
        .map_err(AppError::internal)?;
    crate::client_reports::make::store(
        state,
        crate::client_reports::make::Document {
            org_id: ctx.org_id,
            client_id,
            target_id: None,
            title: &evidence::report_title(&gathered),
            period_start: gathered.period_start,
            period_end: gathered.period_end,
            created_by: ctx.actor.user_id(),
            html: &html,
        },
    )
    .await
}

/// The evidence of a client of the caller's organization, its export written to the audit log.
async fn evidence(
    state: &AppState,
    ctx: &OrgCtx,
    client_id: i64,
    query: &EvidenceQuery,
    format: Format,
) -> Result<Evidence, AppError> {
    let days = match query.days.as_deref().map(str::trim) {
        None | Some("") => 90,
        Some(text) => match text.parse::<u32>() {
            Ok(days) if (1..=evidence::MAX_DAYS).contains(&days) => days,
            _ => {
                let mut errors = FieldErrors::default();
                errors.add(
                    "days",
                    format!("must be a number of days from 1 to {}", evidence::MAX_DAYS),
                );
                return Err(AppError::Invalid(errors));
            }
        },
    };
    let mut conn = state.conn().await?;
    let client = sites::client(&mut conn, ctx, client_id).await?;
    let gathered = evidence::gather(&mut conn, ctx, &client, days).await?;
    audit::record(
        &mut conn,
        Entry::by(
            ctx,
            "payment_evidence.exported",
            format!("client {client_id}"),
        )
        .detail(serde_json::json!({
            "format": format.as_str(),
            "days": days,
            "targets": gathered.targets.len(),
        })),
    )
    .await?;
    Ok(gathered)
}

fn csv_response(gathered: &Evidence) -> Result<HttpResponse, AppError> {
    let bytes = evidence::csv(gathered).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "text/csv; charset=utf-8"))
        .insert_header((
            "content-disposition",
            format!(
                "attachment; filename=\"payment-evidence-client-{}-{}.csv\"",
                gathered.client_id,
                gathered.period_end.date()
            ),
        ))
        .body(bytes))
}

/// A payment target's inventory and CSP proposal.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PaymentInventory {
    pub target_id: i64,
    /// `payment` when the inventory is kept; for other pages it stays empty.
    pub page_kind: String,
    /// Scripts of the latest scan first.
    pub scripts: Vec<InventoryScript>,
    /// The policy that allows exactly the authorized scripts of the latest scan.
    pub proposed_csp: String,
    /// The page's own `Content-Security-Policy` in its latest scan (absent: none sent, or no
    /// scan yet).
    pub current_csp: Option<String>,
    pub csp_differences: Vec<DirectiveDifference>,
    /// The last successful scan, and whether the weekly check was missed.
    pub window: super::cadence::Window,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionInput {
    /// `authorized` or `rejected`.
    pub decision: String,
    /// Why (required, at most 2000 characters).
    pub justification: String,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleInput {
    /// `js.stripe.com`, or `*.example.com` for its subdomains.
    pub host: String,
    /// Why every version from it is authorized (required, at most 2000 characters).
    pub justification: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RuleCreated {
    pub rule: Rule,
    /// Unreviewed versions the rule authorized at once.
    pub authorized_versions: usize,
}

// ---- checks ----

fn check_justification(text: &str, errors: &mut FieldErrors) -> String {
    let text = text.trim().to_owned();
    if text.is_empty() {
        errors.add("justification", "is required: say why the script is needed");
    } else if text.chars().count() > MAX_JUSTIFICATION_CHARS {
        errors.add(
            "justification",
            format!("must be at most {MAX_JUSTIFICATION_CHARS} characters"),
        );
    }
    text
}

fn check_decision(input: &DecisionInput) -> Result<(Decision, String), AppError> {
    let mut errors = FieldErrors::default();
    let decision = Decision::parse(input.decision.trim());
    if decision.is_none() {
        errors.add("decision", "must be authorized or rejected");
    }
    let justification = check_justification(&input.justification, &mut errors);
    errors.into_result()?;
    Ok((decision.unwrap_or(Decision::Rejected), justification))
}

fn check_rule(input: &RuleInput) -> Result<(String, String), AppError> {
    let mut errors = FieldErrors::default();
    let host = input.host.trim().to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        errors.add(
            "host",
            "must be a host name such as js.stripe.com, or *.example.com for its subdomains",
        );
    }
    let justification = check_justification(&input.justification, &mut errors);
    errors.into_result()?;
    Ok((host, justification))
}

// ---- shared ----

async fn inventory_of(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
) -> Result<PaymentInventory, AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    let scripts = queries::inventory(&mut conn, ctx, target_id).await?;
    let window = super::cadence::window(&mut conn, &target).await?;
    let latest =
        crate::scans::queries::previous_snapshot(&mut conn, target_id, None, None, i64::MAX)
            .await?;
    drop(conn);
    let (page_url, current_csp) = match latest {
        Some(id) => {
            let doc = crate::scans::analysis::load_document(state, ctx.org_id, id).await?;
            let csp = doc.document_headers.as_ref().and_then(|headers| {
                let values: Vec<&str> = headers
                    .iter()
                    .filter(|h| h.name == "content-security-policy")
                    .map(|h| h.value.as_str())
                    .collect();
                (!values.is_empty()).then(|| values.join(", "))
            });
            (doc.final_url, csp)
        }
        None => (target.url.clone(), None),
    };
    let proposal = csp::propose(&page_url, &scripts);
    Ok(PaymentInventory {
        target_id,
        page_kind: target.page_kind,
        csp_differences: csp::compare(
            &proposal,
            current_csp.as_deref().map(first_policy),
            &page_url,
        ),
        proposed_csp: proposal.header_value(),
        current_csp,
        scripts,
        window,
    })
}

/// The first of several policies (a page may send several; each is enforced).
fn first_policy(value: &str) -> &str {
    value.split(", ").next().unwrap_or(value)
}

async fn decide(
    state: &AppState,
    ctx: &OrgCtx,
    version_id: i64,
    input: &DecisionInput,
) -> Result<(i64, DecisionRecord), AppError> {
    ctx.require(Role::Admin)?;
    let (decision, justification) = check_decision(input)?;
    let mut conn = state.conn().await?;
    let (version, record) =
        queries::decide(&mut conn, ctx, version_id, decision, &justification).await?;
    Ok((version.target_id, record))
}

// ---- pages ----

async fn payment_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let target_id = object_id(&path)?;
    render_payment(&state, &page, &csrf, target_id, None).await
}

async fn render_payment(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    target_id: i64,
    error: Option<(i64, FieldErrors)>,
) -> Page {
    let inventory = inventory_of(state, page, target_id).await?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, page, target_id).await?;
    drop(conn);
    let view = PaymentPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        target,
        inventory,
        error,
    };
    if view.error.is_some() {
        html_invalid(&view)
    } else {
        html(&view)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DecisionForm {
    decision: String,
    justification: String,
}

async fn decide_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    Form(form): Form<DecisionForm>,
) -> Page {
    let version_id = object_id(&path)?;
    let input = DecisionInput {
        decision: form.decision,
        justification: form.justification,
    };
    match decide(&state, &page, version_id, &input).await {
        Ok((target_id, _)) => Ok(see_other(&format!(
            "/targets/{target_id}/payment#version-{version_id}"
        ))),
        Err(AppError::Invalid(errors)) => {
            let mut conn = state.conn().await?;
            let target_id = queries::target_of_version(&mut conn, &page, version_id).await?;
            drop(conn);
            render_payment(&state, &page, &csrf, target_id, Some((version_id, errors))).await
        }
        Err(error) => Err(error.into()),
    }
}

async fn rules_page(state: web::Data<AppState>, page: PageCtx, csrf: CsrfToken) -> Page {
    render_rules(
        &state,
        &page,
        &csrf,
        RuleForm::default(),
        FieldErrors::default(),
    )
    .await
}

async fn render_rules(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    form: RuleForm,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let rules = queries::all_rules(&mut conn, page).await?;
    drop(conn);
    let invalid = !errors.is_empty();
    let view = RulesPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        rules,
        form,
        errors,
    };
    if invalid {
        html_invalid(&view)
    } else {
        html(&view)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuleForm {
    pub host: String,
    pub justification: String,
}

async fn add_rule_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<RuleForm>,
) -> Page {
    let input = RuleInput {
        host: form.host.clone(),
        justification: form.justification.clone(),
    };
    match add_rule(&state, &page, &input).await {
        Ok(_) => Ok(see_other("/payment-rules")),
        Err(AppError::Invalid(errors)) => render_rules(&state, &page, &csrf, form, errors).await,
        Err(error) => Err(error.into()),
    }
}

async fn add_rule(
    state: &AppState,
    ctx: &OrgCtx,
    input: &RuleInput,
) -> Result<RuleCreated, AppError> {
    ctx.require(Role::Owner)?;
    let (host, justification) = check_rule(input)?;
    let mut conn = state.conn().await?;
    let (rule, authorized_versions) =
        queries::add_rule(&mut conn, ctx, &host, &justification).await?;
    Ok(RuleCreated {
        rule,
        authorized_versions,
    })
}

async fn revoke_rule_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let rule_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    queries::rule(&mut conn, &page, rule_id).await?;
    page.require(Role::Owner)?;
    queries::revoke_rule(&mut conn, &page, rule_id).await?;
    Ok(see_other("/payment-rules"))
}

async fn evidence_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    query: web::Query<EvidenceQuery>,
) -> Page {
    let client_id = object_id(&path)?;
    let gathered = evidence(&state, &page, client_id, &query, Format::Page).await?;
    html(&EvidencePage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        days: (gathered.period_end - gathered.period_start).whole_days(),
        evidence: gathered,
    })
}

async fn evidence_csv_page(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    query: web::Query<EvidenceQuery>,
) -> Page {
    let client_id = object_id(&path)?;
    let gathered = evidence(&state, &page, client_id, &query, Format::Csv).await?;
    Ok(csv_response(&gathered)?)
}

async fn freeze_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    Form(form): Form<EvidenceQuery>,
) -> Page {
    let report = freeze(&state, &page, object_id(&path)?, &form).await?;
    Ok(see_other(&format!("/reports/{}", report.id)))
}

// ---- API ----

async fn api_freeze(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<FreezeRequest>,
) -> Api<HttpResponse> {
    let query = EvidenceQuery {
        days: body.days.map(|d| d.to_string()),
    };
    let report = freeze(&state, &ctx, object_id(&path)?, &query).await?;
    Ok(HttpResponse::Created().json(report))
}

async fn api_evidence(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    query: web::Query<EvidenceQuery>,
) -> Api<web::Json<Evidence>> {
    Ok(web::Json(
        evidence(&state, &ctx, object_id(&path)?, &query, Format::Json).await?,
    ))
}

async fn api_evidence_csv(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    query: web::Query<EvidenceQuery>,
) -> Api<HttpResponse> {
    let gathered = evidence(&state, &ctx, object_id(&path)?, &query, Format::Csv).await?;
    Ok(csv_response(&gathered)?)
}

async fn api_inventory(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<PaymentInventory>> {
    Ok(web::Json(
        inventory_of(&state, &ctx, object_id(&path)?).await?,
    ))
}

async fn api_decide(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<DecisionInput>,
) -> Api<HttpResponse> {
    let (_, record) = decide(&state, &ctx, object_id(&path)?, &body).await?;
    Ok(HttpResponse::Created().json(record))
}

async fn api_rules(state: web::Data<AppState>, ctx: ApiCtx) -> Api<web::Json<Vec<Rule>>> {
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::all_rules(&mut conn, &ctx).await?))
}

async fn api_add_rule(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    body: web::Json<RuleInput>,
) -> Api<HttpResponse> {
    let created = add_rule(&state, &ctx, &body).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn api_revoke_rule(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Rule>> {
    let rule_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    // Another organization's rule is not found, whatever the caller's role.
    queries::rule(&mut conn, &ctx, rule_id).await?;
    ctx.require(Role::Owner)?;
    Ok(web::Json(
        queries::revoke_rule(&mut conn, &ctx, rule_id).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_hosts_and_justifications_are_checked() {
        let ok = RuleInput {
            host: " *.Stripe.com ".into(),
            justification: "Card fields".into(),
        };
        assert_eq!(
            check_rule(&ok).unwrap(),
            ("*.stripe.com".to_owned(), "Card fields".to_owned())
        );
        for host in [
            "",
            "*",
            "stripe",
            "js.stripe.com/v3",
            "*.",
            "a..b",
            "https://x.y",
        ] {
            let bad = RuleInput {
                host: host.into(),
                justification: "x".into(),
            };
            assert!(check_rule(&bad).is_err(), "{host}");
        }
        let empty = DecisionInput {
            decision: "authorized".into(),
            justification: "   ".into(),
        };
        assert!(check_decision(&empty).is_err());
        let long = DecisionInput {
            decision: "authorized".into(),
            justification: "x".repeat(MAX_JUSTIFICATION_CHARS + 1),
        };
        assert!(check_decision(&long).is_err());
        let odd = DecisionInput {
            decision: "maybe".into(),
            justification: "why not".into(),
        };
        assert!(check_decision(&odd).is_err());
    }
}
