//! Checkout runs on the demo shop in real Chromium: the journey passes and stops where it should,
//! each broken variant fails at the right step for the right reason, and secrets never show.

mod support;

use checkout_runner::{Outcome, RunOutput, Secrets, StepError, StepStatus};
use fixture_sites::demo_shop::{self, DEMO_SECRETS, steps};
use support::{Harness, magenta_pixels, sealed};

/// The demo secrets, sealed and opened as a runner would.
fn demo_secrets() -> Secrets {
    sealed(&DEMO_SECRETS)
}

fn assert_no_secret_in(label: &str, text: &str) {
    support::assert_no_secret_in(label, text, &DEMO_SECRETS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_journey_passes_and_stops_before_paying_without_showing_a_secret() {
    let h = Harness::start().await;
    let out = h.run(&demo_shop::journey("ok"), &demo_secrets()).await;
    let report = &out.report;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    assert_eq!(report.stopped_at, Some(steps::STOP));
    assert_eq!(report.steps.len(), steps::COUNT);
    for step in &report.steps[..steps::STOP - 1] {
        assert_eq!(step.status, StepStatus::Passed, "step {}", step.number);
        let shot = step
            .screenshot
            .as_ref()
            .expect("every step run has a screenshot");
        assert!(shot.width > 0 && shot.height > 0);
        assert!(
            step.screenshot_ms > 0 && step.screenshot_ms <= step.duration_ms,
            "step {}: the screenshot's {} ms are part of the step's {} ms",
            step.number,
            step.screenshot_ms,
            step.duration_ms
        );
    }
    assert_eq!(
        report.steps[steps::STOP].status,
        StepStatus::Skipped,
        "nothing runs after stop"
    );
    assert!(
        report.steps[steps::WAIT_FOR_REVIEW - 1]
            .url
            .ends_with("/demo/ok/checkout/review")
    );

    // Every page reached was captured as a scan, the payment page with its CDN script.
    let urls: Vec<&str> = report.pages.iter().map(|p| p.url.as_str()).collect();
    for path in [
        "/demo/ok/",
        "/demo/ok/cart",
        "/checkout/shipping",
        "/checkout/payment",
        "/checkout/review",
    ] {
        assert!(
            urls.iter().any(|u| u.ends_with(path)),
            "{path} not captured: {urls:?}"
        );
    }
    let payment = report
        .pages
        .iter()
        .position(|p| p.url.ends_with("/checkout/payment"))
        .expect("payment");
    let scripts = &out.pages[payment].snapshot.scripts;
    assert!(
        scripts.iter().any(|s| matches!(s, scanner::snapshot::Script::External { url, .. } if url.ends_with("/versioned.js"))),
        "the payment page's script is in its capture"
    );

    // No screenshot shows the card number or CVC (both typed in magenta) …
    assert!(!out.screenshots.is_empty());
    for (name, png) in &out.screenshots {
        assert_eq!(
            magenta_pixels(png),
            0,
            "{name} shows the magenta secret text"
        );
    }
    for page in &out.pages {
        assert_eq!(magenta_pixels(&page.viewport_png), 0);
        assert_eq!(magenta_pixels(&page.full_page_png), 0);
    }
    // … and no text of the report or of a captured page holds a secret, though the review page
    // echoes the street.
    assert_no_secret_in("the report", &serde_json::to_string(report).expect("json"));
    for page in &out.pages {
        assert_no_secret_in(
            "a captured page",
            &serde_json::to_string(&page.snapshot).expect("json"),
        );
    }
    let review = report
        .pages
        .iter()
        .position(|p| p.url.ends_with("/checkout/review"))
        .expect("review");
    assert!(
        out.pages[review]
            .snapshot
            .dom
            .html
            .contains("\u{2022}\u{2022}\u{2022}\u{2022}"),
        "the echoed street is masked on the page before capture"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_magenta_check_sees_a_card_number_typed_without_a_secret() {
    // The control for the test above: typed as a literal value, the number shows in magenta.
    let h = Harness::start().await;
    let yaml = "steps:
  - goto: /demo/ok/checkout/payment
  - fill: { selector: '#card-number', value: '4242424242424242' }
";
    let out = h.run(yaml, &Secrets::default()).await;
    assert_eq!(
        out.report.outcome,
        Outcome::Passed,
        "{:?}",
        out.report.failure
    );
    let (_, last) = out.screenshots.last().expect("a screenshot");
    assert!(magenta_pixels(last) > 50, "an unmasked number is visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_see_secrets_redacted_so_they_cannot_probe_them() {
    // An assertion written to find out a secret's characters fails whether or not it guessed
    // right, and its error never shows the value: on the field it was typed into, and on the
    // review page that echoes the street.
    let h = Harness::start().await;
    let until_step = |last: usize| {
        let mut kept = String::new();
        let mut started = 0;
        for line in demo_shop::journey("ok").lines() {
            if line.starts_with("  - ") {
                started += 1;
            }
            if started > last {
                break;
            }
            kept.push_str(line);
            kept.push('\n');
        }
        kept
    };
    let fill_card = steps::WAIT_FOR_PAYMENT + 1;
    for (last, probe, shown) in [
        (fill_card, "{ selector: '#card-number', text: '4242' }", ""),
        (
            steps::WAIT_FOR_REVIEW,
            "{ selector: '#ship-to', text: 'Hidden Lane' }",
            "Quinn Tester",
        ),
    ] {
        let yaml = format!(
            "{}  - assert_text: {probe}\n    timeout: 1s\n",
            until_step(last)
        );
        let out = h.run(&yaml, &demo_secrets()).await;
        let failure = out.report.failure.as_ref().expect("the probe fails");
        assert_eq!(failure.step, last + 1, "{failure:?}");
        match &failure.error {
            StepError::TextMismatch { found, .. } => {
                // The element was read, the secret not shown.
                assert!(found.contains(shown), "{found}");
                assert!(
                    !found.contains("4242") && !found.contains("Hidden"),
                    "{found}"
                );
            }
            other => panic!("expected a text mismatch, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_echoed_in_shadow_roots_are_masked_and_split_ones_stop_the_screenshot() {
    let h = Harness::start().await;
    let journey = |query: &str, value: &str| {
        format!(
            "steps:\n  - goto: /demo/ok/gift-card{query}\n  - fill: {{ selector: '#gift-code', {value} }}\n"
        )
    };
    let fill_shot = |out: &RunOutput| {
        assert_eq!(
            out.report.outcome,
            Outcome::Passed,
            "{:?}",
            out.report.failure
        );
        out.report.steps[1].screenshot.as_ref().map(|shot| {
            let (_, png) = out
                .screenshots
                .iter()
                .find(|(name, _)| *name == shot.artifact)
                .expect("the screenshot is in the output");
            magenta_pixels(png)
        })
    };
    // The control: typed as a literal, the preview shows in magenta.
    let (_, coupon) = DEMO_SECRETS[3];
    let plain = h
        .run(
            &journey("", &format!("value: '{coupon}'")),
            &Secrets::default(),
        )
        .await;
    let unmasked = fill_shot(&plain).expect("a screenshot");
    assert!(
        unmasked > 200,
        "the preview shows: {unmasked} magenta pixels"
    );

    // From a secret: the preview inside the shadow root is masked (four bullets are left).
    let shadow = h.run(&journey("", "secret: coupon"), &demo_secrets()).await;
    let masked = fill_shot(&shadow).expect("a screenshot once masked");
    assert!(
        masked * 4 < unmasked,
        "masked {masked} vs unmasked {unmasked} magenta pixels"
    );

    // Split across two elements, no text node holds it whole: the rendered text still shows it,
    // so no screenshot is taken for that step.
    let split = h
        .run(&journey("?split", "secret: coupon"), &demo_secrets())
        .await;
    assert_eq!(
        fill_shot(&split),
        None,
        "no screenshot while a secret shows"
    );
    assert!(
        split
            .screenshots
            .iter()
            .all(|(_, png)| magenta_pixels(png) == 0),
        "no screenshot of the run shows the split secret"
    );
}

/// Whether a step's error is the one expected.
type ErrorCheck = dyn Fn(&StepError) -> bool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_shop_fails_at_the_right_step_for_the_right_reason() {
    let h = Harness::start().await;
    let secrets = demo_secrets();
    let cases: [(&str, usize, &ErrorCheck, &str); 6] = [
        (
            "missing-button",
            steps::CLICK_CHECKOUT,
            &|e| matches!(e, StepError::SelectorNotFound { selector } if selector == "test=checkout"),
            "no element matches test=checkout",
        ),
        (
            "price-change",
            steps::ASSERT_TOTAL,
            &|e| matches!(e, StepError::TextMismatch { expected, found, .. } if expected == "€ 25.00" && found == "€ 27.50"),
            "found \"€ 27.50\"",
        ),
        (
            "hang",
            steps::CLICK_TO_REVIEW,
            &|e| matches!(e, StepError::NavigationTimeout { url, .. } if url.ends_with("/checkout/payment")),
            "timed out",
        ),
        (
            "rejects-input",
            steps::WAIT_FOR_PAYMENT,
            &|e| matches!(e, StepError::WaitTimedOut { .. }),
            "waiting for the URL to match",
        ),
        (
            "js-error",
            steps::WAIT_FOR_REVIEW,
            &|e| matches!(e, StepError::WaitTimedOut { .. }),
            "validateCardNumber is not defined",
        ),
        (
            "offsite",
            steps::CLICK_CHECKOUT,
            &|e| matches!(e, StepError::NavigationRefused { url } if url.contains("ads.test")),
            "not in allowed_hosts",
        ),
    ];
    for (variant, step, expected, summary_part) in cases {
        let out = h.run(&demo_shop::journey(variant), &secrets).await;
        let report = &out.report;
        assert_eq!(report.outcome, Outcome::Failed, "{variant}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.step, step, "{variant}: {}", failure.summary);
        assert!(expected(&failure.error), "{variant}: {:?}", failure.error);
        assert!(
            failure.summary.contains(summary_part),
            "{variant}: {}",
            failure.summary
        );
        let failed = &report.steps[step - 1];
        assert_eq!(failed.status, StepStatus::Failed);
        assert!(
            failed.screenshot.is_some(),
            "{variant}: the screenshot at the failure"
        );
        assert!(
            report.steps[step..]
                .iter()
                .all(|s| s.status == StepStatus::Skipped)
        );
        assert_no_secret_in(variant, &serde_json::to_string(report).expect("json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_and_an_exhausted_budget_fail_clearly() {
    let h = Harness::start().await;
    let out = h.run(&demo_shop::journey("ok"), &Secrets::default()).await;
    let failure = out.report.failure.expect("fails");
    assert_eq!(failure.step, 9);
    assert_eq!(
        failure.error,
        StepError::MissingSecret {
            name: "street".into()
        }
    );

    let yaml = "budget: 2s
steps:
  - goto: /demo/hang/checkout/payment
  - click: test=to-review
    timeout: 10s
  - stop
";
    let started = std::time::Instant::now();
    let out = h.run(yaml, &Secrets::default()).await;
    let failure = out.report.failure.expect("fails");
    assert_eq!(failure.step, 2);
    assert!(
        matches!(
            failure.error,
            StepError::BudgetExhausted { seconds: 2 } | StepError::NavigationTimeout { .. }
        ),
        "{:?}",
        failure.error
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the budget bounds the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_step_or_selector_kind_tells_a_right_guess_of_a_secret_from_a_wrong_one() {
    // The oracle of the security review: fill a secret, then write steps whose passing or
    // failing would depend on a guess. Every step kind and selector kind must answer a right
    // guess exactly as it answers a wrong one, in any letter case.
    let h = Harness::start().await;
    let secrets = demo_secrets();
    let (_, coupon) = DEMO_SECRETS[3];
    let wrong = coupon.replace("99", "98");
    let guesses = [
        (coupon.to_string(), wrong.clone()),
        (coupon.to_lowercase(), wrong.to_lowercase()),
    ];
    let probes = [
        "assert_count: { selector: \"text=GUESS\", count: 0 }",
        "assert_count: { selector: \"text=GUESS\", count: 1 }",
        "assert_visible: \"text=GUESS\"",
        "click: \"text=GUESS\"",
        "wait_for: { visible: \"text=GUESS\" }",
        "wait_for: { text: \"GUESS\" }",
        "assert_text: { selector: \"#gift-code\", text: \"GUESS\" }",
        "assert_count: { selector: \"#gift-code[value*='GUESS' i]\", count: 0 }",
        "assert_count: { selector: \"test=GUESS\", count: 0 }",
        "assert_not_visible: \"text=GUESS\"",
        "wait_for: { hidden: \"text=GUESS\" }",
        "assert_no_text: \"GUESS\"",
        "assert_no_text: { selector: \"#gift-code\", text: \"GUESS\" }",
        "hover: \"text=GUESS\"",
        "assert_count: { selector: 'role=textbox[name=\"GUESS\"]', count: 0 }",
        "assert_count: { selector: 'role=status[name=\"GUESS\"]', count: 0 }",
    ];
    let signature = |out: &RunOutput, guess: &str| {
        let failure = out.report.failure.as_ref().map(|failure| {
            // The step's own words come back as written; nothing else may show the secret.
            let text = failure.error.to_string().replace(guess, "GUESS");
            assert!(
                !text.to_lowercase().contains(&coupon.to_lowercase()),
                "{text}"
            );
            (failure.step, text)
        });
        format!("{:?} {failure:?}", out.report.outcome)
    };
    for probe in probes {
        for (right, wrong) in &guesses {
            let journey = |guess: &str| {
                format!(
                    "steps:\n  - goto: /demo/ok/gift-card\n  - fill: {{ selector: '#gift-code', secret: coupon }}\n  - {}\n    timeout: 600ms\n",
                    probe.replace("GUESS", guess)
                )
            };
            let with_right = h.run(&journey(right), &secrets).await;
            let with_wrong = h.run(&journey(wrong), &secrets).await;
            assert_eq!(
                signature(&with_right, right),
                signature(&with_wrong, wrong),
                "{probe} tells {right:?} from {wrong:?}"
            );
        }
    }
}
