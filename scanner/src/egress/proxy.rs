//! The guard proxy: a SOCKS5 server on loopback through which a scan's browser context makes every
//! connection (documents, subresources, iframes, WebSockets, beacons).
//!
//! SOCKS5 hands us the host *name*, so the browser never resolves anything itself: the
//! [`EgressPolicy`] resolves it, checks the address and the proxy connects to exactly that address.
//! Refusals are recorded for the snapshot. The proxy also enforces the scan's transfer budget.
//!
//! Each scan gets its own proxy (browser contexts take a per-context proxy), so refusals and byte
//! counts belong to exactly one scan.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::policy::{Destinations, EgressPolicy, Refusal};
use super::resolver::NameResolver;
use crate::snapshot::BlockedConnection;

const SOCKS_VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;
const REPLY_OK: u8 = 0;
const REPLY_GENERAL_FAILURE: u8 = 1;
const REPLY_NOT_ALLOWED: u8 = 2;
const REPLY_HOST_UNREACHABLE: u8 = 4;
const REPLY_CONNECTION_REFUSED: u8 = 5;
const REPLY_COMMAND_NOT_SUPPORTED: u8 = 7;
const REPLY_ADDRESS_NOT_SUPPORTED: u8 = 8;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one scan's proxy serves at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// Refusals kept per scan; further ones are counted, not listed.
const MAX_REFUSALS: usize = 1_000;
/// A relayed connection with no bytes either way for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy saw during one scan.
#[derive(Debug, Default)]
struct Ledger {
    blocked: Mutex<Vec<BlockedConnection>>,
    refusals_dropped: AtomicBool,
    bytes: AtomicU64,
    budget_exhausted: AtomicBool,
    /// Each name that turned out to be an alias, with its CNAME chain.
    aliases: Mutex<BTreeMap<String, Vec<String>>>,
}

/// A running guard proxy; stops (and cuts every relayed connection) when dropped.
pub struct GuardProxy {
    address: SocketAddr,
    shared: Shared,
    max_bytes: u64,
    _server: JoinSet<()>,
}

impl GuardProxy {
    /// Starts a proxy on an ephemeral loopback port.
    pub async fn start(policy: EgressPolicy, max_bytes: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let resolver = NameResolver::new(policy.dns_server()).map_err(std::io::Error::other)?;
        let mut server = JoinSet::new();
        let shared = Shared {
            policy: Arc::new(policy),
            resolver: Arc::new(resolver),
            ledger: Arc::new(Ledger::default()),
            max_bytes,
        };
        server.spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            address,
            shared,
            max_bytes,
            _server: server,
        })
    }

    /// The proxy setting for the browser: `socks5://127.0.0.1:PORT`.
    pub fn proxy_server(&self) -> String {
        format!("socks5://{}", self.address)
    }

    /// Where a connection to `host:port` may go, decided as the proxy decides it (the scan's
    /// pre-flight check of its own URL).
    pub async fn destinations(&self, host: &str, port: u16) -> Result<Destinations, Refusal> {
        self.shared.destinations(host, port).await
    }

    pub fn blocked(&self) -> Vec<BlockedConnection> {
        lock(&self.shared.ledger.blocked).clone()
    }

    /// The names the scan reached that are DNS aliases, each with its CNAME chain.
    pub fn aliases(&self) -> BTreeMap<String, Vec<String>> {
        lock(&self.shared.ledger.aliases).clone()
    }

    pub fn bytes_relayed(&self) -> u64 {
        self.shared.ledger.bytes.load(Ordering::Relaxed)
    }

    /// `Some(cap)` when more connections were refused than are listed.
    pub fn refusals_truncated(&self) -> Option<usize> {
        self.shared
            .ledger
            .refusals_dropped
            .load(Ordering::Relaxed)
            .then_some(MAX_REFUSALS)
    }

    /// `Some(budget)` when the transfer budget ran out and connections were cut.
    pub fn budget_exhausted(&self) -> Option<u64> {
        self.shared
            .ledger
            .budget_exhausted
            .load(Ordering::Relaxed)
            .then_some(self.max_bytes)
    }
}

impl Ledger {
    fn record_refusal(&self, refusal: BlockedConnection) {
        let mut blocked = lock(&self.blocked);
        if blocked.len() < MAX_REFUSALS {
            blocked.push(refusal);
        } else {
            self.refusals_dropped.store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Clone)]
struct Shared {
    policy: Arc<EgressPolicy>,
    resolver: Arc<NameResolver>,
    ledger: Arc<Ledger>,
    max_bytes: u64,
}

impl Shared {
    async fn destinations(&self, host: &str, port: u16) -> Result<Destinations, Refusal> {
        let destinations = self.policy.destinations(&self.resolver, host, port).await?;
        if !destinations.aliases.is_empty() {
            lock(&self.ledger.aliases)
                .entry(host.trim_end_matches('.').to_ascii_lowercase())
                .or_insert_with(|| destinations.aliases.clone());
        }
        Ok(destinations)
    }
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    // Connections live in this set so that dropping the proxy aborts all of them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!(%error, "guard proxy accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(mut client: TcpStream, shared: Shared) {
    let target = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut client)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => {
            tracing::debug!(%error, "guard proxy handshake failed");
            return;
        }
        Err(_) => return,
    };
    let destinations = match shared.destinations(&target.host, target.port).await {
        Ok(destinations) => destinations.addresses,
        // A name that does not resolve is not a refusal: the host is simply unreachable.
        Err(Refusal::Unresolvable { .. }) => {
            let _ = reply(&mut client, REPLY_HOST_UNREACHABLE).await;
            return;
        }
        Err(refusal) => {
            tracing::info!(
                host = %target.host,
                port = target.port,
                address = ?refusal.address(),
                %refusal,
                "egress refused"
            );
            shared.ledger.record_refusal(BlockedConnection {
                host: target.host.clone(),
                port: target.port,
                address: refusal.address_named_by_page().map(|a| a.to_string()),
                reason: refusal.to_string(),
            });
            let _ = reply(&mut client, REPLY_NOT_ALLOWED).await;
            return;
        }
    };
    if shared.ledger.budget_exhausted.load(Ordering::Relaxed) {
        let _ = reply(&mut client, REPLY_NOT_ALLOWED).await;
        return;
    }
    let Some(upstream) = connect_any(&destinations, &mut client).await else {
        return;
    };
    if reply(&mut client, REPLY_OK).await.is_err() {
        return;
    }
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    relay(client, upstream, &shared).await;
}

/// Connects to the first of the checked addresses that answers; on failure tells the client why.
async fn connect_any(destinations: &[SocketAddr], client: &mut TcpStream) -> Option<TcpStream> {
    let mut code = REPLY_HOST_UNREACHABLE;
    for destination in destinations {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination)).await {
            Ok(Ok(upstream)) => return Some(upstream),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                code = REPLY_CONNECTION_REFUSED;
            }
            _ => {}
        }
    }
    let _ = reply(client, code).await;
    None
}

struct Target {
    host: String,
    port: u16,
}

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("not SOCKS5")]
    Version,
    #[error("client offers no unauthenticated method")]
    NoMethod,
    #[error("unsupported command {0}")]
    Command(u8),
    #[error("unsupported address type {0}")]
    AddressType(u8),
    #[error("host name is not UTF-8")]
    HostName,
}

async fn handshake(client: &mut TcpStream) -> Result<Target, HandshakeError> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != SOCKS_VERSION {
        return Err(HandshakeError::Version);
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        client
            .write_all(&[SOCKS_VERSION, NO_ACCEPTABLE_METHOD])
            .await?;
        return Err(HandshakeError::NoMethod);
    }
    client.write_all(&[SOCKS_VERSION, NO_AUTH]).await?;

    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[0] != SOCKS_VERSION {
        return Err(HandshakeError::Version);
    }
    if request[1] != CMD_CONNECT {
        reply(client, REPLY_COMMAND_NOT_SUPPORTED).await?;
        return Err(HandshakeError::Command(request[1]));
    }
    let host = match request[3] {
        ATYP_V4 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets).await?;
            IpAddr::V4(Ipv4Addr::from(octets)).to_string()
        }
        ATYP_V6 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets).await?;
            IpAddr::V6(Ipv6Addr::from(octets)).to_string()
        }
        ATYP_DOMAIN => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| HandshakeError::HostName)?
        }
        other => {
            reply(client, REPLY_ADDRESS_NOT_SUPPORTED).await?;
            return Err(HandshakeError::AddressType(other));
        }
    };
    let port = client.read_u16().await?;
    Ok(Target { host, port })
}

async fn reply(client: &mut TcpStream, code: u8) -> std::io::Result<()> {
    let code = if code > REPLY_ADDRESS_NOT_SUPPORTED {
        REPLY_GENERAL_FAILURE
    } else {
        code
    };
    client
        .write_all(&[SOCKS_VERSION, code, 0, ATYP_V4, 0, 0, 0, 0, 0, 0])
        .await
}

async fn relay(client: TcpStream, upstream: TcpStream, shared: &Shared) {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::select! {
        _ = pump(client_read, upstream_write, shared) => {}
        _ = pump(upstream_read, client_write, shared) => {}
    }
}

/// Copies one direction, counting bytes against the scan's budget.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, shared: &Shared) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, from.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        let total = shared.ledger.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > shared.max_bytes {
            shared
                .ledger
                .budget_exhausted
                .store(true, Ordering::Relaxed);
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
