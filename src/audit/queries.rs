use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::chain::AuditRow;
use crate::auth::OrgCtx;
use crate::db::schema::audit_log;
use crate::web::pagination::PageRequest;

/// The organization's audit entries, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    page: PageRequest,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table
        .filter(audit_log::org_id.eq(ctx.org_id))
        .order(audit_log::id.desc())
        .limit(page.limit + 1)
        .select(AuditRow::as_select())
        .into_boxed();
    if let Some(before) = page.before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    query.load(conn).await
}
