//! Erasure of a person: their account goes, their keys stop working, and their name and email
//! are nowhere in the database (a `pg_dump` of it) while every audit chain still verifies. Audit
//! chains written before version 2 are re-chained so that this works for old entries too.

use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use siteward::audit::chain::{self, AuditRow};
use siteward::db::schema::audit_log;

use crate::support::*;

/// A data-only dump of the app's database.
fn dump(app: &TestApp) -> String {
    let output = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.database_url])
        .output()
        .expect("pg_dump runs (PostgreSQL's client tools are installed with the server)");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Signs up someone invited into the owner's organization with a name of their own.
async fn invited(app: &TestApp, owner: &Browser, email: &str, name: &str) -> Browser {
    let token = app.invite(owner, email, "admin").await;
    let mut browser = app.browser();
    let response = browser
        .post_form(
            "/sign-up",
            &[
                ("name", name),
                ("email", email),
                ("password", PASSWORD),
                ("invite", &token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    browser.email = email.to_string();
    browser
}

async fn execute(app: &TestApp, sql: &str) -> Result<usize, diesel::result::Error> {
    let mut conn = app.db().await;
    diesel::sql_query(sql).execute(&mut conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_person_is_nowhere_in_a_dump_and_every_audit_chain_still_verifies() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let email = format!("ada.q{}@agency.example", unique());
    let name = format!("Ada Quillfeather {}", unique());
    let ada = invited(&app, &owner, &email, &name).await;
    let user_id = app.user_id(&email).await;
    // What Ada leaves behind: a key she made and used, a target it created, a failed sign-in
    // with her address, a role change by the owner naming her.
    let key = app.create_key(&ada, "read_write").await;
    let api = app.api(&key);
    new_target(&api, "https://shop.example.com/").await;
    let wrong = app.browser().sign_in(&email, "not her password").await;
    assert_ne!(location(&wrong), "/");
    let members = owner.get("/members").await.text().await.unwrap();
    assert!(members.contains(&email));
    let changed = owner
        .post_form(&format!("/members/{user_id}/role"), &[("role", "member")])
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    // She authorized a payment-page script host and decided on a script version: those records
    // name her by her address (as the app writes them).
    let target = app.count("SELECT max(id) AS n FROM targets").await;
    let org_id = app
        .count(&format!(
            "SELECT org_id AS n FROM targets WHERE id = {target}"
        ))
        .await;
    execute(
        &app,
        &format!(
            "WITH r AS (INSERT INTO payment_script_rules (org_id, host, justification, created_by,
                                                        created_by_name, revoked_at, revoked_by_name)
                        VALUES ({org_id}, 'js.stripe.com', 'PSP', {user_id}, '{email}', now(),
                                '{email}') RETURNING id),
                  s AS (INSERT INTO payment_scripts (org_id, target_id, identity, kind, url, host)
                        VALUES ({org_id}, {target}, 'https://js.stripe.com/v3', 'external',
                                'https://js.stripe.com/v3', 'js.stripe.com') RETURNING id),
                  v AS (INSERT INTO payment_script_versions (org_id, script_id, sha256, size_bytes,
                                                            frame_url, in_iframe, integrity_state)
                        SELECT {org_id}, s.id, repeat('a', 64), 10, 'https://shop.example.com/',
                               false, 'none' FROM s RETURNING id)
             INSERT INTO payment_script_decisions (org_id, version_id, decision, justification,
                                                   decided_by, decided_by_name)
             SELECT {org_id}, v.id, 'authorized', 'Our PSP', {user_id}, '{email}' FROM v"
        ),
    )
    .await
    .unwrap();
    assert!(
        dump(&app).contains(&email),
        "her address is in the dump before"
    );
    let entries_before = app.count("SELECT count(*) AS n FROM audit_log").await;

    // The owner cannot erase themselves while they own the organization.
    let refused = owner
        .post_form(
            "/settings/account/delete",
            &[("email", &owner.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("make another member its owner first")
    );
    // A wrong password or address changes nothing.
    for (typed, password) in [
        (email.as_str(), "wrong-password"),
        ("someone@else.example", PASSWORD),
    ] {
        let wrong = ada
            .post_form(
                "/settings/account/delete",
                &[("email", typed), ("password", password)],
            )
            .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM users WHERE id = {user_id}"
        ))
        .await,
        1
    );

    let page = ada.get("/settings/account/delete").await;
    assert_eq!(page.status(), StatusCode::OK);
    let deleted = ada
        .post_form(
            "/settings/account/delete",
            &[("email", &email.to_uppercase()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&deleted), "/sign-in?notice=account-deleted");

    // Signed out, her key refused, told by mail.
    assert_eq!(
        location(&ada.get("/settings").await),
        "/sign-in",
        "her session is gone"
    );
    assert_eq!(
        api.get("/api/v1/targets").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mail = app.mail.wait_for(&email, 2).await;
    assert!(mail.text.contains("Your siteward account is deleted"));

    // Nowhere in the database: not her address, not her name, in any case.
    let dumped = dump(&app).to_lowercase();
    for needle in [email.to_lowercase(), name.to_lowercase()] {
        let found: Vec<&str> = dumped.lines().filter(|l| l.contains(&needle)).collect();
        assert!(found.is_empty(), "{needle} is in the dump: {found:#?}");
    }
    // (Checked before anything new happens: a sign-in attempt with her address after this is a
    // new event, recorded as any attempt for an unknown address is.)
    let pseudonym = format!("erased person #{user_id}");
    assert!(
        dumped.contains(&pseudonym),
        "her entries are there, pseudonymized"
    );
    let again = app.browser().sign_in(&email, PASSWORD).await;
    assert_ne!(location(&again), "/", "her account is gone");
    // No entry went; every chain verifies, pseudonymized rows included.
    assert!(app.count("SELECT count(*) AS n FROM audit_log").await > entries_before);
    let mut conn = app.db().await;
    let verified = chain::verify_all(&mut conn).await.unwrap();
    assert!(verified.breaks.is_empty(), "{:?}", verified.breaks);
    let erased = app
        .count("SELECT count(*) AS n FROM audit_log WHERE erased_by IS NOT NULL")
        .await;
    assert!(erased >= 5, "{erased} entries pseudonymized");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id IS NULL AND action = 'person.erased'
               AND detail::jsonb @> '{{\"rows\": {erased}, \"keys_revoked\": 1}}'"
        ))
        .await,
        1
    );
    // The owner reads the organization's log with the pseudonym where her address was.
    let log = owner.get("/audit").await.text().await.unwrap();
    assert!(log.contains(&pseudonym) && log.contains("member.erased"));

    // Pseudonymizing one more entry under her erasure is caught: the erasure counted its rows.
    let erasure = app
        .count("SELECT id AS n FROM audit_log WHERE action = 'person.erased'")
        .await;
    // (Done as someone with the database would: naming the erasure in the transaction.)
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!(
            "BEGIN;
             SELECT set_config('siteward.erasing_person', '{erasure}', true);
             UPDATE audit_log SET subject = 'hidden', personal_salt = NULL, erased_by = {erasure}
             WHERE id = (SELECT min(id) FROM audit_log WHERE personal_salt IS NOT NULL
                           AND org_id IS NOT NULL);
             COMMIT;"
        ),
    )
    .await
    .expect("the trigger lets an erasure's shape through in its transaction");
    let verified = chain::verify_all(&mut conn).await.unwrap();
    assert_eq!(verified.breaks.len(), 1, "{:?}", verified.breaks);
    assert!(
        verified.breaks[0]
            .reason
            .contains("than the erasure recorded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_change_only_in_the_shapes_an_erasure_or_an_upgrade_takes() {
    let app = TestApp::spawn().await;
    app.sign_up_first(&format!("Agency {}", unique())).await;
    let some_row = app
        .count("SELECT min(id) AS n FROM audit_log WHERE org_id IS NOT NULL")
        .await;
    for statement in [
        // Dropping the salt without naming an erasure.
        format!("UPDATE audit_log SET personal_salt = NULL WHERE id = {some_row}"),
        // Naming an entry that is not an erasure.
        format!(
            "UPDATE audit_log SET personal_salt = NULL, erased_by = {some_row} WHERE id = {some_row}"
        ),
        // Changing the record along with the pseudonymization.
        format!(
            "UPDATE audit_log SET action = 'x', personal_salt = NULL,
                 erased_by = (SELECT id FROM audit_log WHERE org_id IS NULL LIMIT 1)
             WHERE id = {some_row}"
        ),
        // Going back to version 1.
        format!("UPDATE audit_log SET version = 1 WHERE id = {some_row}"),
    ] {
        let error = execute(&app, &statement).await.expect_err(&statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
}

/// Rewrites an organization's chain as version 1 wrote it (the trigger off, as an old database
/// would hold it); returns the version-1 head.
async fn as_version_1(app: &TestApp, org_id: i64, break_it: bool) -> Vec<u8> {
    use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
    let mut conn = app.db().await;
    let mut rows: Vec<AuditRow> = audit_log::table
        .filter(audit_log::org_id.eq(org_id))
        .order(audit_log::seq.asc())
        .select(AuditRow::as_select())
        .load(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut prev = chain::GENESIS.to_vec();
    for row in rows.iter_mut() {
        row.prev_hash = prev.clone();
        row.hash = chain::hash_v1_of(row);
        prev = row.hash.clone();
        diesel::sql_query(
            "UPDATE audit_log SET version = 1, personal_salt = NULL, personal_digest = NULL,
                    prev_hash = $2, hash = $3 WHERE id = $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(row.id)
        .bind::<diesel::sql_types::Bytea, _>(&row.prev_hash)
        .bind::<diesel::sql_types::Bytea, _>(&row.hash)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    if break_it {
        diesel::sql_query(format!(
            "UPDATE audit_log SET subject = 'edited' WHERE id = {}",
            rows[0].id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    diesel::sql_query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    prev
}

async fn org_of(app: &TestApp, email: &str) -> i64 {
    app.count(&format!(
        "SELECT m.org_id AS n FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE u.email = '{email}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_chains_are_rechained_once_they_verify_and_broken_ones_are_left_as_they_are() {
    let app = TestApp::spawn().await;
    let first = app.sign_up_first(&format!("Agency {}", unique())).await;
    app.create_key(&first, "read").await;
    let founder = app.invite_and_sign_up(&first, "member").await;
    let other = format!("Other {}", unique());
    let made = founder.post_form("/orgs", &[("name", &other)]).await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let intact = org_of(&app, &first.email).await;
    let broken = app
        .count(&format!("SELECT id AS n FROM orgs WHERE name = '{other}'"))
        .await;
    let v1_head = as_version_1(&app, intact, false).await;
    as_version_1(&app, broken, true).await;
    let mut conn = app.db().await;
    let before = chain::verify_all(&mut conn).await.unwrap();
    assert_eq!(
        before
            .breaks
            .iter()
            .filter(|b| b.org_id == Some(broken))
            .count(),
        1,
        "{:?}",
        before.breaks
    );
    let rows_of_intact = app
        .count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {intact}"
        ))
        .await;

    let upgrade = chain::upgrade(&mut conn).await.unwrap();
    assert_eq!(upgrade.chains, 1);
    assert_eq!(upgrade.rows as i64, rows_of_intact);
    assert_eq!(upgrade.refused.len(), 1);
    assert_eq!(upgrade.refused[0].0, Some(broken));
    // The intact chain is version 2 throughout, records the head it replaced, and verifies; the
    // broken one is as it was (still reported).
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {intact} AND version = 1"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {intact}
               AND action = 'audit.rechained'
               AND detail::jsonb @> '{{\"v1_head\": \"{}\", \"rows\": {rows_of_intact}}}'",
            hex::encode(&v1_head)
        ))
        .await,
        1
    );
    let after = chain::verify_all(&mut conn).await.unwrap();
    assert_eq!(after.breaks, before.breaks);
    // Nothing more to do the second time.
    let again = chain::upgrade(&mut conn).await.unwrap();
    assert_eq!(again.chains, 0);
    assert_eq!(again.refused.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_guards_deleting_an_account_and_an_operator_erases_by_address() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let member = app.invite_and_sign_up(&owner, "member").await;
    let member_id = app.user_id(&member.email).await;
    // The member turns on a second factor: deleting the account then wants a code too.
    enable_two_factor(&member).await;
    let form = member
        .get("/settings/account/delete")
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains("name=\"code\""));
    for code in ["", "000000"] {
        let refused = member
            .post_form(
                "/settings/account/delete",
                &[
                    ("email", &member.email),
                    ("password", PASSWORD),
                    ("code", code),
                ],
            )
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code:?}"
        );
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM users WHERE id = {member_id}"
        ))
        .await,
        1
    );

    // The operator: an unknown address and an owner are refused, the member is erased.
    let (ok, output) =
        crate::lifecycle::admin(&app, &["erase-person", "--email", "nobody@nowhere.example"]);
    assert!(!ok && output.contains("nobody signs in"), "{output}");
    let (ok, output) = crate::lifecycle::admin(&app, &["erase-person", "--email", &owner.email]);
    assert!(!ok && output.contains("still the owner"), "{output}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'person.erased'")
            .await,
        0,
        "a refused erasure leaves no trace of having happened"
    );
    let (ok, output) = crate::lifecycle::admin(&app, &["erase-person", "--email", &member.email]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("erased person #{member_id}")),
        "{output}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM users WHERE id = {member_id}"
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'person.erased'
               AND detail::jsonb @> '{\"asked_by\": \"operator\"}'"
        )
        .await,
        1
    );
    assert_eq!(
        location(&member.get("/settings").await),
        "/sign-in",
        "their session ended"
    );
    let (ok, output) = crate::lifecycle::admin(&app, &["verify-audit"]);
    assert!(ok, "{output}");
}
