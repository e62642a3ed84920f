use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    siteward::logging::init_from_env();
    siteward::cli::run(siteward::cli::Cli::parse()).await
}
