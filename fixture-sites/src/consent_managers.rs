//! Shop pages behind open-source consent managers installed from the npm registry (see
//! [`crate::packages`]), each configured as its documentation shows and guarding the analytics
//! tag (`analytics.test/a.js`, which sets `_ga` and sends a beacon): the tag loads only after the
//! visitor accepts.

use actix_web::HttpResponse;

use crate::{ANALYTICS, CDN, SHOP, WIDGET};

const HTML: &str = "text/html; charset=utf-8";

/// A consent manager's page: its path on the shop, the package, and how a correct scan answers it.
pub struct ConsentManagerPage {
    pub path: &'static str,
    pub package: &'static str,
    /// What a correct scan records in `consent.consent_managers`.
    pub recognised_as: &'static str,
    /// The control that accepts (`matched_by`, label).
    pub accept: (&'static str, &'static str),
    /// The control that refuses (`matched_by`, label, layer).
    pub reject: (&'static str, &'static str, u8),
    pub notes: &'static str,
}

/// The consent manager pages, with what a correct scan finds.
pub const PAGES: [ConsentManagerPage; 7] = [
    ConsentManagerPage {
        path: "/cmp/vanilla-cookieconsent",
        package: "vanilla-cookieconsent",
        recognised_as: "vanilla-cookieconsent",
        accept: ("vanilla-cookieconsent", "Accept all"),
        reject: ("vanilla-cookieconsent", "Reject all", 1),
        notes: "hides its banner from browsers that say they are automated (`navigator.webdriver`, \
                bot User-Agents) by default",
    },
    ConsentManagerPage {
        path: "/cmp/vanilla-cookieconsent-layers",
        package: "vanilla-cookieconsent",
        recognised_as: "vanilla-cookieconsent",
        accept: ("vanilla-cookieconsent", "Accept all"),
        reject: ("vanilla-cookieconsent", "Save preferences", 2),
        notes: "the first layer offers only \"Accept all\" and \"Manage preferences\"; analytics is \
                switched on in the preferences until the visitor switches it off and saves",
    },
    ConsentManagerPage {
        path: "/cmp/klaro",
        package: "klaro",
        recognised_as: "klaro",
        accept: ("klaro", "That's ok"),
        reject: ("klaro", "I decline", 1),
        notes: "\"That's ok\" / \"I decline\" / \"Let me choose\"",
    },
    ConsentManagerPage {
        path: "/cmp/cookieconsent",
        package: "cookieconsent",
        recognised_as: "cookieconsent",
        accept: ("cookieconsent", "Allow cookies"),
        reject: ("cookieconsent", "Decline", 1),
        notes: "the opt-in banner of the `cookieconsent` package; the page loads the tag from its \
                `onStatusChange` callback",
    },
    ConsentManagerPage {
        path: "/cmp/tarteaucitron",
        package: "tarteaucitronjs",
        recognised_as: "tarteaucitron",
        accept: ("text", "Tout accepter"),
        reject: ("text", "Tout refuser", 1),
        notes: "in French; loads its language file and services from its own folder after load",
    },
    ConsentManagerPage {
        path: "/cmp/cookie-though",
        package: "cookie-though",
        recognised_as: "cookie-though",
        accept: ("text", "Accept all"),
        reject: ("text", "Decline", 1),
        notes: "renders in a shadow root, and only 2.5 s after load (as a consent manager started \
                late by a tag manager is)",
    },
    ConsentManagerPage {
        path: "/cmp/cookies-eu-banner-frame",
        package: "cookies-eu-banner",
        recognised_as: "cookies-eu-banner",
        accept: ("text", "Alle akzeptieren"),
        reject: ("text", "Nur notwendige Cookies", 1),
        notes: "in German, inside a third-party iframe (widget.test) that tells the page the \
                answer with postMessage, as message-iframe consent platforms do",
    },
];

/// The response for a consent manager page, if `host` and `path` name one.
pub(crate) fn route(
    host: &str,
    path: &str,
    http: &dyn Fn(&str, &str) -> String,
) -> Option<HttpResponse> {
    let pkg = |file: &str| http(CDN, &format!("/pkg/{file}"));
    let analytics = http(ANALYTICS, "/a.js");
    let load_analytics = format!(
        "function loadAnalytics() {{ var s = document.createElement('script'); \
         s.src = '{analytics}'; document.head.appendChild(s); }}"
    );
    let (lang, body) = match (host, path) {
        (SHOP, "/cmp/vanilla-cookieconsent") => {
            ("en", vanilla_cookieconsent(&pkg, &analytics, true))
        }
        (SHOP, "/cmp/vanilla-cookieconsent-layers") => {
            ("en", vanilla_cookieconsent(&pkg, &analytics, false))
        }
        (SHOP, "/cmp/klaro") => (
            "en",
            format!(
                "<script>window.klaroConfig = {{ acceptAll: true, services: [\
                 {{ name: 'analytics', title: 'Analytics', purposes: ['analytics'] }}] }};</script>\
                 <script type=\"text/plain\" data-type=\"application/javascript\" \
                 data-name=\"analytics\" data-src=\"{analytics}\"></script>\
                 <script defer src=\"{klaro}\"></script>",
                klaro = pkg("klaro/dist/klaro.js")
            ),
        ),
        (SHOP, "/cmp/cookieconsent") => (
            "en",
            format!(
                "<link rel=\"stylesheet\" href=\"{css}\"><script src=\"{js}\"></script>\
                 <script>{load_analytics}\
                 window.cookieconsent.initialise({{ type: 'opt-in', \
                 content: {{ allow: 'Allow cookies', deny: 'Decline' }}, \
                 onInitialise: function () {{ if (this.hasConsented()) loadAnalytics(); }}, \
                 onStatusChange: function () {{ if (this.hasConsented()) loadAnalytics(); }} }});\
                 </script>",
                css = pkg("cookieconsent/build/cookieconsent.min.css"),
                js = pkg("cookieconsent/build/cookieconsent.min.js"),
            ),
        ),
        (SHOP, "/cmp/tarteaucitron") => (
            "fr",
            format!(
                "<script>var tarteaucitronForceLanguage = 'fr';</script><script src=\"{js}\"></script>\
                 <script>tarteaucitron.init({{ privacyUrl: '', hashtag: '#tarteaucitron', \
                 cookieName: 'tarteaucitron', orientation: 'middle', showAlertSmall: false, \
                 cookieslist: false, highPrivacy: true, DenyAllCta: true, AcceptAllCta: true, \
                 handleBrowserDNTRequest: false, mandatory: true }});\
                 tarteaucitron.services.boutiquestats = {{ key: 'boutiquestats', type: 'analytic', \
                 name: 'Statistiques', uri: '', needConsent: true, cookies: ['_ga'], \
                 js: function () {{ tarteaucitron.addScript('{analytics}'); }} }};\
                 (tarteaucitron.job = tarteaucitron.job || []).push('boutiquestats');</script>",
                js = pkg("tarteaucitronjs/tarteaucitron.js"),
            ),
        ),
        (SHOP, "/cmp/cookie-though") => (
            "en",
            format!(
                "<script src=\"{js}\"></script><script>{load_analytics}\
                 setTimeout(function () {{ CookieThough.init({{ policies: [{{ id: 'analytics', \
                 label: 'Analytics', description: 'Counting visits', category: 'statistics' }}], \
                 essentialLabel: 'Always on', permissionLabels: {{ accept: 'Accept', \
                 acceptAll: 'Accept all', decline: 'Decline' }}, \
                 header: {{ title: 'cookie though?', description: 'We count visits.' }}, \
                 cookiePolicy: {{ url: '/privacy', label: 'Read the full cookie declaration' }}, \
                 customizeLabel: 'Customize' }});\
                 CookieThough.onPreferencesChanged(function (p) {{ \
                 if (p.cookieOptions.some(function (o) {{ return o.id === 'analytics' && o.isEnabled; }})) \
                 loadAnalytics(); }}); }}, 2500);</script>",
                js = pkg("cookie-though/dist/lib.js"),
            ),
        ),
        (SHOP, "/cmp/cookies-eu-banner-frame") => (
            "de",
            format!(
                "<script>{load_analytics}\
                 addEventListener('message', function (e) {{ \
                 if (e.origin === '{widget}' && e.data === 'consent:accept') loadAnalytics(); }});\
                 </script><iframe title=\"Datenschutz\" src=\"{frame}\" style=\"position: fixed; \
                 bottom: 0; left: 0; width: 100%; height: 180px; border: 0\"></iframe>",
                widget = http(WIDGET, "").trim_end_matches('/'),
                frame = http(WIDGET, "/cmp/consent-frame"),
            ),
        ),
        (WIDGET, "/cmp/consent-frame") => (
            "de",
            format!(
                "<template id=\"cookies-eu-banner-template\"><div id=\"cookies-eu-banner\">\
                 Wir verwenden Cookies für Statistiken. \
                 <button id=\"cookies-eu-reject\">Nur notwendige Cookies</button> \
                 <button id=\"cookies-eu-accept\">Alle akzeptieren</button></div></template>\
                 <script src=\"{js}\"></script>\
                 <script>CookiesEuBanner.createCookiesBanner({{ onAccept: function () {{ \
                 parent.postMessage('consent:accept', '*'); }} }});</script>",
                js = pkg("cookies-eu-banner/dist/cookies-eu-banner.global.js"),
            ),
        ),
        _ => return None,
    };
    Some(HttpResponse::Ok().content_type(HTML).body(format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>Shop</title>\
         </head><body><h1>Shop</h1><p>Our products.</p>{body}</body></html>"
    )))
}

/// vanilla-cookieconsent 3 with the analytics tag as a blocked script. With `reject_on_first_layer`
/// the banner has "Reject all"; without it, refusing takes "Manage preferences", where analytics
/// starts switched on.
fn vanilla_cookieconsent(
    pkg: &dyn Fn(&str) -> String,
    analytics: &str,
    reject_on_first_layer: bool,
) -> String {
    let (analytics_on, reject_button) = if reject_on_first_layer {
        ("{}", "acceptNecessaryBtn: 'Reject all', ")
    } else {
        ("{ enabled: true }", "")
    };
    format!(
        "<link rel=\"stylesheet\" href=\"{css}\">\
         <script type=\"text/plain\" data-category=\"analytics\" src=\"{analytics}\"></script>\
         <script src=\"{js}\"></script>\
         <script>CookieConsent.run({{ categories: {{ necessary: {{ enabled: true, readOnly: true }}, \
         analytics: {analytics_on} }}, language: {{ default: 'en', translations: {{ en: {{ \
         consentModal: {{ title: 'We use cookies', description: 'They help us count visits.', \
         acceptAllBtn: 'Accept all', {reject_button}showPreferencesBtn: 'Manage preferences' }}, \
         preferencesModal: {{ title: 'Cookie preferences', acceptAllBtn: 'Accept all', \
         {reject_button}savePreferencesBtn: 'Save preferences', closeIconLabel: 'Close', \
         sections: [{{ title: 'Necessary', linkedCategory: 'necessary' }}, \
         {{ title: 'Analytics', linkedCategory: 'analytics' }}] }} }} }} }} }});</script>",
        css = pkg("vanilla-cookieconsent/dist/cookieconsent.css"),
        js = pkg("vanilla-cookieconsent/dist/cookieconsent.umd.js"),
    )
}
