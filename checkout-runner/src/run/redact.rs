//! Keeps secret values out of everything a run reports: texts, URLs, captured pages.

use zeroize::Zeroizing;

/// Secrets shorter than this are not searched for (a CVC of `12` would blank every `12`); they
/// are still masked in the fields they were typed into.
pub const MIN_REDACTED_CHARS: usize = 3;
const REPLACEMENT: &str = "[secret]";

#[derive(Default)]
pub struct Redactor {
    values: Vec<Zeroizing<String>>,
    /// Every form a value may take in what a run reports (as typed, URL-encoded either way with
    /// either case of hex digits, HTML-escaped), longest first. Worked out once, wiped on drop.
    forms: Vec<Zeroizing<String>>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let values: Vec<Zeroizing<String>> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_REDACTED_CHARS)
            .map(|v| Zeroizing::new(v.to_owned()))
            .collect();
        let mut forms: Vec<Zeroizing<String>> = values.iter().flat_map(|v| forms_of(v)).collect();
        // Longest first, so a secret that contains another is replaced whole.
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { values, forms }
    }

    /// The values, for masking them on the page.
    pub fn values(&self) -> Vec<&str> {
        self.values.iter().map(|v| v.as_str()).collect()
    }

    /// Every form of every value, longest first: the page helper hides them from every answer
    /// and every match.
    pub fn forms(&self) -> Vec<&str> {
        self.forms.iter().map(|v| v.as_str()).collect()
    }

    /// `text` with every form of every secret replaced, in any ASCII case (steps compare text
    /// case-insensitively, so a page showing a code upper-cased must not give it away).
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for form in &self.forms {
            out = replace_ignoring_ascii_case(&out, form, REPLACEMENT);
        }
        out
    }

    /// Every string in a JSON value, redacted.
    pub fn json(&self, value: &mut serde_json::Value) {
        if self.values.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }
}

/// The forms `value` takes in URLs (a query's `+` or a path's `%20` for spaces, upper- or
/// lower-case hex) and in markup (HTML-escaped).
fn forms_of(value: &str) -> Vec<Zeroizing<String>> {
    let form: Zeroizing<String> =
        Zeroizing::new(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    // The serializer writes a space as `+` and a `+` as `%2B`, so every `+` was a space.
    let percent = Zeroizing::new(form.replace('+', "%20"));
    let html = Zeroizing::new(
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;"),
    );
    let mut forms = vec![Zeroizing::new(value.to_owned()), html];
    for encoded in [form, percent] {
        forms.push(Zeroizing::new(lower_hex(&encoded)));
        forms.push(encoded);
    }
    forms
}

/// `text` with every occurrence of `pattern`, compared ignoring ASCII case, replaced.
fn replace_ignoring_ascii_case(text: &str, pattern: &str, replacement: &str) -> String {
    if pattern.is_empty() || pattern.len() > text.len() {
        return text.to_owned();
    }
    // ASCII lower-casing keeps every byte where it was, so offsets carry over.
    let haystack = text.to_ascii_lowercase();
    let needle = pattern.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = haystack[from..].find(&needle) {
        let at = from + found;
        out.push_str(&text[from..at]);
        out.push_str(replacement);
        from = at + needle.len();
    }
    out.push_str(&text[from..]);
    out
}

/// `%2B` as `%2b`: the same bytes, as some encoders write them.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut after_percent = 0;
    for c in encoded.chars() {
        if c == '%' {
            after_percent = 2;
            out.push(c);
        } else if after_percent > 0 {
            after_percent -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_plain_and_url_encoded() {
        let r = Redactor::new(["4242 4242", "Main St 1", "12"]);
        assert_eq!(r.text("card 4242 4242 ok"), "card [secret] ok");
        assert_eq!(
            r.text("https://shop.test/pay?card=4242+4242&street=Main+St+1"),
            "https://shop.test/pay?card=[secret]&street=[secret]"
        );
        assert_eq!(r.text("aisle 12"), "aisle 12");
        assert_eq!(
            r.text("/api/address?q=Main%20St%201 and /search/Main%20St%202"),
            "/api/address?q=[secret] and /search/Main%20St%202",
            "a path's %20 is caught; a different value is not"
        );
        assert_eq!(
            r.text("VOUCHER MAIN ST 1, main st 1, Ünïcode"),
            "VOUCHER [secret], [secret], Ünïcode",
            "a secret shown in another case is caught too"
        );
        let mut doc = serde_json::json!({"dom": "<p>Main St 1</p>", "list": ["x 4242 4242"]});
        r.json(&mut doc);
        assert_eq!(doc["dom"], "<p>[secret]</p>");
        assert_eq!(doc["list"][0], "x [secret]");
        let escaped = Redactor::new(["Tom & Jerry's", "a+b/c"]);
        assert_eq!(
            escaped.text("<b>Tom &amp; Jerry&#39;s</b>"),
            "<b>[secret]</b>"
        );
        assert_eq!(
            escaped.text("?q=a%2Bb%2Fc and ?q=a%2bb%2fc"),
            "?q=[secret] and ?q=[secret]"
        );
        assert_eq!(escaped.text("?q=Tom+%26+Jerry%27s"), "?q=[secret]");
    }
}
