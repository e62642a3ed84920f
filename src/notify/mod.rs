//! Sending notifications: mail through the app's mailer, and HTTP POSTs to webhooks (signed) and
//! Slack-compatible incoming webhooks — through the same egress rules as scans: the host is
//! resolved here, every address must be public, and the connection goes to the address checked.
//!
//! Webhook signature: header `Siteward-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
//! HMAC key is the channel's secret and the message is `<t>.<raw body>`. Receivers recompute it,
//! compare in constant time, and reject a `t` older than five minutes (replays). Each request also
//! carries `Siteward-Delivery: <id>`, the same on every retry of one message, for deduplication.

pub mod escape;

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use crate::crypto::hmac_sha256;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the URL is not allowed: {0}")]
    Refused(String),
    #[error("the receiver answered {status}")]
    Status { status: u16 },
    #[error("the receiver could not be reached: {0}")]
    Network(String),
    #[error("mail could not be sent: {0}")]
    Mail(String),
}

impl SendError {
    /// The HTTP status the receiver answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Status { status } => Some(*status),
            _ => None,
        }
    }
}

/// `t=<ts>,v1=<hex>` for this body.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(hmac_sha256(secret, &message))
    )
}

/// Checks a signature header against a body: what a receiver does (and what the tests do).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_seconds: i64) -> bool {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_seconds {
        return false;
    }
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    crate::crypto::constant_time_eq(&hmac_sha256(secret, &message), &given)
}

/// A webhook or Slack URL as typed: http(s), no credentials, a host.
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|_| "is not a URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    Ok(url)
}

/// Resolves the URL's host and checks every address (unless private ones are allowed).
async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, SendError> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SendError::Network(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addresses.is_empty() {
        return Err(SendError::Network(format!("{host} has no address")));
    }
    if !allow_private {
        for address in &addresses {
            if let Err(kind) = scanner::egress::classify(address.ip()) {
                // The tenant sees the name and the class; the address goes to the operator's log.
                tracing::info!(%host, address = %address.ip(), "notification refused by the egress rules");
                return Err(SendError::Refused(format!(
                    "{host} resolves to a non-public address ({})",
                    kind.describe()
                )));
            }
        }
    }
    Ok(addresses)
}

/// POSTs a JSON body to the URL, pinned to the addresses just checked.
pub async fn post_json(
    url: &Url,
    body: &[u8],
    headers: &[(&str, String)],
    allow_private: bool,
) -> Result<u16, SendError> {
    let addresses = resolve(url, allow_private).await?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .resolve_to_addrs(&host, &addresses)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("siteward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SendError::Network(e.to_string()))?;
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| SendError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(SendError::Status { status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_fail_when_altered_or_stale() {
        let body = br#"{"alert":1}"#;
        let header = signature(b"secret", 1_700_000_000, body);
        assert!(verify(b"secret", &header, body, 1_700_000_010, 300));
        assert!(!verify(
            b"secret",
            &header,
            br#"{"alert":2}"#,
            1_700_000_010,
            300
        ));
        assert!(!verify(b"other", &header, body, 1_700_000_010, 300));
        assert!(
            !verify(b"secret", &header, body, 1_700_000_400, 300),
            "replayed too late"
        );
        assert!(!verify(b"secret", "t=1,v1=zz", body, 1, 300));
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("https://user:pw@example.com").is_err());
    }
}
