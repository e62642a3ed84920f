use askama::Template;

use super::evidence::Evidence;
use super::queries::Rule;
use super::routes::{PaymentInventory, RuleForm};
use crate::layout::Nav;
use crate::sites::queries::Target;
use crate::web::FieldErrors;

/// A payment target's script inventory, decisions and CSP proposal.
#[derive(Template)]
#[template(path = "payment/target.html")]
pub struct PaymentPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub inventory: PaymentInventory,
    /// A decision form that was refused: the version and why.
    pub error: Option<(i64, FieldErrors)>,
}

impl PaymentPage {
    /// The refusal of the decision form of `version_id`, if that is the one refused.
    pub fn error_for(&self, version_id: &i64) -> Option<&str> {
        match &self.error {
            Some((id, errors)) if id == version_id => errors
                .get("justification")
                .or_else(|| errors.get("decision")),
            _ => None,
        }
    }
}

/// The organization's pre-authorization rules.
#[derive(Template)]
#[template(path = "payment/rules.html")]
pub struct RulesPage {
    pub nav: Option<Nav>,
    pub rules: Vec<Rule>,
    pub form: RuleForm,
    pub errors: FieldErrors,
}

/// The assessor's evidence for a client and period, printable.
#[derive(Template)]
#[template(path = "payment/evidence.html")]
pub struct EvidencePage {
    pub nav: Option<Nav>,
    pub evidence: Evidence,
    pub days: i64,
}
