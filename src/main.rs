use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = siteward::cli::Cli::parse();
    if cli.command.installs_logging() {
        siteward::logging::init_from_env();
    }
    siteward::cli::run(cli).await
}
