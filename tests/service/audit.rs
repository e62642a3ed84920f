//! The audit log is append-only in the database and tamper-evident through its hash chain.

use std::process::Command;

use diesel_async::RunQueryDsl;
use reqwest::StatusCode;

use super::support::*;

async fn busy_org(app: &TestApp) -> Browser {
    let owner = app.sign_up_first("Agency").await;
    let admin = app.invite_and_sign_up(&owner, "admin").await;
    let admin_id = app.user_id(&admin.email).await;
    owner
        .post_form(&format!("/members/{admin_id}/role"), &[("role", "member")])
        .await;
    app.create_key(&owner, "read").await;
    owner.post_form("/clients", &[("name", "Shop")]).await;
    let client = app.count("SELECT max(id) AS n FROM clients").await;
    let response = owner
        .post_form(
            &format!("/clients/{client}/targets"),
            &[
                ("url", "https://shop.example.com/"),
                ("consent_mode", "none"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    owner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_roles_keys_and_targets_are_recorded_in_one_chain_per_org() {
    let app = TestApp::spawn().await;
    let owner = busy_org(&app).await;
    owner.sign_in(&owner.email, "wrong password!").await;
    for action in [
        "org.created",
        "member.invited",
        "member.joined",
        "member.role_changed",
        "api_key.created",
        "client.created",
        "target.created",
        "sign_in.failed",
    ] {
        assert!(
            app.count(&format!(
                "SELECT count(*) AS n FROM audit_log WHERE action = '{action}'"
            ))
            .await
                > 0,
            "{action} is recorded"
        );
    }
    let org = app.count("SELECT min(id) AS n FROM orgs").await;
    let rows = app
        .count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE org_id = {org}"
        ))
        .await;
    let last_seq = app
        .count(&format!(
            "SELECT max(seq) AS n FROM audit_log WHERE org_id = {org}"
        ))
        .await;
    assert_eq!(rows, last_seq, "sequence numbers have no gaps");
    let page = owner.get("/audit").await.text().await.unwrap();
    assert!(page.contains("target.created") && page.contains("member.role_changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_cannot_be_updated_deleted_or_truncated() {
    let app = TestApp::spawn().await;
    busy_org(&app).await;
    let before = app.count("SELECT count(*) AS n FROM audit_log").await;
    let mut conn = app.db().await;
    for statement in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let error = diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log").await,
        before
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE actor = 'mallory'")
            .await,
        0
    );
}

fn verify_audit(app: &TestApp) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_siteward"))
        .args(["admin", "verify-audit"])
        .env("DATABASE_URL", &app.database_url)
        .env("SITEWARD_DATA_DIR", app.data_dir.path())
        .env(
            "SITEWARD_MASTER_KEYS",
            "test-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .expect("run siteward admin verify-audit");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_audit_passes_an_intact_log_and_names_a_tampered_row() {
    let app = TestApp::spawn().await;
    busy_org(&app).await;
    let (ok, output) = verify_audit(&app);
    assert!(ok, "{output}");
    assert!(output.contains("audit log intact"), "{output}");

    // Someone with superuser rights goes around the trigger and edits one row.
    let victim = app
        .count("SELECT id AS n FROM audit_log WHERE action = 'api_key.created' LIMIT 1")
        .await;
    let mut conn = app.db().await;
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete".to_string(),
        format!("UPDATE audit_log SET actor = 'someone-else@example.com' WHERE id = {victim}"),
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete".to_string(),
    ] {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (ok, output) = verify_audit(&app);
    assert!(!ok, "tampering must fail verification:\n{output}");
    assert!(output.contains(&format!("row id {victim}")), "{output}");
    assert!(output.contains("edited"), "{output}");

    // Deleting a row from the middle breaks the chain after it.
    let middle = app
        .count("SELECT id AS n FROM audit_log WHERE action = 'client.created' LIMIT 1")
        .await;
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_or_delete".to_string(),
        format!("DELETE FROM audit_log WHERE id = {middle}"),
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update_or_delete".to_string(),
    ] {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (ok, output) = verify_audit(&app);
    assert!(!ok);
    assert!(output.contains("sequence gap"), "{output}");
}
