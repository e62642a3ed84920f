//! Scans in the dashboard and the API: "Scan now", a target's scan history, a scan with its
//! snapshot, artifacts (read only after the caller's org and role are checked), and which
//! targets load a host or set a cookie.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::analysis::{self, Visual};
use super::comparisons::{self, Computed};
use super::queries::{self, Artifact, InventoryMatch, Scan, SnapshotMeta, StoredChanges, Trigger};
use super::views::*;
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, see_other};
use crate::runner::protocol::SNAPSHOT_ARTIFACT;
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
        page_post("/targets/{target_id}/scans", admin, scan_now_form),
        page_get("/targets/{target_id}/scans", member, history_page),
        page_get("/scans/{scan_id}", member, scan_page),
        page_get(
            "/snapshots/{snapshot_id}/artifacts/{artifact}",
            member,
            artifact_page,
        ),
        page_get("/snapshots/{snapshot_id}/har", member, har_page),
        page_get("/inventory", member, inventory_page).example("host=analytics.test"),
        api(
            Method::POST,
            "/api/v1/targets/{target_id}/scans",
            Role::Admin,
            api_scan_now,
        )
        .summary("Scan a target now; the scan is queued and its state can be followed")
        .response::<Scan>()
        .success(202),
        api(
            Method::GET,
            "/api/v1/targets/{target_id}/scans",
            Role::Member,
            api_scans,
        )
        .summary("List a target's scans, newest first")
        .response::<ListPage<Scan>>()
        .paginated(),
        api(
            Method::GET,
            "/api/v1/scans/{scan_id}",
            Role::Member,
            api_scan,
        )
        .summary("Get a scan: its state, attempts, last error and snapshot")
        .response::<Scan>(),
        api(
            Method::GET,
            "/api/v1/snapshots/{snapshot_id}",
            Role::Member,
            api_snapshot,
        )
        .summary("Get a snapshot: metadata, artifacts and the whole snapshot document")
        .response::<SnapshotBody>(),
        api(
            Method::GET,
            "/api/v1/snapshots/{snapshot_id}/artifacts/{artifact}",
            Role::Member,
            api_artifact,
        )
        .summary("Download an artifact: viewport.png, fullpage.png or snapshot.json"),
        api(
            Method::GET,
            "/api/v1/snapshots/{snapshot_id}/har",
            Role::Member,
            api_har,
        )
        .summary("Download the snapshot's requests as HAR 1.2: timings, headers (cookie values and credentials redacted), sizes and initiators, never bodies"),
        page_get("/targets/{target_id}/compare", member, compare_page),
        page_get(
            "/snapshots/{snapshot_id}/diff.png",
            member,
            diff_image_page,
        )
        .example("shot=viewport"),
        api(
            Method::GET,
            "/api/v1/snapshots/{snapshot_id}/changes",
            Role::Member,
            api_changes,
        )
        .summary("What changed since the target's previous snapshot (`computed` is false until the app has compared them)")
        .response::<StoredChanges>(),
        api(
            Method::GET,
            "/api/v1/targets/{target_id}/diff",
            Role::Member,
            api_diff,
        )
        .summary("Compare any two snapshots of a target (default: the latest two)")
        .response::<Comparison>(),
        api(
            Method::GET,
            "/api/v1/inventory/hosts",
            Role::Member,
            api_hosts,
        )
        .summary("Which targets load a host (or its subdomains) in their latest snapshot")
        .example("host=analytics.test")
        .response::<Vec<InventoryMatch>>(),
        api(
            Method::GET,
            "/api/v1/inventory/cookies",
            Role::Member,
            api_cookies,
        )
        .summary("Which targets set a cookie with this name in their latest snapshot")
        .example("name=_ga")
        .response::<Vec<InventoryMatch>>(),
    ]
}

// ---- actions shared by pages and the API ----

/// Queues a scan of a target of the caller's organization.
async fn scan_now(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    trigger: Trigger,
) -> Result<i64, AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    ctx.require(Role::Admin)?;
    if target.is_site() {
        return Err(AppError::Conflict(format!(
            "a site target is crawled: POST /api/v1/targets/{target_id}/crawls (or Crawl now in the dashboard)"
        )));
    }
    let ctx = ctx.clone();
    let attempts = state.config.runners.scan_attempts;
    let scan_id = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let scan_id = queries::request_scan(
                conn,
                &target,
                ctx.org_id,
                trigger,
                ctx.actor.user_id(),
                attempts,
            )
            .await?;
            audit::record(
                conn,
                Entry::by(&ctx, "scan.requested", format!("target {}", target.id))
                    .detail(json!({"scan": scan_id, "url": target.url})),
            )
            .await?;
            Ok(scan_id)
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(scan_id)
}

/// Reads an artifact of a snapshot of the caller's organization, checking its hash.
async fn read_artifact(
    state: &AppState,
    ctx: &OrgCtx,
    snapshot_id: i64,
    name: &str,
) -> Result<(Artifact, Vec<u8>), AppError> {
    let mut conn = state.conn().await?;
    let artifact = queries::artifacts(&mut conn, ctx.org_id, snapshot_id)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or(AppError::NotFound)?;
    drop(conn);
    let bytes = analysis::read_verified(state, ctx.org_id, snapshot_id, &artifact).await?;
    Ok((artifact, bytes))
}

/// A snapshot with its artifacts and document.
async fn load_snapshot(
    state: &AppState,
    ctx: &OrgCtx,
    snapshot_id: i64,
) -> Result<SnapshotView, AppError> {
    let mut conn = state.conn().await?;
    let meta = queries::snapshot(&mut conn, ctx, snapshot_id).await?;
    let artifacts = queries::artifacts(&mut conn, ctx.org_id, snapshot_id).await?;
    drop(conn);
    let document = artifacts
        .iter()
        .find(|a| a.name == SNAPSHOT_ARTIFACT)
        .ok_or(AppError::NotFound)?;
    let bytes = analysis::read_verified(state, ctx.org_id, snapshot_id, document).await?;
    let doc = serde_json::from_slice(&bytes).map_err(AppError::internal)?;
    Ok(SnapshotView {
        meta,
        artifacts,
        doc,
    })
}

/// The snapshot's requests as a HAR 1.2 download.
async fn har_response(
    state: &AppState,
    ctx: &OrgCtx,
    snapshot_id: i64,
) -> Result<HttpResponse, AppError> {
    let view = load_snapshot(state, ctx, snapshot_id).await?;
    let har = scanner::har::har(&view.doc, env!("CARGO_PKG_VERSION"));
    let body = serde_json::to_vec_pretty(&har).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"snapshot-{snapshot_id}.har\""),
        ))
        .body(body))
}

fn artifact_response(artifact: Artifact, bytes: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type(artifact.content_type.as_str());
    if artifact.name == SNAPSHOT_ARTIFACT {
        response.insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}\"", artifact.name),
        ));
    }
    response.body(bytes)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InventoryQuery {
    host: String,
    cookie: String,
    name: String,
}

fn check_host(host: &str) -> Result<(), AppError> {
    let host = host.trim();
    if host.is_empty()
        || host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(AppError::invalid(
            "host",
            "must be a host name such as analytics.example.com",
        ));
    }
    Ok(())
}

fn check_cookie(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.len() > 512 {
        return Err(AppError::invalid(
            "name",
            "must be a cookie name of 1–512 characters",
        ));
    }
    Ok(())
}

// ---- pages ----

async fn scan_now_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let scan_id = scan_now(&state, &page, object_id(&path)?, Trigger::Dashboard).await?;
    Ok(see_other(&format!("/scans/{scan_id}")))
}

async fn history_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Page {
    let target_id = object_id(&path)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    let rows = queries::list_scans(&mut conn, &page, target_id, request).await?;
    let list = ListPage::from_rows(rows, request, |s| s.id);
    html(&HistoryPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        refresh: list.items.iter().any(|s| !s.state.is_finished()),
        target,
        scans: list.items,
        next_cursor: list.next_cursor,
    })
}

async fn scan_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let scan_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let scan = queries::scan(&mut conn, &page, scan_id).await?;
    drop(conn);
    let (snapshot, changes) = match scan.snapshot_id {
        Some(id) => {
            let mut conn = state.conn().await?;
            let changes = queries::stored_changes(&mut conn, &page, id).await?;
            drop(conn);
            (Some(load_snapshot(&state, &page, id).await?), changes)
        }
        None => (None, None),
    };
    html(&ScanPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        scan,
        snapshot,
        changes,
    })
}

async fn artifact_page(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<(String, String)>,
) -> Page {
    let (snapshot, name) = path.into_inner();
    let (artifact, bytes) = read_artifact(&state, &page, object_id(&snapshot)?, &name).await?;
    Ok(artifact_response(artifact, bytes))
}

async fn har_page(state: web::Data<AppState>, page: PageCtx, path: web::Path<String>) -> Page {
    Ok(har_response(&state, &page, object_id(&path)?).await?)
}

async fn inventory_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<InventoryQuery>,
) -> Page {
    let query = query.into_inner();
    let mut conn = state.conn().await?;
    let matches = if !query.host.trim().is_empty() {
        check_host(&query.host)?;
        Some(queries::targets_loading_host(&mut conn, &page, &query.host).await?)
    } else if !query.cookie.trim().is_empty() {
        check_cookie(&query.cookie)?;
        Some(queries::targets_setting_cookie(&mut conn, &page, &query.cookie).await?)
    } else {
        None
    };
    html(&InventoryPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        host: query.host,
        cookie: query.cookie,
        matches,
    })
}

// ---- API ----

/// A snapshot as the API returns it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SnapshotBody {
    #[serde(flatten)]
    meta: SnapshotMeta,
    artifacts: Vec<Artifact>,
    /// The snapshot document as the runner captured it (format in `docs/snapshot.schema.json`).
    #[schemars(with = "serde_json::Value")]
    snapshot: scanner::Snapshot,
}

async fn api_scan_now(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let scan_id = scan_now(&state, &ctx, object_id(&path)?, Trigger::Api).await?;
    let mut conn = state.conn().await?;
    let scan = queries::scan(&mut conn, &ctx, scan_id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/v1/scans/{scan_id}")))
        .json(scan))
}

async fn api_scans(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Api<web::Json<ListPage<Scan>>> {
    let target_id = object_id(&path)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    sites::target(&mut conn, &ctx, target_id).await?;
    let rows = queries::list_scans(&mut conn, &ctx, target_id, request).await?;
    Ok(web::Json(ListPage::from_rows(rows, request, |s| s.id)))
}

async fn api_scan(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Scan>> {
    let mut conn = state.conn().await?;
    Ok(web::Json(
        queries::scan(&mut conn, &ctx, object_id(&path)?).await?,
    ))
}

async fn api_snapshot(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<SnapshotBody>> {
    let view = load_snapshot(&state, &ctx, object_id(&path)?).await?;
    Ok(web::Json(SnapshotBody {
        meta: view.meta,
        artifacts: view.artifacts,
        snapshot: view.doc,
    }))
}

async fn api_artifact(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<(String, String)>,
) -> Api<HttpResponse> {
    let (snapshot, name) = path.into_inner();
    let (artifact, bytes) = read_artifact(&state, &ctx, object_id(&snapshot)?, &name).await?;
    Ok(artifact_response(artifact, bytes))
}

async fn api_har(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    Ok(har_response(&state, &ctx, object_id(&path)?).await?)
}

async fn api_hosts(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<InventoryQuery>,
) -> Api<web::Json<Vec<InventoryMatch>>> {
    check_host(&query.host)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(
        queries::targets_loading_host(&mut conn, &ctx, &query.host).await?,
    ))
}

async fn api_cookies(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<InventoryQuery>,
) -> Api<web::Json<Vec<InventoryMatch>>> {
    check_cookie(&query.name)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(
        queries::targets_setting_cookie(&mut conn, &ctx, &query.name).await?,
    ))
}

// ---- comparing snapshots ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompareQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A comparison of two snapshots of one target (`from` and `to` are null, and the lists empty,
/// while the target has fewer than two snapshots).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub target_id: i64,
    pub from: Option<i64>,
    pub to: Option<i64>,
    #[schemars(with = "Vec<serde_json::Value>")]
    pub changes: Vec<crate::diff::Change>,
    /// The changes as sentences, in the same order.
    pub sentences: Vec<String>,
    pub visual: Visual,
}

/// The two snapshots to compare: as asked, or the target's latest two.
async fn pick(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    query: &CompareQuery,
) -> Result<(i64, i64, sites::Target), AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    let recent = queries::recent_snapshots(&mut conn, ctx, target_id, 2).await?;
    let parse = |text: &Option<String>| text.as_deref().map(object_id).transpose();
    let to = match parse(&query.to)? {
        Some(id) => id,
        None => recent.first().map(|r| r.0).ok_or_else(|| {
            AppError::BadRequest(
                "the target has no snapshot yet; there is nothing to compare".into(),
            )
        })?,
    };
    let from = match parse(&query.from)? {
        Some(id) => id,
        None => recent.get(1).map(|r| r.0).ok_or_else(|| {
            AppError::BadRequest(
                "the target has only one snapshot; there is nothing to compare yet".into(),
            )
        })?,
    };
    for id in [from, to] {
        let meta = queries::snapshot(&mut conn, ctx, id).await?;
        if meta.target_id != target_id {
            return Err(AppError::NotFound);
        }
    }
    Ok((from, to, target))
}

/// Counts one comparison computed on request against the organization's limit.
async fn limit_comparisons(state: &AppState, org_id: i64) -> Result<(), AppError> {
    state
        .limiter
        .check(
            crate::web::rate_limit::rules::COMPARE_ORG,
            &format!("org:{org_id}"),
        )
        .await
}

async fn comparison(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    query: &CompareQuery,
) -> Result<Comparison, AppError> {
    let (from, to, target) = match pick(state, ctx, target_id, query).await {
        Ok(picked) => picked,
        Err(AppError::BadRequest(_)) => {
            return Ok(Comparison {
                target_id,
                from: None,
                to: None,
                changes: Vec::new(),
                sentences: Vec::new(),
                visual: Visual {
                    viewport: None,
                    full_page: None,
                },
            });
        }
        Err(other) => return Err(other),
    };
    let kept = comparisons::key(ctx.org_id, &target, from, to, Computed::Changes)?;
    let (changes, visual): (Vec<crate::diff::Change>, Visual) =
        comparisons::value_or(state, &kept, || async {
            limit_comparisons(state, ctx.org_id).await?;
            let before = analysis::load(state, ctx.org_id, from).await?;
            let after = analysis::load(state, ctx.org_id, to).await?;
            tokio::task::spawn_blocking(move || analysis::compare(&before, &after, &target))
                .await
                .map_err(AppError::internal)
        })
        .await?;
    Ok(Comparison {
        target_id,
        from: Some(from),
        to: Some(to),
        sentences: changes.iter().map(|c| c.sentence()).collect(),
        changes,
        visual,
    })
}

async fn compare_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    query: web::Query<CompareQuery>,
) -> Page {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    let snapshots = queries::recent_snapshots(&mut conn, &page, target_id, 50).await?;
    drop(conn);
    let result =
        Some(comparison(&state, &page, target_id, &query).await?).filter(|c| c.to.is_some());
    html(&ComparePage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        target,
        snapshots: snapshots.into_iter().map(|(id, _)| id).collect(),
        result,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DiffImageQuery {
    /// The snapshot to compare with; the target's previous one by default.
    against: Option<String>,
    /// `viewport` (default) or `full_page`.
    shot: Option<String>,
}

async fn diff_image_page(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    query: web::Query<DiffImageQuery>,
) -> Page {
    let to = object_id(&path)?;
    let mut conn = state.conn().await?;
    let meta = queries::snapshot(&mut conn, &page, to).await?;
    let target = sites::target(&mut conn, &page, meta.target_id).await?;
    let from = match query.against.as_deref() {
        Some(text) => {
            let id = object_id(text)?;
            if queries::snapshot(&mut conn, &page, id).await?.target_id != meta.target_id {
                return Err(AppError::NotFound.into());
            }
            id
        }
        None => queries::previous_snapshot(
            &mut conn,
            meta.target_id,
            meta.visit.as_deref(),
            meta.page_key.as_deref(),
            to,
        )
        .await?
        .ok_or(AppError::NotFound)?,
    };
    drop(conn);
    let full = matches!(query.shot.as_deref(), Some("full_page"));
    let what = if full {
        Computed::FullPageImage
    } else {
        Computed::ViewportImage
    };
    let kept = comparisons::key(page.org_id, &target, from, to, what)?;
    let png = comparisons::bytes_or(&state, &kept, || async {
        limit_comparisons(&state, page.org_id).await?;
        let before = analysis::load(&state, page.org_id, from).await?;
        let after = analysis::load(&state, page.org_id, to).await?;
        tokio::task::spawn_blocking(move || {
            if full {
                analysis::diff_png(&before.full_page, &after.full_page, &target)
            } else {
                analysis::diff_png(&before.viewport, &after.viewport, &target)
            }
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::BadRequest(e.to_string()))
    })
    .await?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}

async fn api_changes(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<StoredChanges>> {
    let snapshot_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    queries::snapshot(&mut conn, &ctx, snapshot_id).await?;
    let stored = queries::stored_changes(&mut conn, &ctx, snapshot_id).await?;
    Ok(web::Json(stored.unwrap_or(StoredChanges {
        snapshot_id,
        computed: false,
        previous_snapshot_id: None,
        changes: Vec::new(),
        visual: Visual {
            viewport: None,
            full_page: None,
        },
        computed_at: None,
    })))
}

async fn api_diff(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    query: web::Query<CompareQuery>,
) -> Api<web::Json<Comparison>> {
    let target_id = object_id(&path)?;
    Ok(web::Json(
        comparison(&state, &ctx, target_id, &query).await?,
    ))
}
