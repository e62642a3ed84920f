//! Erasure of a person: their account and sign-in state go, the API keys they created are
//! revoked, and every audit entry naming them is pseudonymized — their email and name become
//! `erased person #<id>`, and the address they acted from is blanked. Audit chain version 2
//! makes that possible without breaking a chain (see `audit::chain`); an instance-chain
//! `person.erased` entry records the erasure and how many entries it pseudonymized.
//!
//! An organization's owner cannot erase themselves: ownership must pass to another member first
//! (or the organization be erased), so no organization is left without one.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::audit::chain::{self, Entry, PERSON_ERASED};

/// Why a person could not be erased.
#[derive(Debug, thiserror::Error)]
pub enum PersonErasureError {
    #[error("there is no such person")]
    NotFound,
    #[error(
        "still the owner of {}: pass ownership to another member (or erase the organization) first",
        .0.join(", ")
    )]
    StillOwner(Vec<String>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedPerson {
    /// The email the account had (for the goodbye mail; kept nowhere).
    pub email: String,
    pub pseudonym: String,
    pub audit_entries: usize,
    pub keys_revoked: usize,
    pub orgs_left: usize,
    /// Entries naming them in version-1 chains that could not be re-chained (they keep the
    /// email: pseudonymizing them would break those chains).
    pub entries_left_in_v1_chains: i64,
}

/// Who asked for an erasure, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskedBy {
    /// The person, signed in.
    Themselves,
    /// The operator, with `siteward admin erase-person`.
    Operator,
}

impl AskedBy {
    fn as_str(self) -> &'static str {
        match self {
            AskedBy::Themselves => "themselves",
            AskedBy::Operator => "operator",
        }
    }
}

/// What stands in for an erased person in the audit log.
pub fn pseudonym(user_id: i64) -> String {
    format!("erased person #{user_id}")
}

#[derive(QueryableByName)]
struct Person {
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Mention {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    actor_user_id: Option<i64>,
    #[diesel(sql_type = Text)]
    actor: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Text)]
    ip: String,
}

/// Whether an entry may name the person: acted by them (`$1`), or with their address (`$2`)
/// somewhere in its actor, subject or detail (failed sign-ins, invitations, membership changes
/// by others). A superset: `Names::names_email` decides.
const MAY_NAME_THEM: &str = "(actor_user_id = $1 OR strpos(lower(actor), $2) > 0
     OR strpos(lower(subject), $2) > 0 OR strpos(lower(detail), $2) > 0)";

/// Erases a person in one transaction. Nothing changes when it fails.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    asked_by: AskedBy,
) -> Result<ErasedPerson, PersonErasureError> {
    conn.transaction(async move |conn| erase_in(conn, user_id, asked_by).await)
        .await
}

async fn erase_in(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    asked_by: AskedBy,
) -> Result<ErasedPerson, PersonErasureError> {
    let person: Person =
        diesel::sql_query("SELECT email, name FROM users WHERE id = $1 FOR UPDATE")
            .bind::<BigInt, _>(user_id)
            .get_result(conn)
            .await
            .optional()?
            .ok_or(PersonErasureError::NotFound)?;
    // Every membership row of theirs is locked, so no ownership moves to one meanwhile.
    #[derive(QueryableByName)]
    struct Membership {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        role: String,
    }
    let memberships: Vec<Membership> = diesel::sql_query(
        "SELECT o.id, o.name, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = $1 ORDER BY o.id FOR UPDATE OF m",
    )
    .bind::<BigInt, _>(user_id)
    .load(conn)
    .await?;
    let owned: Vec<String> = memberships
        .iter()
        .filter(|m| m.role == "owner")
        .map(|m| format!("“{}”", m.name))
        .collect();
    if !owned.is_empty() {
        return Err(PersonErasureError::StillOwner(owned));
    }
    let orgs: Vec<i64> = memberships.iter().map(|m| m.id).collect();
    let keys_revoked = diesel::sql_query(
        "UPDATE api_keys SET revoked_at = now() WHERE created_by = $1 AND revoked_at IS NULL",
    )
    .bind::<BigInt, _>(user_id)
    .execute(conn)
    .await?;

    let email = person.email.to_lowercase();
    let pseudonym = pseudonym(user_id);
    let names = Names {
        email: &email,
        name: person.name.trim(),
        pseudonym: &pseudonym,
    };
    // The query finds candidates by substring; an entry is theirs when they acted in it or their
    // address stands in it as a whole (not `ba@b.co` for `a@b.co`).
    let mentions: Vec<Mention> = diesel::sql_query(format!(
        "SELECT id, actor_user_id, actor, subject, detail, ip FROM audit_log
         WHERE personal_salt IS NOT NULL AND {MAY_NAME_THEM} ORDER BY id FOR UPDATE"
    ))
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(&email)
    .load(conn)
    .await?
    .into_iter()
    .filter(|row: &Mention| {
        row.actor_user_id == Some(user_id)
            || [&row.actor, &row.subject, &row.detail]
                .iter()
                .any(|text| names.names_email(text))
    })
    .collect();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let left_in_v1 = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM audit_log WHERE version = 1 AND {MAY_NAME_THEM}"
    ))
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(&email)
    .get_result::<Count>(conn)
    .await?
    .n;

    let erasure = chain::record_returning_id(
        conn,
        Entry::system(None, &pseudonym, PERSON_ERASED, pseudonym.clone()).detail(json!({
                "rows": mentions.len(),
                "keys_revoked": keys_revoked,
                "orgs": orgs.len(),
                "rows_left_in_v1_chains": left_in_v1,
                "asked_by": asked_by.as_str(),
        })),
    )
    .await?;
    // The audit trigger lets this erasure's rows (and only in this transaction) be pseudonymized.
    diesel::sql_query("SELECT set_config('siteward.erasing_person', $1, true)")
        .bind::<Text, _>(erasure.to_string())
        .execute(conn)
        .await?;
    for batch in mentions.chunks(500) {
        let mut ids = Vec::new();
        let mut actors = Vec::new();
        let mut subjects = Vec::new();
        let mut details = Vec::new();
        let mut ips = Vec::new();
        for row in batch {
            let acted =
                row.actor_user_id == Some(user_id) || row.actor.trim().eq_ignore_ascii_case(&email);
            ids.push(row.id);
            actors.push(if acted {
                pseudonym.clone()
            } else {
                names.replace_in(&row.actor)
            });
            subjects.push(names.replace_in(&row.subject));
            details.push(names.replace_in_json(&row.detail));
            ips.push(if acted { String::new() } else { row.ip.clone() });
        }
        diesel::sql_query(
            "UPDATE audit_log a SET actor = v.actor, subject = v.subject, detail = v.detail,
                    ip = v.ip, personal_salt = NULL, erased_by = $6
             FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])
                  AS v(id, actor, subject, detail, ip)
             WHERE a.id = v.id",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Text>, _>(actors)
        .bind::<Array<Text>, _>(subjects)
        .bind::<Array<Text>, _>(details)
        .bind::<Array<Text>, _>(ips)
        .bind::<BigInt, _>(erasure)
        .execute(conn)
        .await?;
    }

    // Payment-script records name who authorized or revoked by label (their address).
    for statement in [
        "UPDATE payment_script_rules SET created_by_name = $3
         WHERE created_by = $1 OR lower(created_by_name) = $2",
        "UPDATE payment_script_rules SET revoked_by_name = $3 WHERE lower(revoked_by_name) = $2",
        "UPDATE payment_script_decisions SET decided_by_name = $3
         WHERE decided_by = $1 OR lower(decided_by_name) = $2",
    ] {
        diesel::sql_query(statement)
            .bind::<BigInt, _>(user_id)
            .bind::<Text, _>(&email)
            .bind::<Text, _>(&pseudonym)
            .execute(conn)
            .await?;
    }

    // What else holds their address: invitations made out to it, sign-in rate-limit windows
    // keyed by it. The account row goes last; sessions, second factor, recovery codes, reset
    // links and memberships go with it, and what they did elsewhere keeps no pointer to them.
    diesel::sql_query("DELETE FROM invitations WHERE email = $1")
        .bind::<Text, _>(&email)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM rate_limit_windows WHERE lower(caller) = $1")
        .bind::<Text, _>(&email)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM users WHERE id = $1")
        .bind::<BigInt, _>(user_id)
        .execute(conn)
        .await?;
    for org in &orgs {
        chain::record(
            conn,
            Entry::system(Some(*org), "siteward", "member.erased", pseudonym.clone()),
        )
        .await?;
    }
    Ok(ErasedPerson {
        email: person.email,
        pseudonym,
        audit_entries: mentions.len(),
        keys_revoked,
        orgs_left: orgs.len(),
        entries_left_in_v1_chains: left_in_v1,
    })
}

/// What is replaced, and by what.
struct Names<'a> {
    email: &'a str,
    name: &'a str,
    pseudonym: &'a str,
}

impl Names<'_> {
    /// Whether the email stands in `text` as a whole (in any case).
    fn names_email(&self, text: &str) -> bool {
        replace_whole(text, self.email, "", is_email_char) != text
    }

    /// The text with the email (in any case) and the name replaced by the pseudonym, each where
    /// it stands as a whole: not inside a longer address or word.
    fn replace_in(&self, text: &str) -> String {
        let mut out = replace_whole(text, self.email, self.pseudonym, is_email_char);
        if !self.name.is_empty() {
            out = replace_whole(&out, self.name, self.pseudonym, char::is_alphanumeric);
        }
        out
    }

    /// The same inside every key and string of a JSON document (text that is not JSON is
    /// treated as text), so what comes out is still the JSON it was.
    fn replace_in_json(&self, detail: &str) -> String {
        fn walk(names: &Names<'_>, value: Value) -> Value {
            match value {
                Value::String(s) => Value::String(names.replace_in(&s)),
                Value::Array(items) => {
                    Value::Array(items.into_iter().map(|v| walk(names, v)).collect())
                }
                Value::Object(map) => Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (names.replace_in(&k), walk(names, v)))
                        .collect(),
                ),
                other => other,
            }
        }
        match serde_json::from_str::<Value>(detail) {
            Ok(value) => walk(self, value).to_string(),
            Err(_) => self.replace_in(detail),
        }
    }
}

fn is_email_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '@')
}

/// Replaces every occurrence of `needle` in `text` (ASCII case ignored; emails are stored
/// lowercase) that `part_of_word` does not continue on either side.
fn replace_whole(text: &str, needle: &str, with: &str, part_of_word: fn(char) -> bool) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let start = from + found;
        let end = start + needle.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if before.is_some_and(part_of_word) || after.is_some_and(part_of_word) {
            from = start + needle.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(with);
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The organizations a person owns, by name: what they must hand over before erasing themselves.
pub async fn owned_orgs(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<Vec<String>> {
    let owned: Vec<Named> = diesel::sql_query(
        "SELECT o.name FROM memberships m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = $1 AND m.role = 'owner' ORDER BY o.id",
    )
    .bind::<BigInt, _>(user_id)
    .load(conn)
    .await?;
    Ok(owned.into_iter().map(|o| o.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_in_any_case_and_the_name_become_the_pseudonym_and_json_stays_json() {
        let names = Names {
            email: "ada@example.com",
            name: "Ada Lovelace",
            pseudonym: "erased person #7",
        };
        assert_eq!(
            names.replace_in("ADA@Example.com invited Ada Lovelace"),
            "erased person #7 invited erased person #7"
        );
        let detail =
            names.replace_in_json(r#"{"to":"Ada@example.com","ada@example.com":["x"],"n":3}"#);
        let parsed: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(parsed["to"], "erased person #7");
        assert_eq!(parsed["erased person #7"][0], "x");
        assert_eq!(parsed["n"], 3);
        assert!(!detail.to_lowercase().contains("ada@example.com"));
        // Not JSON: replaced as text.
        assert_eq!(
            names.replace_in_json("by ada@example.com"),
            "by erased person #7"
        );
    }

    #[test]
    fn replacing_handles_repeats_and_non_ascii_text_around_it() {
        assert_eq!(
            replace_whole("é a@b.c, A@B.C ü", "a@b.c", "x", is_email_char),
            "é x, x ü"
        );
        assert_eq!(
            replace_whole("none here", "a@b.c", "x", is_email_char),
            "none here"
        );
    }

    #[test]
    fn only_whole_addresses_and_names_are_theirs() {
        let names = Names {
            email: "a@b.co",
            name: "Al",
            pseudonym: "P",
        };
        for other in ["ba@b.co", "a@b.com", "x.a@b.co", "Alice", "Salt"] {
            assert!(!names.names_email(other), "{other}");
            assert_eq!(names.replace_in(other), other);
        }
        assert!(names.names_email("by <a@b.co>"));
        assert_eq!(names.replace_in("Al (a@b.co) met Alice"), "P (P) met Alice");
    }
}
