use askama::Template;

use super::queries::{CheckoutTest, Run, RunPage, RunStep, TestSummary};
use super::routes::{TestBody, TestForm};
use crate::layout::Nav;
use crate::sites::queries::Target;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "checkouts/tests.html")]
pub struct TestsPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub checkout_tests: Vec<TestSummary>,
}

/// The editor for a new test.
#[derive(Template)]
#[template(path = "checkouts/test_form.html")]
pub struct TestFormPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub test_id: Option<i64>,
    pub form: TestForm,
    pub errors: FieldErrors,
}

/// An existing test: its editor, its secrets (names only) and its runs.
#[derive(Template)]
#[template(path = "checkouts/test.html")]
pub struct TestPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub body: TestBody,
    pub form: TestForm,
    pub runs: Vec<Run>,
    pub errors: FieldErrors,
}

impl TestPage {
    pub fn script_problems(&self) -> Vec<&str> {
        self.errors
            .0
            .iter()
            .filter(|e| e.field == "script")
            .map(|e| e.message.as_str())
            .collect()
    }
}

impl TestFormPage {
    pub fn script_problems(&self) -> Vec<&str> {
        self.errors
            .0
            .iter()
            .filter(|e| e.field == "script")
            .map(|e| e.message.as_str())
            .collect()
    }
}

#[derive(Template)]
#[template(path = "checkouts/run.html")]
pub struct RunPageView {
    pub nav: Option<Nav>,
    pub test: CheckoutTest,
    pub run: Run,
    pub steps: Vec<StepView>,
    pub pages: Vec<PageView>,
}

/// A step as the run view shows it.
pub struct StepView {
    pub step: RunStep,
    pub error: Option<String>,
    /// The page's script failing: uncaught exceptions and `console.error`.
    pub script_errors: Vec<String>,
    /// The browser's own error messages (a failed load, a blocked resource).
    pub browser_messages: Vec<String>,
    pub failed_requests: Vec<String>,
    pub page_says: Vec<String>,
    pub refused_requests: Vec<String>,
}

impl From<RunStep> for StepView {
    fn from(step: RunStep) -> StepView {
        let error = step.error.clone().map(|e| {
            serde_json::from_value::<checkout_runner::StepError>(e)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| "the step failed".into())
        });
        let (script_errors, browser_messages): (Vec<_>, Vec<_>) =
            serde_json::from_value::<Vec<checkout_runner::report::PageError>>(
                step.console_errors.clone(),
            )
            .unwrap_or_default()
            .into_iter()
            .partition(|e| checkout_runner::is_script_error(&e.kind));
        let messages = |errors: Vec<checkout_runner::report::PageError>| {
            errors.into_iter().map(|e| e.message).collect()
        };
        let failed_requests =
            serde_json::from_value::<Vec<checkout_runner::report::FailedRequest>>(
                step.failed_requests.clone(),
            )
            .unwrap_or_default()
            .into_iter()
            .map(|r| match (r.status, r.failure) {
                (Some(status), _) => format!("{status} {}", r.url),
                (None, Some(failure)) => format!("{} ({failure})", r.url),
                (None, None) => r.url,
            })
            .collect();
        let strings = |value: &serde_json::Value| {
            serde_json::from_value::<Vec<String>>(value.clone()).unwrap_or_default()
        };
        StepView {
            page_says: strings(&step.page_says),
            refused_requests: strings(&step.refused_requests),
            step,
            error,
            script_errors: messages(script_errors),
            browser_messages: messages(browser_messages),
            failed_requests,
        }
    }
}

/// A page the run reached, with what changed since the previous run.
pub struct PageView {
    pub page: RunPage,
    /// `None` until compared.
    pub changes: Option<Vec<String>>,
}

impl From<RunPage> for PageView {
    fn from(page: RunPage) -> PageView {
        let changes = page.changes.clone().map(|c| {
            serde_json::from_value::<Vec<crate::diff::Change>>(c)
                .unwrap_or_default()
                .iter()
                .map(crate::diff::Change::sentence)
                .collect()
        });
        PageView { page, changes }
    }
}
