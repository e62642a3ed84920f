//! The payment inventory in the database: recording what a payment page's snapshot ran (scripts,
//! their versions, a rule's automatic authorization), decisions (append-only; the latest
//! stands), pre-authorization rules, and reading it all back for a target. Every read and
//! decision is bound to the caller's organization.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use super::inventory::{self, Integrity, Seen};
use crate::alerts::rules::Finding;
use crate::auth::OrgCtx;
use crate::db::schema::{
    payment_script_decisions as decisions, payment_script_rules as rules,
    payment_script_versions as versions, payment_scripts as scripts,
};
use crate::web::AppError;

/// What an admin decides about a script version.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Authorized,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Authorized => "authorized",
            Decision::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "authorized" => Some(Decision::Authorized),
            "rejected" => Some(Decision::Rejected),
            _ => None,
        }
    }
}

/// The most characters of a justification.
pub const MAX_JUSTIFICATION_CHARS: usize = 2_000;

/// A pre-authorization rule.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = rules)]
pub struct Rule {
    pub id: i64,
    /// `js.stripe.com`, or `*.example.com` for every subdomain of it.
    pub host: String,
    pub justification: String,
    pub created_by_name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by_name: Option<String>,
}

impl Rule {
    pub fn covers(&self, host: &str) -> bool {
        host_matches(&self.host, host)
    }
}

/// Whether a rule's host pattern covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => host.ends_with(&format!(".{}", parent.to_ascii_lowercase())),
        None => host == pattern.to_ascii_lowercase(),
    }
}

/// One decision about a version, as recorded.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = decisions)]
pub struct DecisionRecord {
    pub id: i64,
    pub version_id: i64,
    pub decision: String,
    pub justification: String,
    pub decided_by_name: String,
    /// Set when a pre-authorization rule made the decision.
    pub rule_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub decided_at: OffsetDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = versions)]
struct VersionRow {
    id: i64,
    script_id: i64,
    sha256: String,
    size_bytes: i64,
    first_bytes: String,
    frame_url: String,
    in_iframe: bool,
    injected_by: Option<String>,
    integrity_state: String,
    integrity: Option<String>,
    last_seen_snapshot_id: Option<i64>,
    first_seen_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scripts)]
struct ScriptRow {
    id: i64,
    identity: String,
    kind: String,
    url: Option<String>,
    host: Option<String>,
    first_seen_at: OffsetDateTime,
}

/// Where a version stands: its latest decision, or none yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Unreviewed,
    Authorized,
    Rejected,
}

impl Standing {
    fn of(latest: Option<&DecisionRecord>) -> Standing {
        match latest.map(|d| d.decision.as_str()) {
            Some("authorized") => Standing::Authorized,
            Some("rejected") => Standing::Rejected,
            _ => Standing::Unreviewed,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Standing::Unreviewed => "unreviewed",
            Standing::Authorized => "authorized",
            Standing::Rejected => "rejected",
        }
    }
}

/// A version as the inventory shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Version {
    pub id: i64,
    pub sha256: String,
    pub size_bytes: i64,
    pub first_bytes: String,
    pub frame_url: String,
    /// Ran inside an iframe on the page (the payment provider's card fields, say).
    pub in_iframe: bool,
    /// The script that added it to the page, when the markup did not.
    pub injected_by: Option<String>,
    /// `missing`, `matches`, `checked_by_browser`, `mismatch` or `not_applicable`.
    pub integrity_state: String,
    pub integrity: Option<String>,
    /// Seen in the target's latest scan of the page.
    pub current: bool,
    pub standing: Standing,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub last_seen_at: OffsetDateTime,
    /// Every decision, newest first.
    pub decisions: Vec<DecisionRecord>,
}

impl Version {
    pub fn integrity(&self) -> Integrity {
        Integrity::from_parts(&self.integrity_state, self.integrity.clone())
    }
}

/// A script of a payment target with its versions, newest first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InventoryScript {
    pub id: i64,
    pub identity: String,
    /// `external` or `inline`.
    pub kind: String,
    pub url: Option<String>,
    pub host: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub first_seen_at: OffsetDateTime,
    pub versions: Vec<Version>,
}

impl InventoryScript {
    /// Whether any version ran in the latest scan.
    pub fn current(&self) -> bool {
        self.versions.iter().any(|v| v.current)
    }

    pub fn name(&self) -> String {
        match (&self.url, <[Version]>::first(&self.versions)) {
            (Some(url), _) => url.clone(),
            (None, Some(version)) => format!("inline: {}", version.first_bytes),
            (None, None) => self.identity.clone(),
        }
    }
}

/// The rules of the organization that are in force.
pub async fn active_rules(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<Vec<Rule>> {
    rules::table
        .filter(rules::org_id.eq(org_id))
        .filter(rules::revoked_at.is_null())
        .select(Rule::as_select())
        .order(rules::id)
        .load(conn)
        .await
}

/// One rule of the caller's organization.
pub async fn rule(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Rule> {
    rules::table
        .filter(rules::org_id.eq(ctx.org_id))
        .filter(rules::id.eq(id))
        .select(Rule::as_select())
        .first(conn)
        .await
}

/// Every rule of the caller's organization, revoked ones too, newest first.
pub async fn all_rules(conn: &mut AsyncPgConnection, ctx: &OrgCtx) -> QueryResult<Vec<Rule>> {
    rules::table
        .filter(rules::org_id.eq(ctx.org_id))
        .select(Rule::as_select())
        .order(rules::id.desc())
        .load(conn)
        .await
}

async fn latest_decision(
    conn: &mut AsyncPgConnection,
    version_id: i64,
) -> QueryResult<Option<DecisionRecord>> {
    decisions::table
        .filter(decisions::version_id.eq(version_id))
        .select(DecisionRecord::as_select())
        .order(decisions::id.desc())
        .first(conn)
        .await
        .optional()
}

/// Where a payment page's scripts were seen.
#[derive(Debug, Clone, Copy)]
pub enum SeenIn {
    /// A plain scan of the target: its snapshot and the target's snapshot before it.
    Scan {
        snapshot_id: i64,
        previous_snapshot_id: Option<i64>,
    },
    /// A page a checkout test reached at the target's URL (one of its run's captures).
    CheckoutRun,
}

/// Records what a payment page ran, in the transaction that stores its comparison: scripts and
/// versions (new ones authorized by a rule that covers their host), and returns the findings —
/// every script version that is not authorized, and (for plain scans, which follow each other)
/// every script that came back, after a scan without it, with a body never seen before.
pub async fn record(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_id: i64,
    seen_in: SeenIn,
    snapshot: &scanner::Snapshot,
) -> QueryResult<Vec<Finding>> {
    let (snapshot_id, previous_snapshot_id) = match seen_in {
        SeenIn::Scan {
            snapshot_id,
            previous_snapshot_id,
        } => (Some(snapshot_id), previous_snapshot_id),
        SeenIn::CheckoutRun => (None, None),
    };
    // One recorder per target at a time (a scan's and a checkout run's may meet): each reads
    // what is there, then inserts what is not.
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('payment-inventory:' || $1, 0))",
    )
    .bind::<Text, _>(target_id.to_string())
    .execute(conn)
    .await?;
    let seen = inventory::of(snapshot);
    let active = active_rules(conn, org_id).await?;
    let mut findings = Vec::new();
    for item in &seen {
        let (script_id, known) = upsert_script(conn, org_id, target_id, item).await?;
        let existing: Option<i64> = versions::table
            .filter(versions::script_id.eq(script_id))
            .filter(versions::sha256.eq(&item.sha256))
            .select(versions::id)
            .first(conn)
            .await
            .optional()?;
        let was_there = match previous_snapshot_id {
            Some(previous) => {
                diesel::select(diesel::dsl::exists(
                    versions::table
                        .filter(versions::script_id.eq(script_id))
                        .filter(versions::last_seen_snapshot_id.eq(previous)),
                ))
                .get_result::<bool>(conn)
                .await?
            }
            None => true,
        };
        let version_id = match existing {
            Some(id) => {
                let version = versions::table.find(id);
                match snapshot_id {
                    Some(snapshot_id) => {
                        diesel::update(version)
                            .set((
                                versions::last_seen_snapshot_id.eq(snapshot_id),
                                versions::last_seen_at.eq(diesel::dsl::now),
                            ))
                            .execute(conn)
                            .await?
                    }
                    None => {
                        diesel::update(version)
                            .set(versions::last_seen_at.eq(diesel::dsl::now))
                            .execute(conn)
                            .await?
                    }
                };
                id
            }
            None => {
                let id = insert_version(conn, org_id, script_id, snapshot_id, item).await?;
                if let Some(rule) = item
                    .host
                    .as_deref()
                    .and_then(|host| active.iter().find(|r| r.covers(host)))
                {
                    insert_rule_decision(conn, org_id, id, rule).await?;
                }
                if known && !was_there {
                    findings.push(returned_finding(item, id));
                }
                id
            }
        };
        let standing = Standing::of(latest_decision(conn, version_id).await?.as_ref());
        if standing != Standing::Authorized {
            findings.push(unauthorized_finding(item, version_id, standing, seen_in));
        }
    }
    Ok(findings)
}

async fn upsert_script(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_id: i64,
    item: &Seen,
) -> QueryResult<(i64, bool)> {
    let existing: Option<i64> = scripts::table
        .filter(scripts::target_id.eq(target_id))
        .filter(scripts::identity.eq(&item.identity))
        .select(scripts::id)
        .first(conn)
        .await
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, true));
    }
    let id = diesel::insert_into(scripts::table)
        .values((
            scripts::org_id.eq(org_id),
            scripts::target_id.eq(target_id),
            scripts::identity.eq(&item.identity),
            scripts::kind.eq(item.kind.as_str()),
            scripts::url.eq(&item.url),
            scripts::host.eq(&item.host),
        ))
        .returning(scripts::id)
        .get_result(conn)
        .await?;
    Ok((id, false))
}

async fn insert_version(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    script_id: i64,
    snapshot_id: Option<i64>,
    item: &Seen,
) -> QueryResult<i64> {
    diesel::insert_into(versions::table)
        .values((
            versions::org_id.eq(org_id),
            versions::script_id.eq(script_id),
            versions::sha256.eq(&item.sha256),
            versions::size_bytes.eq(i64::try_from(item.size_bytes).unwrap_or(i64::MAX)),
            versions::first_bytes.eq(&item.first_bytes),
            versions::frame_url.eq(&item.frame_url),
            versions::in_iframe.eq(item.in_iframe),
            versions::injected_by.eq(&item.injected_by),
            versions::integrity_state.eq(item.integrity.as_str()),
            versions::integrity.eq(item.integrity.value()),
            versions::first_seen_snapshot_id.eq(snapshot_id),
            versions::last_seen_snapshot_id.eq(snapshot_id),
        ))
        .returning(versions::id)
        .get_result(conn)
        .await
}

async fn insert_rule_decision(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    version_id: i64,
    rule: &Rule,
) -> QueryResult<()> {
    diesel::insert_into(decisions::table)
        .values((
            decisions::org_id.eq(org_id),
            decisions::version_id.eq(version_id),
            decisions::decision.eq(Decision::Authorized.as_str()),
            decisions::justification.eq(&rule.justification),
            decisions::decided_by_name.eq(format!("rule for {}", rule.host)),
            decisions::rule_id.eq(rule.id),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The alert fingerprint of a script body that is not authorized. Seen by a plain scan, the
/// alert resolves itself once no scan sees that body run; seen by a checkout run (a page a plain
/// scan may not reach, like a payment step behind a cart), only authorizing it resolves it.
pub fn unauthorized_fingerprint(sha256: &str, seen_in: SeenIn) -> String {
    match seen_in {
        SeenIn::Scan { .. } => format!("pay-script:{sha256}"),
        SeenIn::CheckoutRun => format!("pay-script-run:{sha256}"),
    }
}

fn script_name(item: &Seen) -> String {
    match &item.url {
        Some(url) => url.clone(),
        None => format!("inline `{}`", item.first_bytes),
    }
}

fn unauthorized_finding(
    item: &Seen,
    version_id: i64,
    standing: Standing,
    seen_in: SeenIn,
) -> Finding {
    let mut title = format!(
        "{} script on the payment page: {}",
        if standing == Standing::Rejected {
            "Rejected"
        } else {
            "Unreviewed"
        },
        script_name(item)
    );
    if let Some(by) = &item.injected_by {
        title.push_str(&format!(" (injected by {by})"));
    }
    Finding {
        rule: "payment_script_unauthorized",
        fingerprint: unauthorized_fingerprint(&item.sha256, seen_in),
        title,
        detail: serde_json::json!({
            "version_id": version_id,
            "standing": standing,
            "script": item,
        }),
    }
}

fn returned_finding(item: &Seen, version_id: i64) -> Finding {
    Finding {
        rule: "payment_script_returned",
        fingerprint: format!("pay-return:{}:{}", item.identity, item.sha256),
        title: format!(
            "A script came back to the payment page with a body never seen before: {}",
            script_name(item)
        ),
        detail: serde_json::json!({ "version_id": version_id, "script": item }),
    }
}

/// The inventory of a payment target of the caller's organization: scripts (those of the
/// latest scan first) with their versions and decisions.
pub async fn inventory(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
) -> QueryResult<Vec<InventoryScript>> {
    let latest: Option<i64> = crate::db::schema::snapshots::table
        .filter(crate::db::schema::snapshots::org_id.eq(ctx.org_id))
        .filter(crate::db::schema::snapshots::target_id.eq(target_id))
        .filter(crate::db::schema::snapshots::visit.is_null())
        .select(crate::db::schema::snapshots::id)
        .order(crate::db::schema::snapshots::id.desc())
        .first(conn)
        .await
        .optional()?;
    let script_rows: Vec<ScriptRow> = scripts::table
        .filter(scripts::org_id.eq(ctx.org_id))
        .filter(scripts::target_id.eq(target_id))
        .select(ScriptRow::as_select())
        .order(scripts::id)
        .load(conn)
        .await?;
    let ids: Vec<i64> = script_rows.iter().map(|s| s.id).collect();
    let version_rows: Vec<VersionRow> = versions::table
        .filter(versions::org_id.eq(ctx.org_id))
        .filter(versions::script_id.eq_any(&ids))
        .select(VersionRow::as_select())
        .order(versions::id.desc())
        .load(conn)
        .await?;
    let version_ids: Vec<i64> = version_rows.iter().map(|v| v.id).collect();
    let decision_rows: Vec<DecisionRecord> = decisions::table
        .filter(decisions::org_id.eq(ctx.org_id))
        .filter(decisions::version_id.eq_any(&version_ids))
        .select(DecisionRecord::as_select())
        .order(decisions::id.desc())
        .load(conn)
        .await?;
    let mut inventory: Vec<InventoryScript> = script_rows
        .into_iter()
        .map(|script| {
            let versions = version_rows
                .iter()
                .filter(|v| v.script_id == script.id)
                .map(|v| {
                    let history: Vec<DecisionRecord> = decision_rows
                        .iter()
                        .filter(|d| d.version_id == v.id)
                        .cloned()
                        .collect();
                    Version {
                        id: v.id,
                        sha256: v.sha256.clone(),
                        size_bytes: v.size_bytes,
                        first_bytes: v.first_bytes.clone(),
                        frame_url: v.frame_url.clone(),
                        in_iframe: v.in_iframe,
                        injected_by: v.injected_by.clone(),
                        integrity_state: v.integrity_state.clone(),
                        integrity: v.integrity.clone(),
                        current: latest.is_some() && v.last_seen_snapshot_id == latest,
                        standing: Standing::of(<[DecisionRecord]>::first(&history)),
                        first_seen_at: v.first_seen_at,
                        last_seen_at: v.last_seen_at,
                        decisions: history,
                    }
                })
                .collect();
            InventoryScript {
                id: script.id,
                identity: script.identity,
                kind: script.kind,
                url: script.url,
                host: script.host,
                first_seen_at: script.first_seen_at,
                versions,
            }
        })
        .collect();
    inventory.sort_by_key(|s| !s.current());
    Ok(inventory)
}

/// A version of the caller's organization, with its target and body hash.
#[derive(Debug, Clone, QueryableByName)]
pub struct VersionOf {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    #[diesel(sql_type = Text)]
    pub sha256: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub url: Option<String>,
}

/// The target a version of the caller's organization belongs to.
pub async fn target_of_version(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    version_id: i64,
) -> QueryResult<i64> {
    versions::table
        .inner_join(scripts::table)
        .filter(versions::id.eq(version_id))
        .filter(versions::org_id.eq(ctx.org_id))
        .select(scripts::target_id)
        .first(conn)
        .await
}

/// Records a decision about a version and, when it authorizes, resolves the alerts its body
/// raised (as the deciding person). Serialized per version: two admins deciding at once each
/// get their decision recorded, one after the other, and the later one stands.
pub async fn decide(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    version_id: i64,
    decision: Decision,
    justification: &str,
) -> Result<(VersionOf, DecisionRecord), AppError> {
    let ctx = ctx.clone();
    let justification = justification.to_owned();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let version: VersionOf = diesel::sql_query(
            "SELECT v.id, s.target_id, v.sha256, s.url
             FROM payment_script_versions v JOIN payment_scripts s ON s.id = v.script_id
             WHERE v.id = $1 AND v.org_id = $2
             FOR UPDATE OF v",
        )
        .bind::<BigInt, _>(version_id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound)?;
        let record: DecisionRecord = diesel::insert_into(decisions::table)
            .values((
                decisions::org_id.eq(ctx.org_id),
                decisions::version_id.eq(version_id),
                decisions::decision.eq(decision.as_str()),
                decisions::justification.eq(&justification),
                decisions::decided_by.eq(ctx.actor.user_id()),
                decisions::decided_by_name.eq(ctx.actor.label()),
            ))
            .returning(DecisionRecord::as_returning())
            .get_result(conn)
            .await?;
        if decision == Decision::Authorized {
            resolve_unauthorized(
                conn,
                ctx.org_id,
                &[version.target_id],
                &version.sha256,
                ctx.actor.user_id(),
            )
            .await?;
        }
        let action = match decision {
            Decision::Authorized => "payment_script.authorized",
            Decision::Rejected => "payment_script.rejected",
        };
        let entry = crate::audit::Entry::by(&ctx, action, format!("script version {version_id}"))
            .detail(serde_json::json!({
                "target": version.target_id,
                "url": version.url,
                "sha256": version.sha256,
                "justification": justification,
            }));
        crate::audit::record(conn, entry).await?;
        Ok((version, record))
    })
    .await
}

/// Resolves the live "not authorized" alerts of a body on these targets.
async fn resolve_unauthorized(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_ids: &[i64],
    sha256: &str,
    user_id: Option<i64>,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = $4,
                resolution = 'manual'
         WHERE org_id = $1 AND target_id = ANY($2) AND fingerprint = ANY($3)
           AND state <> 'resolved'",
    )
    .bind::<BigInt, _>(org_id)
    .bind::<diesel::sql_types::Array<BigInt>, _>(target_ids)
    .bind::<diesel::sql_types::Array<Text>, _>(vec![
        unauthorized_fingerprint(sha256, SeenIn::CheckoutRun),
        unauthorized_fingerprint(
            sha256,
            SeenIn::Scan {
                snapshot_id: 0,
                previous_snapshot_id: None,
            },
        ),
    ])
    .bind::<Nullable<BigInt>, _>(user_id)
    .execute(conn)
    .await
}

/// Adds a rule and authorizes by it every unreviewed version its host covers (resolving their
/// alerts); returns the rule and how many versions it authorized.
pub async fn add_rule(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    host: &str,
    justification: &str,
) -> Result<(Rule, usize), AppError> {
    let ctx = ctx.clone();
    let (host, justification) = (host.to_owned(), justification.to_owned());
    conn.transaction::<_, AppError, _>(async move |conn| {
        let rule: Rule = diesel::insert_into(rules::table)
            .values((
                rules::org_id.eq(ctx.org_id),
                rules::host.eq(&host),
                rules::justification.eq(&justification),
                rules::created_by.eq(ctx.actor.user_id()),
                rules::created_by_name.eq(ctx.actor.label()),
            ))
            .returning(Rule::as_returning())
            .get_result(conn)
            .await?;
        #[derive(QueryableByName)]
        struct Candidate {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = BigInt)]
            target_id: i64,
            #[diesel(sql_type = Text)]
            sha256: String,
            #[diesel(sql_type = Text)]
            host: String,
        }
        let unreviewed: Vec<Candidate> = diesel::sql_query(
            "SELECT v.id, s.target_id, v.sha256, s.host
             FROM payment_script_versions v JOIN payment_scripts s ON s.id = v.script_id
             WHERE v.org_id = $1 AND s.host IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM payment_script_decisions d WHERE d.version_id = v.id)
             ORDER BY v.id
             FOR UPDATE OF v",
        )
        .bind::<BigInt, _>(ctx.org_id)
        .load(conn)
        .await?;
        let mut authorized = 0;
        for candidate in unreviewed.iter().filter(|c| rule.covers(&c.host)) {
            // Decided while this waited for the lock (PostgreSQL does not re-check `NOT EXISTS`
            // for a row it waited on): a person's decision is not overridden by a rule.
            if latest_decision(conn, candidate.id).await?.is_some() {
                continue;
            }
            insert_rule_decision(conn, ctx.org_id, candidate.id, &rule).await?;
            resolve_unauthorized(
                conn,
                ctx.org_id,
                &[candidate.target_id],
                &candidate.sha256,
                ctx.actor.user_id(),
            )
            .await?;
            authorized += 1;
        }
        let entry = crate::audit::Entry::by(
            &ctx,
            "payment_rule.created",
            format!("payment script rule {}", rule.id),
        )
        .detail(serde_json::json!({
            "host": host,
            "justification": justification,
            "authorized_versions": authorized,
        }));
        crate::audit::record(conn, entry).await?;
        Ok((rule, authorized))
    })
    .await
}

/// Revokes a rule of the caller's organization: versions it authorized stay authorized (their
/// decisions are records); new versions from its host are unreviewed again.
pub async fn revoke_rule(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    rule_id: i64,
) -> Result<Rule, AppError> {
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let rule: Rule = diesel::update(
            rules::table
                .filter(rules::id.eq(rule_id))
                .filter(rules::org_id.eq(ctx.org_id)),
        )
        .set((
            rules::revoked_at.eq(Some(OffsetDateTime::now_utc())),
            rules::revoked_by_name.eq(ctx.actor.label()),
        ))
        .returning(Rule::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound)?;
        let entry = crate::audit::Entry::by(
            &ctx,
            "payment_rule.revoked",
            format!("payment script rule {rule_id}"),
        )
        .detail(serde_json::json!({ "host": rule.host }));
        crate::audit::record(conn, entry).await?;
        Ok(rule)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_covers_its_host_or_its_subdomains_and_nothing_else() {
        assert!(host_matches("js.stripe.com", "js.stripe.com"));
        assert!(host_matches("js.stripe.com", "JS.Stripe.com"));
        assert!(!host_matches("js.stripe.com", "evil-js.stripe.com.example"));
        assert!(!host_matches("js.stripe.com", "m.stripe.com"));
        assert!(host_matches("*.stripe.com", "m.stripe.com"));
        assert!(!host_matches("*.stripe.com", "stripe.com"));
        assert!(!host_matches("*.stripe.com", "evilstripe.com"));
    }
}
