//! Fixture websites served on loopback under several host names, for siteward's tests, its demo
//! and its benchmark.
//!
//! One server answers for every host in [`HOSTS`] (told apart by the `Host` header) on an HTTP
//! port and an HTTPS port with a self-signed certificate. A scanner reaches them by mapping each
//! name to 127.0.0.1 (`--resolve`) and trusting the certificate's key ([`FixtureSites::spki`]).
//! Each page documents what a correct scan of it must find.
#![forbid(unsafe_code)]

pub mod compliance_sites;
pub mod consent_managers;
pub mod demo_shop;
pub mod dns;
pub mod outdoor;
pub mod packages;
mod pages;
pub mod payment_page;
pub mod real_world;
pub mod spa_shop;
pub mod visitor;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use base64::Engine;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

pub use pages::{AUTH_TOKEN, COOKIE_VALUES, STORAGE_VALUES};

/// First party.
pub const SHOP: &str = "shop.test";
/// A CDN serving a library to the shop.
pub const CDN: &str = "cdn.test";
/// An analytics host: its script sets a first-party cookie and fires a beacon.
pub const ANALYTICS: &str = "analytics.test";
/// An ads host (HTTPS): its script is injected 1.5 s after load and sets a third-party cookie.
pub const ADS: &str = "ads.test";
/// A widget host (HTTPS) embedded as a third-party iframe that sets its own cookie.
pub const WIDGET: &str = "widget.test";
/// A payment provider (HTTP): its card fields and its 3-D Secure challenge are cross-origin
/// iframes in the single-page shop's checkout.
pub const PAY: &str = "pay.test";
/// Every name the fixture server answers for: the shop's own hosts and the tracker hosts of the
/// compliance fixtures ([`compliance_sites`]).
pub const HOSTS: [&str; 12] = [
    SHOP,
    outdoor::OUTDOOR,
    outdoor::OUTDOOR_BLOG,
    CDN,
    ANALYTICS,
    ADS,
    WIDGET,
    PAY,
    compliance_sites::GOOGLE_TAG_MANAGER,
    compliance_sites::GOOGLE_ANALYTICS,
    compliance_sites::FACEBOOK_CONNECT,
    compliance_sites::FACEBOOK,
];

/// Running fixture sites; stops when dropped.
pub struct FixtureSites {
    http: SocketAddr,
    https: SocketAddr,
    /// The chat widget's WebSocket server (`ws://HOST:PORT/chat`, any fixture host).
    ws: SocketAddr,
    ws_task: tokio::task::AbortHandle,
    /// The name server for the fixture hosts and the cloaked subdomain ([`dns`]).
    dns: SocketAddr,
    dns_task: tokio::task::AbortHandle,
    spki: String,
    handle: ServerHandle,
    version: Arc<AtomicU8>,
}

#[derive(Clone)]
pub(crate) struct Ports {
    pub http: u16,
    pub https: u16,
    pub ws: u16,
    /// Which version of `/changing` the shop serves.
    pub version: Arc<AtomicU8>,
}

impl FixtureSites {
    /// Starts the server on ephemeral loopback ports.
    pub async fn start() -> std::io::Result<Self> {
        let http_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let https_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let http = http_listener.local_addr()?;
        let https = https_listener.local_addr()?;
        let (tls, spki) = tls_config()?;
        let ws_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let ws = ws_listener.local_addr()?;
        let ws_task = tokio::spawn(real_world::chat_server(ws_listener)).abort_handle();
        let dns_socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let dns = dns_socket.local_addr()?;
        let dns_task = tokio::spawn(dns::serve(dns_socket)).abort_handle();
        let version = Arc::new(AtomicU8::new(0));
        let ports = Ports {
            http: http.port(),
            https: https.port(),
            ws: ws.port(),
            version: version.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(ports.clone()))
                .service(web::scope("/demo").default_service(web::to(demo_shop::route)))
                .default_service(web::to(pages::route))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(http_listener)?
        .listen_rustls_0_23(https_listener, tls)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            http,
            https,
            ws,
            ws_task,
            dns,
            dns_task,
            spki,
            handle,
            version,
        })
    }

    /// `http://HOST:PORT/PATH` on the fixture server.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.http.port())
    }

    /// `https://HOST:PORT/PATH` on the fixture server.
    pub fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.port())
    }

    /// `ws://HOST:PORT/PATH` on the chat widget's WebSocket server.
    pub fn ws_url(&self, host: &str, path: &str) -> String {
        format!("ws://{host}:{}{path}", self.ws.port())
    }

    /// `HOST=127.0.0.1` for every fixture host, as `--resolve` takes them.
    pub fn resolve_args(&self) -> Vec<String> {
        HOSTS.iter().map(|h| format!("{h}=127.0.0.1")).collect()
    }

    /// The fixture name server, as `--dns-server` takes it: scans that use it see the shop's
    /// cloaked metrics subdomain for what it is.
    pub fn dns_server(&self) -> SocketAddr {
        self.dns
    }

    /// Base64 SHA-256 of the certificate's public key, for Chromium to trust.
    pub fn spki(&self) -> &str {
        &self.spki
    }

    /// Flips the shop's `/changing` page (and its policy and library) to another version.
    pub fn set_version(&self, version: u8) {
        self.version.store(version, Ordering::SeqCst);
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Drop for FixtureSites {
    fn drop(&mut self) {
        self.ws_task.abort();
        self.dns_task.abort();
    }
}

/// A tracker list in the Disconnect `services.json` format that names two fixture hosts, for
/// tests of host classification (our own data, not a copy of Disconnect's list).
pub const TRACKER_LIST_JSON: &str = r#"{"categories": {
  "Advertising": [{"Fixture Ads Inc.": {"https://ads.test/": ["ads.test"]}}],
  "Analytics": [{"Fixture Analytics": {"https://analytics.test/": ["analytics.test"], "dnt": "w3c"}}]
}}"#;

/// The Open Cookie Database CSV that tests classify cookies with. It is test data the project must
/// not commit: it is read from `SITEWARD_COOKIE_DB`, or from the `shared/data` folder beside the
/// checkout. Panics with instructions when it cannot be found, so no test silently skips.
pub fn open_cookie_database() -> std::path::PathBuf {
    let relative = "data/open-cookie-database/open-cookie-database.csv";
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("SITEWARD_COOKIE_DB") {
        candidates.push(path.into());
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(workspace.join("../shared").join(relative));
    candidates.push(std::path::Path::new("/work/shared").join(relative));
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| {
        panic!("the Open Cookie Database CSV was not found at any of {candidates:?}; set SITEWARD_COOKIE_DB")
    })
}

fn tls_config() -> std::io::Result<(rustls::ServerConfig, String)> {
    let to_io = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(to_io)?;
    let names: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .map_err(to_io)?
        .self_signed(&key)
        .map_err(to_io)?;
    let spki = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(key.subject_public_key_info()));
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| {
        b.with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((config, spki))
}
