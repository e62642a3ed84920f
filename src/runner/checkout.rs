//! A checkout job on the runner: the test is checked again, its secrets opened with the runner's
//! key just for this run (zeroized when it ends), and the journey run on the runner's browser.
//! Errors here mean the run could not take place; a failing step is a finished run.

use std::time::Duration;

use base64::Engine;
use checkout_runner::sealing::{host_binding, secret_place};
use checkout_runner::{RunOutput, RunSettings, Secrets};
use scanner::{Limits, ScanOptions};

use super::protocol::CheckoutOrder;
use super::work::Shared;

/// The pages a checkout reaches are captured after a shorter quiet period than scans wait for:
/// the journey has already spent time on each page, and the run has a budget. (Steps themselves
/// wait for no quiet period; the next step waits for what it needs.)
const QUIET_PERIOD: Duration = Duration::from_millis(250);

pub(super) async fn run(shared: &Shared, order: &CheckoutOrder) -> Result<RunOutput, String> {
    let plan = checkout_runner::parse(&order.script)
        .map_err(|problems| format!("the test does not parse: {problems}"))?;
    let base_url = url::Url::parse(&order.base_url)
        .map_err(|e| format!("the target's URL is invalid: {e}"))?;
    let secrets = open_secrets(shared, order, &plan, &base_url)?;
    let settings = RunSettings {
        base_url,
        capture_pages: true,
        options: shared.settings.classifiers.apply(ScanOptions {
            viewport_width: order.viewport_width,
            viewport_height: order.viewport_height,
            quiet_period: QUIET_PERIOD,
            egress: shared.settings.egress.clone(),
            limits: Limits::default(),
            ..ScanOptions::default()
        }),
    };
    let output = checkout_runner::run(&shared.scanner, &plan, &secrets, &settings).await;
    // The secrets are zeroized here, before anything is delivered.
    drop(secrets);
    output.map_err(|e| e.to_string())
}

/// Opens the secrets the plan fills in. Messages name secrets, never their values.
fn open_secrets(
    shared: &Shared,
    order: &CheckoutOrder,
    plan: &checkout_runner::Plan,
    base_url: &url::Url,
) -> Result<Secrets, String> {
    let mut secrets = Secrets::default();
    let wanted = plan.secret_names();
    if wanted.is_empty() {
        return Ok(secrets);
    }
    let keys = shared.settings.checkout_keys.as_ref().ok_or(
        "this runner has no checkout key (set SITEWARD_RUNNER_KEY_FILE to the file `siteward admin runner-keys` wrote), so it cannot open the test's secrets",
    )?;
    // Secrets open only for the hosts they were entered for.
    let hosts = host_binding(&checkout_runner::run::allowed_hosts(plan, base_url));
    for sealed in order
        .secrets
        .iter()
        .filter(|s| wanted.contains(&s.name.as_str()))
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&sealed.sealed)
            .map_err(|_| format!("the sealed secret {:?} is not base64", sealed.name))?;
        let value = keys
            .open(&secret_place(order.test_id, &sealed.name, &hosts), &bytes)
            .map_err(|e| {
                format!(
                    "cannot open the secret {:?}: {e} (a secret opens only for the test, name and allowed hosts it was entered for: {hosts}); enter it again",
                    sealed.name
                )
            })?;
        secrets.insert(sealed.name.clone(), value);
    }
    Ok(secrets)
}
