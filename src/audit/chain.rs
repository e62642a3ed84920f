//! Appending to and verifying the hash chains. Each organization has its own chain (the
//! instance has one too, for events tied to no organization). Row n stores
//! `hash = SHA-256(prev_hash ‖ encode(row fields))`, where `prev_hash` is row n−1's hash (32 zero
//! bytes for the first row) and every field is length-prefixed.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::auth::{Actor, OrgCtx};
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
}

pub const GENESIS: [u8; 32] = [0; 32];

struct Fields<'a> {
    org_id: Option<i64>,
    seq: i64,
    created_at: OffsetDateTime,
    actor_user_id: Option<i64>,
    actor_key_id: Option<i64>,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
    ip: &'a str,
}

fn chain_hash(prev_hash: &[u8], fields: &Fields<'_>) -> Vec<u8> {
    fn opt(value: Option<i64>) -> String {
        value.map(|v| v.to_string()).unwrap_or_default()
    }
    let micros = fields.created_at.unix_timestamp_nanos() / 1000;
    let parts: [String; 11] = [
        "siteward-audit-v1".into(),
        opt(fields.org_id),
        fields.seq.to_string(),
        micros.to_string(),
        opt(fields.actor_user_id),
        opt(fields.actor_key_id),
        fields.actor.into(),
        fields.action.into(),
        fields.subject.into(),
        fields.detail.into(),
        fields.ip.into(),
    ];
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_vec()
}

/// Appends an entry to its chain. Call inside the transaction of the change it records; the
/// chain's advisory lock serializes writers of the same organization.
pub async fn record(conn: &mut AsyncPgConnection, entry: Entry) -> QueryResult<()> {
    // The chain lock lasts until the end of the transaction; outside one (or nested, as a
    // savepoint) this makes sure there is one.
    conn.transaction(async move |conn| append(conn, entry).await)
        .await
}

async fn append(conn: &mut AsyncPgConnection, entry: Entry) -> QueryResult<()> {
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
    let chain_key = format!(
        "siteward.audit:{}",
        entry
            .org_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "instance".into())
    );
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(chain_key)
        .execute(conn)
        .await?;
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
    let fields = Fields {
        org_id: entry.org_id,
        seq,
        created_at,
        actor_user_id: entry.actor_user_id,
        actor_key_id: entry.actor_key_id,
        actor: &entry.actor,
        action: entry.action,
        subject: &entry.subject,
        detail: &detail,
        ip: &entry.ip,
    };
    let hash = chain_hash(&prev_hash, &fields);
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
            audit_log::hash.eq(hash),
        ))
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
        let fields = Fields {
            org_id: row.org_id,
            seq: row.seq,
            created_at: row.created_at,
            actor_user_id: row.actor_user_id,
            actor_key_id: row.actor_key_id,
            actor: &row.actor,
            action: &row.action,
            subject: &row.subject,
            detail: &row.detail,
            ip: &row.ip,
        };
        if chain_hash(&row.prev_hash, &fields) != row.hash {
            breaks.push(fail("the row's content does not match its hash (edited)"));
        }
        expected_prev = row.hash.clone();
    }
    breaks
}

/// Verifies every chain in the database, streaming one chain at a time.
pub async fn verify_all(conn: &mut AsyncPgConnection) -> QueryResult<Verification> {
    #[derive(QueryableByName)]
    struct ChainId {
        #[diesel(sql_type = Nullable<BigInt>)]
        org_id: Option<i64>,
    }
    let chains: Vec<ChainId> = diesel::sql_query("SELECT DISTINCT org_id FROM audit_log")
        .load(conn)
        .await?;
    let mut result = Verification {
        chains: chains.len(),
        ..Verification::default()
    };
    for chain in chains {
        let rows: Vec<AuditRow> = audit_log::table
            .filter(org_filter(chain.org_id))
            .order(audit_log::seq.asc())
            .select(AuditRow::as_select())
            .load(conn)
            .await?;
        result.rows += rows.len();
        result.breaks.extend(verify_rows(&rows));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_vec();
        for seq in 1..=n {
            let created_at = OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).unwrap();
            let fields = Fields {
                org_id: Some(3),
                seq,
                created_at,
                actor_user_id: Some(1),
                actor_key_id: None,
                actor: "a@example.com",
                action: "target.created",
                subject: "target 9",
                detail: "{}",
                ip: "127.0.0.1",
            };
            let hash = chain_hash(&prev, &fields);
            rows.push(AuditRow {
                id: seq,
                org_id: Some(3),
                seq,
                created_at,
                actor_user_id: Some(1),
                actor_key_id: None,
                actor: "a@example.com".into(),
                action: "target.created".into(),
                subject: "target 9".into(),
                detail: "{}".into(),
                ip: "127.0.0.1".into(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        rows
    }

    #[test]
    fn an_intact_chain_verifies_and_edits_and_gaps_do_not() {
        let rows = chain(4);
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
