use proptest::prelude::*;

use super::*;

const JOURNEY: &str = r##"
name: Guest checkout
allowed_hosts: [shop.test, "*.pay.test"]
timeout: 5s
budget: 90s
steps:
  - goto: /products
  - click: test=add-to-cart
  - click: "text=Checkout"
    timeout: 3s
  - fill: { selector: "#email", value: "qa@example.com" }
  - fill: { selector: "#card", secret: card_number }
  - select: { selector: "#country", option: Germany }
  - check: "#terms"
  - check: { selector: "#newsletter", checked: false }
  - press: Enter
  - press: { key: tab, selector: "#card" }
  - wait_for: { url: "/checkout/review*" }
  - wait_for: { visible: ".summary" }
  - wait_for: { text: Review your order }
  - assert_text: { selector: "#total", text: "42.00" }
  - assert_text: Review your order
  - assert_url: "*/checkout/review"
  - assert_visible: css=#place-order
  - assert_count: { selector: ".line-item", count: 2 }
  - screenshot: review
  - hover: 'role=button[name="Account"]'
  - assert_not_visible: "role=dialog"
  - assert_no_text: { selector: "#total", text: "0.00" }
  - wait_for: { hidden: ".spinner" }
  - name: before payment
    stop: do not place the order
  - click: "#place-order"
"##;

#[test]
fn a_full_journey_reads_into_a_plan() {
    let plan = parse(JOURNEY).expect("valid");
    assert_eq!(plan.name.as_deref(), Some("Guest checkout"));
    assert_eq!(plan.budget, Duration::from_secs(90));
    assert_eq!(plan.allowed_hosts.len(), 2);
    assert!(plan.allowed_hosts[1].matches("checkout.pay.test"));
    assert!(!plan.allowed_hosts[1].matches("pay.test.evil"));
    assert_eq!(plan.steps.len(), 25);
    assert!(!plan.fail_on_console_errors);
    let kinds: Vec<&str> = plan.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(&kinds[..3], ["goto", "click", "click"]);
    assert_eq!(plan.steps[1].timeout, Duration::from_secs(5));
    assert_eq!(plan.steps[2].timeout, Duration::from_secs(3));
    assert_eq!(plan.steps[2].line, 9);
    assert_eq!(
        plan.steps[2].action,
        Action::Click {
            target: Selector::text("Checkout")
        }
    );
    assert_eq!(
        plan.steps[4].action,
        Action::Fill {
            target: Selector::css("#card"),
            value: FillValue::Secret("card_number".into())
        }
    );
    assert_eq!(
        plan.steps[9].action,
        Action::Press {
            key: Key::Tab,
            target: Some(Selector::css("#card"))
        }
    );
    assert_eq!(
        plan.steps[19].action,
        Action::Hover {
            target: Selector::from(Element::Role {
                role: "button".into(),
                name: Some("Account".into())
            })
        }
    );
    assert_eq!(
        plan.steps[19].action.describe(),
        "hover over role=button[name=\"Account\"]"
    );
    assert_eq!(
        plan.steps[20].action,
        Action::AssertNotVisible {
            target: Selector::from(Element::Role {
                role: "dialog".into(),
                name: None
            })
        }
    );
    assert_eq!(
        plan.steps[21].action,
        Action::AssertNoText {
            target: Some(Selector::css("#total")),
            text: "0.00".into()
        }
    );
    assert_eq!(
        plan.steps[22].action,
        Action::WaitFor(Condition::Hidden(Selector::css(".spinner")))
    );
    assert_eq!(plan.steps[23].name.as_deref(), Some("before payment"));
    assert_eq!(plan.secret_names(), vec!["card_number"]);
    assert!(!plan.steps[4].action.describe().contains("4242"));
}

/// Parses `doc` and returns its one problem's position and message.
fn problem(doc: &str) -> (usize, usize, String) {
    let errors = parse(doc).expect_err("should be refused").0;
    let first = errors.first().expect("one problem");
    (first.line, first.column, first.message.clone())
}

#[test]
fn every_kind_of_mistake_is_reported_with_its_place() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("", 1, 1, "empty"),
        ("steps: [", 2, 1, "not valid YAML"),
        ("- goto: /", 1, 1, "must be a mapping"),
        ("name: x\n", 1, 1, "no `steps:`"),
        ("steps: /a\n", 1, 8, "must be a list"),
        ("steps: []\n", 1, 8, "is empty"),
        (
            "stepz: []\nsteps: [stop]\n",
            1,
            1,
            "unknown setting `stepz`",
        ),
        ("steps:\n  - clik: '#a'\n", 2, 5, "did you mean `click`"),
        (
            "steps:\n  - drag: '#a'\n",
            2,
            5,
            "unknown step `drag`; use one of",
        ),
        ("steps:\n  - hoverr: '#a'\n", 2, 5, "did you mean `hover`"),
        (
            "steps:\n  - click: 'role=buton'\n",
            2,
            12,
            "\"buton\" is not a role",
        ),
        (
            "steps:\n  - click: 'role=button[label=Buy]'\n",
            2,
            12,
            "must be [name=",
        ),
        (
            "steps:\n  - click: 'role=button[name=\"\"]'\n",
            2,
            12,
            "name is empty",
        ),
        (
            "steps:\n  - wait_for: {hidden: 'a[[['}\n",
            2,
            24,
            "not a valid CSS selector",
        ),
        (
            "fail_on_console_errors: yes\nsteps: [stop]\n",
            1,
            25,
            "true or false",
        ),
        (
            "steps:\n  - assert_no_text: {selector: a}\n",
            2,
            21,
            "needs `text`",
        ),
        ("steps:\n  - timeout: 1s\n", 2, 12, "has no action"),
        (
            "steps:\n  - click: '#a'\n    goto: /\n",
            3,
            5,
            "two actions",
        ),
        (
            "steps:\n  - click: 'a[[['\n",
            2,
            12,
            "not a valid CSS selector",
        ),
        ("steps:\n  - click: 'text='\n", 2, 12, "nothing after"),
        (
            "steps:\n  - click: {selector: a}\n",
            2,
            12,
            "must be some text",
        ),
        ("steps:\n  - goto: ftp://x/\n", 2, 11, "only http and https"),
        (
            "steps:\n  - goto: products\n",
            2,
            11,
            "neither a full URL nor a path",
        ),
        (
            "steps:\n  - fill: {selector: '#a'}\n",
            2,
            11,
            "needs `value` or `secret`",
        ),
        ("steps:\n  - fill: {value: x}\n", 2, 11, "needs `selector`"),
        (
            "steps:\n  - fill: {selector: a, value: x, secret: y}\n",
            2,
            43,
            "not both",
        ),
        (
            "steps:\n  - fill: {selector: a, secret: 'card number'}\n",
            2,
            33,
            "secret name",
        ),
        (
            "steps:\n  - fill: {selector: a, colour: red}\n",
            2,
            25,
            "has no field `colour`",
        ),
        (
            "steps:\n  - select: {selector: a}\n",
            2,
            13,
            "needs `option`",
        ),
        (
            "steps:\n  - check: {selector: a, checked: maybe}\n",
            2,
            35,
            "true or false",
        ),
        ("steps:\n  - press: F13\n", 2, 12, "unknown key"),
        (
            "steps:\n  - wait_for: {url: /a, text: b}\n",
            2,
            15,
            "exactly one",
        ),
        (
            "steps:\n  - assert_count: {selector: a, count: -1}\n",
            2,
            40,
            "whole number",
        ),
        (
            "steps:\n  - assert_text: {selector: a}\n",
            2,
            18,
            "needs `text`",
        ),
        (
            "steps:\n  - click: a\n    timeout: forever\n",
            3,
            14,
            "not a duration",
        ),
        (
            "steps:\n  - click: a\n    timeout: 0s\n",
            3,
            14,
            "more than zero",
        ),
        (
            "timeout: 10m\nsteps: [stop]\n",
            1,
            10,
            "longer than the most allowed",
        ),
        ("budget: 1h\nsteps: [stop]\n", 1, 9, "not a duration"),
        (
            "allowed_hosts: shop.test\nsteps: [stop]\n",
            1,
            16,
            "must be a list",
        ),
        (
            "allowed_hosts: ['http://x/']\nsteps: [stop]\n",
            1,
            17,
            "not a host name",
        ),
        ("steps:\n  - click: a\n    click: b\n", 3, 5, "given twice"),
        ("steps:\n  - &a {click: x}\n", 2, 8, "anchors"),
        (
            "steps: [stop]\n---\nsteps: [stop]\n",
            2,
            1,
            "one YAML document",
        ),
    ];
    let mut wrong = Vec::new();
    for (doc, line, column, needle) in cases {
        let (l, c, message) = problem(doc);
        if !message.contains(needle) || (l, c) != (*line, *column) {
            wrong.push(format!("{doc:?}: at {l}:{c}: {message}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let errors = parse("steps:\n  - clik: a\n  - press: F13\n  - goto: x\n")
        .expect_err("three problems")
        .0;
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4]);
    let joined = PlanErrors(errors).to_string();
    assert!(
        joined.starts_with("line 2, column 5: unknown step"),
        "{joined}"
    );
}

#[test]
fn too_long_a_document_is_refused_before_parsing() {
    let doc = format!("steps:\n{}", "  - click: '#a'\n".repeat(5_000));
    assert!(problem(&doc).2.contains("bytes long"));
    let many = format!("steps:\n{}", "  - stop\n".repeat(MAX_STEPS + 1));
    assert!(problem(&many).2.contains("at most 200"));
}

#[test]
fn url_patterns_and_durations() {
    let path = UrlPattern("/checkout/*".into());
    assert!(path.matches("https://shop.test/checkout/review?step=2"));
    assert!(!path.matches("https://shop.test/cart"));
    let full = UrlPattern("https://shop.test/*/done".into());
    assert!(full.matches("https://shop.test/order/7/done"));
    assert!(!full.matches("https://evil.test/order/7/done"));
    assert!(glob_matches("a*b*c", "aXXbYYc"));
    assert!(!glob_matches("a*b*c", "aXXbYY"));
    assert!(glob_matches(&"*".repeat(50), &"a".repeat(2_000)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("99999999999999999999s"), None);
    assert_eq!(parse_duration("1h"), None);
}

/// Fragments test documents are made of, to build and mutate plausible ones.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("steps:\n".to_owned()),
        Just("  - goto: /a\n".to_owned()),
        Just("  - click: '#b'\n".to_owned()),
        Just("  - fill: {selector: x, secret: card}\n".to_owned()),
        Just("    timeout: 3s\n".to_owned()),
        Just("  - wait_for: {url: '/c*'}\n".to_owned()),
        Just("  - stop\n".to_owned()),
        Just("allowed_hosts: [a.test]\n".to_owned()),
        Just("&x ".to_owned()),
        Just("*x\n".to_owned()),
        Just("[{".to_owned()),
        Just("}]\n".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("\t".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("---\n".to_owned()),
        Just("!!binary ".to_owned()),
        Just("? ".to_owned()),
        Just("|\n  ".to_owned()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text gives a plan or problems with real positions; never a panic or a hang.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_total(&text);
    }

    #[test]
    fn assembled_and_mutated_documents_never_panic(
        parts in proptest::collection::vec(fragment(), 0..40),
        cut in 0usize..2_000,
        flip in any::<u8>(),
    ) {
        let doc: String = parts.concat();
        check_total(&doc);
        // Cut at any character boundary, and with one byte changed.
        let at = doc.char_indices().map(|(i, _)| i).nth(cut % (doc.chars().count() + 1)).unwrap_or(doc.len());
        check_total(&doc[..at]);
        let mut bytes = doc.into_bytes();
        if let Some(b) = bytes.get_mut(cut % 64) {
            *b ^= flip;
        }
        check_total(&String::from_utf8_lossy(&bytes));
    }
}

fn check_total(text: &str) {
    match parse(text) {
        Ok(plan) => {
            assert!(!plan.steps.is_empty());
            assert!(
                plan.steps
                    .iter()
                    .all(|s| s.line >= 1 && !s.timeout.is_zero())
            );
        }
        Err(PlanErrors(problems)) => {
            assert!(!problems.is_empty());
            assert!(problems.len() <= MAX_PROBLEMS);
            for p in problems {
                assert!(p.line >= 1 && p.column >= 1 && !p.message.is_empty());
            }
        }
    }
}

#[test]
fn role_selectors_take_a_name_quoted_either_way_or_not_at_all() {
    for written in [
        r#"role=button[name="Place order"]"#,
        "role=button[name='Place order']",
        "role=BUTTON[ name = Place order ]",
    ] {
        let plan = parse(&format!(
            "steps:\n  - click: '{}'\n",
            written.replace('\'', "''")
        ))
        .unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(
            plan.steps[0].action,
            Action::Click {
                target: Selector::from(Element::Role {
                    role: "button".into(),
                    name: Some("Place order".into())
                })
            },
            "{written}"
        );
    }
    let plan = parse("steps:\n  - assert_visible: 'frame=#pay >> role=textbox'\n").unwrap();
    let target = plan.steps[0].action.target().unwrap();
    assert_eq!(target.frames.len(), 1);
    assert_eq!(target.to_string(), "frame=#pay >> role=textbox");
}
