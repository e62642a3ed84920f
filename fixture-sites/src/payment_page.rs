//! A payment page built like a real shop's (`shop.test/payment`), for payment-page integrity
//! (PCI DSS 4.0 6.4.3 and 11.6.1): a first-party checkout library, a vendor script pinned with
//! Subresource Integrity, an inline configuration script, the payment provider's card-field
//! iframe (`pay.test/card-frame`, running `pay.test/card.js`), and the security headers a careful
//! shop sends (CSP, HSTS, framing, permissions, referrer, a session cookie, no caching).
//!
//! [`crate::FixtureSites::set_version`] switches it to a state that an attacker or a careless
//! deployment leaves behind; each is one of the constants below, and everything not named stays
//! as in [`BASELINE`].

use actix_web::HttpResponse;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{CDN, PAY, SHOP};

/// As the shop deploys it.
pub const BASELINE: u8 = 0;
/// The checkout library (`cdn.test/pay/lib.js`, no SRI) serves different code.
pub const SCRIPT_CHANGED: u8 = 10;
/// The checkout library injects a skimmer from a first-party path (`/assets/skim.js`), as
/// Magecart-style attacks do.
pub const SKIMMER_INJECTED: u8 = 11;
/// The inline configuration script changed.
pub const INLINE_CHANGED: u8 = 12;
/// The Content-Security-Policy header is gone.
pub const CSP_DROPPED: u8 = 13;
/// The Content-Security-Policy lets scripts come from anywhere.
pub const CSP_LOOSENED: u8 = 14;
/// The card-field iframe runs one more script (`pay.test/fraud.js`).
pub const IFRAME_SCRIPT_ADDED: u8 = 15;
/// The checkout library is not on the page (a deployment without it).
pub const SCRIPT_REMOVED: u8 = 16;
/// The checkout library is back with a body never served before.
pub const SCRIPT_RETURNED: u8 = 17;

/// The vendor script, pinned by its SRI hash on the page.
const VENDOR_JS: &str = "window.checkoutVendor = { name: 'fixture-vendor', version: '4.2.0' };";

/// `integrity` value of a script body.
pub fn sri(body: &str) -> String {
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
    )
}

/// The page's answer for `host` and `path`, if it is one of its parts.
pub(crate) fn route(
    host: &str,
    path: &str,
    http: &dyn Fn(&str, &str) -> String,
    version: u8,
) -> Option<HttpResponse> {
    let origin = |host: &str| http(host, "").trim_end_matches('/').to_owned();
    Some(match (host, path) {
        (SHOP, "/payment") => {
            let mut response = HttpResponse::Ok();
            response.content_type("text/html; charset=utf-8");
            let script_src = if version == CSP_LOOSENED {
                "* 'unsafe-inline' 'unsafe-eval'".to_owned()
            } else {
                format!("'self' {} 'unsafe-inline'", origin(CDN))
            };
            if version != CSP_DROPPED {
                response.insert_header((
                    "Content-Security-Policy",
                    format!(
                        "default-src 'self'; script-src {script_src}; frame-src {}; frame-ancestors 'none'",
                        origin(PAY)
                    ),
                ));
            }
            response
                .insert_header(("Strict-Transport-Security", "max-age=31536000"))
                .insert_header(("X-Frame-Options", "DENY"))
                .insert_header(("Referrer-Policy", "strict-origin-when-cross-origin"))
                .insert_header((
                    "Permissions-Policy",
                    format!("payment=(self \"{}\")", origin(PAY)),
                ))
                .insert_header(("Cache-Control", "no-store"))
                .insert_header((
                    "Set-Cookie",
                    format!(
                        "checkout_session={}; Path=/; HttpOnly; SameSite=Strict",
                        session_value()
                    ),
                ));
            response.body(page(http, version))
        }
        (CDN, "/pay/lib.js") => script(&library(version)),
        // Loaded with `crossorigin` (SRI needs CORS), so it says who may read it.
        (CDN, "/pay/vendor.js") => HttpResponse::Ok()
            .content_type("application/javascript")
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .body(VENDOR_JS),
        (SHOP, "/assets/skim.js") => script(
            "document.addEventListener('input', function (e) { \
             window.skimmed = (window.skimmed || '') + e.target.value; });",
        ),
        (PAY, "/card-frame") => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(card_frame(http, version)),
        (PAY, "/card.js") => script("window.cardField = { ready: true };"),
        (PAY, "/fraud.js") => script("window.deviceFingerprint = navigator.userAgent.length;"),
        _ => return None,
    })
}

fn page(http: &dyn Fn(&str, &str) -> String, version: u8) -> String {
    let config = if version == INLINE_CHANGED {
        "window.checkoutConfig = { currency: 'EUR', collect: '/assets/collect' };"
    } else {
        "window.checkoutConfig = { currency: 'EUR' };"
    };
    let library = if version == SCRIPT_REMOVED {
        String::new()
    } else {
        format!("<script src=\"{}\"></script>", http(CDN, "/pay/lib.js"))
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Payment</title>
<script src=\"{vendor}\" integrity=\"{integrity}\" crossorigin=\"anonymous\"></script>
{library}
<script>{config}</script></head>
<body><h1>Payment</h1><p>Total: € 25.00</p>
<iframe title=\"Card details\" src=\"{frame}\" width=\"400\" height=\"120\"></iframe>
<button type=\"button\">Pay now</button></body></html>",
        vendor = http(CDN, "/pay/vendor.js"),
        integrity = sri(VENDOR_JS),
        frame = http(PAY, "/card-frame"),
    )
}

fn library(version: u8) -> String {
    match version {
        SCRIPT_CHANGED => "window.checkoutLib = { version: '2.0.1', track: true };".to_owned(),
        SCRIPT_RETURNED => {
            "window.checkoutLib = { version: '3.0.0', send: '/collect' };".to_owned()
        }
        SKIMMER_INJECTED => "window.checkoutLib = { version: '2.0.0' }; \
             (function () { var s = document.createElement('script'); \
             s.src = '/assets/skim.js'; document.head.appendChild(s); })();"
            .to_owned(),
        _ => "window.checkoutLib = { version: '2.0.0' };".to_owned(),
    }
}

fn card_frame(http: &dyn Fn(&str, &str) -> String, version: u8) -> String {
    let extra = if version == IFRAME_SCRIPT_ADDED {
        format!("<script src=\"{}\"></script>", http(PAY, "/fraud.js"))
    } else {
        String::new()
    };
    format!(
        "<!doctype html><title>Card</title><script src=\"{}\"></script>{extra}
<label>Card number <input autocomplete=\"cc-number\"></label>",
        http(PAY, "/card.js")
    )
}

/// A new session id for every visitor, as a shop hands out.
fn session_value() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}

fn script(body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript")
        .body(body.to_owned())
}
