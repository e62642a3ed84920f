//! Pages of the sign-in, sign-up, reset and account-settings flows.

use askama::Template;

use crate::layout::Nav;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "auth/sign_in.html")]
pub struct SignInPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub email: String,
    pub notice: Option<&'static str>,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "auth/two_factor.html")]
pub struct TwoFactorPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub errors: FieldErrors,
}

/// What the sign-up page offers.
pub enum SignUpMode {
    /// The very first account: it creates the instance's first organization.
    FirstUser,
    /// Joining an organization by invitation.
    Invited {
        token: String,
        email: String,
        org_name: String,
    },
}

#[derive(Template)]
#[template(path = "auth/sign_up.html")]
pub struct SignUpPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub mode: SignUpMode,
    pub name: String,
    pub email: String,
    pub org_name: String,
    pub errors: FieldErrors,
}

/// A page that only says something, with an optional link onwards.
#[derive(Template)]
#[template(path = "notice.html")]
pub struct NoticePage {
    pub nav: Option<Nav>,
    pub title: &'static str,
    pub message: String,
    pub link: Option<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "auth/reset_request.html")]
pub struct ResetRequestPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub email: String,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "auth/reset_confirm.html")]
pub struct ResetConfirmPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub token: String,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "auth/settings.html")]
pub struct SettingsPage {
    pub nav: Option<Nav>,
    pub two_factor: bool,
    pub recovery_codes_left: i64,
    pub org_name: String,
    pub errors: FieldErrors,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "auth/two_factor_setup.html")]
pub struct TwoFactorSetupPage {
    pub nav: Option<Nav>,
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "auth/recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub nav: Option<Nav>,
    pub codes: Vec<String>,
}
