//! Pages that look at who is visiting: FingerprintJS's open-source bot detector (BotD, from the
//! npm registry, see [`crate::packages`]) and a page that shows what the browser tells a site
//! about itself.

use actix_web::{HttpRequest, HttpResponse};

use crate::{CDN, SHOP};

const HTML: &str = "text/html; charset=utf-8";

/// The visitor pages, by path, with what a correct scan finds. Load them over HTTPS: client hints
/// and `navigator.userAgentData` exist only in secure contexts.
pub const PAGES: [(&str, &str); 2] = [
    (
        "/v/botd",
        "BotD 2.0 (npm `@fingerprintjs/botd`) runs its detectors and writes its verdict into \
         `#verdict` as JSON (`bot`, `botKind`, `flagged`); a default scan is `bot: false`",
    ),
    (
        "/v/seen",
        "the request headers the server received (`#headers`) and what scripts read \
         (`#navigator`: webdriver, languages, platform, client hints, timezone, touch, screen)",
    ),
];

/// The response for a visitor page, if `host` and `path` name one.
pub(crate) fn route(
    request: &HttpRequest,
    host: &str,
    path: &str,
    https: &dyn Fn(&str, &str) -> String,
) -> Option<HttpResponse> {
    let body = match (host, path) {
        (SHOP, "/v/botd") => format!(
            "<h1>Welcome</h1><pre id=\"verdict\">pending</pre>\
             <script type=\"module\">\
             import {{ load }} from '{botd}';\
             const detector = await load({{ monitoring: false }});\
             const result = detector.detect();\
             const detections = detector.getDetections();\
             const flagged = Object.keys(detections).filter((name) => detections[name].bot);\
             document.getElementById('verdict').textContent =\
               JSON.stringify({{ bot: result.bot, botKind: result.botKind || null, flagged }});\
             </script>",
            botd = https(CDN, "/pkg/@fingerprintjs/botd/dist/botd.esm.js")
        ),
        (SHOP, "/v/seen") => {
            let headers: serde_json::Map<String, serde_json::Value> = [
                "user-agent",
                "accept-language",
                "sec-ch-ua",
                "sec-ch-ua-mobile",
                "sec-ch-ua-platform",
            ]
            .iter()
            .map(|name| {
                let value = request
                    .headers()
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                ((*name).to_owned(), serde_json::Value::from(value))
            })
            .collect();
            let headers = serde_json::Value::Object(headers)
                .to_string()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!(
                "<h1>Hello</h1><pre id=\"headers\">{headers}</pre><pre id=\"navigator\">pending</pre>\
                 <script>\
                 navigator.userAgentData.getHighEntropyValues(['platform', 'model', 'fullVersionList'])\
                 .then(function (hints) {{\
                   document.getElementById('navigator').textContent = JSON.stringify({{\
                     userAgent: navigator.userAgent, webdriver: navigator.webdriver,\
                     languages: navigator.languages, platform: navigator.platform,\
                     mobile: navigator.userAgentData.mobile,\
                     brands: navigator.userAgentData.brands.map(function (b) {{ return b.brand; }}),\
                     hintsPlatform: hints.platform, model: hints.model,\
                     timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,\
                     touchPoints: navigator.maxTouchPoints,\
                     screen: [screen.width, screen.height], inner: [innerWidth, innerHeight] }});\
                 }});\
                 </script>"
            )
        }
        _ => return None,
    };
    Some(HttpResponse::Ok().content_type(HTML).body(format!(
        "<!doctype html><html><head><title>Visitor</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>{body}</body></html>"
    )))
}
