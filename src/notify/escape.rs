//! Text from scanned pages (cookie names, script URLs, inline-script snippets, page titles) goes
//! into alerts, and alerts go into Slack channels and mailboxes. A compromised page must not be
//! able to speak in them: no `<!channel>`, no links with made-up text, no extra mail headers.

/// `text` for Slack's `mrkdwn`: `&`, `<` and `>` escaped as Slack asks (they start mentions,
/// channel pings and links), and the formatting marks `*`, `_`, `~` and `` ` `` shown as
/// look-alikes, so page text cannot restyle the message or hide what follows it.
pub fn slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push('\u{2217}'),
            '_' => out.push('\u{02CD}'),
            '~' => out.push('\u{223C}'),
            '`' => out.push('\u{02CB}'),
            c => out.push(c),
        }
    }
    out
}

/// `text` on one line: control characters (line breaks included) become spaces, so page text
/// cannot start a new header or a new paragraph of its own.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_control_sequences_from_a_page_are_inert() {
        let hostile = "<!channel> <https://evil.example|your bank> *urgent*\n_x_ ~y~ `z` & done";
        let escaped = slack(hostile);
        assert!(
            !escaped.contains('<') && !escaped.contains('>'),
            "{escaped}"
        );
        assert!(escaped.starts_with("&lt;!channel&gt;"), "{escaped}");
        assert!(!escaped.contains(['*', '_', '~', '`', '\n']), "{escaped}");
        assert!(escaped.ends_with("&amp; done"), "{escaped}");
    }

    #[test]
    fn one_line_removes_header_breaks() {
        assert_eq!(one_line("a\r\nBcc: x@y\tz"), "a  Bcc: x@y z");
    }
}
