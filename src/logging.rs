//! Where siteward's logs go and what they may contain.
//!
//! Libraries below us trace what passes through them: chromiumoxide every DevTools message, the
//! WebSocket and HTTP crates every frame, html5ever every token. Checkout runs type secrets
//! through DevTools, so whatever `SITEWARD_LOG` asks for, only our own crates log below warn.
//!
//! Records that are dropped must cost nothing, because some libraries emit one per token of
//! every page they parse. So the rule is static, and known before any record is built:
//!
//! - `log` records (third-party crates; ours use `tracing`) are capped at warn where the `log`
//!   macros check their level, before a record exists;
//! - the per-crate rule is a [`Targets`] filter and `SITEWARD_LOG` an [`EnvFilter`] of plain
//!   directives, both of which tracing evaluates once per call site and caches.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The crates allowed to log below warn. Targets match by prefix, as `SITEWARD_LOG` directives
/// do; no dependency's name starts like one of ours (checked against Cargo.lock when this rule
/// replaced a per-event closure).
pub const OUR_CRATES: [&str; 4] = ["siteward", "scanner", "checkout_runner", "fixture_sites"];

/// What `SITEWARD_LOG` defaults to.
pub const DEFAULT_DIRECTIVES: &str = "warn,chromiumoxide=error";

/// The most detailed `log` record let through: libraries log at warn or above only.
pub const LOG_BRIDGE_MAX: log::LevelFilter = log::LevelFilter::Warn;

/// The static rule: our crates at any level, everyone else at warn and above.
pub fn library_rule() -> Targets {
    OUR_CRATES.iter().fold(
        Targets::new().with_default(LevelFilter::WARN),
        |rule, krate| rule.with_target(*krate, LevelFilter::TRACE),
    )
}

/// `SITEWARD_LOG`'s directives (or [`DEFAULT_DIRECTIVES`] when unset or invalid).
pub fn directives(value: Option<&str>) -> EnvFilter {
    value
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_DIRECTIVES))
}

/// Installs the global subscriber writing to `writer`, and the `log` bridge capped at
/// [`LOG_BRIDGE_MAX`]. Fails if a subscriber is installed already.
pub fn install<W>(env: EnvFilter, writer: W) -> Result<(), String>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(env.and(library_rule())),
    );
    tracing::subscriber::set_global_default(subscriber).map_err(|error| error.to_string())?;
    tracing_log::LogTracer::builder()
        .with_max_level(LOG_BRIDGE_MAX)
        .init()
        .map_err(|error| error.to_string())
}

/// [`install`] for the `siteward` binary: `SITEWARD_LOG`, to stderr.
pub fn init_from_env() {
    let value = std::env::var("SITEWARD_LOG").ok();
    if let Err(error) = install(directives(value.as_deref()), std::io::stderr) {
        eprintln!("siteward: warning: logging is not set up: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::Filter;

    fn metadata_enabled(rule: &Targets, target: &'static str, level: tracing::Level) -> bool {
        rule.would_enable(target, &level)
    }

    #[test]
    fn libraries_stop_at_warn_and_our_crates_do_not() {
        let rule = library_rule();
        assert!(!metadata_enabled(
            &rule,
            "chromiumoxide::conn",
            tracing::Level::DEBUG
        ));
        assert!(!metadata_enabled(
            &rule,
            "html5ever::tokenizer",
            tracing::Level::TRACE
        ));
        assert!(metadata_enabled(&rule, "hyper", tracing::Level::WARN));
        assert!(metadata_enabled(
            &rule,
            "siteward::scans",
            tracing::Level::TRACE
        ));
        assert!(metadata_enabled(&rule, "scanner", tracing::Level::DEBUG));
        // The rule is static: tracing can answer once per call site.
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&rule),
            Some(LevelFilter::TRACE)
        );
    }

    #[test]
    fn combined_with_the_directives_the_hint_is_the_stricter_of_both() {
        let combined = directives(Some("info")).and(library_rule());
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&combined),
            Some(LevelFilter::INFO)
        );
        let default = directives(None).and(library_rule());
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&default),
            Some(LevelFilter::WARN)
        );
        // Nonsense in SITEWARD_LOG falls back to the default, it does not open everything.
        let nonsense = directives(Some("[[[")).and(library_rule());
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&nonsense),
            Some(LevelFilter::WARN)
        );
    }
}
