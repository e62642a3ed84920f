//! The caller's address for rate limits and the audit log.

use actix_web::HttpRequest;

/// The peer address, or the first `X-Forwarded-For` hop when the operator says a proxy of
/// theirs sets it.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    if trust_forwarded_for && let Some(first) = forwarded {
        return first.to_string();
    }
    req.peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}
