//! An organization's branding in PostgreSQL.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::db::schema::orgs;

/// What reports show of the agency.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Branding {
    /// The name clients read; the organization's name when not set.
    pub name: String,
    /// `#rrggbb`; the default accent when not set.
    pub color: Option<String>,
    /// `image/png` or `image/svg+xml` when a logo is set.
    pub logo_type: Option<String>,
    #[serde(skip)]
    #[schemars(skip)]
    pub logo: Option<Vec<u8>>,
}

impl Branding {
    /// The logo as a `data:` URI, for self-contained documents.
    pub fn logo_data_uri(&self) -> Option<String> {
        use base64::Engine;
        let (logo, kind) = (self.logo.as_ref()?, self.logo_type.as_ref()?);
        Some(format!(
            "data:{kind};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(logo)
        ))
    }
}

/// The branding columns as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = orgs)]
struct Stored {
    name: String,
    brand_name: Option<String>,
    brand_color: Option<String>,
    logo: Option<Vec<u8>>,
    logo_type: Option<String>,
}

pub async fn branding(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<Branding> {
    let stored: Stored = orgs::table
        .find(org_id)
        .select(Stored::as_select())
        .first(conn)
        .await?;
    Ok(Branding {
        name: stored.brand_name.unwrap_or(stored.name),
        color: stored.brand_color,
        logo_type: stored.logo_type,
        logo: stored.logo,
    })
}

pub async fn set_name_and_color(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    name: Option<&str>,
    color: Option<&str>,
) -> QueryResult<()> {
    diesel::update(orgs::table.find(org_id))
        .set((orgs::brand_name.eq(name), orgs::brand_color.eq(color)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets (or with `None`, removes) the logo.
pub async fn set_logo(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    logo: Option<(&[u8], &str)>,
) -> QueryResult<()> {
    diesel::update(orgs::table.find(org_id))
        .set((
            orgs::logo.eq(logo.map(|(bytes, _)| bytes)),
            orgs::logo_type.eq(logo.map(|(_, kind)| kind)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
