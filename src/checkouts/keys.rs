//! The runners' public key, which the app seals checkout secrets to. The private half lives only
//! with runners (`siteward admin runner-keys` writes it to a file); the app stores the public
//! half and never anything that opens a secret.

use checkout_runner::RunnerPublicKey;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::db::schema::runner_keys;
use crate::web::AppError;

/// The active key, if one was registered.
pub async fn active(conn: &mut AsyncPgConnection) -> Result<Option<RunnerPublicKey>, AppError> {
    let text: Option<String> = runner_keys::table
        .filter(runner_keys::retired_at.is_null())
        .select(runner_keys::public_key)
        .first(conn)
        .await
        .optional()?;
    text.map(|t| RunnerPublicKey::decode(&t).map_err(AppError::internal))
        .transpose()
}

/// Makes `key` the active key; any other is retired. Secrets sealed to a retired key can no
/// longer be opened by runners holding the new one and must be entered again.
pub async fn register(conn: &mut AsyncPgConnection, key: &RunnerPublicKey) -> QueryResult<()> {
    let (id, encoded) = (key.id(), key.encode());
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        diesel::update(
            runner_keys::table
                .filter(runner_keys::retired_at.is_null())
                .filter(runner_keys::key_id.ne(&id)),
        )
        .set(runner_keys::retired_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
        diesel::insert_into(runner_keys::table)
            .values((
                runner_keys::key_id.eq(&id),
                runner_keys::public_key.eq(&encoded),
            ))
            .on_conflict(runner_keys::key_id)
            .do_update()
            .set(runner_keys::retired_at.eq(None::<time::OffsetDateTime>))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

/// How many stored secrets are sealed to a key other than the active one.
pub async fn stale_secrets(conn: &mut AsyncPgConnection, active_id: &str) -> QueryResult<i64> {
    use crate::db::schema::checkout_secrets;
    checkout_secrets::table
        .filter(checkout_secrets::key_id.ne(active_id))
        .count()
        .get_result(conn)
        .await
}

/// Writes the key pair's private half to `path`, readable by its owner only. Refuses to replace
/// an existing file unless `replace`.
pub fn write_key_file(
    path: &std::path::Path,
    keys: &checkout_runner::RunnerKeyPair,
    replace: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    // `mode` applies only to a file being created: a replaced one is narrowed before writing.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(keys.encode_private().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Reads a runner key file.
pub fn read_key_file(path: &std::path::Path) -> Result<checkout_runner::RunnerKeyPair, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the runner key file {}: {e}", path.display()))?,
    );
    checkout_runner::RunnerKeyPair::decode_private(&text)
        .map_err(|e| format!("{}: {e}", path.display()))
}
