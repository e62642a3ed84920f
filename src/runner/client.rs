//! The runner's side of `/internal/v1`: typed calls with errors that say what to do next.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::protocol::{
    ATTEMPT_HEADER, ClaimRequest, ClaimedJob, CrawlNext, FailReply, FailRequest,
};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The app refused the runner's token (revoked, or never valid).
    #[error("the app refused this runner's token (was the runner revoked?)")]
    Unauthorized,
    /// The attempt no longer holds the job: drop the work.
    #[error("this attempt no longer holds the job")]
    Stale,
    /// The app answered that the request is wrong; retrying will not help.
    #[error("the app refused the request ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// The app or its storage is unreachable or overloaded: retry later.
    #[error("the app is unavailable: {0}")]
    Unavailable(String),
}

/// Talks to one app.
#[derive(Clone)]
pub struct AppClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

impl AppClient {
    pub fn new(base: Url, token: SecretString) -> Result<AppClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Below the app's keep-alive, so an idle connection is never reused as it closes.
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("siteward-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(AppClient { http, base, token })
    }

    fn url(&self, path: &str) -> Result<Url, CallError> {
        self.base.join(path).map_err(|e| CallError::Rejected {
            status: 0,
            detail: e.to_string(),
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, CallError> {
        Ok(self
            .http
            .request(method, self.url(path)?)
            .bearer_auth(self.token.expose_secret()))
    }

    async fn send(builder: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let response = builder
            .send()
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => CallError::Unauthorized,
            StatusCode::CONFLICT => CallError::Stale,
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                CallError::Unavailable(format!("{s}: {detail}"))
            }
            s => CallError::Rejected {
                status: s.as_u16(),
                detail,
            },
        })
    }

    /// Waits up to `wait_seconds` for a job.
    pub async fn claim(&self, wait_seconds: u32) -> Result<Option<ClaimedJob>, CallError> {
        let response = Self::send(
            self.request(reqwest::Method::POST, "internal/v1/jobs/claim")?
                .timeout(Duration::from_secs(u64::from(wait_seconds) + 15))
                .json(&ClaimRequest { wait_seconds }),
        )
        .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| CallError::Unavailable(format!("unreadable claim answer: {e}")))
    }

    fn job_request(
        &self,
        method: reqwest::Method,
        job: &ClaimedJob,
        rest: &str,
    ) -> Result<reqwest::RequestBuilder, CallError> {
        Ok(self
            .request(method, &format!("internal/v1/jobs/{}/{rest}", job.job_id))?
            .header(ATTEMPT_HEADER, &job.attempt_token))
    }

    pub async fn heartbeat(&self, job: &ClaimedJob) -> Result<(), CallError> {
        Self::send(
            self.job_request(reqwest::Method::POST, job, "heartbeat")?
                .timeout(Duration::from_secs(20)),
        )
        .await
        .map(drop)
    }

    pub async fn upload(
        &self,
        job: &ClaimedJob,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), CallError> {
        Self::send(
            self.job_request(reqwest::Method::PUT, job, &format!("artifacts/{name}"))?
                .timeout(Duration::from_secs(300))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes),
        )
        .await
        .map(drop)
    }

    /// Sends the job's result (a snapshot, or a checkout run's report and pages).
    pub async fn complete<T: serde::de::DeserializeOwned>(
        &self,
        job: &ClaimedJob,
        document: Vec<u8>,
    ) -> Result<T, CallError> {
        Self::send(
            self.job_request(reqwest::Method::POST, job, "complete")?
                .timeout(Duration::from_secs(300))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(document),
        )
        .await?
        .json()
        .await
        .map_err(|e| CallError::Unavailable(format!("unreadable completion answer: {e}")))
    }

    /// For a crawl lane: the crawl's next page, or wait, or done.
    pub async fn crawl_next(&self, lane: &ClaimedJob) -> Result<CrawlNext, CallError> {
        Self::send(
            self.job_request(reqwest::Method::POST, lane, "crawl/next")?
                .timeout(Duration::from_secs(30)),
        )
        .await?
        .json()
        .await
        .map_err(|e| CallError::Unavailable(format!("unreadable answer: {e}")))
    }

    pub async fn fail(&self, job: &ClaimedJob, error: &str) -> Result<FailReply, CallError> {
        Self::send(
            self.job_request(reqwest::Method::POST, job, "fail")?
                .timeout(Duration::from_secs(20))
                .json(&FailRequest {
                    error: error.to_string(),
                }),
        )
        .await?
        .json()
        .await
        .map_err(|e| CallError::Unavailable(format!("unreadable answer: {e}")))
    }
}
