//! Pages built the way real sites are, under `/rw/` on the shop: tag managers that inject tags on
//! timers, ad scripts that fire requests and never read the answers, event streams, long polls,
//! heartbeats, and a page that never stops. A scan must capture each whole, with default options,
//! and end its wait for the reason each page documents — never by running into its cap, except
//! on the page built for that.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use futures::StreamExt;

use crate::dns::CLOAKED_METRICS;
use crate::{ADS, ANALYTICS, CDN, SHOP, WIDGET};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript";

/// The real-world pattern pages, by path, with what a correct scan finds.
pub const PAGES: [(&str, &str); 13] = [
    (
        "/rw/ad-unread-fetch",
        "an ad script injected 1.5 s after load sets `_adl` and fires a no-cors fetch whose body \
         never ends and is never read; the wait ends quiet, the fetch listed as still open",
    ),
    (
        "/rw/live",
        "an event stream, a long poll that never answers, a heartbeat beacon every 5 s, and a \
         tracker injected 2.5 s after load that sets `_late`; the wait ends quiet with the stream \
         and the poll listed as open",
    ),
    (
        "/rw/tag-manager",
        "a tag manager injecting tags on `load` and at 0.5, 1.5 and 2.5 s, each setting its \
         cookie (`_tag_load`, `_tag1`, `_tag2`, `_tag3`); the wait ends quiet",
    ),
    (
        "/rw/workers",
        "(over HTTPS) a dedicated worker, a shared worker and a service worker, each fetching a \
         third-party URL (`/rw/worker-hit`, `/rw/shared-hit`, `/rw/sw-hit`); all three are \
         listed with the page's requests",
    ),
    (
        "/rw/frames",
        "(over HTTPS) a third-party widget frame holding a third-party ad frame, each setting \
         its cookie (`widget_id` by widget.test, `ad_id` by ads.test)",
    ),
    (
        "/rw/lazy",
        "a long page whose images load lazily when scrolled near; the scan scrolls through the \
         page, so the last one (`/rw/lazy-9.gif`, 9,000 px down) is requested",
    ),
    (
        "/rw/keepalive",
        "a `fetch` with `keepalive: true` to analytics.test (`/rw/keepalive-hit`) on load; it is \
         listed",
    ),
    (
        "/rw/bounce",
        "a redirect through a tracker (ads.test `/rw/bounce`, which sets `bounce_id`) back to \
         `/rw/landed`; the chain and the tracker's cookie are captured",
    ),
    (
        "/rw/chat",
        "a chat widget (widget.test `/rw/chat.js`) that opens a WebSocket, stays connected and \
         sets `chat_seen` when greeted; the socket is listed as open and holds nothing",
    ),
    (
        "/rw/shadow-banner",
        "a consent banner a CMP builds in a closed shadow root (\"We value your privacy\"); \
         the DOM capture holds it as declarative shadow DOM",
    ),
    (
        "/rw/exit-beacon",
        "analytics that sends `navigator.sendBeacon` when the page is hidden (`/rw/exit` on \
         `visibilitychange`); the scan hides the page for a moment, so the beacon is listed, \
         marked `after_hide`",
    ),
    (
        "/rw/cname-metrics",
        "analytics behind the shop's own subdomain: `metrics.shop.test` is a DNS alias (CNAME) of \
         analytics.test, whose server answers it (`/rw/m.js` sets the first-party cookie `_cm_id` \
         for shop.test, then beacons `/rw/m-hit`); the host is first party by name and listed as \
         a cloaked third party",
    ),
    (
        "/rw/never-settles",
        "a new request every 200 ms for ever; the wait ends at its cap and says so",
    ),
];

/// The response for a real-world pattern URL, if `host` and `path` name one.
pub(crate) async fn route(
    host: &str,
    path: &str,
    http: &dyn Fn(&str, &str) -> String,
    https: &dyn Fn(&str, &str) -> String,
    ws_port: u16,
) -> Option<HttpResponse> {
    let response = match (host, path) {
        (SHOP, "/rw/ad-unread-fetch") => page(
            "Shoes — with ads",
            &format!(
                "<h1>Running shoes</h1><p>Light, fast, yours.</p>\
                 <script>setTimeout(function () {{ inject('{}'); }}, 1500);</script>",
                https(ADS, "/rw/ad-loader.js")
            ),
        ),
        (ADS, "/rw/ad-loader.js") => script(&format!(
            "document.cookie = '_adl=1; path=/; max-age=86400';\n\
             fetch('{}', {{ mode: 'no-cors', credentials: 'include' }});",
            https(ADS, "/rw/bid")
        )),
        // Headers and a first chunk (an image, which Chromium's opaque-response blocking lets
        // through at once), then a body that never ends.
        (ADS, "/rw/bid") => endless("image/gif", b"GIF89a\x01\x00\x01\x00"),

        (SHOP, "/rw/live") => page(
            "Live scores",
            &format!(
                "<h1>Live</h1><ol id=\"feed\"></ol>\
                 <script>\
                 var feed = new EventSource('{events}');\
                 feed.onmessage = function (e) {{\
                   var li = document.createElement('li'); li.textContent = e.data;\
                   document.getElementById('feed').appendChild(li); }};\
                 fetch('{poll}').then(function (r) {{ return r.text(); }});\
                 setInterval(function () {{ navigator.sendBeacon('{beat}', 'alive'); }}, 5000);\
                 setTimeout(function () {{ inject('{late}'); }}, 2500);\
                 </script>",
                events = http(SHOP, "/rw/events"),
                poll = http(SHOP, "/rw/poll"),
                beat = http(ANALYTICS, "/rw/beat"),
                late = http(ANALYTICS, "/rw/late.js"),
            ),
        ),
        (SHOP, "/rw/events") => {
            let ticks = futures::stream::unfold(0u64, |n| async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                }
                let event = Bytes::from(format!("data: score update {n}\n\n"));
                Some((Ok::<_, actix_web::Error>(event), n + 1))
            });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .insert_header(("Cache-Control", "no-store"))
                .streaming(ticks)
        }
        // A long poll whose answer is not due while anyone waits.
        (SHOP, "/rw/poll") => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            HttpResponse::NoContent().finish()
        }
        (ANALYTICS, "/rw/beat") => HttpResponse::NoContent().finish(),
        (ANALYTICS, "/rw/late.js") => script("document.cookie = '_late=1; path=/; max-age=86400';"),

        (SHOP, "/rw/tag-manager") => page(
            "Shop with a tag manager",
            &format!(
                "<h1>Welcome</h1><script src=\"{}\"></script>",
                http(CDN, "/rw/gtm.js")
            ),
        ),
        (CDN, "/rw/gtm.js") => script(&format!(
            "(function () {{\n\
               function tag(src) {{ var s = document.createElement('script'); s.src = src;\n\
                 document.head.appendChild(s); }}\n\
               window.addEventListener('load', function () {{ tag('{load}'); }});\n\
               setTimeout(function () {{ tag('{one}'); }}, 500);\n\
               setTimeout(function () {{ tag('{two}'); }}, 1500);\n\
               setTimeout(function () {{ tag('{three}'); }}, 2500);\n\
             }})();",
            load = http(ANALYTICS, "/rw/tag-load.js"),
            one = https(ADS, "/rw/tag-1.js"),
            two = http(ANALYTICS, "/rw/tag-2.js"),
            three = https(ADS, "/rw/tag-3.js"),
        )),
        (ANALYTICS, "/rw/tag-load.js") => cookie_script("_tag_load"),
        (ADS, "/rw/tag-1.js") => cookie_script("_tag1"),
        (ANALYTICS, "/rw/tag-2.js") => cookie_script("_tag2"),
        (ADS, "/rw/tag-3.js") => cookie_script("_tag3"),

        (SHOP, "/rw/workers") => page(
            "Shop with workers",
            "<h1>Offline-ready shop</h1><script>\
               new Worker('/rw/worker.js');\
               new SharedWorker('/rw/shared.js');\
               navigator.serviceWorker.register('/rw/sw.js');\
             </script>",
        ),
        (SHOP, "/rw/worker.js") => script(&format!(
            "fetch('{}', {{ mode: 'no-cors' }});",
            https(ANALYTICS, "/rw/worker-hit")
        )),
        (SHOP, "/rw/shared.js") => script(&format!(
            "fetch('{}', {{ mode: 'no-cors' }});",
            https(ANALYTICS, "/rw/shared-hit")
        )),
        (SHOP, "/rw/sw.js") => script(&format!(
            "self.addEventListener('install', function (event) {{\n\
               event.waitUntil(fetch('{}', {{ mode: 'no-cors' }}));\n\
             }});",
            https(ADS, "/rw/sw-hit")
        )),
        (ANALYTICS, "/rw/worker-hit") | (ANALYTICS, "/rw/shared-hit") | (ADS, "/rw/sw-hit") => {
            HttpResponse::NoContent().finish()
        }

        (SHOP, "/rw/frames") => page(
            "Shop with a widget",
            &format!(
                "<h1>Help</h1><iframe src=\"{}\" width=\"400\" height=\"300\"></iframe>",
                https(WIDGET, "/rw/widget")
            ),
        ),
        (WIDGET, "/rw/widget") => HttpResponse::Ok()
            .content_type(HTML)
            .insert_header((
                "Set-Cookie",
                "widget_id=w1; Path=/; Secure; SameSite=None; Max-Age=86400",
            ))
            .body(format!(
                "<!doctype html><title>Widget</title><p>Chat</p>\
                 <iframe src=\"{}\" width=\"300\" height=\"100\"></iframe>",
                https(ADS, "/rw/ad-frame")
            )),
        (ADS, "/rw/ad-frame") => HttpResponse::Ok()
            .content_type(HTML)
            .insert_header((
                "Set-Cookie",
                "ad_id=a1; Path=/; Secure; SameSite=None; Max-Age=86400",
            ))
            .body("<!doctype html><title>Ad</title><p>Buy more</p>"),

        (SHOP, "/rw/lazy") => {
            let images: String = (0..10)
                .map(|n| {
                    format!(
                        "<div style=\"height:1000px\"><img loading=\"lazy\" width=\"10\" \
                         height=\"10\" src=\"/rw/lazy-{n}.gif\" alt=\"\"></div>"
                    )
                })
                .collect();
            page("A long page", &images)
        }
        (SHOP, path) if path.starts_with("/rw/lazy-") && path.ends_with(".gif") => {
            HttpResponse::Ok()
                .content_type("image/gif")
                .body(&b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"[..])
        }

        (SHOP, "/rw/cname-metrics") => page(
            "About us",
            &format!(
                "<h1>About us</h1><script src=\"{}\"></script>",
                http(CLOAKED_METRICS, "/rw/m.js")
            ),
        ),
        // The analytics vendor's server answering for the shop's subdomain: its cookie is the
        // shop's (Domain=shop.test), so every later request to the shop carries it.
        (CLOAKED_METRICS, "/rw/m.js") => HttpResponse::Ok()
            .content_type(JS)
            .insert_header((
                "Set-Cookie",
                "_cm_id=cm.8c1f2a; Domain=shop.test; Path=/; Max-Age=31536000; SameSite=Lax",
            ))
            .body(format!(
                "new Image().src = '{}';",
                http(CLOAKED_METRICS, "/rw/m-hit")
            )),
        (CLOAKED_METRICS, "/rw/m-hit") => HttpResponse::NoContent().finish(),

        (SHOP, "/rw/keepalive") => page(
            "Keepalive",
            &format!(
                "<h1>Thanks</h1><script>addEventListener('load', function () {{\
                   fetch('{}', {{ method: 'POST', body: 'bye', keepalive: true, mode: 'no-cors' }});\
                 }});</script>",
                http(ANALYTICS, "/rw/keepalive-hit")
            ),
        ),
        (ANALYTICS, "/rw/keepalive-hit") => HttpResponse::NoContent().finish(),

        (SHOP, "/rw/bounce") => redirect(&format!(
            "{}?to={}",
            http(ADS, "/rw/bounce"),
            http(SHOP, "/rw/landed")
        )),
        (ADS, "/rw/bounce") => HttpResponse::Found()
            .insert_header(("Set-Cookie", "bounce_id=b1; Path=/; Max-Age=86400"))
            .insert_header(("Location", http(SHOP, "/rw/landed")))
            .finish(),
        (SHOP, "/rw/landed") => page("Landed", "<h1>Welcome back</h1>"),

        (SHOP, "/rw/chat") => page(
            "Shop with a chat",
            &format!(
                "<h1>Questions?</h1><div id=\"chat\"></div><script src=\"{}\"></script>",
                http(WIDGET, "/rw/chat.js")
            ),
        ),
        (WIDGET, "/rw/chat.js") => script(&format!(
            "(function () {{\n\
               var socket = new WebSocket('ws://{WIDGET}:{ws_port}/chat');\n\
               socket.onmessage = function (e) {{\n\
                 document.getElementById('chat').textContent = e.data;\n\
                 document.cookie = 'chat_seen=1; path=/; max-age=86400';\n\
               }};\n\
             }})();"
        )),

        (SHOP, "/rw/shadow-banner") => page(
            "Shop with a shadow banner",
            &format!(
                "<h1>Welcome</h1><script src=\"{}\"></script>",
                http(CDN, "/rw/cmp.js")
            ),
        ),
        (CDN, "/rw/cmp.js") => script(
            "(function () {\n\
               var host = document.createElement('div'); host.id = 'cmp-root';\n\
               var root = host.attachShadow({ mode: 'closed' });\n\
               root.innerHTML = '<div role=\"dialog\"><p>We value your privacy</p>' +\n\
                 '<button id=\"accept\">Accept all</button>' +\n\
                 '<button id=\"reject\">Reject all</button></div>';\n\
               document.body.appendChild(host);\n\
             })();",
        ),

        (SHOP, "/rw/exit-beacon") => page(
            "Article",
            &format!(
                "<h1>Read me</h1><script>\
                 document.addEventListener('visibilitychange', function () {{\
                   if (document.visibilityState === 'hidden') {{\
                     navigator.sendBeacon('{}', 'time-on-page'); }} }});\
                 </script>",
                http(ANALYTICS, "/rw/exit")
            ),
        ),
        (ANALYTICS, "/rw/exit") => HttpResponse::NoContent().finish(),

        (SHOP, "/rw/never-settles") => page(
            "Busy",
            "<h1>Busy</h1><script>var n = 0; setInterval(function () {\
               fetch('/rw/ping?n=' + (n++)); }, 200);</script>",
        ),
        (SHOP, "/rw/ping") => HttpResponse::NoContent().finish(),
        _ => return None,
    };
    Some(response)
}

/// The chat widget's server: greets each connection, then echoes, and keeps it open until the
/// browser closes it.
pub(crate) async fn chat_server(listener: tokio::net::TcpListener) {
    use async_tungstenite::tungstenite::Message;
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut socket) = async_tungstenite::tokio::accept_async(stream).await else {
                return;
            };
            if socket
                .send(Message::text("Hi! How can we help?"))
                .await
                .is_err()
            {
                return;
            }
            while let Some(Ok(message)) = socket.next().await {
                if message.is_text() && socket.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A page with the `inject(src)` helper real loaders use.
fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok().content_type(HTML).body(format!(
        "<!doctype html><html><head><title>{title}</title>\
         <script>function inject(src) {{ var s = document.createElement('script');\
         s.src = src; s.async = true; document.head.appendChild(s); }}</script></head>\
         <body>{body}</body></html>"
    ))
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", location.to_owned()))
        .finish()
}

fn script(body: &str) -> HttpResponse {
    HttpResponse::Ok().content_type(JS).body(body.to_owned())
}

fn cookie_script(name: &str) -> HttpResponse {
    script(&format!(
        "document.cookie = '{name}=1; path=/; max-age=86400';"
    ))
}

/// Headers and `first` at once, then a body that never ends.
fn endless(content_type: &str, first: &'static [u8]) -> HttpResponse {
    let body =
        futures::stream::once(async move { Ok::<_, actix_web::Error>(Bytes::from_static(first)) })
            .chain(futures::stream::pending());
    HttpResponse::Ok()
        .content_type(content_type.to_owned())
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body)
}
