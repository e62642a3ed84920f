//! `docs/snapshot.schema.json` documents the snapshot format; it must stay in step with the type.

mod support;

#[test]
fn committed_schema_is_generated_from_the_snapshot_type() {
    assert_eq!(
        support::committed_schema(),
        scanner::snapshot_schema(),
        "docs/snapshot.schema.json is stale: run `cargo run -- schema > docs/snapshot.schema.json`"
    );
}

#[test]
fn the_schema_rejects_a_snapshot_with_a_cookie_value() {
    // The schema is strict: a snapshot carrying a field we never write (like a cookie's value)
    // does not validate. This is what keeps consumers from relying on such data.
    let schema = support::committed_schema();
    let validator = jsonschema::validator_for(&schema).expect("compiles");
    let cookie = serde_json::json!({
        "name": "sid", "domain": "shop.test", "path": "/", "expires": null, "session": true,
        "secure": false, "http_only": true, "same_site": "lax", "party": "first",
        "set_by_host": null, "set_by": null, "value_size": 6
    });
    let cookie_schema =
        serde_json::json!({"$ref": "#/$defs/Cookie", "$defs": schema["$defs"].clone()});
    let cookie_validator = jsonschema::validator_for(&cookie_schema).expect("compiles");
    assert!(cookie_validator.is_valid(&cookie));
    let mut with_value = cookie.clone();
    with_value["value"] = serde_json::json!("secret");
    assert!(!cookie_validator.is_valid(&with_value));
    assert!(!validator.is_valid(&serde_json::json!({"format_version": 1})));
}
