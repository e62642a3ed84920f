//! Why a scan could not produce a snapshot. Each message is one line a person can act on.

use std::path::PathBuf;

use crate::browser::Death;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("refused to load {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("could not reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("TLS failure loading {url}: {reason}")]
    Tls { url: String, reason: String },
    #[error("timed out after {seconds} s {during}")]
    Timeout { seconds: u64, during: &'static str },
    #[error("the page crashed the browser's renderer")]
    RendererCrashed,
    #[error("the browser process exited during the scan")]
    BrowserCrashed,
    #[error("the browser stopped responding and was restarted")]
    BrowserHung,
    #[error("Chromium not found at {}; install it (apt-get install chromium) or pass its path", .0.display())]
    BrowserMissing(PathBuf),
    #[error("could not launch the browser: {0}")]
    BrowserLaunch(String),
    #[error("browser protocol error: {0}")]
    Protocol(String),
    #[error("the scanner is shutting down")]
    ShuttingDown,
}

impl ScanError {
    pub(crate) fn cdp(error: chromiumoxide::error::CdpError) -> Self {
        ScanError::Protocol(error.to_string())
    }

    /// The failure lies with the target site (bad URL, unreachable, TLS, timeout, crash), not with
    /// siteward or its browser.
    pub fn is_target_failure(&self) -> bool {
        matches!(
            self,
            ScanError::InvalidUrl { .. }
                | ScanError::Refused { .. }
                | ScanError::Unreachable { .. }
                | ScanError::Tls { .. }
                | ScanError::Timeout { .. }
                | ScanError::RendererCrashed
        )
    }
}

impl From<Death> for ScanError {
    fn from(death: Death) -> Self {
        match death {
            Death::Exited => ScanError::BrowserCrashed,
            Death::Hung => ScanError::BrowserHung,
        }
    }
}
