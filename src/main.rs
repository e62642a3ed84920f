use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SITEWARD_LOG")
                .unwrap_or_else(|_| "warn,chromiumoxide=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    siteward::cli::run(siteward::cli::Cli::parse()).await
}
