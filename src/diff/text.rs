//! Text changes as word-level diffs: the page's visible text (outside script, style and the
//! selectors a target ignores) and its policy pages.

use std::collections::{BTreeMap, HashSet};

use scanner::Snapshot;
use scraper::{Html, Node, Selector};
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use super::Change;

/// One run of a word diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Span {
    /// `equal`, `insert` or `delete`.
    pub op: String,
    pub text: String,
}

/// Words of unchanged text kept on each side of a change.
const CONTEXT_WORDS: usize = 12;
/// Spans kept in one diff; the rest is summarized by the counts.
const MAX_SPANS: usize = 400;

/// The text a visitor can read: no script, style, template or head content, nothing inside the
/// ignored selectors, whitespace collapsed.
pub fn visible_text(html: &str, ignore_selectors: &[String]) -> String {
    let document = Html::parse_document(html);
    let mut ignored = HashSet::new();
    for text in ignore_selectors {
        if let Ok(selector) = Selector::parse(text) {
            ignored.extend(document.select(&selector).map(|element| element.id()));
        }
    }
    let mut words: Vec<&str> = Vec::new();
    let mut stack = vec![document.tree.root()];
    while let Some(node) = stack.pop() {
        if ignored.contains(&node.id()) {
            continue;
        }
        match node.value() {
            Node::Text(text) => words.extend(text.split_whitespace()),
            Node::Element(element)
                if matches!(
                    element.name(),
                    "script" | "style" | "noscript" | "template" | "head" | "svg"
                ) => {}
            _ => {
                // Children in document order: pushed in reverse onto the stack.
                let children: Vec<_> = node.children().collect();
                stack.extend(children.into_iter().rev());
            }
        }
    }
    words.join(" ")
}

/// A word diff of two texts: (words added, words removed, spans with trimmed context), or `None`
/// when they are the same word for word.
pub fn word_diff(before: &str, after: &str) -> Option<(usize, usize, Vec<Span>)> {
    if before.split_whitespace().eq(after.split_whitespace()) {
        return None;
    }
    let diff = TextDiff::configure()
        .timeout(std::time::Duration::from_millis(500))
        .diff_words(before, after);
    let mut added = 0;
    let mut removed = 0;
    let mut runs: Vec<(ChangeTag, String)> = Vec::new();
    for change in diff.iter_all_changes() {
        let value = change.value();
        let words = value.split_whitespace().count();
        match change.tag() {
            ChangeTag::Insert => added += words,
            ChangeTag::Delete => removed += words,
            ChangeTag::Equal => {}
        }
        match runs.last_mut() {
            Some((tag, text)) if *tag == change.tag() => text.push_str(value),
            _ => runs.push((change.tag(), value.to_string())),
        }
    }
    if added == 0 && removed == 0 {
        return None;
    }
    let last = runs.len().saturating_sub(1);
    let spans = runs
        .into_iter()
        .enumerate()
        .map(|(i, (tag, text))| {
            let text = match tag {
                ChangeTag::Equal => trim_context(&text, i > 0, i < last),
                _ => text,
            };
            Span {
                op: match tag {
                    ChangeTag::Equal => "equal",
                    ChangeTag::Insert => "insert",
                    ChangeTag::Delete => "delete",
                }
                .into(),
                text,
            }
        })
        .take(MAX_SPANS)
        .collect();
    Some((added, removed, spans))
}

/// Keeps the words next to changes: the end of the run if a change precedes it, the start if
/// one follows.
fn trim_context(text: &str, after_change: bool, before_change: bool) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= 2 * CONTEXT_WORDS {
        return text.to_string();
    }
    let head = if after_change {
        words[..CONTEXT_WORDS].join(" ")
    } else {
        String::new()
    };
    let tail = if before_change {
        words[words.len() - CONTEXT_WORDS..].join(" ")
    } else {
        String::new()
    };
    format!("{head} … {tail}").trim().to_string() + " "
}

/// The visible text of the page changed.
pub fn dom_change(before: &str, after: &str, ignore_selectors: &[String]) -> Option<Change> {
    // The two pages are parsed side by side: parsing dominates, and the cores are there.
    let (old, new) = std::thread::scope(|scope| {
        let old = scope.spawn(|| visible_text(before, ignore_selectors));
        let new = visible_text(after, ignore_selectors);
        (old.join().unwrap_or_default(), new)
    });
    let (words_added, words_removed, diff) = word_diff(&old, &new)?;
    Some(Change::DomTextChanged {
        words_added,
        words_removed,
        diff,
    })
}

/// Policy pages by kind: text changed, page found, page gone.
pub fn policy_changes(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let old: BTreeMap<_, _> = before.policy_pages.iter().map(|p| (p.kind, p)).collect();
    let new: BTreeMap<_, _> = after.policy_pages.iter().map(|p| (p.kind, p)).collect();
    let mut changes = Vec::new();
    for (kind, page) in &new {
        match old.get(kind) {
            None => changes.push(Change::PolicyPageAdded {
                policy: *kind,
                url: page.url.clone(),
            }),
            Some(previous) => {
                if let Some((words_added, words_removed, diff)) =
                    word_diff(&previous.text, &page.text)
                {
                    changes.push(Change::PolicyTextChanged {
                        policy: *kind,
                        url: page.url.clone(),
                        words_added,
                        words_removed,
                        diff,
                    });
                }
            }
        }
    }
    for (kind, page) in &old {
        if !new.contains_key(kind) {
            changes.push(Change::PolicyPageRemoved {
                policy: *kind,
                url: page.url.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_skips_scripts_styles_and_ignored_selectors() {
        let html = r#"<html><head><title>T</title><style>p{}</style></head><body>
            <p>Hello   <b>world</b></p><script>var x = "secret";</script>
            <div id="clock">12:04:33</div><div class="ad">Buy now</div><p>Bye</p></body></html>"#;
        assert_eq!(
            visible_text(html, &["#clock".into(), ".ad".into()]),
            "Hello world Bye"
        );
        assert_eq!(visible_text(html, &[]), "Hello world 12:04:33 Buy now Bye");
    }

    #[test]
    fn word_diffs_count_words_and_keep_context() {
        assert_eq!(
            word_diff("a b  c", "a b c"),
            None,
            "whitespace is not a change"
        );
        let (added, removed, spans) = word_diff(
            "We keep your data for one year.",
            "We keep your data for five years and share it with partners.",
        )
        .unwrap();
        assert_eq!((added, removed), (7, 2));
        assert!(
            spans
                .iter()
                .any(|s| s.op == "insert" && s.text.contains("partners"))
        );
        assert!(
            spans
                .iter()
                .any(|s| s.op == "delete" && s.text.contains("one"))
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Hostile markup never panics the text extraction, and what comes out has no
        /// runs of whitespace.
        #[test]
        fn any_markup_gives_clean_text(html in "(<[a-z/!]{0,8}[^>]{0,20}>|[^<]{0,30}){0,40}") {
            let text = visible_text(&html, &["#x".into(), "[[bad".into()]);
            prop_assert!(!text.contains("  "));
            prop_assert_eq!(text.trim(), text.as_str());
        }

        /// A diff of a text with itself is nothing; a diff with anything else counts words
        /// consistently.
        #[test]
        fn word_diffs_are_consistent(a in "[a-z ]{0,200}", b in "[a-z ]{0,200}") {
            prop_assert_eq!(word_diff(&a, &a), None);
            match word_diff(&a, &b) {
                None => prop_assert!(a.split_whitespace().eq(b.split_whitespace())),
                Some((added, removed, _)) => {
                    prop_assert!(added <= b.split_whitespace().count());
                    prop_assert!(removed <= a.split_whitespace().count());
                    prop_assert!(added + removed > 0);
                }
            }
        }
    }
}
