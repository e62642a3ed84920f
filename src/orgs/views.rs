use askama::Template;

use super::queries::{InvitationRow, Member};
use crate::layout::Nav;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "orgs/list.html")]
pub struct OrgsPage {
    pub nav: Option<Nav>,
    pub name: String,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "orgs/members.html")]
pub struct MembersPage {
    pub nav: Option<Nav>,
    pub members: Vec<Member>,
    pub invitations: Vec<InvitationRow>,
    pub me: i64,
    pub invite_email: String,
    pub invite_role: String,
    /// The link of an invitation just made, shown once.
    pub new_link: Option<String>,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "orgs/accept.html")]
pub struct AcceptPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub token: String,
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub signed_in_as: Option<String>,
}
