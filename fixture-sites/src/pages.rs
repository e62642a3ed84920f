//! The fixture pages, by host and path.

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;

use crate::{ADS, ANALYTICS, CDN, Ports, SHOP, WIDGET};

/// Every cookie value the fixtures set. None may appear in a scan's output.
pub const COOKIE_VALUES: [&str; 5] = [
    "sv-session-7f3a9c",
    "sv-analytics-51d2e8",
    "sv-ads-0b9e44",
    "sv-widget-c4a713",
    "sv-inline-9e2f01",
];
/// The bearer token the HAR fixture's script sends in `Authorization`. It may appear in no
/// scan's output.
pub const AUTH_TOKEN: &str = "sv-bearer-5e1f0a";
/// Every Web Storage value the fixtures set. None may appear in a scan's output.
pub const STORAGE_VALUES: [&str; 2] = ["sv-local-88aa21", "sv-session-storage-3c1d90"];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript";

pub(crate) async fn route(
    request: HttpRequest,
    body: actix_web::web::Bytes,
    ports: Data<Ports>,
) -> HttpResponse {
    let host = request
        .connection_info()
        .host()
        .rsplit_once(':')
        .map_or_else(
            || request.connection_info().host().to_owned(),
            |(h, _)| h.to_owned(),
        );
    let http = |host: &str, path: &str| format!("http://{host}:{}{path}", ports.http);
    let https = |host: &str, path: &str| format!("https://{host}:{}{path}", ports.https);
    let query = request.query_string().to_owned();
    let trap_port: u16 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("trap="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(9);
    // Loopback addresses serve the first party, for scans with the guard switched off.
    let host = match host.as_str() {
        "127.0.0.1" | "localhost" => SHOP.to_owned(),
        _ => host,
    };
    if let Some(response) = crate::outdoor::route(&host, request.path(), &http) {
        return response;
    }
    if let Some(response) =
        crate::real_world::route(&host, request.path(), &http, &https, ports.ws).await
    {
        return response;
    }
    if let Some(response) = crate::visitor::route(&request, &host, request.path(), &https) {
        return response;
    }
    if let Some(response) = crate::compliance_sites::route(&host, request.path(), &http, &https) {
        return response;
    }
    if let Some(response) = crate::consent_managers::route(&host, request.path(), &http) {
        return response;
    }
    if let Some(response) = crate::spa_shop::route(&request, &body, &host, &http) {
        return response;
    }
    if let Some(response) = crate::payment_page::route(
        &host,
        request.path(),
        &http,
        ports.version.load(std::sync::atomic::Ordering::SeqCst),
    ) {
        return response;
    }
    if host == CDN
        && let Some(path) = request.path().strip_prefix("/pkg/")
    {
        return crate::packages::serve(path).await;
    }
    match (host.as_str(), request.path()) {
        (SHOP, "/") => html(&index_page(&http, &https))
            .insert_header((
                "Set-Cookie",
                format!(
                    "session_id={}; Path=/; HttpOnly; SameSite=Lax",
                    COOKIE_VALUES[0]
                ),
            ))
            .finish_with_body(),
        (SHOP, "/changing") => html(&changing_page(
            &http,
            ports.version.load(std::sync::atomic::Ordering::SeqCst),
        ))
        .finish_with_body(),
        (SHOP, "/changing-privacy") => html(&changing_policy(
            ports.version.load(std::sync::atomic::Ordering::SeqCst),
        ))
        .finish_with_body(),
        (SHOP, "/noisy") => html(&noisy_page()).finish_with_body(),
        (CDN, "/versioned.js") => script(&format!(
            "window.fixtureVersioned = {};",
            ports.version.load(std::sync::atomic::Ordering::SeqCst)
        )),
        (ANALYTICS, "/frame") => HttpResponse::Ok()
            .content_type(HTML)
            .body("<!doctype html><title>Survey</title><p>Tell us what you think</p>"),
        (ADS, "/tracker.js") => {
            script("document.cookie = '_trk=' + Date.now() + '; path=/; max-age=86400';")
        }
        (SHOP, "/har") => html(&har_page(&https))
            .insert_header((
                "Set-Cookie",
                format!(
                    "session_id={}; Path=/; HttpOnly; SameSite=Lax",
                    COOKIE_VALUES[0]
                ),
            ))
            .finish_with_body(),
        (SHOP, "/har/old.gif") => HttpResponse::Found()
            .insert_header(("Location", "/har/pixel.gif?from=old"))
            .finish(),
        (SHOP, "/har/pixel.gif") => HttpResponse::Ok()
            .content_type("image/gif")
            .body(&b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"[..]),
        (SHOP, "/har/api") => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((
                "Set-Cookie",
                format!("api_state={}; Path=/; Secure", COOKIE_VALUES[4]),
            ))
            .body(r#"{"ok":true}"#),
        (SHOP, "/old") => redirect("/"),
        (SHOP, "/hop") => redirect(&http(SHOP, "/old")),
        (SHOP, "/simple") => html(SIMPLE_PAGE).finish_with_body(),
        (SHOP, "/privacy") => html(&policy_page(
            "Privacy policy",
            "We process your personal data only to run this shop. Contact privacy@shop.test.",
        ))
        .finish_with_body(),
        (SHOP, "/cookie-policy") => html(&policy_page(
            "Cookie policy",
            "We use a session cookie and an analytics cookie.",
        ))
        .finish_with_body(),
        (SHOP, "/terms") => html(&policy_page(
            "Terms and conditions",
            "All sales are final. Governing law: Utopia.",
        ))
        .finish_with_body(),
        (SHOP, "/hang") => html(&format!(
            "<!doctype html><title>Never finishes</title><h1>Loading forever</h1><img src=\"{}\">",
            http(SHOP, "/slow-forever")
        ))
        .finish_with_body(),
        (SHOP, "/slow-forever") => {
            let body = futures::stream::once(async {
                Ok::<_, actix_web::Error>(Bytes::from_static(b"GIF89a"))
            })
            .chain(futures::stream::pending());
            HttpResponse::Ok().content_type("image/gif").streaming(body)
        }
        (SHOP, "/no-response") => {
            futures::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }
        (SHOP, "/dialogs") => html(DIALOG_PAGE).finish_with_body(),
        (SHOP, "/consent") => {
            html(&consent_page(&http, ConsentBanner::OneTrustLike)).finish_with_body()
        }
        (SHOP, "/consent-generic") => {
            html(&consent_page(&http, ConsentBanner::Generic)).finish_with_body()
        }
        (SHOP, "/errors") => html(&errors_page(&http)).finish_with_body(),
        (SHOP, "/download") => html(DOWNLOAD_PAGE).finish_with_body(),
        (SHOP, "/file.bin") => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(("Content-Disposition", "attachment; filename=\"report.bin\""))
            .body(vec![0u8; 1024]),
        (SHOP, "/huge") => huge_page(),
        (SHOP, "/crash") => html(CRASH_PAGE).finish_with_body(),
        (SHOP, "/egress") => html(&egress_page(&http, trap_port)).finish_with_body(),
        (SHOP, "/to-private") => redirect(&format!("http://127.0.0.1:{trap_port}/redirected")),
        (SHOP, "/bench") => html(&bench_page(&http)).finish_with_body(),
        (SHOP, "/favicon.ico") | (_, "/favicon.ico") => HttpResponse::NotFound().finish(),
        (CDN, "/broken.js") => script("undefinedFunctionFromCdn();"),
        (CDN, "/lib.js") => script("window.fixtureLib = { version: '1.2.3' };"),
        (CDN, "/style.css") => HttpResponse::Ok()
            .content_type("text/css")
            .body("body { font-family: sans-serif; }"),
        (ANALYTICS, "/a.js") => script(&format!(
            "document.cookie = '_ga={}; path=/; max-age=31536000';\n\
             navigator.sendBeacon('{}', 'hit');",
            COOKIE_VALUES[1],
            http(ANALYTICS, "/collect")
        )),
        (ANALYTICS, "/collect") => HttpResponse::NoContent().finish(),
        (ADS, "/ads.js") => script(&format!(
            "var img = new Image(); img.src = '{}'; document.body.appendChild(img);",
            https(ADS, "/pixel.gif")
        )),
        (ADS, "/pixel.gif") => HttpResponse::Ok()
            .content_type("image/gif")
            .insert_header((
                "Set-Cookie",
                format!(
                    "IDE={}; Path=/; Max-Age=86400; Secure; SameSite=None",
                    COOKIE_VALUES[2]
                ),
            ))
            .body(&b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"[..]),
        (WIDGET, "/frame") => HttpResponse::Ok()
            .content_type(HTML)
            .insert_header((
                "Set-Cookie",
                format!(
                    "widget_session={}; Path=/; Secure; HttpOnly; SameSite=None",
                    COOKIE_VALUES[3]
                ),
            ))
            .body("<!doctype html><title>Widget</title><p>Chat with us</p>"),
        _ => HttpResponse::build(StatusCode::NOT_FOUND)
            .content_type(HTML)
            .body("<!doctype html><title>Not found</title>"),
    }
}

struct Page(actix_web::HttpResponseBuilder, String);

fn html(body: &str) -> Page {
    let mut builder = HttpResponse::Ok();
    builder.content_type(HTML);
    Page(builder, body.to_owned())
}

impl Page {
    fn insert_header(mut self, header: (&'static str, String)) -> Self {
        self.0.insert_header(header);
        self
    }

    fn finish_with_body(mut self) -> HttpResponse {
        self.0.body(self.1)
    }
}

fn script(body: &str) -> HttpResponse {
    HttpResponse::Ok().content_type(JS).body(body.to_owned())
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header(("Location", location.to_owned()))
        .finish()
}

/// The main fixture. A correct scan finds:
/// - scripts: cdn.test/lib.js, analytics.test/a.js, ads.test/ads.js (injected 1.5 s after load)
///   and the two inline scripts;
/// - cookies: `session_id` (shop.test header), `_ga` (set on shop.test by
///   analytics.test's script), `inline_pref` (set by the inline script), `IDE` (ads.test header,
///   third party), `widget_session` (widget.test iframe header, third party);
/// - storage keys `cart_token` (local) and `visit_id` (session) on the shop's origin;
/// - third-party hosts: cdn.test, analytics.test, ads.test, widget.test;
/// - one console error, `fixture console error`.
fn index_page(http: &dyn Fn(&str, &str) -> String, https: &dyn Fn(&str, &str) -> String) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fixture Shop</title>
<link rel="stylesheet" href="{css}">
<script src="{lib}"></script>
<script>
  // Values are assembled at run time so they never appear in the page source (or its DOM).
  function reveal(s) {{ return s.split("").reverse().join(""); }}
  document.cookie = "inline_pref=" + reveal("{inline}") + "; path=/";
  localStorage.setItem("cart_token", reveal("{local}"));
  sessionStorage.setItem("visit_id", reveal("{session}"));
  console.error("fixture console error");
</script>
</head>
<body style="margin:0">
<header style="background:#1d4ed8;color:white;padding:24px"><h1>Fixture Shop</h1></header>
<main style="padding:24px;min-height:1400px">
<p>Products, cart and checkout.</p>
<iframe src="{widget}" width="300" height="120" title="widget"></iframe>
</main>
<footer><a href="/privacy">Privacy policy</a> · <a href="/cookie-policy">Cookie settings</a> · <a href="/terms">Terms of service</a></footer>
<script src="{analytics}"></script>
<script>
  window.addEventListener("load", function () {{
    setTimeout(function () {{
      var s = document.createElement("script");
      s.src = "{ads}";
      document.head.appendChild(s);
    }}, 1500);
  }});
</script>
</body></html>"#,
        css = http(CDN, "/style.css"),
        lib = http(CDN, "/lib.js"),
        inline = reversed(COOKIE_VALUES[4]),
        local = reversed(STORAGE_VALUES[0]),
        session = reversed(STORAGE_VALUES[1]),
        widget = https(WIDGET, "/frame"),
        analytics = http(ANALYTICS, "/a.js"),
        ads = https(ADS, "/ads.js"),
    )
}

/// The HAR fixture: a page whose requests exercise what a HAR carries. A correct HAR holds
/// the document (which sets `session_id`), a redirect (`/har/old.gif` → 302 →
/// `/har/pixel.gif?from=old`), a same-origin `fetch` that sends the cookie and an
/// `Authorization: Bearer` header and gets a `Set-Cookie` back, and a third-party beacon; and
/// none of [`COOKIE_VALUES`] or [`AUTH_TOKEN`].
fn har_page(https: &dyn Fn(&str, &str) -> String) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HAR fixture</title></head>
<body><h1>Requests</h1><img src="/har/old.gif" alt="">
<script>
  function reveal(s) {{ return s.split("").reverse().join(""); }}
  fetch("/har/api?q=shoes&page=2", {{ headers: {{ "Authorization": "Bearer " + reveal("{token}") }} }})
    .then(function (r) {{ return r.text(); }})
    .then(function () {{ navigator.sendBeacon("{beacon}", "hit"); }});
</script>
</body></html>"#,
        token = reversed(AUTH_TOKEN),
        beacon = https(ANALYTICS, "/collect"),
    )
}

fn reversed(value: &str) -> String {
    value.chars().rev().collect()
}

fn policy_page(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><title>{title}</title><h1>{title}</h1><p>{text}</p><script>document.write('')</script>"
    )
}

const SIMPLE_PAGE: &str =
    "<!doctype html><title>Simple</title><h1>A simple page</h1><p>Nothing else.</p>";

enum ConsentBanner {
    /// Ids of a well-known platform, with wording no text rule would recognise.
    OneTrustLike,
    /// No known ids; German wording, and a decoy link that merely mentions accepting.
    Generic,
}

/// A page with a cookie banner. Before an answer only `session_id` is set. Accepting sets
/// `cmp_choice` and loads the analytics script (which sets `_ga`); rejecting sets `cmp_choice` only.
fn consent_page(http: &dyn Fn(&str, &str) -> String, banner: ConsentBanner) -> String {
    let buttons = match banner {
        ConsentBanner::OneTrustLike => {
            r#"<button id="onetrust-accept-btn-handler" onclick="answer(true)">Sure thing</button>
<button id="onetrust-reject-all-handler" onclick="answer(false)">No thanks</button>"#
        }
        ConsentBanner::Generic => {
            r#"<a href="/terms">Accept our terms of service</a>
<button class="b1" onclick="answer(true)">Alle akzeptieren</button>
<button class="b2" onclick="answer(false)">  Alle
 ablehnen </button>"#
        }
    };
    format!(
        r#"<!doctype html><title>Consent</title><h1>Consent</h1>
<div id="banner" style="position:fixed;bottom:0;left:0;right:0;background:#eee;padding:16px">
<p>We use cookies.</p>{buttons}</div>
<script>
  document.cookie = "session_id=" + "anonymous" + "; path=/";
  function answer(all) {{
    document.cookie = "cmp_choice=" + (all ? "all" : "necessary") + "; path=/; max-age=31536000";
    document.getElementById("banner").remove();
    if (all) {{
      var s = document.createElement("script");
      s.src = "{analytics}";
      document.head.appendChild(s);
    }}
  }}
</script>"#,
        analytics = http(ANALYTICS, "/a.js"),
    )
}

/// A page with problems: a correct scan records one `console.error`, two uncaught exceptions (one
/// from an inline script, one from cdn.test/broken.js) and the failed request's log entry.
fn errors_page(http: &dyn Fn(&str, &str) -> String) -> String {
    format!(
        r#"<!doctype html><title>Errors</title><h1>Errors</h1>
<script>console.error("logged problem");</script>
<script src="{broken}"></script>
<script>throw new Error("fixture uncaught");</script>
<img src="{missing}">"#,
        broken = http(CDN, "/broken.js"),
        missing = http(SHOP, "/missing.png"),
    )
}

const DIALOG_PAGE: &str = r#"<!doctype html><title>Dialogs</title><h1>Dialogs</h1>
<script>alert("first alert"); confirm("are you sure?"); prompt("your name?"); alert("after load");</script>"#;

const DOWNLOAD_PAGE: &str = r#"<!doctype html><title>Download</title><h1>Download</h1>
<a id="d" href="/file.bin" download>report</a>
<script>document.getElementById("d").click();</script>"#;

pub(crate) const CRASH_PAGE: &str = r#"<!doctype html><title>Crash</title><h1>This page eats memory</h1>
<script>
  const hoard = [];
  while (true) { hoard.push(new Array(1e6).fill(Math.random())); }
</script>"#;

/// References private destinations every way a page can. A correct scan refuses all of them and
/// the trap listener on `trap_port` receives no connection.
fn egress_page(http: &dyn Fn(&str, &str) -> String, trap_port: u16) -> String {
    format!(
        r#"<!doctype html><title>Egress</title><h1>Egress probes</h1>
<img src="http://127.0.0.1:{trap_port}/literal.png">
<img src="http://169.254.169.254/latest/meta-data/">
<img src="http://[::1]:{trap_port}/v6.png">
<img src="http://localhost:{trap_port}/name.png">
<img src="http://[::ffff:127.0.0.1]:{trap_port}/mapped.png">
<img src="{redirect}">
<iframe src="http://127.0.0.1:{trap_port}/frame"></iframe>
<script>
  fetch("http://127.0.0.1:{trap_port}/fetch").catch(function () {{}});
  navigator.sendBeacon("http://127.0.0.1:{trap_port}/beacon", "x");
  try {{ new WebSocket("ws://127.0.0.1:{trap_port}/ws"); }} catch (e) {{}}
</script>"#,
        redirect = http(SHOP, &format!("/to-private?trap={trap_port}")),
    )
}

/// The benchmark page: a small shop page with a CDN script, an analytics script and an image.
fn bench_page(http: &dyn Fn(&str, &str) -> String) -> String {
    format!(
        r#"<!doctype html><title>Bench</title><h1>Benchmark page</h1><p>Simple content.</p>
<script src="{lib}"></script><script src="{analytics}"></script><script>window.x = 1;</script>"#,
        lib = http(CDN, "/lib.js"),
        analytics = http(ANALYTICS, "/a.js"),
    )
}

/// A 50 MB document, streamed: 2,000 paragraphs (taller than the screenshot cap) followed by
/// 50 MB of markup in a comment, which the browser must download and parse but need not lay out.
fn huge_page() -> HttpResponse {
    const CHUNK_BYTES: usize = 1024 * 1024;
    const CHUNKS: usize = 50;
    let paragraph = "<p>lorem ipsum dolor sit amet consectetur adipiscing elit</p>\n";
    let head = Bytes::from(format!(
        "<!doctype html><title>Huge</title><h1>Huge page</h1>{}<!--",
        paragraph.repeat(2_000)
    ));
    let filler = "<div class=\"filler\">0123456789 abcdefghijklmnopqrstuvwxyz</div>\n";
    let chunk = Bytes::from(filler.repeat(CHUNK_BYTES / filler.len()));
    let tail = Bytes::from_static(b"--><p>end</p>");
    let body = futures::stream::iter(
        std::iter::once(head)
            .chain(std::iter::repeat_n(chunk, CHUNKS))
            .chain(std::iter::once(tail)),
    )
    .map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok().content_type(HTML).streaming(body)
}

/// A page the harness changes between two scans ([`crate::FixtureSites::set_version`]).
/// Version 0 loads `cdn.test/versioned.js` and embeds an `analytics.test` iframe under a blue
/// banner. Version 1 also loads a tracker (`ads.test/tracker.js`, which sets the cookie `_trk`),
/// drops the iframe, serves new code at the same library URL, adds a paragraph to the privacy
/// policy, and paints the banner red. The visible text stays the same.
fn changing_page(http: &dyn Fn(&str, &str) -> String, version: u8) -> String {
    let (banner, extra) = if version == 0 {
        (
            "#1e50c8",
            format!(
                r#"<iframe src="{}" width="300" height="80"></iframe>"#,
                http(ANALYTICS, "/frame")
            ),
        )
    } else {
        (
            "#c81e1e",
            format!(r#"<script src="{}"></script>"#, http(ADS, "/tracker.js")),
        )
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Changing shop</title>
<script src="{lib}"></script></head>
<body style="margin:0;font-family:sans-serif">
<div style="background:{banner};color:#fff;height:160px;font-size:40px">Winter sale</div>
<p>Our products.</p>
{extra}
<p><a href="/changing-privacy">Privacy policy</a></p>
</body></html>"#,
        lib = http(CDN, "/versioned.js"),
    )
}

fn changing_policy(version: u8) -> String {
    let added = if version == 0 {
        ""
    } else {
        "<p>We share your order history with advertising partners.</p>"
    };
    format!(
        "<!doctype html><title>Privacy policy</title><h1>Privacy policy</h1>\
         <p>We keep your data for one year.</p>{added}"
    )
}

/// A page that differs on every load only in ways a target ignores: a clock and a rotating ad in
/// its top band (ignored by selector and by rectangle) and random element ids.
fn noisy_page() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = now.subsec_nanos();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Noisy shop</title></head>
<body style="margin:0;font-family:sans-serif">
<div style="height:100px;background:rgb({r},{g},{b})" class="ad">Ad number {nanos} <span id="clock">{secs}</span></div>
<div id="n{nanos}"><p>Steady content.</p></div>
</body></html>"#,
        r = nanos % 256,
        g = (nanos / 256) % 256,
        b = (nanos / 65536) % 256,
        secs = now.as_secs(),
    )
}
