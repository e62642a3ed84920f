//! A single-page shop built the way real ones are: React 18 and React Router 6 (installed from
//! the npm registry, see [`crate::packages`]) with client-side routing through the History API,
//! under `/spa/` on shop.test. Login (the password is a secret), a product list loaded by `fetch`,
//! a cart, a checkout form, card fields in the payment provider's cross-origin iframe (pay.test)
//! and a 3-D Secure-style challenge in a modal iframe, then the overview with its total and
//! "Finish" — which a checkout test stops before.
//!
//! Users, as on shops' own test fixtures:
//!
//! | user | what happens |
//! |---|---|
//! | `standard_user` | everything works |
//! | `locked_out_user` | the login is refused: "Sorry, this user has been locked out." |
//! | `problem_user` | the last-name field drops what is typed and says "Error: Last Name is required"; the country select does not take a choice |
//! | `error_user` | adding the bike light throws "Failed to add item to the cart" (and adds nothing) |
//!
//! The header has a menu that opens on hover, as many shops' do, and adding to the cart shows an
//! "Updating cart…" spinner for a moment (a timer, not a request) before the badge changes.
//!
//! The shop keeps an event stream open for the whole visit (live notifications), so a step that
//! waits for every request to end would wait in vain.
//!
//! The card fields' text is pure magenta ([`crate::demo_shop::CARD_TEXT_RGB`]), so a screenshot
//! that shows a typed card number is easy to detect.

use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use crate::{CDN, PAY, SHOP};

/// The secrets of [`journey`]: every user's password, and the card number and security code
/// typed into the payment iframe. The code has a letter, as the demo shop's does, so that no
/// timestamp or hash in a report can contain it by chance and make a leak check flaky.
pub const SECRETS: [(&str, &str); 3] = [
    ("password", "secret_sauce"),
    ("card_number", "4000056655665556"),
    ("card_cvc", "Q739"),
];
/// The colour of the shop's logo text in the header, for tests that check where a screenshot
/// was taken (a viewport scrolled down to the last product does not show it).
pub const LOGO_RGB: [u8; 3] = [255, 140, 0];
/// The overview's total for the two items the journey adds ($39.98 and 8 % tax).
pub const TOTAL: &str = "Total: $43.18";

const HTML: &str = "text/html; charset=utf-8";

/// The step numbers of [`journey`], for tests.
pub mod steps {
    pub const LOGIN: usize = 4;
    pub const WAIT_FOR_INVENTORY: usize = 5;
    pub const ADD_BIKE_LIGHT: usize = 8;
    pub const ASSERT_BADGE: usize = 9;
    pub const ASSERT_CART_URL: usize = 11;
    pub const FILL_LAST_NAME: usize = 14;
    pub const CONTINUE_INFO: usize = 16;
    pub const WAIT_FOR_PAYMENT: usize = 17;
    pub const FILL_CARD: usize = 18;
    pub const AUTHENTICATE: usize = 21;
    pub const ASSERT_TOTAL: usize = 23;
    pub const STOP: usize = 24;
    pub const COUNT: usize = 25;
}

/// The whole journey for `user`, up to `stop` before "Finish".
pub fn journey(user: &str) -> String {
    format!(
        r#"name: SPA shop checkout ({user})
budget: 60s
steps:
  - goto: /spa/
  - fill: {{ selector: "test=username", value: "{user}" }}
  - fill: {{ selector: "test=password", secret: password }}
  - click: "test=login-button"
  - wait_for: {{ url: "/spa/inventory" }}
  - assert_count: {{ selector: ".inventory_item", count: 6 }}
  - click: "test=add-to-cart-backpack"
  - click: "test=add-to-cart-bike-light"
  - assert_text: {{ selector: ".shopping_cart_badge", text: "2" }}
  - click: ".shopping_cart_link"
  - assert_url: "/spa/cart"
  - click: "test=checkout"
  - fill: {{ selector: "test=firstName", value: "Ada" }}
  - fill: {{ selector: "test=lastName", value: "Lovelace" }}
  - fill: {{ selector: "test=postalCode", value: "10115" }}
  - click: "test=continue"
  - wait_for: {{ url: "/spa/checkout/payment" }}
  - fill: {{ selector: "frame=#payment-iframe >> #card-number", secret: card_number }}
  - fill: {{ selector: "frame=#payment-iframe >> #card-cvc", secret: card_cvc }}
  - click: "test=verify-card"
  - click: "frame=#challenge-iframe >> text=Authenticate"
  - wait_for: {{ url: "/spa/checkout/overview" }}
  - assert_text: {{ selector: ".summary_total_label", text: "{TOTAL}" }}
  - stop: before Finish
  - click: "test=finish"
"#
    )
}

/// The response for a path of the shop or of the payment provider, if it is one.
pub(crate) fn route(
    request: &HttpRequest,
    body: &Bytes,
    host: &str,
    http: &dyn Fn(&str, &str) -> String,
) -> Option<HttpResponse> {
    let path = request.path();
    match (host, path) {
        (SHOP, "/spa/api/login") if request.method() == Method::POST => {
            let user = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("username").and_then(|u| u.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Some(match user.as_str() {
                "standard_user" | "problem_user" | "error_user" => HttpResponse::Ok().json(serde_json::json!({"user": user})),
                "locked_out_user" => HttpResponse::Forbidden()
                    .json(serde_json::json!({"error": "Sorry, this user has been locked out."})),
                _ => HttpResponse::Unauthorized().json(serde_json::json!({
                    "error": "Username and password do not match any user in this service"
                })),
            })
        }
        (SHOP, "/spa/api/products") => Some(HttpResponse::Ok().json(products())),
        (SHOP, "/spa/app.js") => Some(
            HttpResponse::Ok()
                .content_type("application/javascript; charset=utf-8")
                .body(APP_JS.replace("__PAY_ORIGIN__", http(PAY, "").trim_end_matches('/'))),
        ),
        (SHOP, p) if p == "/spa" || p.starts_with("/spa/") => {
            let pkg = |file: &str| http(CDN, &format!("/pkg/{file}"));
            Some(HttpResponse::Ok().content_type(HTML).body(format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Swag Labs</title>\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <style>{STYLE}</style></head><body><div id=\"root\"></div>\
                 <script src=\"{react}\"></script><script src=\"{react_dom}\"></script>\
                 <script src=\"{router}\"></script><script src=\"{react_router}\"></script>\
                 <script src=\"{react_router_dom}\"></script><script src=\"/spa/app.js\"></script>\
                 </body></html>",
                react = pkg("react/umd/react.production.min.js"),
                react_dom = pkg("react-dom/umd/react-dom.production.min.js"),
                router = pkg("@remix-run/router/dist/router.umd.min.js"),
                react_router = pkg("react-router/dist/umd/react-router.production.min.js"),
                react_router_dom = pkg("react-router-dom/dist/umd/react-router-dom.production.min.js"),
            )))
        }
        (PAY, "/elements") => Some(HttpResponse::Ok().content_type(HTML).body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><style>{STYLE}\
             input{{color:#ff00ff;font:bold 24px monospace}}</style></head><body>\
             <label>Card number <input id=\"card-number\" autocomplete=\"cc-number\" inputmode=\"numeric\"></label>\
             <label>Security code <input id=\"card-cvc\" autocomplete=\"cc-csc\" inputmode=\"numeric\"></label>\
             <p id=\"card-error\" role=\"alert\" class=\"error\"></p>\
             <script>{ELEMENTS_JS}</script></body></html>",
        ))),
        (PAY, "/challenge") => Some(HttpResponse::Ok().content_type(HTML).body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><style>{STYLE}</style></head><body>\
             <h2>Confirm this payment method</h2><p>Your bank asks you to confirm the card.</p>\
             <button id=\"authenticate\">Authenticate</button> <button id=\"fail\">Fail</button>\
             <script>{CHALLENGE_JS}</script></body></html>",
        ))),
        _ => None,
    }
}

fn products() -> serde_json::Value {
    serde_json::json!([
        {"id": "backpack", "name": "Sauce Labs Backpack", "price": 29.99,
         "description": "Carry all the things with the sleek, streamlined Sly Pack that melds uncompromising style with unequaled laptop and tablet protection."},
        {"id": "bike-light", "name": "Sauce Labs Bike Light", "price": 9.99,
         "description": "A red light isn't the desired state in testing but it sure helps when riding your bike at night. Water-resistant with 3 lighting modes, 1 AAA battery included."},
        {"id": "bolt-t-shirt", "name": "Sauce Labs Bolt T-Shirt", "price": 15.99,
         "description": "Get your testing superhero on with the Sauce Labs bolt T-shirt. From American Apparel, 100% ringspun combed cotton, heather gray with red bolt."},
        {"id": "fleece-jacket", "name": "Sauce Labs Fleece Jacket", "price": 49.99,
         "description": "It's not every day that you come across a midweight quarter-zip fleece jacket capable of handling everything from a relaxing day outdoors to a busy day at the office."},
        {"id": "onesie", "name": "Sauce Labs Onesie", "price": 7.99,
         "description": "Rib snap infant onesie for the junior automation engineer in development. Reinforced 3-snap bottom closure, two-needle hemmed sleeved and bottom won't unravel."},
        {"id": "red-t-shirt", "name": "Test.allTheThings() T-Shirt (Red)", "price": 15.99,
         "description": "This classic Sauce Labs t-shirt is perfect to wear when cozying up to your keyboard to automate a few tests. Super-soft and comfy ringspun combed cotton."}
    ])
}

const STYLE: &str = "body{font:16px/1.5 sans-serif;margin:1em 2em;max-width:60em}\
label{display:block;margin:.5em 0}input{font-size:16px;padding:.3em;width:16em}\
button,a.button{font-size:16px;padding:.5em 1em;background:#3ddc91;color:#132322;border:0;\
text-decoration:none;cursor:pointer;margin:.2em}.error-message-container{min-height:2em}\
.error-message-container.error{background:#e2231a;color:#fff;padding:.5em}\
.inventory_item{border:1px solid #ddd;padding:.5em;margin:.5em 0;min-height:9em}\
.app_logo{color:#ff8c00;font:bold 28px sans-serif}.footer{background:#132322;color:#fff;padding:2em;margin-top:2em}\
.menu{position:relative;display:inline-block}.menu-items{display:none;position:absolute;\
background:#fff;border:1px solid #ddd;padding:.5em;min-width:12em;z-index:2}\
.menu:hover .menu-items{display:block}.menu-items a{display:block}\
.cart-updating{position:fixed;top:0;right:0;background:#132322;color:#fff;padding:.5em}\
.modal{position:fixed;inset:0;background:rgba(0,0,0,.5);display:flex;align-items:center;\
justify-content:center}.modal iframe{width:420px;height:260px;border:0;background:#fff}";

/// The payment provider's card fields: validates them and answers the shop's `tokenize`
/// message with a token.
const ELEMENTS_JS: &str = r#"
addEventListener('message', function (e) {
  if (!e.data || e.data.type !== 'tokenize') return;
  var number = document.getElementById('card-number').value.replace(/\s+/g, '');
  var cvc = document.getElementById('card-cvc').value;
  var error = document.getElementById('card-error');
  if (!/^\d{15,16}$/.test(number)) { error.textContent = 'Your card number is incomplete.'; e.source.postMessage({ type: 'error', message: error.textContent }, e.origin); return; }
  if (!/^[0-9A-Z]{3,4}$/.test(cvc)) { error.textContent = "Your card's security code is incomplete."; e.source.postMessage({ type: 'error', message: error.textContent }, e.origin); return; }
  error.textContent = '';
  setTimeout(function () { e.source.postMessage({ type: 'token', token: 'tok_' + number.slice(-4) }, e.origin); }, 120);
});
"#;

/// The bank's challenge: tells the shop whether the visitor authenticated.
const CHALLENGE_JS: &str = r#"
document.getElementById('authenticate').addEventListener('click', function () { parent.postMessage({ type: 'challenge', ok: true }, '*'); });
document.getElementById('fail').addEventListener('click', function () { parent.postMessage({ type: 'challenge', ok: false }, '*'); });
"#;

/// The shop itself: React components written with `React.createElement`, routed by React
/// Router's browser router (History API).
const APP_JS: &str = r#"
(function () {
  var h = React.createElement, useState = React.useState, useEffect = React.useEffect;
  var R = ReactRouterDOM;
  var PAY = '__PAY_ORIGIN__';
  var store = { user: null, cart: [], info: null };
  try { Object.assign(store, JSON.parse(sessionStorage.getItem('spa-shop') || '{}')); } catch (e) {}
  function save() { sessionStorage.setItem('spa-shop', JSON.stringify(store)); }
  // Live notifications stay connected for the whole visit, as real shops' chat and stock
  // widgets do: no step may wait for this stream to end.
  var live = new EventSource('/rw/events');
  live.onmessage = function () {};
  function money(n) { return '$' + n.toFixed(2); }

  function ErrorBox(props) {
    return h('div', { className: 'error-message-container' + (props.error ? ' error' : '') },
      props.error ? h('h3', { 'data-test': 'error' }, props.error) : null);
  }

  // The menu opens while the pointer is over it (CSS :hover), as on many shops.
  function Header(props) {
    var n = props && props.count != null ? props.count : store.cart.length;
    return h('div', { className: 'header' },
      h('div', { className: 'menu' }, h('button', { type: 'button', 'aria-haspopup': 'true' }, 'Menu'),
        h('nav', { className: 'menu-items' }, h(R.Link, { to: '/inventory' }, 'All Items'),
          h('a', { href: '#about' }, 'About'), h('a', { href: '#reset' }, 'Reset App State'))),
      h('span', { className: 'app_logo' }, 'Swag Labs'), ' ',
      h(R.Link, { className: 'shopping_cart_link', to: '/cart' }, 'Cart',
        n ? h('span', { className: 'shopping_cart_badge' }, String(n)) : null),
      props && props.updating ? h('div', { className: 'cart-updating', role: 'status' }, 'Updating cart…') : null);
  }

  function Footer() {
    return h('footer', { className: 'footer' },
      h('ul', null, ['Twitter', 'Facebook', 'LinkedIn'].map(function (n) { return h('li', { key: n }, h('a', { href: '#' + n.toLowerCase() }, n)); })),
      h('p', null, '\u00a9 2026 Sauce Labs. All Rights Reserved. Terms of Service | Privacy Policy'));
  }

  function Login() {
    var nav = R.useNavigate();
    var s = useState(''), user = s[0], setUser = s[1];
    var p = useState(''), password = p[0], setPassword = p[1];
    var e = useState(null), error = e[0], setError = e[1];
    function submit(ev) {
      ev.preventDefault();
      if (!user) return setError('Epic sadface: Username is required');
      if (!password) return setError('Epic sadface: Password is required');
      fetch('/spa/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user }) })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (r) {
          if (!r.ok) return setError('Epic sadface: ' + r.body.error);
          store.user = user; save(); nav('/inventory');
        });
    }
    return h('form', { onSubmit: submit },
      h('h1', null, 'Swag Labs'),
      h('input', { 'data-test': 'username', placeholder: 'Username', value: user, onChange: function (ev) { setUser(ev.target.value); } }),
      h('input', { 'data-test': 'password', placeholder: 'Password', type: 'password', value: password, onChange: function (ev) { setPassword(ev.target.value); } }),
      h(ErrorBox, { error: error }),
      h('input', { type: 'submit', 'data-test': 'login-button', className: 'button', value: 'Login' }));
  }

  function Inventory() {
    var s = useState(null), items = s[0], setItems = s[1];
    var c = useState(store.cart.length), count = c[0], setCount = c[1];
    var u = useState(false), updating = u[0], setUpdating = u[1];
    useEffect(function () { fetch('/spa/api/products').then(function (r) { return r.json(); }).then(setItems); }, []);
    if (!items) return h('p', null, 'Loading…');
    return h('div', null, h(Header, { count: count, updating: updating }), h('h2', null, 'Products'),
      items.map(function (item) {
        var inCart = store.cart.some(function (i) { return i.id === item.id; });
        return h('div', { className: 'inventory_item', key: item.id },
          h('div', { className: 'inventory_item_name' }, item.name),
          h('p', { className: 'inventory_item_desc' }, item.description), h('div', null, money(item.price)),
          h('button', { 'data-test': (inCart ? 'remove-' : 'add-to-cart-') + item.id, onClick: function () {
            // The error user's shop breaks on one item, as real carts do on a bad variant.
            if (store.user === 'error_user' && item.id === 'bike-light') throw new Error('Failed to add item to the cart');
            store.cart = inCart ? store.cart.filter(function (i) { return i.id !== item.id; }) : store.cart.concat([item]);
            save(); setUpdating(true);
            // The badge changes once the cart "synced": a moment later, on a timer.
            setTimeout(function () { setUpdating(false); setCount(store.cart.length); }, 250);
          } }, inCart ? 'Remove' : 'Add to cart'));
      }), h(Footer));
  }

  function Cart() {
    var nav = R.useNavigate();
    return h('div', null, h(Header), h('h2', null, 'Your Cart'),
      store.cart.map(function (item) { return h('div', { className: 'cart_item', key: item.id }, item.name + ' ' + money(item.price)); }),
      h('button', { 'data-test': 'checkout', onClick: function () { nav('/checkout/info'); } }, 'Checkout'));
  }

  function Info() {
    var nav = R.useNavigate();
    var f = useState({ firstName: '', lastName: '', postalCode: '', country: 'US' }), form = f[0], setForm = f[1];
    var e = useState(null), error = e[0], setError = e[1];
    function field(name, label) {
      return h('input', { 'data-test': name, placeholder: label, value: form[name], onChange: function (ev) {
        // The problem user's last-name field drops what is typed, as on the shop this copies,
        // and the form's live validation says so.
        if (name === 'lastName' && store.user === 'problem_user') return setError('Error: Last Name is required');
        var next = Object.assign({}, form); next[name] = ev.target.value; setForm(next);
      } });
    }
    function submit(ev) {
      ev.preventDefault();
      if (!form.firstName) return setError('Error: First Name is required');
      if (!form.lastName) return setError('Error: Last Name is required');
      if (!form.postalCode) return setError('Error: Postal Code is required');
      store.info = form; save(); nav('/checkout/payment');
    }
    // A controlled select: the problem user's form never takes the choice, so React puts the
    // old one back, as a shop with a broken shipping-country handler does.
    var country = h('label', null, 'Country ', h('select', { 'data-test': 'country', value: form.country, onChange: function (ev) {
      if (store.user === 'problem_user') return;
      setForm(Object.assign({}, form, { country: ev.target.value }));
    } }, [['US', 'United States'], ['DE', 'Germany'], ['FR', 'France']].map(function (o) { return h('option', { key: o[0], value: o[0] }, o[1]); })));
    return h('form', { onSubmit: submit }, h(Header), h('h2', null, 'Checkout: Your Information'),
      field('firstName', 'First Name'), field('lastName', 'Last Name'), field('postalCode', 'Zip/Postal Code'), country,
      h(ErrorBox, { error: error }),
      h('input', { type: 'submit', 'data-test': 'continue', className: 'button', value: 'Continue' }));
  }

  function Payment() {
    var nav = R.useNavigate();
    var c = useState(false), challenge = c[0], setChallenge = c[1];
    var e = useState(null), error = e[0], setError = e[1];
    useEffect(function () {
      function onMessage(ev) {
        if (ev.origin !== PAY || !ev.data) return;
        if (ev.data.type === 'error') setError(ev.data.message);
        if (ev.data.type === 'token') { setError(null); setChallenge(true); }
        if (ev.data.type === 'challenge') {
          setChallenge(false);
          if (ev.data.ok) nav('/checkout/overview'); else setError('Your card was declined by your bank.');
        }
      }
      addEventListener('message', onMessage);
      return function () { removeEventListener('message', onMessage); };
    }, []);
    function verify() {
      document.getElementById('payment-iframe').contentWindow.postMessage({ type: 'tokenize' }, PAY);
    }
    return h('div', null, h(Header), h('h2', null, 'Checkout: Payment'),
      h('iframe', { id: 'payment-iframe', title: 'Secure card payment input frame', src: PAY + '/elements', style: { width: '100%', height: '220px', border: '1px solid #ccc' } }),
      h(ErrorBox, { error: error }),
      h('button', { 'data-test': 'verify-card', onClick: verify }, 'Verify card'),
      challenge ? h('div', { className: 'modal' }, h('iframe', { id: 'challenge-iframe', title: '3D Secure challenge', src: PAY + '/challenge' })) : null);
  }

  function Overview() {
    var sum = store.cart.reduce(function (a, i) { return a + i.price; }, 0);
    var tax = Math.round(sum * 0.08 * 100) / 100;
    return h('div', null, h(Header), h('h2', null, 'Checkout: Overview'),
      store.cart.map(function (item) { return h('div', { className: 'cart_item', key: item.id }, item.name); }),
      h('div', { className: 'summary_subtotal_label' }, 'Item total: ' + money(sum)),
      h('div', { className: 'summary_tax_label' }, 'Tax: ' + money(tax)),
      h('div', { className: 'summary_total_label' }, 'Total: ' + money(sum + tax)),
      h('button', { 'data-test': 'finish', onClick: function () { alert('order placed'); } }, 'Finish'));
  }

  var router = R.createBrowserRouter([
    { path: '/', element: h(Login) },
    { path: '/inventory', element: h(Inventory) },
    { path: '/cart', element: h(Cart) },
    { path: '/checkout/info', element: h(Info) },
    { path: '/checkout/payment', element: h(Payment) },
    { path: '/checkout/overview', element: h(Overview) },
  ], { basename: '/spa' });
  ReactDOM.createRoot(document.getElementById('root')).render(h(R.RouterProvider, { router: router }));
})();
"#;
