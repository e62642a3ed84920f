//! Shops built the way real sites wire consent, for compliance scans: a consent manager
//! (vanilla-cookieconsent from the npm registry, configured as its documentation shows), Google
//! Tag Manager and gtag with Google Consent Mode, and the Meta pixel, served on loopback under the
//! trackers' own host names so that real EasyList/EasyPrivacy classify them.
//!
//! The tags behave like the real ones in what a scan can see: `gtm.js` loads `gtag/js`, which
//! reads the consent state from `dataLayer`, sets `_ga` only while `analytics_storage` is granted
//! and sends a `g/collect` hit carrying `gcs` and `gcd`, and another when consent is updated to
//! granted; `fbevents.js` sets `_fbp` and fires `facebook.com/tr`. Each page documents the
//! findings a correct compliance scan makes of it ([`PAGES`]).

use actix_web::HttpResponse;

use crate::{CDN, SHOP};

/// Google Tag Manager's host.
pub const GOOGLE_TAG_MANAGER: &str = "www.googletagmanager.com";
/// Google Analytics' collection host.
pub const GOOGLE_ANALYTICS: &str = "www.google-analytics.com";
/// Where the Meta pixel's script comes from.
pub const FACEBOOK_CONNECT: &str = "connect.facebook.net";
/// Where the Meta pixel reports.
pub const FACEBOOK: &str = "www.facebook.com";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "application/javascript";

/// A compliance fixture: its path on the shop and the fingerprints of the findings a correct
/// compliance scan (with the GPC visit) makes of it, in any order.
pub struct CompliancePage {
    pub path: &'static str,
    pub findings: &'static [&'static str],
    pub notes: &'static str,
}

pub const PAGES: [CompliancePage; 8] = [
    CompliancePage {
        path: "/compliance/behaves",
        findings: &[],
        notes: "Tag Manager waits for consent (a script the consent manager releases), with \
                Consent Mode defaults denied and updated from the answer",
    },
    CompliancePage {
        path: "/compliance/early-trackers",
        findings: &[
            "consent_signal_granted_before_answer:first_visit:signals",
            "tracking_before_consent:first_visit:google-analytics.com",
            "tracking_before_consent:first_visit:googletagmanager.com",
            "gpc_ignored:gpc:gpc",
        ],
        notes: "Tag Manager in the head with Consent Mode defaults granted: Google Analytics \
                collects and sets _ga before the banner is answered",
    },
    CompliancePage {
        path: "/compliance/tracks-after-reject",
        findings: &[
            "tracking_after_reject:reject_all:facebook.com",
            "tracking_after_reject:reject_all:facebook.net",
        ],
        notes: "the Meta pixel is loaded from the consent manager's onConsent callback whatever \
                the answer",
    },
    CompliancePage {
        path: "/compliance/reject-second-layer",
        findings: &["reject_harder_than_accept:reject_all:banner"],
        notes: "the first layer offers only \"Accept all\" and \"Manage preferences\"",
    },
    CompliancePage {
        path: "/compliance/ignores-gpc",
        findings: &[
            "no_banner_while_tracking:reject_all:banner",
            "tracking_before_consent:first_visit:facebook.com",
            "tracking_before_consent:first_visit:facebook.net",
            "gpc_ignored:gpc:gpc",
        ],
        notes: "an opt-out site: the Meta pixel loads at once, Global Privacy Control or not",
    },
    CompliancePage {
        path: "/compliance/honours-gpc",
        findings: &[
            "no_banner_while_tracking:reject_all:banner",
            "tracking_before_consent:first_visit:facebook.com",
            "tracking_before_consent:first_visit:facebook.net",
        ],
        notes: "the same opt-out site, which skips the pixel when navigator.globalPrivacyControl \
                is set",
    },
    CompliancePage {
        path: "/compliance/broken-cmp",
        findings: &[
            "consent_manager_broken:accept_all:banner",
            "consent_manager_broken:reject_all:banner",
        ],
        notes: "the consent manager's configuration throws before the banner is shown, so no \
                visitor can answer; the tags stay blocked",
    },
    CompliancePage {
        path: "/compliance/navigates-away",
        findings: &["consent_manager_broken:reject_all:navigation"],
        notes: "rejecting sends the visitor to another page (\"/compliance/sorry\")",
    },
];

pub(crate) fn route(
    host: &str,
    path: &str,
    http: &dyn Fn(&str, &str) -> String,
    https: &dyn Fn(&str, &str) -> String,
) -> Option<HttpResponse> {
    let tags = Tags {
        gtm: https(GOOGLE_TAG_MANAGER, "/gtm.js?id=GTM-FIXTURE"),
        pixel: https(FACEBOOK_CONNECT, "/en_US/fbevents.js"),
    };
    let pkg = |file: &str| http(CDN, &format!("/pkg/{file}"));
    let body = match (host, path) {
        (GOOGLE_TAG_MANAGER, "/gtm.js") => {
            return Some(script(&gtm_js(&https(
                GOOGLE_TAG_MANAGER,
                "/gtag/js?id=G-FIXTURE",
            ))));
        }
        (GOOGLE_TAG_MANAGER, "/gtag/js") => {
            return Some(script(&gtag_js(&https(GOOGLE_ANALYTICS, "/g/collect"))));
        }
        (GOOGLE_ANALYTICS, "/g/collect") | (FACEBOOK, "/tr/") => {
            return Some(HttpResponse::NoContent().finish());
        }
        (FACEBOOK_CONNECT, "/en_US/fbevents.js") => {
            return Some(script(&fbevents_js(&https(FACEBOOK, "/tr/"))));
        }
        (SHOP, "/compliance/behaves") => cmp_page(&pkg, &tags, Setup::default()),
        (SHOP, "/compliance/early-trackers") => cmp_page(
            &pkg,
            &tags,
            Setup {
                defaults: "granted",
                gtm_in_head: true,
                ..Setup::default()
            },
        ),
        (SHOP, "/compliance/tracks-after-reject") => cmp_page(
            &pkg,
            &tags,
            Setup {
                pixel_on_any_answer: true,
                ..Setup::default()
            },
        ),
        (SHOP, "/compliance/reject-second-layer") => cmp_page(
            &pkg,
            &tags,
            Setup {
                reject_on_first_layer: false,
                ..Setup::default()
            },
        ),
        (SHOP, "/compliance/ignores-gpc") => opt_out_page(&tags, false),
        (SHOP, "/compliance/honours-gpc") => opt_out_page(&tags, true),
        (SHOP, "/compliance/broken-cmp") => cmp_page(
            &pkg,
            &tags,
            Setup {
                throws: true,
                ..Setup::default()
            },
        ),
        (SHOP, "/compliance/navigates-away") => cmp_page(
            &pkg,
            &tags,
            Setup {
                leave_on_reject: true,
                ..Setup::default()
            },
        ),
        (SHOP, BUSY_PAGE) => busy_page(http, https),
        (SHOP, "/compliance/sorry") => {
            "</head><body><p>We are sorry to see you refuse. <a href=\"/compliance/navigates-away\">Back</a></p>"
                .to_owned()
        }
        _ => return None,
    };
    Some(HttpResponse::Ok().content_type(HTML).body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>Shop</title>{body}</body></html>"
    )))
}

/// A page as busy as a news site's front page, for the classification benchmark: 300 requests,
/// product images and library files mixed with Analytics and pixel hits.
pub const BUSY_PAGE: &str = "/compliance/busy";

fn busy_page(http: &dyn Fn(&str, &str) -> String, https: &dyn Fn(&str, &str) -> String) -> String {
    format!(
        "</head><body><h1>Today's offers</h1><div id=\"grid\"></div><script>\
         var grid = document.getElementById('grid');\
         function img(src) {{ var i = new Image(); i.width = 1; i.height = 1; i.src = src; grid.appendChild(i); }}\
         for (var n = 0; n < 120; n++) img('{shop}/compliance/asset/' + n + '.png');\
         for (var n = 0; n < 60; n++) img('{cdn}/lib/' + n + '/thumb.webp');\
         for (var n = 0; n < 60; n++) img('{collect}?v=2&tid=G-FIXTURE&en=view_item&_p=' + n);\
         for (var n = 0; n < 60; n++) img('{tr}?id=1234567890&ev=ViewContent&cd[n]=' + n);\
         </script>",
        shop = http(SHOP, "").trim_end_matches('/'),
        cdn = http(CDN, "").trim_end_matches('/'),
        collect = https(GOOGLE_ANALYTICS, "/g/collect"),
        tr = https(FACEBOOK, "/tr/"),
    )
}

struct Tags {
    gtm: String,
    pixel: String,
}

/// How a consent-managed page is wired.
struct Setup {
    /// Consent Mode defaults (`denied` or `granted`).
    defaults: &'static str,
    /// Tag Manager loads at once instead of when the consent manager releases it.
    gtm_in_head: bool,
    reject_on_first_layer: bool,
    /// The Meta pixel loads on any answer, reject included.
    pixel_on_any_answer: bool,
    /// The configuration throws before the consent manager runs.
    throws: bool,
    /// Rejecting navigates to another page.
    leave_on_reject: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            defaults: "denied",
            gtm_in_head: false,
            reject_on_first_layer: true,
            pixel_on_any_answer: false,
            throws: false,
            leave_on_reject: false,
        }
    }
}

/// The Consent Mode snippet every Google tag installation starts with.
fn consent_defaults(state: &str) -> String {
    format!(
        "<script>window.dataLayer = window.dataLayer || [];\
         function gtag() {{ dataLayer.push(arguments); }}\
         gtag('consent', 'default', {{ ad_storage: '{state}', analytics_storage: '{state}', \
         ad_user_data: '{state}', ad_personalization: '{state}' }});</script>"
    )
}

/// A shop page behind vanilla-cookieconsent 3, wired as `setup` says.
fn cmp_page(pkg: &dyn Fn(&str) -> String, tags: &Tags, setup: Setup) -> String {
    let gtm = &tags.gtm;
    let head_tag = if setup.gtm_in_head {
        format!("<script async src=\"{gtm}\"></script>")
    } else {
        String::new()
    };
    let released_tag = if setup.gtm_in_head {
        String::new()
    } else {
        format!("<script type=\"text/plain\" data-category=\"analytics\" src=\"{gtm}\"></script>")
    };
    let (analytics_on, reject_button) = if setup.reject_on_first_layer {
        ("{}", "acceptNecessaryBtn: 'Reject all', ")
    } else {
        ("{ enabled: true }", "")
    };
    let pixel = &tags.pixel;
    let on_consent = format!(
        "onConsent: function () {{ var on = CookieConsent.acceptedCategory('analytics') ? \
         'granted' : 'denied'; gtag('consent', 'update', {{ ad_storage: on, analytics_storage: \
         on, ad_user_data: on, ad_personalization: on }});{pixel}{leave} }}",
        pixel = if setup.pixel_on_any_answer {
            format!(
                " var p = document.createElement('script'); p.async = true; p.src = '{pixel}'; \
                 document.head.appendChild(p);"
            )
        } else {
            String::new()
        },
        leave = if setup.leave_on_reject {
            " if (on === 'denied') location.href = '/compliance/sorry';"
        } else {
            ""
        },
    );
    let broken = if setup.throws {
        // A configuration that reads a setting of an object the site forgot to define, as a
        // template edited by hand does: a TypeError before CookieConsent.run.
        "var siteSettings; var consentLanguage = siteSettings.language;"
    } else {
        ""
    };
    format!(
        "{defaults}{head_tag}<link rel=\"stylesheet\" href=\"{css}\"></head><body>\
         <h1>Shop</h1><p>Our products.</p>{released_tag}<script src=\"{js}\"></script>\
         <script>{broken}CookieConsent.run({{ {on_consent}, categories: {{ necessary: \
         {{ enabled: true, readOnly: true }}, analytics: {analytics_on} }}, language: {{ \
         default: 'en', translations: {{ en: {{ consentModal: {{ title: 'We use cookies', \
         description: 'They help us count visits and show you offers.', acceptAllBtn: \
         'Accept all', {reject_button}showPreferencesBtn: 'Manage preferences' }}, \
         preferencesModal: {{ title: 'Cookie preferences', acceptAllBtn: 'Accept all', \
         {reject_button}savePreferencesBtn: 'Save preferences', closeIconLabel: 'Close', \
         sections: [{{ title: 'Necessary', linkedCategory: 'necessary' }}, \
         {{ title: 'Analytics and marketing', linkedCategory: 'analytics' }}] }} }} }} }} }});\
         </script>",
        defaults = consent_defaults(setup.defaults),
        css = pkg("vanilla-cookieconsent/dist/cookieconsent.css"),
        js = pkg("vanilla-cookieconsent/dist/cookieconsent.umd.js"),
    )
}

/// An opt-out shop: the pixel loads at once, and a notice offers to opt out. With `check_gpc`
/// the page skips the pixel for visitors who send Global Privacy Control.
fn opt_out_page(tags: &Tags, check_gpc: bool) -> String {
    let condition = if check_gpc {
        "!navigator.globalPrivacyControl"
    } else {
        "true"
    };
    format!(
        "</head><body><h1>Shop</h1><p>Our products.</p>\
         <div id=\"notice\">We share data for advertising. \
         <a href=\"/privacy\">Do not sell or share my personal information</a></div>\
         <script>if ({condition}) {{ var p = document.createElement('script'); p.async = true; \
         p.src = '{pixel}'; document.head.appendChild(p); }}</script>",
        pixel = tags.pixel,
    )
}

/// Tag Manager's container: loads gtag.
fn gtm_js(gtag: &str) -> String {
    format!(
        "(function () {{ window.dataLayer = window.dataLayer || []; \
         dataLayer.push({{ 'gtm.start': Date.now(), event: 'gtm.js' }}); \
         var s = document.createElement('script'); s.async = true; s.src = '{gtag}'; \
         document.head.appendChild(s); }})();"
    )
}

/// gtag: reads Consent Mode from `dataLayer`, keeps `_ga` only while analytics_storage is
/// granted, and sends a hit with `gcs`/`gcd` at load and on each update that grants.
fn gtag_js(collect: &str) -> String {
    format!(
        r#"(function () {{
  var dl = window.dataLayer = window.dataLayer || [];
  var defaults = {{}}, updates = {{}};
  var purposes = ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization'];
  function state(p) {{ return p in updates ? updates[p] : defaults[p]; }}
  function letter(p) {{
    var d = defaults[p], u = updates[p];
    if (u === undefined) return d === 'granted' ? 't' : d === 'denied' ? 'p' : 'l';
    if (d === 'granted') return u === 'granted' ? 'v' : 'u';
    if (d === 'denied') return u === 'granted' ? 'r' : 'q';
    return u === 'granted' ? 'n' : 'm';
  }}
  function bit(p) {{ var s = state(p); return s === 'granted' ? '1' : s === 'denied' ? '0' : '-'; }}
  function hit(event) {{
    if (state('analytics_storage') === 'granted' && document.cookie.indexOf('_ga=') < 0) {{
      document.cookie = '_ga=GA1.1.' + Math.floor(Math.random() * 1e9) + '.' +
        Math.floor(Date.now() / 1000) + '; path=/; max-age=63072000';
    }}
    var gcd = '13' + letter('ad_storage') + '3' + letter('analytics_storage') + '3' +
      letter('ad_user_data') + '3' + letter('ad_personalization') + '5';
    var url = '{collect}?v=2&tid=G-FIXTURE&en=' + event + '&gcs=G1' + bit('ad_storage') +
      bit('analytics_storage') + '&gcd=' + gcd + '&dl=' + encodeURIComponent(location.href);
    navigator.sendBeacon(url);
  }}
  function read(entry) {{
    if (!entry || entry[0] !== 'consent') return false;
    var target = entry[1] === 'default' ? defaults : entry[1] === 'update' ? updates : null;
    if (!target) return false;
    purposes.forEach(function (p) {{ if (entry[2] && p in entry[2]) target[p] = entry[2][p]; }});
    return entry[1] === 'update';
  }}
  for (var i = 0; i < dl.length; i++) read(dl[i]);
  var push = dl.push;
  dl.push = function (entry) {{
    var result = push.apply(dl, arguments);
    if (read(entry) && state('analytics_storage') === 'granted') hit('user_engagement');
    return result;
  }};
  hit('page_view');
}})();"#
    )
}

/// The Meta pixel: `_fbp` and a PageView.
fn fbevents_js(tr: &str) -> String {
    format!(
        "(function () {{ if (document.cookie.indexOf('_fbp=') < 0) {{ document.cookie = \
         '_fbp=fb.1.' + Date.now() + '.' + Math.floor(Math.random() * 1e9) + \
         '; path=/; max-age=7776000'; }} \
         new Image().src = '{tr}?id=1234567890&ev=PageView&dl=' + \
         encodeURIComponent(location.href); }})();"
    )
}

fn script(body: &str) -> HttpResponse {
    HttpResponse::Ok().content_type(JS).body(body.to_owned())
}
