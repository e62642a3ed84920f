//! Appending to and verifying the hash chains. Each organization has its own chain (the
//! instance has one too, for events tied to no organization). Row n stores
//! `hash = SHA-256(prev_hash ‖ encode(row fields))`, where `prev_hash` is row n−1's hash (32 zero
//! bytes for the first row) and every field is length-prefixed.
//!
//! Version 2 (every row written now) keeps personal data out of the chain: the hash covers the
//! row's record (organization, sequence, time, actor ids, action) and
//! `personal_digest = HMAC-SHA256(personal_salt, actor ‖ subject ‖ detail ‖ ip)`, with a random
//! salt per row. Erasing a person (`erase_person`) replaces those four fields by a pseudonym and
//! deletes the salt: the hashes stay, the chain still verifies, and the digest without its salt
//! cannot be tested against guesses. Version-1 rows (hash over the fields themselves) are
//! re-chained as version 2 by `upgrade`, once their chain verifies.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::auth::{Actor, OrgCtx};
use crate::crypto::{hmac_sha256, random_bytes};
use crate::db::schema::audit_log;

/// What happened, before it is chained.
#[derive(Debug, Clone)]
pub struct Entry {
    pub org_id: Option<i64>,
    pub actor_user_id: Option<i64>,
    pub actor_key_id: Option<i64>,
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub detail: serde_json::Value,
    pub ip: String,
}

impl Entry {
    /// An event done by a caller in their organization.
    pub fn by(ctx: &OrgCtx, action: &'static str, subject: impl Into<String>) -> Entry {
        Entry::by_actor(Some(ctx.org_id), &ctx.actor, &ctx.ip, action, subject)
    }

    pub fn by_actor(
        org_id: Option<i64>,
        actor: &Actor,
        ip: &str,
        action: &'static str,
        subject: impl Into<String>,
    ) -> Entry {
        Entry {
            org_id,
            actor_user_id: actor.user_id(),
            actor_key_id: actor.key_id(),
            actor: actor.label(),
            action,
            subject: subject.into(),
            detail: serde_json::Value::Object(Default::default()),
            ip: ip.to_string(),
        }
    }

    /// An event done by siteward itself (a worker, the purge, an upgrade), with no address.
    pub fn system(
        org_id: Option<i64>,
        actor: &str,
        action: &'static str,
        subject: impl Into<String>,
    ) -> Entry {
        Entry {
            org_id,
            actor_user_id: None,
            actor_key_id: None,
            actor: actor.to_string(),
            action,
            subject: subject.into(),
            detail: serde_json::Value::Object(Default::default()),
            ip: String::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Entry {
        self.detail = detail;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub org_id: Option<i64>,
    pub seq: i64,
    pub created_at: OffsetDateTime,
    pub actor_user_id: Option<i64>,
    pub actor_key_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub ip: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub version: i16,
    pub personal_salt: Option<Vec<u8>>,
    pub personal_digest: Option<Vec<u8>>,
    pub erased_by: Option<i64>,
}

pub const GENESIS: [u8; 32] = [0; 32];

/// The action of the instance-chain entry that records a person's erasure.
pub const PERSON_ERASED: &str = "person.erased";

/// What a row records about the event, apart from personal data.
struct Record<'a> {
    org_id: Option<i64>,
    seq: i64,
    created_at: OffsetDateTime,
    actor_user_id: Option<i64>,
    actor_key_id: Option<i64>,
    action: &'a str,
}

/// The fields that may name a person.
struct Personal<'a> {
    actor: &'a str,
    subject: &'a str,
    detail: &'a str,
    ip: &'a str,
}

impl AuditRow {
    fn record(&self) -> Record<'_> {
        Record {
            org_id: self.org_id,
            seq: self.seq,
            created_at: self.created_at,
            actor_user_id: self.actor_user_id,
            actor_key_id: self.actor_key_id,
            action: &self.action,
        }
    }

    fn personal(&self) -> Personal<'_> {
        Personal {
            actor: &self.actor,
            subject: &self.subject,
            detail: &self.detail,
            ip: &self.ip,
        }
    }
}

fn length_prefixed(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn record_parts(tag: &str, record: &Record<'_>) -> Vec<String> {
    fn opt(value: Option<i64>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }
    let micros = record.created_at.unix_timestamp_nanos() / 1000;
    vec![
        tag.into(),
        opt(record.org_id),
        record.seq.to_string(),
        micros.to_string(),
        opt(record.actor_user_id),
        opt(record.actor_key_id),
    ]
}

fn sha256_chained(prev_hash: &[u8], encoded: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(encoded);
    hasher.finalize().to_vec()
}

/// Version 1: the hash covers the personal fields themselves.
fn hash_v1(prev_hash: &[u8], record: &Record<'_>, personal: &Personal<'_>) -> Vec<u8> {
    let head = record_parts("siteward-audit-v1", record);
    let mut parts: Vec<&str> = head.iter().map(String::as_str).collect();
    parts.extend([
        personal.actor,
        record.action,
        personal.subject,
        personal.detail,
        personal.ip,
    ]);
    sha256_chained(prev_hash, &length_prefixed(&parts))
}

/// A row's hash as version 1 makes it (to check rows and exports written before version 2).
pub fn hash_v1_of(row: &AuditRow) -> Vec<u8> {
    hash_v1(&row.prev_hash, &row.record(), &row.personal())
}

/// The keyed digest of a row's personal fields.
fn personal_digest(salt: &[u8], personal: &Personal<'_>) -> Vec<u8> {
    let encoded = length_prefixed(&[
        "siteward-audit-personal-v2",
        personal.actor,
        personal.subject,
        personal.detail,
        personal.ip,
    ]);
    hmac_sha256(salt, &encoded).to_vec()
}

/// Version 2: the hash covers the record and the personal fields' digest.
fn hash_v2(prev_hash: &[u8], record: &Record<'_>, digest: &[u8]) -> Vec<u8> {
    let head = record_parts("siteward-audit-v2", record);
    let digest = hex::encode(digest);
    let mut parts: Vec<&str> = head.iter().map(String::as_str).collect();
    parts.extend([record.action, digest.as_str()]);
    sha256_chained(prev_hash, &length_prefixed(&parts))
}

/// A fresh salt and the version-2 digest and hash of a row.
struct Sealed {
    salt: Vec<u8>,
    digest: Vec<u8>,
    hash: Vec<u8>,
}

fn seal_v2(prev_hash: &[u8], record: &Record<'_>, personal: &Personal<'_>) -> Sealed {
    let salt = random_bytes::<32>().to_vec();
    let digest = personal_digest(&salt, personal);
    let hash = hash_v2(prev_hash, record, &digest);
    Sealed { salt, digest, hash }
}

/// Appends an entry to its chain. Call inside the transaction of the change it records; the
/// chain's advisory lock serializes writers of the same organization.
pub async fn record(conn: &mut AsyncPgConnection, entry: Entry) -> QueryResult<()> {
    record_returning_id(conn, entry).await.map(|_| ())
}

/// `record`, returning the new row's id.
pub async fn record_returning_id(conn: &mut AsyncPgConnection, entry: Entry) -> QueryResult<i64> {
    // The chain lock lasts until the end of the transaction; outside one (or nested, as a
    // savepoint) this makes sure there is one.
    conn.transaction(async move |conn| append(conn, entry).await)
        .await
}

async fn append(conn: &mut AsyncPgConnection, entry: Entry) -> QueryResult<i64> {
    // An organization's chain only while it exists: the key share waits for an erasure in
    // progress (which holds the row), and then finds nothing.
    if let Some(org_id) = entry.org_id {
        diesel::sql_query("SELECT id FROM orgs WHERE id = $1 FOR KEY SHARE")
            .bind::<BigInt, _>(org_id)
            .execute(conn)
            .await
            .and_then(|found| {
                if found == 1 {
                    Ok(())
                } else {
                    Err(diesel::result::Error::NotFound)
                }
            })?;
    }
    lock_chain(conn, entry.org_id).await?;
    let last: Option<(i64, Vec<u8>)> = audit_log::table
        .filter(org_filter(entry.org_id))
        .order(audit_log::seq.desc())
        .select((audit_log::seq, audit_log::hash))
        .first(conn)
        .await
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_vec()),
    };
    // Microsecond precision, as PostgreSQL keeps it, so the hash verifies after a round trip.
    let now = OffsetDateTime::now_utc();
    let created_at = now - time::Duration::nanoseconds((now.nanosecond() % 1000) as i64);
    let detail = entry.detail.to_string();
    let entry = Entry {
        actor: clip(&entry.actor, 254),
        subject: clip(&entry.subject, 254),
        ip: clip(&entry.ip, 64),
        ..entry
    };
    let record = Record {
        org_id: entry.org_id,
        seq,
        created_at,
        actor_user_id: entry.actor_user_id,
        actor_key_id: entry.actor_key_id,
        action: entry.action,
    };
    let personal = Personal {
        actor: &entry.actor,
        subject: &entry.subject,
        detail: &detail,
        ip: &entry.ip,
    };
    let sealed = seal_v2(&prev_hash, &record, &personal);
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::org_id.eq(entry.org_id),
            audit_log::seq.eq(seq),
            audit_log::created_at.eq(created_at),
            audit_log::actor_user_id.eq(entry.actor_user_id),
            audit_log::actor_key_id.eq(entry.actor_key_id),
            audit_log::actor.eq(&entry.actor),
            audit_log::action.eq(entry.action),
            audit_log::subject.eq(&entry.subject),
            audit_log::detail.eq(&detail),
            audit_log::ip.eq(&entry.ip),
            audit_log::prev_hash.eq(prev_hash),
            audit_log::hash.eq(sealed.hash),
            audit_log::version.eq(2),
            audit_log::personal_salt.eq(sealed.salt),
            audit_log::personal_digest.eq(sealed.digest),
        ))
        .returning(audit_log::id)
        .get_result(conn)
        .await
}

/// Takes a chain's advisory lock until the end of the transaction: one writer per chain.
async fn lock_chain(conn: &mut AsyncPgConnection, org_id: Option<i64>) -> QueryResult<()> {
    let chain_key = format!(
        "siteward.audit:{}",
        org_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "instance".into())
    );
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(chain_key)
        .execute(conn)
        .await?;
    Ok(())
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// `org_id = $1`, or `org_id IS NULL` for the instance chain.
fn org_filter(
    org_id: Option<i64>,
) -> Box<dyn BoxableExpression<audit_log::table, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>>
{
    match org_id {
        Some(id) => Box::new(audit_log::org_id.eq(id).assume_not_null()),
        None => Box::new(audit_log::org_id.is_null()),
    }
}

/// One break in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub org_id: Option<i64>,
    pub seq: i64,
    pub row_id: i64,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
pub struct Verification {
    pub chains: usize,
    pub rows: usize,
    pub breaks: Vec<ChainBreak>,
}

/// Checks one chain's rows, given in `seq` order.
pub fn verify_rows(rows: &[AuditRow]) -> Vec<ChainBreak> {
    let mut breaks = Vec::new();
    let mut expected_prev = GENESIS.to_vec();
    for (index, row) in rows.iter().enumerate() {
        let fail = |reason| ChainBreak {
            org_id: row.org_id,
            seq: row.seq,
            row_id: row.id,
            reason,
        };
        if row.seq != index as i64 + 1 {
            breaks.push(fail("a row is missing before this one (sequence gap)"));
        }
        if row.prev_hash != expected_prev {
            breaks.push(fail("prev_hash does not match the previous row's hash"));
        }
        if let Err(reason) = check_row(row) {
            breaks.push(fail(reason));
        }
        expected_prev = row.hash.clone();
    }
    breaks
}

/// Whether a row's stored hash is what its content makes.
fn check_row(row: &AuditRow) -> Result<(), &'static str> {
    const EDITED: &str = "the row's content does not match its hash (edited)";
    if row.version == 1 {
        return if hash_v1(&row.prev_hash, &row.record(), &row.personal()) == row.hash {
            Ok(())
        } else {
            Err(EDITED)
        };
    }
    let Some(digest) = &row.personal_digest else {
        return Err("a version-2 row without its personal digest");
    };
    match (&row.personal_salt, row.erased_by) {
        (Some(salt), None) => {
            if personal_digest(salt, &row.personal()) != *digest {
                return Err(EDITED);
            }
        }
        // Pseudonymized: what it held cannot be checked any more, only that an erasure did it
        // (`verify_all` counts the rows of each erasure).
        (None, Some(_)) => {}
        _ => return Err("a row is both salted and pseudonymized, or neither"),
    }
    if hash_v2(&row.prev_hash, &row.record(), digest) == row.hash {
        Ok(())
    } else {
        Err(EDITED)
    }
}

/// Verifies every chain in the database, one chain at a time in one consistent snapshot, and
/// that every pseudonymized row belongs to a recorded erasure that counted it.
pub async fn verify_all(conn: &mut AsyncPgConnection) -> QueryResult<Verification> {
    conn.transaction(async |conn| {
        diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(conn)
            .await?;
        verify_all_in(conn).await
    })
    .await
}

async fn verify_all_in(conn: &mut AsyncPgConnection) -> QueryResult<Verification> {
    let chains: Vec<ChainId> = diesel::sql_query("SELECT DISTINCT org_id FROM audit_log")
        .load(conn)
        .await?;
    let mut result = Verification {
        chains: chains.len(),
        ..Verification::default()
    };
    // erasure entry id → (rows it says it pseudonymized, the entry), and rows naming each.
    let mut erasures: HashMap<i64, (i64, ChainBreak)> = HashMap::new();
    let mut pseudonymized: HashMap<i64, (i64, ChainBreak)> = HashMap::new();
    for chain in chains {
        let rows = chain_rows(conn, chain.org_id).await?;
        result.rows += rows.len();
        result.breaks.extend(verify_rows(&rows));
        for row in &rows {
            let at = |reason| ChainBreak {
                org_id: row.org_id,
                seq: row.seq,
                row_id: row.id,
                reason,
            };
            if row.org_id.is_none() && row.action == PERSON_ERASED {
                let claimed = serde_json::from_str::<serde_json::Value>(&row.detail)
                    .ok()
                    .and_then(|d| d["rows"].as_i64())
                    .unwrap_or(-1);
                erasures.insert(row.id, (claimed, at("")));
            }
            if let Some(erasure) = row.erased_by {
                pseudonymized
                    .entry(erasure)
                    .or_insert((0, at("a pseudonymized row names no erasure")))
                    .0 += 1;
            }
        }
    }
    // More rows than an erasure recorded were pseudonymized under its name. (Fewer is what an
    // organization's erasure leaves, deleting its chain; a row missing from a chain that is
    // still there is a sequence gap, reported above.)
    for (erasure, (count, first_row)) in &pseudonymized {
        match erasures.get(erasure) {
            None => result.breaks.push(first_row.clone()),
            Some((claimed, _)) if count > claimed => result.breaks.push(ChainBreak {
                reason: "more rows are pseudonymized than the erasure recorded",
                ..first_row.clone()
            }),
            Some(_) => {}
        }
    }
    Ok(result)
}

#[derive(QueryableByName)]
struct ChainId {
    #[diesel(sql_type = Nullable<BigInt>)]
    org_id: Option<i64>,
}

async fn chain_rows(
    conn: &mut AsyncPgConnection,
    org_id: Option<i64>,
) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .filter(org_filter(org_id))
        .order(audit_log::seq.asc())
        .select(AuditRow::as_select())
        .load(conn)
        .await
}

/// What `upgrade` did.
#[derive(Debug, Default)]
pub struct Upgrade {
    /// Chains re-chained, and their rows.
    pub chains: usize,
    pub rows: usize,
    /// Chains left at version 1, with why (they still verify as they are).
    pub refused: Vec<(Option<i64>, &'static str)>,
}

/// One row's version-2 form.
struct Rechained {
    id: i64,
    prev_hash: Vec<u8>,
    sealed: Sealed,
}

/// The version-2 form of a chain that is all version 1 and verifies; its hashes change from the
/// first row on.
fn rechain(rows: &[AuditRow]) -> Result<Vec<Rechained>, &'static str> {
    if rows.iter().any(|r| r.version != 1) {
        return Err("version-2 rows follow its version-1 rows (written during a rolling upgrade)");
    }
    if !verify_rows(rows).is_empty() {
        return Err("it does not verify as version 1");
    }
    let mut prev_hash = GENESIS.to_vec();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let sealed = seal_v2(&prev_hash, &row.record(), &row.personal());
        let next = sealed.hash.clone();
        out.push(Rechained {
            id: row.id,
            prev_hash,
            sealed,
        });
        prev_hash = next;
    }
    Ok(out)
}

/// Re-chains every version-1 chain that verifies as version 2, each in its own transaction
/// under its chain lock, and records in it the version-1 head it replaced. Runs after the
/// migrations; a chain that does not verify is left as it is (and reported).
pub async fn upgrade(conn: &mut AsyncPgConnection) -> QueryResult<Upgrade> {
    let chains: Vec<ChainId> =
        diesel::sql_query("SELECT DISTINCT org_id FROM audit_log WHERE version = 1")
            .load(conn)
            .await?;
    let mut done = Upgrade::default();
    for chain in chains {
        let org_id = chain.org_id;
        let outcome = conn
            .transaction(async move |conn| {
                lock_chain(conn, org_id).await?;
                let rows = chain_rows(conn, org_id).await?;
                let rechained = match rechain(&rows) {
                    Ok(rechained) => rechained,
                    Err(reason) => return Ok(Err(reason)),
                };
                for batch in rechained.chunks(1000) {
                    diesel::sql_query(
                        "UPDATE audit_log a SET version = 2, personal_salt = v.salt,
                                personal_digest = v.digest, prev_hash = v.prev_hash, hash = v.hash
                         FROM unnest($1::BIGINT[], $2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::BYTEA[])
                              AS v(id, salt, digest, prev_hash, hash)
                         WHERE a.id = v.id",
                    )
                    .bind::<Array<BigInt>, _>(batch.iter().map(|r| r.id).collect::<Vec<_>>())
                    .bind::<Array<Bytea>, _>(
                        batch.iter().map(|r| r.sealed.salt.clone()).collect::<Vec<_>>(),
                    )
                    .bind::<Array<Bytea>, _>(
                        batch.iter().map(|r| r.sealed.digest.clone()).collect::<Vec<_>>(),
                    )
                    .bind::<Array<Bytea>, _>(
                        batch.iter().map(|r| r.prev_hash.clone()).collect::<Vec<_>>(),
                    )
                    .bind::<Array<Bytea>, _>(
                        batch.iter().map(|r| r.sealed.hash.clone()).collect::<Vec<_>>(),
                    )
                    .execute(conn)
                    .await?;
                }
                let v1_head = rows.last().map(|r| hex::encode(&r.hash)).unwrap_or_default();
                append(
                    conn,
                    Entry::system(org_id, "siteward", "audit.rechained", "audit chain")
                        .detail(serde_json::json!({"rows": rows.len(), "v1_head": v1_head})),
                )
                .await?;
                QueryResult::Ok(Ok(rows.len()))
            })
            .await?;
        match outcome {
            Ok(rows) => {
                done.chains += 1;
                done.rows += rows;
            }
            Err(reason) => done.refused.push((org_id, reason)),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 chain of `n` rows, as siteward wrote them before version 2.
    fn chain_v1(n: i64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_vec();
        for seq in 1..=n {
            let mut row = AuditRow {
                id: seq,
                org_id: Some(3),
                seq,
                created_at: OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).unwrap(),
                actor_user_id: Some(1),
                actor_key_id: None,
                actor: "a@example.com".into(),
                action: "target.created".into(),
                subject: "target 9".into(),
                detail: r#"{"by":"a@example.com"}"#.into(),
                ip: "127.0.0.1".into(),
                prev_hash: prev.clone(),
                hash: Vec::new(),
                version: 1,
                personal_salt: None,
                personal_digest: None,
                erased_by: None,
            };
            row.hash = hash_v1(&prev, &row.record(), &row.personal());
            prev = row.hash.clone();
            rows.push(row);
        }
        rows
    }

    /// The chain as `upgrade` writes it back.
    fn chain_v2(n: i64) -> Vec<AuditRow> {
        let mut rows = chain_v1(n);
        let rechained = rechain(&rows).expect("an intact chain re-chains");
        for (row, new) in rows.iter_mut().zip(rechained) {
            row.version = 2;
            row.prev_hash = new.prev_hash;
            row.hash = new.sealed.hash;
            row.personal_salt = Some(new.sealed.salt);
            row.personal_digest = Some(new.sealed.digest);
        }
        rows
    }

    #[test]
    fn an_intact_chain_verifies_and_edits_and_gaps_do_not() {
        for rows in [chain_v1(4), chain_v2(4)] {
            assert!(verify_rows(&rows).is_empty());

            let mut edited = rows.clone();
            edited[1].actor = "someone-else@example.com".into();
            let breaks = verify_rows(&edited);
            assert_eq!(breaks.len(), 1);
            assert_eq!(breaks[0].seq, 2);

            let mut gap = rows.clone();
            gap.remove(1);
            let breaks = verify_rows(&gap);
            assert!(
                breaks
                    .iter()
                    .any(|b| b.seq == 3 && b.reason.contains("gap"))
            );
        }
    }

    #[test]
    fn a_pseudonymized_row_still_verifies_but_an_edited_record_or_salted_edit_does_not() {
        let rows = chain_v2(3);
        let mut erased = rows.clone();
        erased[1].actor = "erased user #1".into();
        erased[1].detail = r#"{"by":"erased user #1"}"#.into();
        erased[1].ip = String::new();
        erased[1].personal_salt = None;
        erased[1].erased_by = Some(99);
        assert!(verify_rows(&erased).is_empty());

        // The record itself (here the action) is still covered by the hash.
        let mut relabelled = erased.clone();
        relabelled[1].action = "target.deleted".into();
        assert_eq!(verify_rows(&relabelled).len(), 1);

        // Editing personal fields while the salt is kept is caught.
        let mut edited = rows.clone();
        edited[2].ip = "10.0.0.1".into();
        assert_eq!(verify_rows(&edited)[0].seq, 3);
    }

    #[test]
    fn the_digest_is_keyed_by_the_row_salt() {
        let rows = chain_v2(2);
        // Without the salt, the digest of a guess does not match the stored one.
        let guess = Personal {
            actor: "a@example.com",
            subject: "target 9",
            detail: r#"{"by":"a@example.com"}"#,
            ip: "127.0.0.1",
        };
        assert_ne!(
            personal_digest(&[0; 32], &guess),
            *rows[0].personal_digest.as_ref().unwrap()
        );
        assert_eq!(
            personal_digest(rows[0].personal_salt.as_ref().unwrap(), &guess),
            *rows[0].personal_digest.as_ref().unwrap()
        );
        assert_ne!(rows[0].personal_salt, rows[1].personal_salt);
    }

    #[test]
    fn a_broken_or_mixed_chain_is_not_rechained() {
        let mut broken = chain_v1(3);
        broken[0].subject = "edited".into();
        assert!(rechain(&broken).is_err());
        let mut mixed = chain_v1(2);
        mixed.extend(chain_v2(3).into_iter().skip(2));
        assert!(rechain(&mixed).is_err());
    }
}
