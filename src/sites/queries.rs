//! Clients and targets, always scoped to the caller's organization.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use super::schedule;
use super::target_input::TargetValues;
use crate::auth::OrgCtx;
use crate::db::schema::{clients, targets};
use crate::web::pagination::PageRequest;

#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = clients)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub notes: String,
    /// Whom the client's reports are for.
    pub contact_name: String,
    /// Where the client's scheduled reports go; empty: nowhere.
    pub contact_email: String,
    /// `weekly` or `monthly`: a report of the period is mailed to the contact; absent: none.
    pub report_schedule: Option<String>,
    /// Whether scheduled report mails carry the report's PDF.
    pub report_attach_pdf: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
}

/// A client's fields as people set them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ClientFields {
    pub name: String,
    pub notes: String,
    pub contact_name: String,
    pub contact_email: String,
    /// `weekly`, `monthly`, or empty for none.
    pub report_schedule: String,
    /// Scheduled mails carry the report's PDF (a form's checkbox: present means yes).
    #[serde(deserialize_with = "crate::web::form::checkbox")]
    pub report_attach_pdf: bool,
}

impl ClientFields {
    /// The report schedule as stored.
    pub fn schedule(&self) -> Option<&str> {
        (!self.report_schedule.is_empty()).then_some(self.report_schedule.as_str())
    }
}

impl Client {
    pub fn fields(&self) -> ClientFields {
        ClientFields {
            name: self.name.clone(),
            notes: self.notes.clone(),
            contact_name: self.contact_name.clone(),
            contact_email: self.contact_email.clone(),
            report_schedule: self.report_schedule.clone().unwrap_or_default(),
            report_attach_pdf: self.report_attach_pdf,
        }
    }
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, schemars::JsonSchema)]
#[diesel(table_name = targets)]
pub struct Target {
    pub id: i64,
    pub client_id: i64,
    pub name: String,
    pub url: String,
    pub viewport_width: i32,
    pub viewport_height: i32,
    pub consent_mode: String,
    pub capture_policy_pages: bool,
    pub wait_ms: i32,
    pub schedule: Option<String>,
    pub enabled: bool,
    /// `page`, `checkout` or `payment`: script changes on checkout and payment pages are critical.
    pub page_kind: String,
    /// Percent of changed pixels above which a screenshot counts as changed.
    pub visual_threshold: f32,
    /// CSS selectors left out of the page-text diff.
    #[schemars(with = "Vec<String>")]
    pub ignore_selectors: serde_json::Value,
    /// Rectangles left out of visual diffs.
    #[schemars(with = "Vec<crate::diff::Rect>")]
    pub ignore_regions: serde_json::Value,
    /// The least time a scan waits after `load` before capture, in ms.
    pub dwell_ms: i32,
    /// `desktop` or `mobile`: the device the scan's visitor uses.
    pub device: String,
    /// The visitor's languages, most preferred first, comma-separated (`de-DE,de,en`).
    pub languages: String,
    /// The IANA timezone the scanned pages see.
    pub timezone: String,
    /// When compliance scans run (cron, UTC); absent: only when asked for.
    pub compliance_schedule: Option<String>,
    /// Whether compliance scans include the Global Privacy Control visit.
    pub compliance_gpc: bool,
    /// `page`: one page is scanned; `site`: the site is crawled from this URL.
    pub kind: String,
    /// A site target's crawl rules.
    #[schemars(with = "Option<serde_json::Value>")]
    pub crawl_rules: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
}

impl Target {
    pub fn values(&self) -> TargetValues {
        TargetValues {
            name: self.name.clone(),
            url: self.url.clone(),
            viewport_width: self.viewport_width,
            viewport_height: self.viewport_height,
            consent_mode: self.consent_mode.clone(),
            capture_policy_pages: self.capture_policy_pages,
            wait_ms: self.wait_ms,
            dwell_ms: self.dwell_ms,
            device: self.device.clone(),
            languages: self.languages.clone(),
            timezone: self.timezone.clone(),
            schedule: self.schedule.clone(),
            compliance_schedule: self.compliance_schedule.clone(),
            compliance_gpc: self.compliance_gpc,
            enabled: self.enabled,
            page_kind: self.page_kind.clone(),
            visual_threshold: self.visual_threshold,
            ignore_selectors: self.selectors(),
            ignore_regions: self.regions(),
            crawl_rules: self.rules(),
        }
    }

    /// A site target's crawl rules; `None` for a page target.
    pub fn rules(&self) -> Option<scanner::crawl::CrawlRules> {
        self.crawl_rules
            .as_ref()
            .and_then(crate::crawls::progress::rules_of)
    }

    pub fn is_site(&self) -> bool {
        self.kind == "site"
    }

    /// The selectors left out of the page-text diff.
    pub fn selectors(&self) -> Vec<String> {
        serde_json::from_value(self.ignore_selectors.clone()).unwrap_or_default()
    }

    /// The rectangles left out of visual diffs.
    pub fn regions(&self) -> Vec<crate::diff::Rect> {
        serde_json::from_value(self.ignore_regions.clone()).unwrap_or_default()
    }

    /// When the schedule fires next (UTC, RFC 3339), if it is enabled and has one.
    pub fn next_run(&self) -> Option<String> {
        Self::next_of(self.enabled, self.schedule.as_deref())
    }

    /// When the compliance schedule fires next, if it is enabled and has one.
    pub fn next_compliance_run(&self) -> Option<String> {
        Self::next_of(self.enabled, self.compliance_schedule.as_deref())
    }

    fn next_of(enabled: bool, schedule: Option<&str>) -> Option<String> {
        if !enabled {
            return None;
        }
        schedule::next_run(schedule?, chrono::Utc::now())
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
    }
}

pub async fn list_clients(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    page: PageRequest,
) -> QueryResult<Vec<Client>> {
    let mut query = clients::table
        .filter(clients::org_id.eq(ctx.org_id))
        .order(clients::id.desc())
        .limit(page.limit + 1)
        .select(Client::as_select())
        .into_boxed();
    if let Some(before) = page.before_id {
        query = query.filter(clients::id.lt(before));
    }
    query.load(conn).await
}

pub async fn client(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Client> {
    clients::table
        .filter(clients::org_id.eq(ctx.org_id))
        .filter(clients::id.eq(id))
        .select(Client::as_select())
        .first(conn)
        .await
}

pub async fn insert_client(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    fields: &ClientFields,
) -> QueryResult<Client> {
    diesel::insert_into(clients::table)
        .values((
            clients::org_id.eq(ctx.org_id),
            clients::name.eq(&fields.name),
            clients::notes.eq(&fields.notes),
            clients::contact_name.eq(&fields.contact_name),
            clients::contact_email.eq(&fields.contact_email),
            clients::report_schedule.eq(fields.schedule()),
            clients::report_attach_pdf.eq(fields.report_attach_pdf),
        ))
        .returning(Client::as_returning())
        .get_result(conn)
        .await
}

pub async fn update_client(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
    fields: &ClientFields,
) -> QueryResult<Client> {
    diesel::update(
        clients::table
            .filter(clients::org_id.eq(ctx.org_id))
            .filter(clients::id.eq(id)),
    )
    .set((
        clients::name.eq(&fields.name),
        clients::notes.eq(&fields.notes),
        clients::contact_name.eq(&fields.contact_name),
        clients::contact_email.eq(&fields.contact_email),
        clients::report_schedule.eq(fields.schedule()),
        clients::report_attach_pdf.eq(fields.report_attach_pdf),
        clients::updated_at.eq(OffsetDateTime::now_utc()),
    ))
    .returning(Client::as_returning())
    .get_result(conn)
    .await
}

/// Deletes a client and (by cascade) its targets; returns the client's name.
pub async fn delete_client(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<String> {
    diesel::delete(
        clients::table
            .filter(clients::org_id.eq(ctx.org_id))
            .filter(clients::id.eq(id)),
    )
    .returning(clients::name)
    .get_result(conn)
    .await
}

pub async fn list_targets(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    client_id: Option<i64>,
    page: PageRequest,
) -> QueryResult<Vec<Target>> {
    let mut query = targets::table
        .filter(targets::org_id.eq(ctx.org_id))
        .order(targets::id.desc())
        .limit(page.limit + 1)
        .select(Target::as_select())
        .into_boxed();
    if let Some(client_id) = client_id {
        query = query.filter(targets::client_id.eq(client_id));
    }
    if let Some(before) = page.before_id {
        query = query.filter(targets::id.lt(before));
    }
    query.load(conn).await
}

pub async fn target(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Target> {
    targets::table
        .filter(targets::org_id.eq(ctx.org_id))
        .filter(targets::id.eq(id))
        .select(Target::as_select())
        .first(conn)
        .await
}

/// A target and its org for the scheduler (no caller scope: the scheduler acts for every org),
/// locked for the rest of the transaction; `None` if it is gone or another transaction holds it.
pub async fn target_for_scheduler(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> QueryResult<Option<(i64, Target)>> {
    targets::table
        .filter(targets::id.eq(id))
        .select((targets::org_id, Target::as_select()))
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()
}

pub async fn insert_target(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    client_id: i64,
    v: &TargetValues,
) -> QueryResult<Target> {
    diesel::insert_into(targets::table)
        .values((
            targets::org_id.eq(ctx.org_id),
            targets::client_id.eq(client_id),
            targets::name.eq(&v.name),
            targets::url.eq(&v.url),
            targets::viewport_width.eq(v.viewport_width),
            targets::viewport_height.eq(v.viewport_height),
            targets::consent_mode.eq(&v.consent_mode),
            targets::capture_policy_pages.eq(v.capture_policy_pages),
            targets::wait_ms.eq(v.wait_ms),
            targets::dwell_ms.eq(v.dwell_ms),
            targets::device.eq(&v.device),
            targets::languages.eq(&v.languages),
            targets::timezone.eq(&v.timezone),
            targets::schedule.eq(&v.schedule),
            targets::compliance_schedule.eq(&v.compliance_schedule),
            targets::compliance_gpc.eq(v.compliance_gpc),
            targets::enabled.eq(v.enabled),
            targets::page_kind.eq(&v.page_kind),
            targets::visual_threshold.eq(v.visual_threshold),
            targets::ignore_selectors
                .eq(serde_json::to_value(&v.ignore_selectors).unwrap_or_default()),
            targets::ignore_regions.eq(serde_json::to_value(&v.ignore_regions).unwrap_or_default()),
            targets::kind.eq(if v.crawl_rules.is_some() {
                "site"
            } else {
                "page"
            }),
            targets::crawl_rules.eq(v
                .crawl_rules
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok())),
        ))
        .returning(Target::as_returning())
        .get_result(conn)
        .await
}

pub async fn update_target(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
    v: &TargetValues,
) -> QueryResult<Target> {
    diesel::update(
        targets::table
            .filter(targets::org_id.eq(ctx.org_id))
            .filter(targets::id.eq(id)),
    )
    .set((
        targets::name.eq(&v.name),
        targets::url.eq(&v.url),
        targets::viewport_width.eq(v.viewport_width),
        targets::viewport_height.eq(v.viewport_height),
        targets::consent_mode.eq(&v.consent_mode),
        targets::capture_policy_pages.eq(v.capture_policy_pages),
        targets::wait_ms.eq(v.wait_ms),
        targets::dwell_ms.eq(v.dwell_ms),
        targets::device.eq(&v.device),
        targets::languages.eq(&v.languages),
        targets::timezone.eq(&v.timezone),
        targets::schedule.eq(&v.schedule),
        targets::compliance_schedule.eq(&v.compliance_schedule),
        targets::compliance_gpc.eq(v.compliance_gpc),
        targets::enabled.eq(v.enabled),
        targets::page_kind.eq(&v.page_kind),
        targets::visual_threshold.eq(v.visual_threshold),
        targets::ignore_selectors.eq(serde_json::to_value(&v.ignore_selectors).unwrap_or_default()),
        targets::ignore_regions.eq(serde_json::to_value(&v.ignore_regions).unwrap_or_default()),
        targets::kind.eq(if v.crawl_rules.is_some() {
            "site"
        } else {
            "page"
        }),
        targets::crawl_rules.eq(v
            .crawl_rules
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())),
        targets::updated_at.eq(OffsetDateTime::now_utc()),
    ))
    .returning(Target::as_returning())
    .get_result(conn)
    .await
}

pub async fn delete_target(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<Target> {
    diesel::delete(
        targets::table
            .filter(targets::org_id.eq(ctx.org_id))
            .filter(targets::id.eq(id)),
    )
    .returning(Target::as_returning())
    .get_result(conn)
    .await
}
