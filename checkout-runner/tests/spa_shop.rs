//! Checkout runs on a single-page shop built with React and React Router (from the npm
//! registry): routes changed through the History API are followed, card fields in the payment
//! provider's cross-origin iframe and its 3-D Secure challenge are reached, failures carry what
//! the page says, and no card value shows anywhere.

mod support;

use checkout_runner::{Outcome, StepError, StepStatus};
use fixture_sites::spa_shop::{self, SECRETS, TOTAL, steps};
use support::{Harness, assert_no_secret_in, magenta_pixels, pixels_near, sealed};

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
        // The field drops what is typed: the run fails at that `fill`, not at a later wait.
        (
            "problem_user",
            steps::FILL_LAST_NAME,
            "Error: Last Name is required",
        ),
    ];
    for (user, step, said) in cases {
        let out = h.run(&spa_shop::journey(user), &secrets).await;
        let report = &out.report;
        assert_eq!(report.outcome, Outcome::Failed, "{user}");
        let failure = report.failure.as_ref().expect("a failure");
        assert_eq!(failure.step, step, "{user}: {}", failure.summary);
        let expected_error = match user {
            "problem_user" => matches!(
                &failure.error,
                StepError::ValueNotKept { found, .. } if found.is_empty()
            ),
            _ => matches!(failure.error, StepError::WaitTimedOut { .. }),
        };
        assert!(expected_error, "{user}: {:?}", failure.error);
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

/// The start of a journey as `standard_user`, up to the product list, with role selectors.
const LOGGED_IN: &str = r#"  - goto: /spa/
  - fill: { selector: 'role=textbox[name="Username"]', value: standard_user }
  - fill: { selector: 'role=textbox[name="Password"]', secret: password }
  - click: 'role=button[name="Login"]'
  - wait_for: { url: "/spa/inventory" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hover_menus_negative_checks_spinners_and_role_selectors_work() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let yaml = format!(
        r#"name: New steps
steps:
{LOGGED_IN}  - assert_not_visible: "text=Reset App State"
  - hover: 'role=button[name="Menu"]'
  - assert_visible: "text=Reset App State"
  - click: "test=add-to-cart-backpack"
  - wait_for: {{ hidden: "role=status" }}
  - assert_text: {{ selector: ".shopping_cart_badge", text: "1" }}
  - assert_no_text: "Failed to add"
  - assert_no_text: {{ selector: ".shopping_cart_badge", text: "2" }}
  - click: ".shopping_cart_link"
  - click: 'role=button[name="Checkout"]'
  - assert_url: "/spa/checkout/info"
  - stop
"#
    );
    let out = h.run(&yaml, &sealed(&SECRETS)).await;
    let report = &out.report;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let step = |n: usize| &report.steps[n - 1];
    assert_eq!(step(7).kind, "hover");
    assert_eq!(step(7).description, "hover over role=button[name=\"Menu\"]");
    assert_eq!(step(10).description, "wait for role=status to be hidden");
    assert!(step(15).url.ends_with("/spa/checkout/info"));

    // Each check fails when what it checks is not so, at its own step, with its own words.
    type IsExpected = fn(&StepError) -> bool;
    let cases: [(&str, IsExpected); 4] = [
        (
            "  - assert_not_visible: \"text=Swag Labs\"\n    timeout: 1s\n",
            |e| matches!(e, StepError::StillVisible { .. }),
        ),
        ("  - assert_no_text: \"Products\"\n    timeout: 1s\n", |e| {
            matches!(e, StepError::TextPresent { .. })
        }),
        (
            "  - wait_for: { hidden: \".inventory_item\" }\n    timeout: 1s\n",
            |e| matches!(e, StepError::WaitTimedOut { .. }),
        ),
        (
            "  - click: 'role=button[name=\"Place order\"]'\n    timeout: 1s\n",
            |e| matches!(e, StepError::SelectorNotFound { .. }),
        ),
    ];
    for (check, expected) in cases {
        let yaml = format!("name: A check that fails\nsteps:\n{LOGGED_IN}{check}  - stop\n");
        let out = h.run(&yaml, &sealed(&SECRETS)).await;
        let failure = out.report.failure.as_ref().expect("the check fails");
        assert_eq!(failure.step, 6, "{check}: {}", failure.summary);
        assert!(expected(&failure.error), "{check}: {:?}", failure.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_asks_for_it_fails_on_the_page_throwing() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let secrets = sealed(&SECRETS);
    // Without the setting the journey fails later, at the badge, and names the error.
    let badge = "text: \"2\" }\n";
    let yaml =
        spa_shop::journey("error_user").replacen(badge, &format!("{badge}    timeout: 2s\n"), 1);
    let out = h.run(&yaml, &secrets).await;
    let failure = out.report.failure.as_ref().expect("a failure");
    assert_eq!(failure.step, steps::ASSERT_BADGE, "{}", failure.summary);
    assert!(
        failure.summary.contains("JavaScript error")
            && failure
                .summary
                .contains("first: Uncaught Error: Failed to add item to the cart"),
        "{}",
        failure.summary
    );
    // With it, the click whose handler threw fails.
    let yaml = spa_shop::journey("error_user").replacen(
        "budget: 60s\n",
        "budget: 60s\nfail_on_console_errors: true\n",
        1,
    );
    let out = h.run(&yaml, &secrets).await;
    let failure = out.report.failure.as_ref().expect("a failure");
    assert_eq!(failure.step, steps::ADD_BIKE_LIGHT, "{}", failure.summary);
    let StepError::ConsoleError { message } = &failure.error else {
        panic!("{:?}", failure.error);
    };
    assert!(
        message.contains("Failed to add item to the cart"),
        "{message}"
    );
    // The standard user's journey, with the same setting, passes: refused requests' console
    // noise is the scan's own making, not the page's error.
    let yaml = spa_shop::journey("standard_user").replacen(
        "budget: 60s\n",
        "budget: 60s\nfail_on_console_errors: true\n",
        1,
    );
    let out = h.run(&yaml, &secrets).await;
    assert_eq!(
        out.report.outcome,
        Outcome::Passed,
        "{:?}",
        out.report.failure
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_screenshot_shows_the_element_that_was_checked() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    // The last product's button scrolls the page down, past the header with the logo.
    let yaml = format!(
        r#"name: Scrolled away
steps:
{LOGGED_IN}  - click: "test=add-to-cart-red-t-shirt"
  - assert_text: {{ selector: ".app_logo", text: "Swag Shop" }}
    timeout: 1s
  - stop
"#
    );
    let out = h.run(&yaml, &sealed(&SECRETS)).await;
    let failure = out.report.failure.as_ref().expect("the assertion fails");
    assert_eq!(failure.step, 7, "{}", failure.summary);
    let shot = |n: usize| {
        let name = format!("step-{n}.png");
        &out.screenshots
            .iter()
            .find(|(artifact, _)| *artifact == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
    };
    assert_eq!(
        pixels_near(shot(6), spa_shop::LOGO_RGB),
        0,
        "after the click the logo is off screen"
    );
    assert!(
        pixels_near(shot(7), spa_shop::LOGO_RGB) > 50,
        "the failure's screenshot shows the logo it checked"
    );
    let failed = &out.report.steps[6];
    let full = failed.screenshot.as_ref().expect("a screenshot");
    assert_eq!((full.width, full.height), (1366, 768), "full size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_whose_choice_the_page_puts_back_fails_at_the_select() {
    fixture_sites::packages::packages_dir();
    let h = Harness::start().await;
    let journey = |user: &str| {
        format!(
            r#"name: Country
steps:
  - goto: /spa/
  - fill: {{ selector: "test=username", value: "{user}" }}
  - fill: {{ selector: "test=password", secret: password }}
  - click: "test=login-button"
  - click: ".shopping_cart_link"
  - click: "test=checkout"
  - select: {{ selector: "test=country", option: Germany }}
  - stop
"#
        )
    };
    let secrets = sealed(&SECRETS);
    let out = h.run(&journey("standard_user"), &secrets).await;
    assert_eq!(
        out.report.outcome,
        Outcome::Passed,
        "{:?}",
        out.report.failure
    );
    let out = h.run(&journey("problem_user"), &secrets).await;
    let failure = out.report.failure.as_ref().expect("the select fails");
    assert_eq!(failure.step, 7, "{}", failure.summary);
    let StepError::OptionNotKept { option, found, .. } = &failure.error else {
        panic!("{:?}", failure.error);
    };
    assert_eq!(
        (option.as_str(), found.as_str()),
        ("Germany", "United States")
    );
}
