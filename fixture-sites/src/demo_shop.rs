//! The demo shop for checkout tests: product list → cart → shipping → payment → review →
//! confirmation, under `/demo/{variant}/` on shop.test. Stateless on the server (the cart and the
//! order's details travel in cookies), plain HTML forms, and variants that break the way real
//! shops break:
//!
//! | variant | what is wrong |
//! |---|---|
//! | `ok` | nothing |
//! | `missing-button` | the cart's checkout button was renamed away (`data-test="checkout"` is gone) |
//! | `price-change` | the cart's total is € 27.50, not € 25.00 |
//! | `hang` | submitting the payment form never gets an answer |
//! | `rejects-input` | the shipping form refuses every postcode |
//! | `js-error` | the payment page's submit handler throws, so the form never submits |
//! | `offsite` | the cart's checkout button leads to another host (ads.test) |
//!
//! The payment page loads `cdn.test/versioned.js`, which [`crate::FixtureSites::set_version`]
//! changes, and its card field is styled in pure magenta (#ff00ff) text, so a screenshot that shows
//! the typed card number is easy to detect.

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};

use crate::{ADS, CDN, Ports};

pub const VARIANTS: [&str; 7] = [
    "ok",
    "missing-button",
    "price-change",
    "hang",
    "rejects-input",
    "js-error",
    "offsite",
];

/// The colour of the typed card number on the payment page.
pub const CARD_TEXT_RGB: [u8; 3] = [255, 0, 255];

const STYLE: &str = "body{font:16px/1.5 sans-serif;margin:2em;max-width:48em}
label{display:block;margin:.5em 0}input,select{font-size:16px;padding:.3em;width:20em}
button,a.button{font-size:16px;padding:.5em 1em;background:#0a5;color:#fff;border:0;text-decoration:none}
.error{color:#b00}";

pub(crate) async fn route(request: HttpRequest, body: Bytes, ports: Data<Ports>) -> HttpResponse {
    let path = request.path().to_owned();
    let Some(rest) = path.strip_prefix("/demo/") else {
        return not_found();
    };
    let (variant, page) = rest.split_once('/').unwrap_or((rest, ""));
    if !VARIANTS.contains(&variant) {
        return not_found();
    }
    let base = format!("/demo/{variant}");
    let form = parse_form(&body);
    let cookie = |name: &str| request.cookie(name).map(|c| c.value().to_owned());
    let post = request.method() == actix_web::http::Method::POST;
    match (page, post) {
        ("", false) => page_html("Products", &products(&base)),
        ("cart", true) => {
            let product = field(&form, "product");
            see_other(&format!("{base}/cart"))
                .cookie(&format!("demo_cart={product}"))
                .finish()
        }
        ("cart", false) => page_html(
            "Your cart",
            &cart(&base, variant, cookie("demo_cart"), ports.http),
        ),
        ("checkout/shipping", false) => page_html("Shipping", &shipping(&base, None)),
        ("checkout/shipping", true) => {
            let postcode = field(&form, "postcode");
            let valid = postcode.len() == 5 && postcode.chars().all(|c| c.is_ascii_digit());
            if variant == "rejects-input" || !valid {
                return page_html(
                    "Shipping",
                    &shipping(&base, Some("Please enter a valid postcode.")),
                );
            }
            see_other(&format!("{base}/checkout/payment"))
                .cookie(&format!(
                    "demo_ship={}",
                    encode(&format!(
                        "{}|{}|{} {}",
                        field(&form, "name"),
                        field(&form, "street"),
                        postcode,
                        field(&form, "city")
                    ))
                ))
                .finish()
        }
        ("checkout/payment", false) => page_html("Payment", &payment(&base, variant, ports.http)),
        ("checkout/payment", true) => {
            if variant == "hang" {
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            }
            let card: String = field(&form, "card")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let last4 = card
                .get(card.len().saturating_sub(4)..)
                .unwrap_or_default()
                .to_owned();
            see_other(&format!("{base}/checkout/review"))
                .cookie(&format!("demo_card={last4}"))
                .finish()
        }
        ("checkout/review", false) => page_html(
            "Review your order",
            &review(&base, variant, cookie("demo_ship"), cookie("demo_card")),
        ),
        ("gift-card", false) => page_html("Gift card", GIFT_CARD),
        ("order", true) => see_other(&format!("{base}/confirmation")).finish(),
        ("confirmation", false) => page_html(
            "Order confirmed",
            "<h1>Thank you for your order</h1><p id=\"order-number\">Order SW-1001</p>",
        ),
        _ => not_found(),
    }
}

/// A gift-card field whose code is previewed as it is typed, large and in [`CARD_TEXT_RGB`]: in
/// a shadow root, or with `?split` in two elements (which no text search finds whole).
const GIFT_CARD: &str = r#"<h1>Redeem a gift card</h1>
<label>Code <input id="gift-code" autocomplete="off"></label>
<div id="preview-host"></div>
<p id="split-preview" style="color:#ff00ff;font:bold 40px monospace"></p>
<script>
const shadow = document.getElementById("preview-host").attachShadow({ mode: "open" });
shadow.innerHTML = '<p id="preview" style="color:#ff00ff;font:bold 40px monospace"></p>';
const split = new URLSearchParams(location.search).has("split");
document.getElementById("gift-code").addEventListener("input", (event) => {
  const code = event.target.value;
  if (!split) { shadow.getElementById("preview").textContent = code; return; }
  const halves = [code.slice(0, 4), code.slice(4)].map((part) => {
    const span = document.createElement("span");
    span.textContent = part;
    return span;
  });
  document.getElementById("split-preview").replaceChildren(...halves);
});
</script>"#;

fn products(base: &str) -> String {
    format!(
        "<h1>Products</h1>
<div class=\"product\"><h2>Siteward tee</h2><p class=\"price\">€ 25.00</p>
<form method=\"post\" action=\"{base}/cart\"><input type=\"hidden\" name=\"product\" value=\"tee\">
<button data-test=\"add-tee\">Add to cart</button></form></div>
<div class=\"product\"><h2>Siteward mug</h2><p class=\"price\">€ 12.00</p>
<form method=\"post\" action=\"{base}/cart\"><input type=\"hidden\" name=\"product\" value=\"mug\">
<button data-test=\"add-mug\">Add to cart</button></form></div>"
    )
}

fn cart(base: &str, variant: &str, item: Option<String>, http_port: u16) -> String {
    let Some(item) = item.filter(|i| i == "tee" || i == "mug") else {
        return "<h1>Your cart</h1><p>Your cart is empty.</p>".into();
    };
    let (name, price) = match (item.as_str(), variant) {
        ("tee", "price-change") => ("Siteward tee", "27.50"),
        ("tee", _) => ("Siteward tee", "25.00"),
        _ => ("Siteward mug", "12.00"),
    };
    let checkout = match variant {
        "missing-button" => format!(
            "<a class=\"button\" href=\"{base}/checkout/shipping\" data-test=\"proceed\">Proceed</a>"
        ),
        "offsite" => format!(
            "<a class=\"button\" href=\"http://{ADS}:{http_port}/checkout\" data-test=\"checkout\">Checkout</a>"
        ),
        _ => format!(
            "<a class=\"button\" href=\"{base}/checkout/shipping\" data-test=\"checkout\">Checkout</a>"
        ),
    };
    format!(
        "<h1>Your cart</h1><ul><li class=\"line-item\">{name} <span class=\"price\">€ {price}</span></li></ul>
<p>Total: <strong id=\"total\">€ {price}</strong></p>{checkout}"
    )
}

fn shipping(base: &str, error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{e}</p>")
    });
    format!(
        "<h1>Shipping</h1>{error}<form method=\"post\" action=\"{base}/checkout/shipping\">
<label>Full name <input id=\"name\" name=\"name\" autocomplete=\"off\"></label>
<label>Street <input id=\"street\" name=\"street\" autocomplete=\"off\"></label>
<label>Postcode <input id=\"postcode\" name=\"postcode\" autocomplete=\"off\"></label>
<label>City <input id=\"city\" name=\"city\" autocomplete=\"off\"></label>
<label>Country <select id=\"country\" name=\"country\"><option value=\"\">Choose…</option>
<option value=\"DE\">Germany</option><option value=\"NL\">Netherlands</option><option value=\"FR\">France</option></select></label>
<label><input type=\"checkbox\" id=\"terms\" name=\"terms\" style=\"width:auto\"> I accept the terms</label>
<button data-test=\"to-payment\">Continue to payment</button></form>"
    )
}

fn payment(base: &str, variant: &str, http_port: u16) -> String {
    let handler = if variant == "js-error" {
        "<script>document.querySelector('form').addEventListener('submit', function (e) {
  e.preventDefault(); validateCardNumber(this.card.value); this.submit(); });</script>"
    } else {
        ""
    };
    format!(
        "<h1>Payment</h1><script src=\"http://{CDN}:{http_port}/versioned.js\"></script>
<form method=\"post\" action=\"{base}/checkout/payment\">
<label>Card number <input id=\"card-number\" name=\"card\" autocomplete=\"off\"
 style=\"color:#ff00ff;font:bold 28px monospace;width:22em;background:#fff\"></label>
<label>Expiry <input id=\"expiry\" name=\"expiry\" placeholder=\"MM/YY\" autocomplete=\"off\"></label>
<label>CVC <input id=\"cvc\" name=\"cvc\" autocomplete=\"off\" style=\"color:#ff00ff;font:bold 28px monospace\"></label>
<label>Coupon <input id=\"coupon\" name=\"coupon\" autocomplete=\"off\"></label>
<button data-test=\"to-review\">Review order</button></form>{handler}"
    )
}

fn review(base: &str, variant: &str, shipping: Option<String>, card: Option<String>) -> String {
    let shipping = decode(&shipping.unwrap_or_default());
    let mut parts = shipping.split('|');
    let (name, street, town) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let price = if variant == "price-change" {
        "27.50"
    } else {
        "25.00"
    };
    format!(
        "<h1>Review your order</h1>
<section class=\"summary\"><h2>Ship to</h2><p id=\"ship-to\">{}<br>{}<br>{}</p>
<h2>Pay with</h2><p id=\"pay-with\">Card ending in {}</p>
<p>Total: <strong id=\"total\">€ {price}</strong></p></section>
<form method=\"post\" action=\"{base}/order\"><button data-test=\"place-order\">Place order</button></form>",
        escape(name),
        escape(street),
        escape(town),
        escape(&card.unwrap_or_default())
    )
}

fn page_html(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Demo shop</title><style>{STYLE}</style></head><body>{body}</body></html>"
        ))
}

struct Redirect(actix_web::HttpResponseBuilder);

fn see_other(location: &str) -> Redirect {
    let mut builder = HttpResponse::build(StatusCode::SEE_OTHER);
    builder.insert_header(("Location", location.to_owned()));
    Redirect(builder)
}

impl Redirect {
    fn cookie(mut self, pair: &str) -> Self {
        self.0
            .append_header(("Set-Cookie", format!("{pair}; Path=/demo; SameSite=Lax")));
        self
    }

    fn finish(mut self) -> HttpResponse {
        self.0.finish()
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Not found</title><h1>Not found</h1>")
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn field(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Percent-decoding of form fields (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && text.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encoding for a cookie value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The demo shop's guest checkout as a checkout test, for `variant`; it stops before placing the
/// order. Uses the secrets in [`DEMO_SECRETS`].
pub fn journey(variant: &str) -> String {
    JOURNEY.replace("{variant}", variant)
}

/// The secrets [`journey`] fills in: `(name, value)`. Distinctive, so tests can search for them.
pub const DEMO_SECRETS: [(&str, &str); 4] = [
    ("card_number", "4242424242424242"),
    ("cvc", "Q737"),
    ("street", "Hidden Lane 7"),
    ("coupon", "SECRET-COUPON-99"),
];

/// Step numbers of [`journey`], for tests that check where a run fails.
pub mod steps {
    pub const ASSERT_TOTAL: usize = 4;
    pub const CLICK_CHECKOUT: usize = 6;
    pub const WAIT_FOR_PAYMENT: usize = 15;
    pub const CLICK_TO_REVIEW: usize = 21;
    pub const WAIT_FOR_REVIEW: usize = 22;
    pub const STOP: usize = 25;
    pub const COUNT: usize = 26;
}

const JOURNEY: &str = r##"name: Demo shop guest checkout
timeout: 4s
budget: 90s
steps:
  - goto: /demo/{variant}/
  - click: test=add-tee
  - wait_for: { url: "/demo/*/cart" }
  - assert_text: { selector: "#total", text: "€ 25.00" }
  - assert_count: { selector: ".line-item", count: 1 }
  - click: test=checkout
  - wait_for: { url: "/demo/*/checkout/shipping" }
  - fill: { selector: "#name", value: "Quinn Tester" }
  - fill: { selector: "#street", secret: street }
  - fill: { selector: "#postcode", value: "10115" }
  - fill: { selector: "#city", value: "Berlin" }
  - select: { selector: "#country", option: Germany }
  - check: "#terms"
  - click: "text=Continue to payment"
  - wait_for: { url: "/demo/*/checkout/payment" }
  - fill: { selector: "#card-number", secret: card_number }
  - fill: { selector: "#expiry", value: "12/30" }
  - fill: { selector: "#cvc", secret: cvc }
  - fill: { selector: "#coupon", secret: coupon }
  - screenshot: payment form filled
  - click: test=to-review
  - wait_for: { url: "/demo/*/checkout/review" }
  - assert_text: { selector: "#pay-with", text: "ending in 4242" }
  - assert_visible: test=place-order
  - stop: before placing the order
  - click: test=place-order
"##;
