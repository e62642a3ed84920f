//! Checkout runs on a single-page shop built with React and React Router (from the npm
//! registry): routes changed through the History API are followed, card fields in the payment
//! provider's cross-origin iframe and its 3-D Secure challenge are reached, failures carry what
//! the page says, and no card value shows anywhere.

mod support;

use checkout_runner::{Outcome, StepError, StepStatus};
use fixture_sites::spa_shop::{self, SECRETS, TOTAL, steps};
use support::{Harness, assert_no_secret_in, magenta_pixels, sealed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_page_journey_passes_through_routes_and_payment_frames() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let out = h
        .run(&spa_shop::journey("standard_user"), &sealed(&SECRETS))
        .await;
    let report = &out.report;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    assert_eq!(report.stopped_at, Some(steps::STOP));
    assert_eq!(report.steps.len(), steps::COUNT);
    for step in &report.steps[..steps::STOP - 1] {
        assert_eq!(step.status, StepStatus::Passed, "step {}", step.number);
        // A step that waited out its 10 s timeout and passed anyway waited for the wrong thing
        // (a `load` that a route change never fires).
        assert!(
            step.duration_ms < 5_000,
            "step {} ({}) took {} ms",
            step.number,
            step.description,
            step.duration_ms
        );
        assert!(step.screenshot.is_some(), "step {}", step.number);
    }
    // The route is the page's URL: after login, on the cart, on the overview.
    assert!(
        report.steps[steps::WAIT_FOR_INVENTORY - 1]
            .url
            .ends_with("/spa/inventory")
    );
    assert!(
        report.steps[steps::ASSERT_CART_URL - 1]
            .url
            .ends_with("/spa/cart")
    );
    assert!(
        report.steps[steps::ASSERT_TOTAL - 1]
            .url
            .ends_with("/spa/checkout/overview")
    );
    assert!(
        report.steps[steps::ASSERT_TOTAL - 1]
            .description
            .contains(TOTAL)
    );

    // Routes reached are captured as pages, the payment route with its provider's frame.
    let urls: Vec<&str> = report.pages.iter().map(|p| p.url.as_str()).collect();
    for path in [
        "/spa/inventory",
        "/spa/cart",
        "/spa/checkout/payment",
        "/spa/checkout/overview",
    ] {
        assert!(
            urls.iter().any(|u| u.ends_with(path)),
            "{path} not captured: {urls:?}"
        );
    }

    // The card number and code typed into the provider's iframe show in no screenshot …
    assert!(!out.screenshots.is_empty());
    for (name, png) in &out.screenshots {
        assert_eq!(magenta_pixels(png), 0, "{name} shows the magenta card text");
    }
    for page in &out.pages {
        assert_eq!(magenta_pixels(&page.viewport_png), 0);
        assert_eq!(magenta_pixels(&page.full_page_png), 0);
    }
    // … and in no text of the report or of a captured page.
    assert_no_secret_in(
        "the report",
        &serde_json::to_string(report).expect("json"),
        &SECRETS,
    );
    for page in &out.pages {
        let json = serde_json::to_string(&page.snapshot).expect("json");
        assert_no_secret_in("a captured page", &json, &SECRETS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_magenta_check_sees_card_digits_typed_into_the_frame_without_a_secret() {
    // The control for the test above: typed as a literal, the number shows in the frame.
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let yaml = spa_shop::journey("standard_user")
        .replace("secret: card_number", "value: \"4000056655665556\"");
    let out = h.run(&yaml, &sealed(&SECRETS)).await;
    let shot = out
        .screenshots
        .iter()
        .find(|(name, _)| name == &format!("step-{}.png", steps::FILL_CARD))
        .expect("the card step's screenshot");
    assert!(
        magenta_pixels(&shot.1) > 50,
        "the literal card number is visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_the_page_says() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let secrets = sealed(&SECRETS);
    let cases = [
        (
            "locked_out_user",
            steps::WAIT_FOR_INVENTORY,
            "Epic sadface: Sorry, this user has been locked out.",
        ),
        (
            "problem_user",
            steps::WAIT_FOR_PAYMENT,
            "Error: Last Name is required",
        ),
    ];
    for (user, step, said) in cases {
        let out = h.run(&spa_shop::journey(user), &secrets).await;
        let report = &out.report;
        assert_eq!(report.outcome, Outcome::Failed, "{user}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.step, step, "{user}: {}", failure.summary);
        assert!(
            matches!(failure.error, StepError::WaitTimedOut { .. }),
            "{user}: {:?}",
            failure.error
        );
        assert_eq!(report.steps[step - 1].page_says, [said], "{user}");
        assert!(
            failure
                .summary
                .contains(&format!("the page says: \"{said}\"")),
            "{user}: {}",
            failure.summary
        );
        assert!(
            !failure.summary.contains("ERR_"),
            "{user}: {}",
            failure.summary
        );
        assert_no_secret_in(
            user,
            &serde_json::to_string(report).expect("json"),
            &SECRETS,
        );
    }
}
