//! Keeps secret values out of everything a run reports: texts, URLs, captured pages.

use zeroize::Zeroizing;

/// Secrets shorter than this are not searched for (a CVC of `12` would blank every `12`); they
/// are still masked in the fields they were typed into.
pub const MIN_REDACTED_CHARS: usize = 3;
const REPLACEMENT: &str = "[secret]";

#[derive(Default)]
pub struct Redactor {
    values: Vec<Zeroizing<String>>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut values: Vec<Zeroizing<String>> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_REDACTED_CHARS)
            .map(|v| Zeroizing::new(v.to_owned()))
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { values }
    }

    /// The values, for masking them on the page.
    pub fn values(&self) -> Vec<&str> {
        self.values.iter().map(|v| v.as_str()).collect()
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REPLACEMENT);
            }
            // A secret in a URL arrives percent-encoded or with `+` for spaces.
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            if encoded != **value && out.contains(&encoded) {
                out = out.replace(&encoded, REPLACEMENT);
            }
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
        let mut doc = serde_json::json!({"dom": "<p>Main St 1</p>", "list": ["x 4242 4242"]});
        r.json(&mut doc);
        assert_eq!(doc["dom"], "<p>[secret]</p>");
        assert_eq!(doc["list"][0], "x [secret]");
    }
}
