//! The global log set-up, in a process of its own: library records below warn are neither
//! printed nor built, whatever SITEWARD_LOG asks for, and our own crates log as asked.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn library_records_below_warn_are_never_built_or_printed_even_when_trace_is_asked_for() {
    let captured = Captured::default();
    siteward::logging::install(
        siteward::logging::directives(Some("trace")),
        captured.clone(),
    )
    .unwrap();

    // The `log` macros give up at their static level check, before a record exists: this is
    // what made every HTML parse ten times slower when it was missing.
    assert_eq!(log::max_level(), log::LevelFilter::Warn);
    assert!(!log::log_enabled!(target: "html5ever::tokenizer", log::Level::Trace));
    assert!(!log::log_enabled!(target: "html5ever::tokenizer", log::Level::Info));
    for token in 0..1_000_000 {
        log::trace!(target: "html5ever::tokenizer", "token {token} card 4242424242424242");
    }
    tracing::debug!(target: "chromiumoxide::conn", "Input.insertText 4242424242424242");
    tracing::trace!(target: "tungstenite::protocol", "frame 4242424242424242");

    log::warn!(target: "html5ever::tree_builder", "library warning is shown");
    tracing::trace!(target: "siteward::scans", "our own trace is shown");
    tracing::debug!(target: "checkout_runner::run", "our own debug is shown");

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("4242424242424242"), "{text}");
    assert!(text.contains("library warning is shown"), "{text}");
    assert!(text.contains("our own trace is shown"), "{text}");
    assert!(text.contains("our own debug is shown"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
}
