//! The one middleware every response passes: a request id and tracing span, metrics by route,
//! the security headers, and a CSRF cookie minted during the request.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use super::csrf::PendingCsrfCookie;
use super::metrics::Metrics;

/// Whether responses carry HSTS (only when people reach us over TLS).
#[derive(Clone, Copy)]
pub struct HeaderPolicy {
    pub hsts: bool,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const PERMISSIONS: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), \
                           serial=(), bluetooth=(), interest-cohort=()";

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = hex::encode(crate::crypto::random_bytes::<8>());
    let span = tracing::info_span!("request", id = %request_id, method = %req.method());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let policy = req
        .app_data::<web::Data<HeaderPolicy>>()
        .map(|p| *p.get_ref())
        .unwrap_or(HeaderPolicy { hsts: false });
    let method = req.method().clone();

    // Handler and extractor errors arrive here as responses already; an `Err` comes only from
    // the framework itself and passes through unchanged.
    let mut response = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();

    let status = response.status().as_u16();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".into());
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(method.as_str(), &route, status, elapsed);
    }
    span.in_scope(|| {
        tracing::debug!(%route, status, micros = elapsed.as_micros() as u64, "answered");
    });

    let pending = response
        .request()
        .extensions()
        .get::<PendingCsrfCookie>()
        .map(|p| p.0.clone());
    if let Some(cookie) = pending {
        let _ = response.response_mut().add_cookie(&cookie);
    }
    let headers = response.headers_mut();
    // A handler that serves a stored document sets a stricter policy of its own.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(HeaderName::from_static("permissions-policy"), PERMISSIONS);
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if policy.hsts {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
