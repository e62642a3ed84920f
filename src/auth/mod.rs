//! Who is calling: accounts, passwords, sessions, two-factor sign-in, password reset, and the
//! extractors that turn a request into an organization-scoped caller (`OrgCtx`).

mod extract;
pub mod password;
pub mod queries;
pub mod routes;
pub mod session;
pub mod totp;
mod views;

use serde::{Deserialize, Serialize};

use crate::web::AppError;

pub use extract::{ApiCtx, KeyCache, PageCtx, Viewer};

/// The signed-in person behind a request, if any (for pages anyone may open).
pub async fn extract_viewer(req: &actix_web::HttpRequest) -> Result<Viewer, crate::web::AppError> {
    extract::load_viewer(req, session::STAGE_ACTIVE).await
}

/// Roles in an organization, weakest first (the order is used for "at least").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the organization and acknowledges alerts.
    Member,
    /// Also manages clients, targets, monitors, alerts, reports, checkout tests and API keys.
    Admin,
    /// Also manages members, ownership and the organization itself. Exactly one per org.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// Who acts: a person signed in, or an API key.
#[derive(Debug, Clone)]
pub enum Actor {
    User { id: i64, email: String },
    Key { id: i64, name: String },
}

impl Actor {
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::Key { .. } => None,
        }
    }

    pub fn key_id(&self) -> Option<i64> {
        match self {
            Actor::Key { id, .. } => Some(*id),
            Actor::User { .. } => None,
        }
    }

    /// How the audit log names the actor.
    pub fn label(&self) -> String {
        match self {
            Actor::User { email, .. } => email.clone(),
            Actor::Key { name, .. } => format!("API key “{name}”"),
        }
    }
}

/// The caller within one organization. Handlers learn who is calling only through this, and
/// every tenant query takes it, so an unscoped query does not type-check by accident.
#[derive(Debug, Clone)]
pub struct OrgCtx {
    pub org_id: i64,
    pub role: Role,
    pub actor: Actor,
    /// The caller's address, for the audit log.
    pub ip: String,
}

impl OrgCtx {
    /// Refuses the request unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(match role {
                Role::Owner => "only the organization's owner may do this",
                Role::Admin => "only admins and the owner may do this",
                Role::Member => "only members may do this",
            }))
        }
    }
}
