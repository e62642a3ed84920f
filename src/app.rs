//! Building and running the web application: the route table, shared state and the server.
//! `siteward serve` and the integration tests both start the app through `Application::build`.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use secrecy::SecretString;

use crate::config::Config;
use crate::crypto;
use crate::db::signals::{Event, Signal};
use crate::db::{self, DbPool};
use crate::mail::{MailError, Mailer};
use crate::state::AppState;
use crate::web::csrf::CsrfConfig;
use crate::web::metrics::Metrics;
use crate::web::middleware::{HeaderPolicy, observe};
use crate::web::rate_limit::RateLimiter;
use crate::web::routes::{Route, public};
use crate::web::{ApiError, AppError, PageError, openapi};

/// Every route of the app, in mounting order (fixed paths before `{id}` patterns).
pub fn route_table() -> Vec<Route> {
    let mut routes = vec![
        public(Method::GET, "/healthz", healthz),
        public(Method::GET, "/readyz", readyz),
        public(Method::GET, "/metrics", metrics),
        public(Method::GET, "/static/app.css", stylesheet),
        public(Method::GET, "/api/v1/openapi.json", openapi_json),
    ];
    routes.extend(crate::auth::routes::routes());
    routes.extend(crate::orgs::routes::routes());
    routes.extend(crate::lifecycle::routes::routes());
    routes.extend(crate::exports::routes::routes());
    routes.extend(crate::sites::routes::routes());
    routes.extend(crate::keys::routes::routes());
    routes.extend(crate::audit::routes::routes());
    routes.extend(crate::scans::routes::routes());
    routes.extend(crate::compliance::routes::routes());
    routes.extend(crate::crawls::routes::routes());
    routes.extend(crate::payment::routes::routes());
    routes.extend(crate::client_reports::routes::routes());
    routes.extend(crate::overview::routes::routes());
    routes.extend(crate::branding::routes::routes());
    routes.extend(crate::scans::internal::routes());
    routes.extend(crate::crawls::internal::routes());
    routes.extend(crate::alerts::routes::routes());
    routes.extend(crate::checkouts::routes::routes());
    routes
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("blob storage: {0}")]
    Storage(#[from] crate::storage::StoreError),
}

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    database_health: crate::db::health::DatabaseHealth,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares the server; `run` serves.
    pub async fn build(
        config: Config,
        database_url: &SecretString,
    ) -> Result<Application, StartError> {
        let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
            address: config.listen.to_string(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let pool = db::pool(database_url, config.database_pool_size)?;
        let mailer = Mailer::from_config(&config)?;
        let store = crate::storage::BlobStore::open(&config.blob_store).await?;
        let blobs = crate::storage::SealedBlobs::new(store, config.master_keys.clone());
        let dummy_password_hash =
            crate::auth::password::hash(hex::encode(crypto::random_bytes::<16>())).await;
        let csrf = web::Data::new(CsrfConfig::new(
            *config.master_keys.derive("csrf"),
            config.served_over_tls(),
        ));
        let headers = web::Data::new(HeaderPolicy {
            hsts: config.served_over_tls(),
        });
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            config,
            mailer,
            limiter: RateLimiter::new(pool.clone()),
            keys: crate::auth::KeyCache::default(),
            blobs,
            dummy_password_hash,
            jobs_ready: tokio::sync::Notify::new(),
            database_health: crate::db::health::DatabaseHealth::default(),
        });
        let database_health = state.database_health.clone();
        tokio::spawn(crate::db::signals::listen(
            database_url.clone(),
            on_signal(state.clone()),
        ));
        tokio::spawn(crate::scans::analysis::run_worker(state.clone()));
        tokio::spawn(crate::alerts::notifications::run_worker(state.clone()));
        tokio::spawn(crate::checkouts::analysis::run_worker(state.clone()));
        tokio::spawn(crate::compliance::assemble::run_worker(state.clone()));
        tokio::spawn(crate::crawls::assemble::run_worker(state.clone()));
        tokio::spawn(crate::client_reports::delivery::run_worker(state.clone()));
        tokio::spawn(crate::exports::run_worker(state.clone()));
        if state.config.runners.scheduler {
            tokio::spawn(crate::scheduler::run(
                database_url.clone(),
                crate::scheduler::SCHEDULER,
                state.config.runners.scheduler_interval,
                scheduler_tick(state.clone()),
            ));
            tokio::spawn(crate::scheduler::run(
                database_url.clone(),
                crate::scheduler::PURGE,
                state.config.runners.scheduler_interval,
                crate::lifecycle::tick(
                    state.blobs.store().clone(),
                    state.config.runners.purge_interval,
                ),
            ));
        }
        let metrics = web::Data::new(Metrics::default());
        let server =
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(csrf.clone())
                    .app_data(headers.clone())
                    .app_data(metrics.clone())
                    .app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(
                        |error, _| {
                            ApiError(AppError::BadRequest(format!(
                                "the JSON body is not valid: {error}"
                            )))
                            .into()
                        },
                    ))
                    .app_data(web::QueryConfig::default().error_handler(|error, req| {
                        let error =
                            AppError::BadRequest(format!("the query string is not valid: {error}"));
                        if req.path().starts_with("/api/") {
                            ApiError(error).into()
                        } else {
                            PageError(error).into()
                        }
                    }))
                    .wrap(from_fn(observe))
                    .configure(|cfg| {
                        for route in route_table() {
                            route.mount(cfg);
                        }
                    })
                    .default_service(web::to(not_found))
            })
            // Idle connections stay open longer than clients and proxies keep theirs (the
            // runner's client 30 s, common load balancers 60 s), so the server never closes a
            // connection just as a client reuses it (a request lost as an incomplete message).
            .keep_alive(std::time::Duration::from_secs(75))
            .listen(listener)
            .map_err(|source| StartError::Listen {
                address: "listener".into(),
                source,
            })?
            .disable_signals()
            .shutdown_timeout(10)
            .run();
        Ok(Application {
            port,
            server,
            pool,
            database_health,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    /// Where the embedded database's supervisor reports an outage, for `/readyz`.
    pub fn database_health(&self) -> crate::db::health::DatabaseHealth {
        self.database_health.clone()
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped through its handle.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// How this process follows what other processes (and the database's triggers) signal.
fn on_signal(state: web::Data<AppState>) -> impl Fn(Event) + Send + Sync {
    move |event| match event {
        Event::Listening => {
            state.keys.set_trusted(true);
            // Jobs queued while deaf were not signalled.
            state.jobs_ready.notify_waiters();
        }
        Event::Deaf => state.keys.set_trusted(false),
        Event::Signal(Signal::JobsReady) => state.jobs_ready.notify_waiters(),
        Event::Signal(Signal::ApiKeyRevoked(prefix)) => state.keys.evict(&prefix),
        Event::Signal(Signal::ApiKeysChanged) => state.keys.clear(),
    }
}

/// What the leading scheduler does each round: queue due scans, compliance scans, checkout runs
/// and scheduled reports (and return lapsed leases), and sweep lapsed rate-limit windows.
fn scheduler_tick(state: web::Data<AppState>) -> crate::scheduler::Tick {
    Box::new(move |conn| {
        let state = state.clone();
        Box::pin(async move {
            let attempts = state.config.runners.scan_attempts;
            let scans = crate::scans::schedule::tick(conn, attempts)
                .await
                .map_err(|e| e.to_string())?;
            let runs = crate::checkouts::schedule::tick(conn, attempts)
                .await
                .map_err(|e| e.to_string())?;
            let compliance = crate::compliance::queries::tick(conn, attempts)
                .await
                .map_err(|e| e.to_string())?;
            let reports = crate::client_reports::delivery::tick(conn)
                .await
                .map_err(|e| e.to_string())?;
            let crawls = crate::crawls::progress::catch_up(conn)
                .await
                .map_err(|e| e.to_string())?;
            crate::web::rate_limit::sweep(conn)
                .await
                .map_err(|e| e.to_string())?;
            let queued = scans + runs + compliance + reports + crawls;
            if queued > 0 {
                state.jobs_ready.notify_waiters();
            }
            Ok(queued)
        })
    })
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") || req.path().starts_with("/internal/") {
        ApiError(AppError::NotFound).error_response()
    } else {
        PageError(AppError::NotFound).error_response()
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when the database answers; during an outage of the embedded database, says so.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if let Some(outage) = state.database_health.outage() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!(
                "database unavailable: the embedded PostgreSQL stopped {} s ago and is being \
                 started again ({} failed attempt(s) so far)\n",
                outage.duration().as_secs(),
                outage.failed_restarts
            ));
    }
    let ready = match state.conn().await {
        Ok(mut conn) => {
            diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut conn)
                .await
                .is_ok()
        }
        Err(_) => false,
    };
    if ready {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unavailable\n")
    }
}

/// Prometheus metrics, for the operator only: with `metrics_token` set, for a caller presenting
/// it as a bearer token; without one, for a caller on this machine that came through no proxy
/// (a proxy on the same machine is loopback too, but says whom it forwards). Anyone else gets
/// 404, as if there were no such page.
async fn metrics(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
) -> HttpResponse {
    if !may_read_metrics(&state.config, &req) {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

fn may_read_metrics(config: &crate::config::Config, req: &HttpRequest) -> bool {
    use secrecy::ExposeSecret;
    match &config.metrics_token {
        Some(token) => req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| {
                crypto::constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
            }),
        None => {
            let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
                .iter()
                .any(|name| req.headers().contains_key(*name));
            !forwarded && req.peer_addr().is_some_and(|peer| peer.ip().is_loopback())
        }
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(include_str!("../static/app.css"))
}

async fn openapi_json() -> HttpResponse {
    let routes = route_table();
    let docs: Vec<_> = routes.iter().map(|r| &r.doc).collect();
    HttpResponse::Ok().json(openapi::document(&docs))
}
