//! Browser supervision: one Chromium process serves many scans, each in its own browser context.
//!
//! A watchdog checks the process and its DevTools connection every second. A browser that has
//! exited or stopped answering is killed; scans running in it fail at once with a clear error, and
//! the next scan launches a fresh browser. A semaphore bounds how many scans run at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::target::CreateBrowserContextParams;
use chromiumoxide::{Browser, BrowserConfig};
use futures::StreamExt;
use tokio::sync::{Mutex, OwnedSemaphorePermit, RwLock, Semaphore, watch};
use tokio::task::JoinSet;

use crate::capture::unparsed::UnparsedMessages;
use crate::egress::{EgressPolicy, GuardProxy};
use crate::error::ScanError;

/// How the browser is launched and supervised.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The Chromium binary.
    pub executable: PathBuf,
    /// Scans that may run at once in the one browser.
    pub max_concurrent_scans: usize,
    pub launch_timeout: Duration,
    /// V8 heap limit per renderer, so a page cannot eat the machine's memory.
    pub js_heap_limit_mb: u32,
    /// Allow third-party cookies, as desktop Chrome does by default. Headless Chromium blocks them
    /// unless told otherwise, which would under-report what visitors receive.
    pub third_party_cookies: bool,
    /// Base64 SHA-256 hashes of certificate public keys to trust despite an unknown issuer
    /// (Chromium's `--ignore-certificate-errors-spki-list`), for self-hosted and test sites.
    pub trusted_spki: Vec<String>,
    /// A DevTools call that takes longer than this marks the browser as hung.
    pub hang_timeout: Duration,
    /// Whom Chromium runs as, and with its sandbox or not.
    pub identity: Identity,
}

/// Whom Chromium runs as. Chromium refuses its sandbox as root, so a root process starts it as
/// an unprivileged user instead, with the sandbox on; only an explicit setting runs it as root
/// without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// As this process (not root), sandboxed.
    Current,
    /// As this unprivileged user and group (this process being root), sandboxed.
    User { uid: u32, gid: u32 },
    /// As root without Chromium's sandbox: every renderer of a hostile page runs as root. Only
    /// when asked for, and logged as an error each launch.
    RootWithoutSandbox,
}

/// `nobody:nogroup` on Debian.
pub const NOBODY: Identity = Identity::User {
    uid: 65534,
    gid: 65534,
};

impl Identity {
    /// `Current` for an unprivileged process, `nobody` for root.
    pub fn for_this_process() -> Identity {
        if rustix::process::geteuid().is_root() {
            NOBODY
        } else {
            Identity::Current
        }
    }
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            executable: PathBuf::from("/usr/bin/chromium"),
            max_concurrent_scans: 4,
            launch_timeout: Duration::from_secs(20),
            js_heap_limit_mb: 512,
            third_party_cookies: true,
            trusted_spki: Vec::new(),
            hang_timeout: Duration::from_secs(10),
            identity: Identity::for_this_process(),
        }
    }
}

type DeathSender = Arc<watch::Sender<Option<Death>>>;

/// Why a browser stopped serving scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Exited,
    Hung,
}

/// A launched browser. Dropping it kills the process.
pub(crate) struct LiveBrowser {
    /// Read-locked for DevTools calls (any number at once), write-locked only to shut down.
    browser: RwLock<Browser>,
    pid: u32,
    /// Set once the process has been waited for.
    reaped: std::sync::atomic::AtomicBool,
    died: watch::Receiver<Option<Death>>,
    product: String,
    third_party_cookies: bool,
    /// DevTools messages the protocol types could not parse, by session.
    unparsed: Arc<UnparsedMessages>,
    /// The browser's DevTools WebSocket, for the scans' own connections (worker taps).
    ws_url: String,
    /// The handler pump and the watchdog; aborted on drop.
    _tasks: JoinSet<()>,
    /// The default context's proxy: a public-only guard, so nothing escapes outside scan contexts.
    _default_guard: GuardProxy,
    _profile: tempfile::TempDir,
    /// The script Chromium was started through.
    _launcher: Launcher,
}

impl LiveBrowser {
    /// Warnings for the DevTools messages of `session` that could not be parsed so far.
    pub(crate) fn capture_warnings(&self, session: &str) -> Vec<crate::snapshot::CaptureWarning> {
        self.unparsed.take(session)
    }

    /// The headers the requests of `session` really sent, read from the messages the protocol
    /// types could not parse (see `capture::unparsed`).
    pub(crate) fn sent_headers(&self, session: &str) -> crate::capture::unparsed::SentHeaders {
        self.unparsed.take_sent_headers(session)
    }

    /// The browser's DevTools WebSocket URL.
    pub(crate) fn ws_url(&self) -> &str {
        &self.ws_url
    }

    pub(crate) fn product(&self) -> &str {
        &self.product
    }

    /// The browser's version (`156.0.8078.114`), from its product string.
    pub(crate) fn version(&self) -> &str {
        self.product
            .split_once('/')
            .map_or(self.product.as_str(), |(_, version)| version)
    }

    pub(crate) fn third_party_cookies(&self) -> bool {
        self.third_party_cookies
    }

    pub(crate) fn death(&self) -> Option<Death> {
        *self.died.borrow()
    }

    /// Resolves when the browser dies; never resolves while it is healthy.
    pub(crate) async fn died(&self) -> Death {
        let mut died = self.died.clone();
        match died.wait_for(Option::is_some).await {
            Ok(death) => death.unwrap_or(Death::Exited),
            Err(_) => Death::Exited,
        }
    }

    pub(crate) async fn with_browser<T>(
        &self,
        f: impl AsyncFnOnce(&Browser) -> Result<T, chromiumoxide::error::CdpError>,
    ) -> Result<T, ScanError> {
        let browser = self.browser.read().await;
        tokio::select! {
            result = f(&browser) => result.map_err(ScanError::cdp),
            death = self.died() => Err(ScanError::from(death)),
        }
    }

    /// Creates an isolated browser context whose every connection goes through `proxy`.
    pub(crate) async fn create_context(
        &self,
        proxy: &GuardProxy,
    ) -> Result<chromiumoxide::cdp::browser_protocol::browser::BrowserContextId, ScanError> {
        let params = CreateBrowserContextParams::builder()
            .dispose_on_detach(true)
            .proxy_server(proxy.proxy_server())
            // Chromium bypasses proxies for loopback by default; `<-loopback>` removes that, so
            // loopback destinations meet the guard too.
            .proxy_bypass_list("<-loopback>")
            .build();
        self.with_browser(async |b| b.create_browser_context(params).await)
            .await
    }

    fn kill(&self) {
        // Once reaped, the pid may already belong to another process.
        if !self.reaped.load(std::sync::atomic::Ordering::SeqCst) {
            kill_pid(self.pid);
        }
    }
}

impl Drop for LiveBrowser {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_pid(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Owns the browser: launches it on demand, relaunches it after a crash or hang, and hands out
/// scan slots.
pub struct Supervisor {
    options: BrowserOptions,
    current: Mutex<Option<Arc<LiveBrowser>>>,
    slots: Arc<Semaphore>,
    launches: std::sync::atomic::AtomicU64,
}

/// A scan slot: holding it counts against `max_concurrent_scans`.
pub(crate) struct Slot {
    pub(crate) browser: Arc<LiveBrowser>,
    _permit: OwnedSemaphorePermit,
}

impl Supervisor {
    pub fn new(options: BrowserOptions) -> Self {
        let slots = Arc::new(Semaphore::new(options.max_concurrent_scans.max(1)));
        Self {
            options,
            current: Mutex::new(None),
            slots,
            launches: Default::default(),
        }
    }

    pub fn options(&self) -> &BrowserOptions {
        &self.options
    }

    /// How many browser processes this supervisor has launched so far.
    pub fn launches(&self) -> u64 {
        self.launches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The process id of the current browser, if one is running.
    pub async fn browser_pid(&self) -> Option<u32> {
        self.current
            .lock()
            .await
            .as_ref()
            .filter(|b| b.death().is_none())
            .map(|b| b.pid)
    }

    /// Launches the browser now rather than at the first scan.
    pub async fn warm_up(&self) -> Result<(), ScanError> {
        self.live_browser().await.map(|_| ())
    }

    /// Kills the browser, if one is running; the next scan launches a new one.
    pub async fn shutdown(&self) {
        if let Some(browser) = self.current.lock().await.take() {
            let mut handle = browser.browser.write().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), handle.close()).await;
            let _ = handle.kill().await;
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), handle.wait()).await {
                browser
                    .reaped
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    pub(crate) async fn slot(&self) -> Result<Slot, ScanError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ScanError::ShuttingDown)?;
        let browser = self.live_browser().await?;
        Ok(Slot {
            browser,
            _permit: permit,
        })
    }

    async fn live_browser(&self) -> Result<Arc<LiveBrowser>, ScanError> {
        let mut current = self.current.lock().await;
        if let Some(browser) = current.as_ref() {
            if browser.death().is_none() {
                return Ok(browser.clone());
            }
            tracing::warn!(death = ?browser.death(), "browser died; relaunching");
        }
        *current = None;
        let (browser, died_tx) = launch(&self.options).await?;
        let browser = Arc::new(browser);
        watch(&browser, self.options.hang_timeout, died_tx);
        self.launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *current = Some(browser.clone());
        Ok(browser)
    }
}

async fn launch(options: &BrowserOptions) -> Result<(LiveBrowser, DeathSender), ScanError> {
    if !options.executable.exists() {
        return Err(ScanError::BrowserMissing(options.executable.clone()));
    }
    let profile = tempfile::Builder::new()
        .prefix("siteward-chromium-")
        .tempdir()
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot create a profile folder: {e}")))?;
    if options.third_party_cookies {
        write_cookie_preferences(profile.path())?;
    }
    let launcher = Launcher::write(&options.executable, options.identity, profile.path())?;
    let default_guard = GuardProxy::start(EgressPolicy::public_only(), u64::MAX)
        .await
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot start the egress guard: {e}")))?;

    let mut builder = BrowserConfig::builder()
        .chrome_executable(launcher.path())
        .disable_default_args()
        .respect_https_errors()
        .surface_invalid_messages()
        .viewport(None)
        .user_data_dir(profile.path())
        .launch_timeout(options.launch_timeout)
        .request_timeout(options.hang_timeout * 4)
        .args(FIXED_ARGS)
        .arg(format!("disable-features={DISABLED_FEATURES}"))
        .arg(format!("proxy-server={}", default_guard.proxy_server()))
        .arg("proxy-bypass-list=<-loopback>")
        .arg(format!(
            "js-flags=--max-old-space-size={}",
            options.js_heap_limit_mb
        ));
    if !options.trusted_spki.is_empty() {
        let spki = options.trusted_spki.join(",");
        builder = builder.arg(format!("ignore-certificate-errors-spki-list={spki}"));
    }
    if options.identity == Identity::RootWithoutSandbox {
        tracing::error!(
            "Chromium runs as root WITHOUT its sandbox, as configured: a hostile page that breaks \
             the renderer owns this machine. Leave the sandbox on (the default) unless you must."
        );
        builder = builder.no_sandbox();
    }
    let config = builder.build().map_err(ScanError::BrowserLaunch)?;
    let (mut browser, mut handler) = Browser::launch(config)
        .await
        .map_err(|e| ScanError::BrowserLaunch(e.to_string()))?;
    let pid = browser
        .get_mut_child()
        .and_then(|child| child.inner.id())
        .ok_or_else(|| ScanError::BrowserLaunch("browser process has no id".into()))?;

    let (died_tx, died_rx) = watch::channel(None);
    let died_tx = Arc::new(died_tx);
    let unparsed = Arc::new(UnparsedMessages::default());
    let mut tasks = JoinSet::new();
    {
        let died_tx = died_tx.clone();
        let unparsed = unparsed.clone();
        tasks.spawn(async move {
            // The handler must be polled for the browser's whole life. Errors are logged and
            // polling goes on; a broken connection means the browser is gone.
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    if let chromiumoxide::error::CdpError::InvalidMessage(raw, _) = &error {
                        unparsed.record(raw);
                    } else if matches!(error, chromiumoxide::error::CdpError::Ws(_)) {
                        tracing::warn!(%error, "DevTools connection lost");
                        died_tx.send_if_modified(|d| mark(d, Death::Exited));
                    } else {
                        tracing::debug!(%error, "DevTools handler");
                    }
                }
            }
            died_tx.send_if_modified(|d| mark(d, Death::Exited));
        });
    }

    let version = tokio::time::timeout(options.hang_timeout, browser.version())
        .await
        .map_err(|_| ScanError::BrowserLaunch("browser did not answer after launch".into()))?
        .map_err(|e| ScanError::BrowserLaunch(e.to_string()))?;
    let ws_url = browser.websocket_address().clone();
    let browser = RwLock::new(browser);
    let live = LiveBrowser {
        browser,
        pid,
        reaped: Default::default(),
        died: died_rx,
        product: version.product,
        third_party_cookies: options.third_party_cookies,
        unparsed,
        ws_url,
        _tasks: tasks,
        _default_guard: default_guard,
        _profile: profile,
        _launcher: launcher,
    };
    Ok((live, died_tx))
}

/// Starts the watchdog for `live`; it stops when the browser dies or is dropped.
fn watch(live: &Arc<LiveBrowser>, hang_timeout: Duration, died_tx: DeathSender) {
    let weak = Arc::downgrade(live);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            interval.tick().await;
            let Some(live) = weak.upgrade() else { return };
            if live.death().is_some() {
                return;
            }
            if !process_alive(live.pid) {
                died_tx.send_if_modified(|d| mark(d, Death::Exited));
                return;
            }
            let answered = tokio::time::timeout(hang_timeout, async {
                let browser = live.browser.read().await;
                browser.version().await.is_ok()
            })
            .await
            .unwrap_or(false);
            if !answered && live.death().is_none() {
                tracing::warn!(pid = live.pid, "browser stopped answering; killing it");
                live.kill();
                died_tx.send_if_modified(|d| mark(d, Death::Hung));
                return;
            }
        }
    });
}

fn mark(slot: &mut Option<Death>, death: Death) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(death);
    true
}

/// False once the process has exited (or is a zombie waiting to be reaped).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// How Chromium is started: a small script that has `setpriv` (util-linux) switch to the
/// configured user and arrange that the browser gets SIGKILL when the process that started it
/// dies — even by SIGKILL — then exec Chromium. No `unsafe` here: the kernel does it
/// (`PR_SET_PDEATHSIG`, which setpriv sets after the user switch that would clear it).
struct Launcher {
    folder: tempfile::TempDir,
}

/// Where `setpriv` is on Debian.
const SETPRIV: &str = "/usr/bin/setpriv";

impl Launcher {
    fn write(
        executable: &std::path::Path,
        identity: Identity,
        profile: &std::path::Path,
    ) -> Result<Launcher, ScanError> {
        use std::os::unix::fs::PermissionsExt;
        let failed =
            |e: std::io::Error| ScanError::BrowserLaunch(format!("cannot write the launcher: {e}"));
        if !std::path::Path::new(SETPRIV).exists() {
            return Err(ScanError::BrowserLaunch(format!(
                "{SETPRIV} is missing (Debian's util-linux): it starts Chromium as an unprivileged user and ties it to this process"
            )));
        }
        let user = match identity {
            Identity::User { uid, gid } => {
                own_tree(profile, uid, gid).map_err(failed)?;
                format!("--reuid={uid} --regid={gid} --clear-groups ")
            }
            Identity::Current | Identity::RootWithoutSandbox => String::new(),
        };
        let folder = tempfile::Builder::new()
            .prefix("siteward-launcher-")
            .tempdir()
            .map_err(failed)?;
        let script = format!(
            "#!/bin/sh\nHOME={home}\nexport HOME\nexec {SETPRIV} {user}--pdeathsig KILL -- {chromium} \"$@\"\n",
            home = shell_quote(&profile.to_string_lossy()),
            chromium = shell_quote(&executable.to_string_lossy()),
        );
        let path = folder.path().join("chromium");
        std::fs::write(&path, script).map_err(failed)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
        Ok(Launcher { folder })
    }

    fn path(&self) -> std::path::PathBuf {
        self.folder.path().join("chromium")
    }
}

/// `'text'` for sh, single quotes inside closed and reopened.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Gives `root` and everything in it to `uid:gid` (the browser's profile, written by this
/// process before the browser, which runs as that user, starts).
fn own_tree(root: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(root, Some(uid), Some(gid))?;
    if root.is_dir() {
        for entry in std::fs::read_dir(root)? {
            own_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Headless Chromium blocks third-party cookies unless the profile says otherwise.
fn write_cookie_preferences(profile: &std::path::Path) -> Result<(), ScanError> {
    let default = profile.join("Default");
    let prefs = serde_json::json!({
        "profile": {
            "cookie_controls_mode": 0,
            "block_third_party_cookies": false,
            "default_content_setting_values": { "cookies": 1 }
        }
    });
    std::fs::create_dir_all(&default)
        .and_then(|_| std::fs::write(default.join("Preferences"), prefs.to_string()))
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot write browser preferences: {e}")))
}

/// Flags for a quiet, headless, supervised browser on a closed or hostile network.
const FIXED_ARGS: [&str; 22] = [
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "no-default-browser-check",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-default-apps",
    "disable-breakpad",
    "disable-dev-shm-usage",
    "disable-client-side-phishing-detection",
    "disable-domain-reliability",
    "disable-hang-monitor",
    "disable-prompt-on-repost",
    "disable-renderer-backgrounding",
    "disable-background-timer-throttling",
    "disable-backgrounding-occluded-windows",
    "metrics-recording-only",
    "password-store=basic",
    // Site isolation would move cross-site iframes into processes whose network events arrive on
    // other DevTools sessions; keeping them in the page's process lets one session see them all.
    "disable-site-isolation-trials",
    // WebRTC may not open UDP paths around the proxy (and so around the egress guard).
    "force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    // Visitors' browsers are not automated: no `navigator.webdriver` (see `profile.rs`).
    "disable-blink-features=AutomationControlled",
];

/// Features switched off in one flag (Chromium honours only the last `--disable-features`).
const DISABLED_FEATURES: &str = "HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,IsolateOrigins,site-per-process,Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,InterestFeedContentSuggestions,AutofillServerCommunication,CertificateTransparencyComponentUpdater,PrivacySandboxSettings4";
