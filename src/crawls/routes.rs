//! Crawls in the dashboard and the API: "Crawl now" on a site target, a target's crawls, and a
//! crawl with its pages and, once built, its site snapshot.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Serialize;
use serde_json::json;

use super::queries::{self, Crawl, CrawlPage};
use super::views::{CrawlPageView, CrawlsPage};
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, see_other};
use crate::scans::queries::{Asked, Trigger};
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

/// Crawls listed per target at most.
const LISTED: i64 = 50;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_post("/targets/{site_target_id}/crawls", admin, crawl_now_form),
        page_get("/targets/{target_id}/crawls", member, crawls_page),
        page_get("/crawls/{crawl_id}", member, crawl_page),
        api(
            Method::POST,
            "/api/v1/targets/{site_target_id}/crawls",
            Role::Admin,
            api_crawl_now,
        )
        .summary("Crawl a site target now: its pages are visited as a visitor moves through the site, each an ordinary scan; the site snapshot follows when all are over")
        .response::<CrawlBody>()
        .success(202),
        api(
            Method::GET,
            "/api/v1/targets/{target_id}/crawls",
            Role::Member,
            api_crawls,
        )
        .summary("A target's crawls, newest first")
        .response::<Vec<Crawl>>(),
        api(
            Method::GET,
            "/api/v1/crawls/{crawl_id}",
            Role::Member,
            api_crawl,
        )
        .summary("One crawl: its pages (visited, under way, or unreachable with the reason) and, once built, the site snapshot (every cookie, third-party host, script and tracker with its pages)")
        .response::<CrawlBody>(),
    ]
}

/// A crawl with its pages and, once done, its site snapshot.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CrawlBody {
    #[serde(flatten)]
    pub crawl: Crawl,
    pub pages: Vec<CrawlPage>,
    /// Present once the state is `done` (`scanner::crawl::SiteSnapshot`).
    #[schemars(with = "Option<serde_json::Value>")]
    pub site: Option<scanner::crawl::SiteSnapshot>,
}

/// Starts a crawl of a site target of the caller's organization.
async fn crawl_now(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    trigger: Trigger,
) -> Result<i64, AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    ctx.require(Role::Admin)?;
    if !target.is_site() {
        return Err(AppError::Conflict(
            "this target scans one page; make it a site target (kind site) to crawl it".into(),
        ));
    }
    if queries::has_open_crawl(&mut conn, target_id).await? {
        return Err(AppError::Conflict(
            "the target's last crawl is not over yet".into(),
        ));
    }
    let ctx = ctx.clone();
    let crawl_id = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let asked = Asked {
                org_id: ctx.org_id,
                trigger,
                requested_by: ctx.actor.user_id(),
                max_attempts: 3,
            };
            let crawl_id = super::progress::request(conn, &target, &asked).await?;
            audit::record(
                conn,
                Entry::by(&ctx, "crawl.requested", format!("target {}", target.id))
                    .detail(json!({"crawl": crawl_id, "url": target.url})),
            )
            .await?;
            Ok(crawl_id)
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(crawl_id)
}

/// A crawl of the caller's organization with its pages and (once done) site snapshot.
async fn crawl_body(state: &AppState, ctx: &OrgCtx, crawl_id: i64) -> Result<CrawlBody, AppError> {
    let mut conn = state.conn().await?;
    let crawl = queries::crawl(&mut conn, ctx, crawl_id).await?;
    let pages = queries::pages(&mut conn, ctx, crawl_id).await?;
    drop(conn);
    let site = match (&crawl.state[..], &crawl.site_sha256) {
        ("done", Some(sha256)) => {
            Some(super::assemble::read_site(state, ctx.org_id, crawl_id, sha256).await?)
        }
        _ => None,
    };
    Ok(CrawlBody { crawl, pages, site })
}

async fn crawl_now_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let crawl_id = crawl_now(&state, &page, object_id(&path)?, Trigger::Dashboard).await?;
    Ok(see_other(&format!("/crawls/{crawl_id}")))
}

async fn crawls_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    page.require(Role::Member)?;
    let crawls = queries::list(&mut conn, &page, target_id, LISTED).await?;
    html(&CrawlsPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        refresh: crawls.iter().any(|c| !c.is_finished()),
        target,
        crawls,
    })
}

async fn crawl_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let crawl_id = object_id(&path)?;
    let body = crawl_body(&state, &page, crawl_id).await?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, body.crawl.target_id).await?;
    drop(conn);
    html(&CrawlPageView {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        refresh: !body.crawl.is_finished(),
        changes: body.crawl.site_changes(),
        target,
        crawl: body.crawl,
        pages: body.pages,
        site: body.site,
    })
}

async fn api_crawl_now(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let crawl_id = crawl_now(&state, &ctx, object_id(&path)?, Trigger::Api).await?;
    let body = crawl_body(&state, &ctx, crawl_id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/v1/crawls/{crawl_id}")))
        .json(body))
}

async fn api_crawls(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Vec<Crawl>>> {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    sites::target(&mut conn, &ctx, target_id).await?;
    Ok(web::Json(
        queries::list(&mut conn, &ctx, target_id, LISTED).await?,
    ))
}

async fn api_crawl(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<CrawlBody>> {
    Ok(web::Json(
        crawl_body(&state, &ctx, object_id(&path)?).await?,
    ))
}
