//! The snapshot: what a first-time visitor's browser received from one URL.
//!
//! This type is the contract between the runner and the app, so it is versioned: a change that
//! would make an older reader misread a snapshot bumps [`SNAPSHOT_FORMAT_VERSION`]. The JSON Schema
//! in `docs/snapshot.schema.json` is generated from these types (`siteward schema`) and tests check
//! both that the committed schema is current and that real scans validate against it.
//!
//! Everything here came from a site we do not trust: strings are data, never markup. Cookie and
//! storage *values* are never recorded, only their names and attributes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped whenever the meaning or shape of a field changes incompatibly.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_FORMAT_VERSION`] for snapshots written by this build.
    pub format_version: u32,
    /// Version of the scanner that produced the snapshot.
    pub scanner_version: String,
    /// The URL the scan was asked to load.
    pub requested_url: String,
    /// Where the main document ended up after all redirects.
    pub final_url: String,
    /// Every hop of the main document's redirect chain, in order, ending with the final URL.
    pub redirect_chain: Vec<RedirectHop>,
    /// HTTP status of the final main document response.
    pub status: Option<u16>,
    pub title: String,
    /// Registrable domain (eTLD+1 by the public suffix list) of the final URL; hosts under it are
    /// first party.
    pub first_party_domain: String,
    pub started_at: String,
    pub finished_at: String,
    pub timings: Timings,
    pub browser: BrowserInfo,
    /// The options the scan ran with, so a reader knows what was and was not looked at.
    pub options: RecordedOptions,
    pub dom: DomCapture,
    pub scripts: Vec<Script>,
    pub cookies: Vec<Cookie>,
    pub storage: Vec<StorageKeys>,
    pub requests: Vec<Request>,
    /// Connections the egress guard refused, in the order they were attempted.
    pub blocked: Vec<BlockedConnection>,
    pub console_errors: Vec<ConsoleError>,
    /// `alert`/`confirm`/`prompt`/`beforeunload` dialogs the page opened; each was dismissed.
    pub dialogs: Vec<Dialog>,
    /// Downloads the page tried to start; each was denied.
    pub downloads: Vec<Download>,
    /// Third-party hosts seen in requests, sorted. A first-party name whose DNS answer is an alias
    /// of another registrable domain (a cloaked tracker, see `dns_aliases`) is listed too.
    pub third_party_hosts: Vec<String>,
    /// Hosts contacted (first or third party) that the configured tracker list names, sorted by
    /// host. Empty when no list was configured.
    pub listed_hosts: Vec<HostClassification>,
    pub screenshots: Screenshots,
    pub policy_pages: Vec<PolicyPage>,
    /// The answer given to the cookie banner, for scans whose consent mode is not `no_interaction`.
    pub consent: Option<ConsentOutcome>,
    /// Limits that were reached during the scan; a non-empty list means the snapshot is partial in
    /// the ways listed.
    pub limits_hit: Vec<LimitHit>,
    /// How the wait before capture ended and what was still open then (absent in snapshots
    /// written before it was recorded).
    #[serde(default)]
    pub settle: Option<Settle>,
    /// Things the scanner could not read as it should have; each means the snapshot may have a
    /// hole. Empty on a sound capture.
    #[serde(default)]
    pub capture_warnings: Vec<CaptureWarning>,
    /// Hosts the page reached whose DNS answer was an alias (CNAME) of another name, sorted by
    /// host (absent in snapshots written before it was recorded).
    #[serde(default)]
    pub dns_aliases: Vec<DnsAlias>,
    /// The filter lists that classified the requests (`requests[].listed`), so a verdict can be
    /// reproduced later. Empty when none was configured.
    #[serde(default)]
    pub filter_lists: Vec<FilterListInfo>,
    /// The consent state the page's tags and consent manager announced (Google Consent Mode,
    /// IAB TCF).
    #[serde(default)]
    pub consent_signals: ConsentSignals,
    /// The main document's security headers as the browser received them (its final response,
    /// after redirects): CSP, HSTS, framing, permissions, referrer, cookies (without values),
    /// caching. Absent when they were not recorded (a scanner before they were, or no response
    /// seen); empty when the page sent none of them.
    #[serde(default)]
    pub document_headers: Option<Vec<Header>>,
}

/// One HTTP header, its name in lower case. Values that carry credentials (cookies,
/// `Authorization`) are redacted before they are recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A filter list as loaded for a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterListInfo {
    /// `easyprivacy` or `easylist`.
    pub name: String,
    /// The list's own `! Title:` header, if it has one.
    pub title: Option<String>,
    /// The file's modification time (RFC 3339): the lists' own `Last modified` header is often a
    /// template placeholder in distributed copies.
    pub file_date: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Request rules loaded (blocking and exception rules).
    pub rules: u64,
    /// Lines the engine could not read, skipped.
    pub skipped_lines: u64,
}

/// The rule of a filter list that names a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMatch {
    /// The list (`easyprivacy`: tracking; `easylist`: advertising).
    pub list: String,
    /// The rule as written in the list.
    pub rule: String,
}

/// Consent signals seen during a visit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentSignals {
    /// Google Consent Mode states sent with Google Analytics / Ads requests, in request order.
    pub google: Vec<GoogleConsentSignal>,
    /// The IAB TCF consent the page's CMP held at capture, if it has one.
    pub tcf: Option<TcfConsent>,
}

/// The Consent Mode state one Google tag request carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleConsentSignal {
    pub request_url: String,
    /// Sent after the cookie banner was answered.
    pub after_answer: bool,
    /// The raw `gcs` parameter (`G1xy`: ad_storage x, analytics_storage y).
    pub gcs: Option<String>,
    /// The raw `gcd` parameter (Consent Mode v2, all four purposes).
    pub gcd: Option<String>,
    pub ad_storage: Option<ConsentState>,
    pub analytics_storage: Option<ConsentState>,
    pub ad_user_data: Option<ConsentState>,
    pub ad_personalization: Option<ConsentState>,
}

/// One Consent Mode purpose's state, and whether it was a default or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    Granted,
    Denied,
    /// Granted by default, before any answer.
    GrantedByDefault,
    /// Denied by default, before any answer.
    DeniedByDefault,
    /// Granted by an update (the visitor's answer, or the site's code).
    GrantedByUpdate,
    /// Denied by an update.
    DeniedByUpdate,
}

impl ConsentState {
    pub fn granted(self) -> bool {
        matches!(
            self,
            Self::Granted | Self::GrantedByDefault | Self::GrantedByUpdate
        )
    }
}

/// An IAB TCF v2 consent string, decoded. The string itself is not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcfConsent {
    /// Where it was read: `cookie` (`euconsent-v2`) or `tcfapi`.
    pub source: String,
    pub cmp_id: u16,
    /// The TCF policy version.
    pub policy_version: u8,
    /// Purposes (1–24) the visitor consented to.
    pub purposes_consent: Vec<u8>,
    /// Purposes (1–24) claimed under legitimate interest.
    pub purposes_legitimate_interest: Vec<u8>,
    /// How many vendors have consent.
    pub vendors_consented: u32,
    /// Whether the CMP reported that the visitor has answered (`tcfapi` only).
    pub answered: Option<bool>,
}

/// A host whose name is a DNS alias of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsAlias {
    pub host: String,
    /// The CNAME chain from the host to the name that answered, in order.
    pub chain: Vec<String>,
    /// The party of the name that answered (the chain's last).
    pub canonical_party: Party,
    /// True when the host is first party by name but answered by another registrable domain:
    /// CNAME cloaking, the way trackers pass as the site itself (they receive its first-party
    /// cookies).
    pub cloaked: bool,
}

/// How the wait before capture ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    pub reason: SettleReason,
    /// From navigation start until the wait ended.
    pub after_ms: u64,
    /// Requests still open at capture time (event streams, long polls, sockets, unread bodies):
    /// the page was alive, not broken. At most [`MAX_OPEN_REQUESTS`].
    pub open_requests: Vec<OpenRequest>,
}

/// How many still-open requests a snapshot lists.
pub const MAX_OPEN_REQUESTS: usize = 200;

/// Why the wait before capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettleReason {
    /// Nothing new (request, script, frame, cookie write) for the quiet period, after the dwell.
    Quiet,
    /// The page was already quiet when the minimum dwell after `load` ended.
    Dwell,
    /// The page never went quiet; the wait ended at its cap (see `limits_hit`).
    Cap,
}

/// A request still open when the page was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub url: String,
    pub resource_type: String,
    /// Whether its response headers had arrived.
    pub responded: bool,
    /// Body bytes received so far.
    pub bytes_received: u64,
    /// How long it had shown no progress.
    pub idle_ms: u64,
}

/// Something the scanner could not read as it should have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureWarning {
    /// What kind of problem: `devtools_event_unparsed` (a DevTools event the scanner uses did not
    /// parse), `workers_not_followed` (the page's workers could not be followed).
    pub kind: String,
    /// How many times it happened during the scan.
    pub count: u64,
    /// One example, for the operator (a DevTools method name, never page content).
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectHop {
    pub url: String,
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// From navigation start until the main document's `load` event; absent if it never fired.
    pub load_ms: Option<u64>,
    /// From navigation start until the page settled (see `settle`); absent when the wait ran
    /// to its cap.
    pub network_quiet_ms: Option<u64>,
    /// The whole scan, capture included.
    pub total_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserInfo {
    pub product: String,
    pub user_agent: String,
    /// Whether third-party cookies were allowed, as in desktop Chrome's default.
    pub third_party_cookies_allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordedOptions {
    pub viewport_width: u32,
    pub viewport_height: u32,
    pub quiet_period_ms: u64,
    /// The least time waited after `load` before capture.
    #[serde(default)]
    pub min_dwell_ms: u64,
    pub load_timeout_ms: u64,
    pub scan_timeout_ms: u64,
    pub consent_mode: ConsentMode,
    pub policy_pages: bool,
    /// Host names mapped to fixed addresses (`--resolve`), as `host=ip`.
    pub resolve: Vec<String>,
    /// True when the egress guard was switched off for this scan.
    pub private_destinations_allowed: bool,
    /// The name server asked instead of the system's (`--dns-server`), as `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// The visitor the browser presented itself as (absent in snapshots written before it was
    /// recorded, whose scans showed headless Chromium's own User-Agent).
    #[serde(default)]
    pub visitor: Option<RecordedVisitor>,
    /// Whether the visit sent Global Privacy Control (`Sec-GPC: 1`,
    /// `navigator.globalPrivacyControl`).
    #[serde(default)]
    pub global_privacy_control: bool,
}

/// The visitor profile of a scan; the User-Agent it sent is `browser.user_agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordedVisitor {
    pub device: crate::profile::Device,
    /// Preferred languages, most preferred first.
    pub languages: Vec<String>,
    /// The `Accept-Language` header sent.
    pub accept_language: String,
    /// IANA timezone the pages saw.
    pub timezone: String,
}

/// How the scan treated cookie-consent banners.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The page was loaded and left alone, as a visitor who has not answered the banner.
    NoInteraction,
    /// The banner's "accept all" was clicked, then the scan waited for the network again.
    AcceptAll,
    /// The banner's "reject all" was clicked, then the scan waited for the network again.
    RejectAll,
}

/// What happened with the cookie banner when the consent mode asked for an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentOutcome {
    pub mode: ConsentMode,
    /// The control that gave the answer, on the banner's first layer or its second; absent when
    /// no banner control was found.
    pub clicked: Option<ConsentClick>,
    /// The first layer's "manage preferences" control, clicked because that layer offered no
    /// refusal; the answer was then given on the second layer.
    #[serde(default)]
    pub settings: Option<ConsentClick>,
    /// The optional purposes the scan switched off on the second layer before saving.
    #[serde(default)]
    pub unticked: Vec<String>,
    /// The cookies present before the answer: what the site set without consent.
    pub cookies_before: Vec<Cookie>,
    /// Known consent managers whose script or markup the page had (`klaro`, `onetrust`, ...).
    /// One of them with nothing clicked means the banner was hidden from this visit: a finding,
    /// not a page without a banner.
    #[serde(default)]
    pub consent_managers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentClick {
    /// The consent platform recognised (`onetrust`, `cookiebot`, ...), or `text` when the control
    /// was found by its wording.
    pub matched_by: String,
    /// The control's visible text.
    pub label: String,
    /// The document of the frame that held it.
    pub frame_url: String,
    /// The banner layer it was on: 1, or 2 when reached through "manage preferences".
    #[serde(default = "first_layer")]
    pub layer: u8,
}

fn first_layer() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomCapture {
    /// Serialized DOM of the main frame after the quiet period, truncated to `size_limit_bytes`.
    pub html: String,
    /// Size of the full serialization before truncation.
    pub size_bytes: u64,
    pub truncated: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    First,
    Third,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Script {
    /// A script loaded from its own URL.
    External {
        url: String,
        host: String,
        party: Party,
        /// Hex SHA-256 of the script source as the browser ran it (UTF-8).
        sha256: String,
        size_bytes: u64,
        /// The page's document URL of the frame that ran it.
        frame_url: String,
    },
    /// A script embedded in a document (including ones injected as text by other scripts).
    Inline {
        sha256: String,
        size_bytes: u64,
        /// The first characters of the source, for recognising it.
        first_bytes: String,
        frame_url: String,
    },
}

impl Script {
    pub fn sha256(&self) -> &str {
        match self {
            Script::External { sha256, .. } | Script::Inline { sha256, .. } => sha256,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    Strict,
    Lax,
    None,
    /// No SameSite attribute was given.
    Unspecified,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CookieSource {
    /// A `Set-Cookie` response header.
    Header,
    /// `document.cookie` or the Cookie Store API, from a script.
    Script,
}

/// A cookie present at the end of the scan. Its value is never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    pub name: String,
    pub domain: String,
    pub path: String,
    /// Expiry as an RFC 3339 time; absent for a session cookie.
    pub expires: Option<String>,
    pub session: bool,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: SameSite,
    pub party: Party,
    /// The host whose response header or script set the cookie, where known.
    pub set_by_host: Option<String>,
    pub set_by: Option<CookieSource>,
    /// The script whose `document.cookie` or Cookie Store write set it, where known.
    #[serde(default)]
    pub set_by_script: Option<String>,
    /// Length of the value in bytes (the value itself is never kept).
    pub value_size: u64,
    /// What the configured cookie database says about a cookie of this name, if anything.
    pub classification: Option<CookieClassification>,
}

/// A host found on the configured tracker list (Disconnect format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostClassification {
    pub host: String,
    /// The list entry that matched: the host itself or a parent domain.
    pub listed_domain: String,
    /// Advertising, Analytics, Social, Fingerprinting, Cryptomining...
    pub category: String,
    /// The company behind it.
    pub entity: String,
}

/// A cookie database entry (Open Cookie Database format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieClassification {
    /// Functional, Analytics, Marketing, Security, Necessary, Personalization...
    pub category: String,
    /// The product that sets it, e.g. Google Analytics.
    pub platform: String,
    pub data_controller: String,
    pub retention: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    Local,
    Session,
}

/// Keys present in one origin's Web Storage. Values are never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageKeys {
    pub origin: String,
    pub kind: StorageKind,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub url: String,
    pub method: String,
    /// The browser's resource type (Document, Script, Image, XHR, Fetch, Ping, WebSocket, ...).
    pub resource_type: String,
    pub host: String,
    pub party: Party,
    pub status: Option<u16>,
    /// Why the request failed (the browser's net error), if it did.
    pub failure: Option<String>,
    /// True when the egress guard refused the connection this request needed.
    pub blocked: bool,
    /// Milliseconds from navigation start until the request was sent.
    pub started_ms: u64,
    /// Milliseconds the request took until it finished or failed; absent if it never finished.
    pub duration_ms: Option<u64>,
    /// Bytes received over the network, where the browser reported them.
    pub encoded_bytes: Option<u64>,
    /// Sent after the page was hidden, as when the visitor switches away or leaves (exit
    /// beacons on `visibilitychange` or `pagehide`).
    #[serde(default)]
    pub after_hide: bool,
    /// First sent after the cookie banner was answered (scans that answer it).
    #[serde(default)]
    pub after_answer: bool,
    /// What made the browser send it: the script that asked (for script-initiated requests), or
    /// the document whose markup named it.
    #[serde(default)]
    pub initiator: Option<String>,
    /// The filter-list rule that names it (tracking or advertising), if any.
    #[serde(default)]
    pub listed: Option<ListMatch>,
    /// How the browser came to send it: `parser`, `script`, `preload`, `redirect`, `other`...
    #[serde(default)]
    pub initiator_type: Option<String>,
    /// The headers the page's request carried as DevTools reported them, in lower case, cookie
    /// values and credentials redacted. Empty when they were not recorded (an older scanner, or
    /// the scan's header budget was spent).
    #[serde(default)]
    pub request_headers: Vec<Header>,
    /// The response this hop got, when one arrived and its details were recorded.
    #[serde(default)]
    pub response: Option<ResponseDetails>,
    /// Where the time went, in the phases HAR 1.2 names, when the browser reported them.
    #[serde(default)]
    pub timing: Option<RequestTiming>,
}

/// The parts of a response a HAR reader shows (bodies are never kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseDetails {
    pub status_text: String,
    /// The protocol as the browser names it: `http/1.1`, `h2`, `h3`, `data`...
    pub protocol: Option<String>,
    pub mime_type: Option<String>,
    /// In lower case, in the order received; `Set-Cookie` values redacted.
    pub headers: Vec<Header>,
    /// Body bytes after decoding, as the browser counted them, where it did.
    pub body_bytes: Option<u64>,
}

/// Milliseconds spent in each phase of a request, as HAR 1.2 defines them; `-1` where a phase did
/// not apply (a reused connection has no `dns` or `connect`). `ssl` is part of `connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTiming {
    pub blocked: f64,
    pub dns: f64,
    pub connect: f64,
    pub ssl: f64,
    pub send: f64,
    pub wait: f64,
    pub receive: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedConnection {
    pub host: String,
    pub port: u16,
    /// The address the guard resolved the host to, if it got that far.
    pub address: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleError {
    /// `console.error`, a log entry of level error, or an uncaught exception.
    pub kind: String,
    pub message: String,
    pub source_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dialog {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Download {
    pub url: String,
    pub suggested_filename: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Screenshots {
    pub viewport: ScreenshotInfo,
    pub full_page: ScreenshotInfo,
    /// Height of the whole page in CSS pixels, before the cap.
    pub page_height: u32,
    /// True when the full-page screenshot was cut at `full_page_max_height`.
    pub full_page_truncated: bool,
    pub full_page_max_height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenshotInfo {
    pub width: u32,
    pub height: u32,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Privacy,
    Cookies,
    Terms,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPage {
    pub kind: PolicyKind,
    pub url: String,
    /// The link text that led to it.
    pub link_text: String,
    pub status: Option<u16>,
    /// Visible text of the page, truncated to the policy text limit.
    pub text: String,
    pub truncated: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "limit", rename_all = "snake_case", deny_unknown_fields)]
pub enum LimitHit {
    /// The `load` event did not fire in time; capture went ahead with what had loaded.
    LoadTimeout { after_ms: u64 },
    /// The network never went quiet; capture went ahead when the wait ran out.
    NetworkNeverQuiet { after_ms: u64 },
    /// Requests beyond this many were not recorded.
    RequestCount { max: usize },
    /// The DOM was larger than this and was truncated.
    DomSize { max_bytes: u64 },
    /// The guard stopped relaying after this many bytes for the scan.
    TransferBytes { max_bytes: u64 },
    /// The full-page screenshot was cut at this height.
    ScreenshotHeight { max_height: u32 },
    /// Scripts beyond this many were not recorded.
    ScriptCount { max: usize },
    /// A list the page could grow without end (dialogs, downloads, console errors, frames, cookie
    /// writes, refused connections) was cut at this many entries.
    ListTruncated { list: String, max: usize },
    /// Script sources beyond this many bytes in all were not read.
    ScriptBytes { max_bytes: u64 },
    /// Request and response headers past this many bytes in all were not recorded.
    HeaderBytes { max_bytes: u64 },
}

impl LimitHit {
    /// In words, for people.
    pub fn describe(&self) -> String {
        match self {
            LimitHit::LoadTimeout { after_ms } => {
                format!("the page had not finished loading after {after_ms} ms")
            }
            LimitHit::NetworkNeverQuiet { after_ms } => {
                format!("the network was still busy after {after_ms} ms")
            }
            LimitHit::RequestCount { max } => {
                format!("only the first {max} requests were recorded")
            }
            LimitHit::DomSize { max_bytes } => format!("the DOM was cut at {max_bytes} bytes"),
            LimitHit::TransferBytes { max_bytes } => {
                format!("downloads stopped after {max_bytes} bytes")
            }
            LimitHit::ScreenshotHeight { max_height } => {
                format!("the full-page screenshot was cut at {max_height} px")
            }
            LimitHit::ScriptCount { max } => format!("only {max} scripts were recorded"),
            LimitHit::ListTruncated { list, max } => {
                format!("only the first {max} {list} were recorded")
            }
            LimitHit::ScriptBytes { max_bytes } => {
                format!("script sources past {max_bytes} bytes were not read")
            }
            LimitHit::HeaderBytes { max_bytes } => {
                format!("headers past {max_bytes} bytes were not recorded")
            }
        }
    }
}

impl SameSite {
    /// As the `Set-Cookie` attribute says it; `not set` when it was absent.
    pub fn as_header(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
            SameSite::Unspecified => "not set",
        }
    }
}

impl ConsentMode {
    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            ConsentMode::NoInteraction => "banner left unanswered",
            ConsentMode::AcceptAll => "accept all",
            ConsentMode::RejectAll => "reject all",
        }
    }
}

impl Party {
    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Party::First => "first party",
            Party::Third => "third party",
        }
    }
}

impl PolicyKind {
    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            PolicyKind::Privacy => "Privacy policy",
            PolicyKind::Cookies => "Cookie policy",
            PolicyKind::Terms => "Terms",
        }
    }
}
