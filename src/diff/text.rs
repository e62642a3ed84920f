//! Text changes as word-level diffs: the page's visible text (outside script, style and the
//! selectors a target ignores) and its policy pages.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use scanner::Snapshot;
use scraper::{Html, Node, Selector};
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, DiffTag};

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

/// The text a visitor can read: no script, style, template or head content (shadow roots, kept as
/// `<template shadowrootmode>`, are read), nothing inside the ignored selectors, whitespace
/// collapsed.
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
            // A declarative shadow root (how captures keep shadow DOM) is shown; other
            // templates are not.
            Node::Element(element)
                if matches!(
                    element.name(),
                    "script" | "style" | "noscript" | "template" | "head" | "svg"
                ) && element.attr("shadowrootmode").is_none() => {}
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
///
/// Diffs the two word sequences as slices (no whitespace tokens, no per-word change objects)
/// and joins only the words that are kept: a 5 MB page has half a million words, almost all of
/// them unchanged.
pub fn word_diff(before: &str, after: &str) -> Option<(usize, usize, Vec<Span>)> {
    let old: Vec<&str> = before.split_whitespace().collect();
    let new: Vec<&str> = after.split_whitespace().collect();
    if old == new {
        return None;
    }
    let deadline = Instant::now() + DIFF_DEADLINE;
    let ops = similar::capture_diff_slices_deadline(
        similar::Algorithm::Myers,
        &old,
        &new,
        Some(deadline),
    );
    let mut runs: Vec<(ChangeTag, &[&str])> = Vec::new();
    for op in &ops {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        match op.tag() {
            DiffTag::Equal => runs.push((ChangeTag::Equal, &old[old_range])),
            DiffTag::Delete => runs.push((ChangeTag::Delete, &old[old_range])),
            DiffTag::Insert => runs.push((ChangeTag::Insert, &new[new_range])),
            DiffTag::Replace => {
                runs.push((ChangeTag::Delete, &old[old_range]));
                runs.push((ChangeTag::Insert, &new[new_range]));
            }
        }
    }
    let runs = merge_runs(runs);
    let added: usize = runs
        .iter()
        .filter(|(tag, _)| *tag == ChangeTag::Insert)
        .map(|(_, words)| words.len())
        .sum();
    let removed: usize = runs
        .iter()
        .filter(|(tag, _)| *tag == ChangeTag::Delete)
        .map(|(_, words)| words.len())
        .sum();
    if added == 0 && removed == 0 {
        return None;
    }
    let last = runs.len().saturating_sub(1);
    let spans = runs
        .iter()
        .take(MAX_SPANS)
        .enumerate()
        .map(|(i, (tag, words))| Span {
            op: match tag {
                ChangeTag::Equal => "equal",
                ChangeTag::Insert => "insert",
                ChangeTag::Delete => "delete",
            }
            .into(),
            text: match tag {
                ChangeTag::Equal => trim_context(words, i > 0, i < last),
                _ => words.join(" ") + " ",
            },
        })
        .collect();
    Some((added, removed, spans))
}

/// How long the word diff may search for the smallest diff before settling for a larger one.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

/// Adjacent runs of the same kind as one, empty runs dropped.
fn merge_runs<'a>(runs: Vec<(ChangeTag, &[&'a str])>) -> Vec<(ChangeTag, Vec<&'a str>)> {
    let mut merged: Vec<(ChangeTag, Vec<&str>)> = Vec::new();
    for (tag, words) in runs.into_iter().filter(|(_, words)| !words.is_empty()) {
        match merged.last_mut() {
            Some((last, kept)) if *last == tag => kept.extend_from_slice(words),
            _ => merged.push((tag, words.to_vec())),
        }
    }
    merged
}

/// Keeps the words next to changes: the end of the run if a change precedes it, the start if
/// one follows.
fn trim_context(words: &[&str], after_change: bool, before_change: bool) -> String {
    if words.len() <= 2 * CONTEXT_WORDS {
        return words.join(" ") + " ";
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
    fn text_in_shadow_roots_is_visible_and_other_templates_are_not() {
        let html = r#"<html><body><div id="cmp"><template shadowrootmode="closed">
            <p>We value your privacy</p></template></div>
            <template><p>Not shown</p></template><p>Shop</p></body></html>"#;
        assert_eq!(visible_text(html, &[]), "We value your privacy Shop");
    }

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
