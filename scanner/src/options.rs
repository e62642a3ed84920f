//! What one scan does: viewport, waits, limits and the egress policy.

use std::time::Duration;

use std::sync::Arc;

use crate::classify::{CookieDatabase, FilterLists, HostList};
use crate::egress::EgressPolicy;
use crate::profile::VisitorProfile;
use crate::snapshot::ConsentMode;

/// The quiet period of every scan unless told otherwise: the CLI's, a new target's in the
/// service, and the runner's.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_millis(1_500);

/// The minimum dwell after `load` of every scan unless told otherwise.
pub const DEFAULT_MIN_DWELL: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub viewport_width: u32,
    pub viewport_height: u32,
    /// Who the browser presents itself as (device, languages, timezone).
    pub profile: VisitorProfile,
    /// Replaces the profile's User-Agent string (the client hints stay the profile's).
    pub user_agent: Option<String>,
    /// Capture waits until nothing new (request, script, frame, cookie write) has happened for
    /// this long, and no request the page is still waiting on is open.
    pub quiet_period: Duration,
    /// The least time waited after `load` (and after a banner answer), so trackers that timers
    /// inject are caught.
    pub min_dwell: Duration,
    /// How long to wait for `load` before capturing anyway.
    pub load_timeout: Duration,
    /// Hard limit on the whole scan; past it the scan fails.
    pub scan_timeout: Duration,
    /// Follow links to privacy, cookie and terms pages and keep their text.
    pub policy_pages: bool,
    pub egress: EgressPolicy,
    pub limits: Limits,
    /// Whether and how to answer the cookie banner before capturing.
    pub consent_mode: ConsentMode,
    /// Classifies cookies by name; without one, cookies are not classified.
    pub cookie_database: Option<Arc<CookieDatabase>>,
    /// Names tracker hosts; without one, hosts are not classified.
    pub host_list: Option<Arc<HostList>>,
    /// EasyPrivacy / EasyList: names tracking and advertising requests; without them, requests
    /// are not classified.
    pub filter_lists: Option<Arc<FilterLists>>,
    /// Send Global Privacy Control (`Sec-GPC: 1`, `navigator.globalPrivacyControl`).
    pub global_privacy_control: bool,
}

/// Size limits that keep a hostile page from making a scan unbounded. Each one reached is reported
/// in the snapshot.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_requests: usize,
    pub max_scripts: usize,
    pub max_dom_bytes: usize,
    pub max_script_bytes: usize,
    pub max_policy_text_bytes: usize,
    pub max_full_page_height: u32,
    /// Bytes the guard relays for one scan, both directions, all connections.
    pub max_transfer_bytes: u64,
    /// Characters kept of console messages and dialog texts.
    pub max_message_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_requests: 5_000,
            max_scripts: 1_000,
            max_dom_bytes: 5 * 1024 * 1024,
            max_script_bytes: 20 * 1024 * 1024,
            max_policy_text_bytes: 512 * 1024,
            max_full_page_height: 16_384,
            max_transfer_bytes: 200 * 1024 * 1024,
            max_message_chars: 2_000,
        }
    }
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            viewport_width: 1366,
            viewport_height: 768,
            profile: VisitorProfile::default(),
            user_agent: None,
            quiet_period: DEFAULT_QUIET_PERIOD,
            min_dwell: DEFAULT_MIN_DWELL,
            load_timeout: Duration::from_secs(20),
            scan_timeout: Duration::from_secs(60),
            policy_pages: false,
            egress: EgressPolicy::public_only(),
            limits: Limits::default(),
            consent_mode: ConsentMode::NoInteraction,
            cookie_database: None,
            host_list: None,
            filter_lists: None,
            global_privacy_control: false,
        }
    }
}
