//! The caller's address for rate limits and the audit log.

use actix_web::HttpRequest;

/// The peer address, or — when the operator says a proxy of theirs sets it — the last
/// `X-Forwarded-For` entry: the address that proxy saw. (Earlier entries come from the client and
/// can be anything.)
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    if trust_forwarded_for && let Some(first) = forwarded {
        return first.to_string();
    }
    req.peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_entry_the_trusted_proxy_added_counts() {
        let req = TestRequest::default()
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.9"))
            .peer_addr("10.0.0.2:4000".parse().unwrap())
            .to_http_request();
        assert_eq!(
            client_ip(&req, true),
            "203.0.113.9",
            "the client wrote 6.6.6.6 itself"
        );
        assert_eq!(client_ip(&req, false), "10.0.0.2");
        let garbage = TestRequest::default()
            .insert_header(("x-forwarded-for", "not-an-address"))
            .peer_addr("10.0.0.2:4000".parse().unwrap())
            .to_http_request();
        assert_eq!(client_ip(&garbage, true), "10.0.0.2");
    }
}
