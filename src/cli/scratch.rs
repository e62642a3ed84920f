//! Benchmarks run in a scratch database: created on the configured PostgreSQL server (or the
//! embedded one), migrated by the benchmark, and dropped afterwards whatever happened.

use std::process::ExitCode;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use super::fail;
use super::serve::{ConfigArgs, database, describe_database, load, release_embedded};
use crate::db::embedded::Tenure;

/// Runs `work` with the URL of a fresh scratch database named after `label`.
pub async fn in_scratch_database(
    config: &ConfigArgs,
    label: &str,
    work: impl AsyncFnOnce(&SecretString) -> Result<(), String>,
) -> ExitCode {
    let config = match load(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    eprintln!("{}", describe_database(&config));
    let (url, embedded) = match database(&config, Tenure::Visitor).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let result = with_scratch(&url, label, work).await;
    release_embedded(embedded).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

async fn with_scratch(
    url: &SecretString,
    label: &str,
    work: impl AsyncFnOnce(&SecretString) -> Result<(), String>,
) -> Result<(), String> {
    let name = format!(
        "siteward_{label}_{}",
        hex::encode(crate::crypto::random_bytes::<4>())
    );
    let mut admin = AsyncPgConnection::establish(url.expose_secret())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("cannot create the scratch database (needs CREATEDB): {e}"))?;
    let mut scratch = url::Url::parse(url.expose_secret()).map_err(|e| e.to_string())?;
    scratch.set_path(&format!("/{name}"));
    let result = work(&SecretString::from(scratch.to_string())).await;
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    result
}
