use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SITEWARD_LOG")
        .unwrap_or_else(|_| "warn,chromiumoxide=error".into());
    // Libraries below us trace what passes through them — chromiumoxide every DevTools message,
    // the WebSocket and HTTP crates every frame — and checkout runs type secrets through
    // DevTools. Whatever SITEWARD_LOG asks for, only our own crates log below warn.
    let devtools_quiet = tracing_subscriber::filter::filter_fn(|meta| {
        let ours = ["siteward", "scanner", "checkout_runner", "fixture_sites"]
            .iter()
            .any(|krate| meta.target().split("::").next() == Some(krate));
        ours || *meta.level() <= tracing::Level::WARN
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .with_filter(devtools_quiet),
        )
        .init();
    siteward::cli::run(siteward::cli::Cli::parse()).await
}
