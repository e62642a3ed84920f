//! The contract between the app's internal API (`/internal/v1`) and `siteward runner`: what a
//! claimed job looks like, what a runner sends back, and the header that carries the attempt.

use scanner::snapshot::ConsentMode;
use serde::{Deserialize, Serialize};

/// The header every job request carries: the claimed attempt's token.
pub const ATTEMPT_HEADER: &str = "siteward-attempt";

/// The only job kind runners do so far.
pub const SCAN_JOB: &str = "scan";

/// The artifacts a scan uploads, with their content types.
pub const SCAN_ARTIFACTS: [(&str, &str); 2] =
    [("viewport.png", "image/png"), ("fullpage.png", "image/png")];

/// The sealed blob that holds the whole snapshot (DOM, requests, policy text).
pub const SNAPSHOT_ARTIFACT: &str = "snapshot.json";

/// The most an artifact upload may be.
pub const MAX_ARTIFACT_BYTES: usize = 48 * 1024 * 1024;
/// The most a snapshot document may be.
pub const MAX_SNAPSHOT_BYTES: usize = 48 * 1024 * 1024;
/// The longest a claim waits for a job.
pub const MAX_CLAIM_WAIT_SECONDS: u32 = 30;

/// `POST /internal/v1/jobs/claim`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Wait up to this long (at most 30 s) for a job before answering 204.
    pub wait_seconds: u32,
}

/// What a scan job asks for; it is the job's payload, fixed when the scan was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanOrder {
    pub scan_id: i64,
    pub url: String,
    pub viewport_width: u32,
    pub viewport_height: u32,
    pub consent_mode: ConsentMode,
    pub policy_pages: bool,
    /// The network must be quiet this long before capture.
    pub wait_ms: u32,
}

/// A job handed to a runner.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimedJob {
    pub job_id: i64,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Send it as the `siteward-attempt` header on every request about this job.
    pub attempt_token: String,
    /// Heartbeat well within this, or the job returns to the queue.
    pub lease_seconds: u64,
    pub scan: ScanOrder,
}

impl std::fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedJob")
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .field("attempt_token", &"[redacted]")
            .field("scan", &self.scan)
            .finish_non_exhaustive()
    }
}

/// The answer to a completed scan: the snapshot it became. `duplicate` is true when this
/// attempt had already completed (a retried request): nothing new was written.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Completed {
    pub snapshot_id: i64,
    pub duplicate: bool,
}

/// `POST /internal/v1/jobs/{job_id}/fail`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// Shown to the people who asked for the scan; at most 2,000 characters are kept.
    pub error: String,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailReply {
    /// `retrying` or `dead`.
    pub outcome: String,
    /// When the next attempt may start (RFC 3339), while retrying.
    pub retry_at: Option<String>,
}
