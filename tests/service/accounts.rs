//! Sign-up, sign-in, sessions, two-factor, password reset, rate limits, CSRF and headers.

use std::time::Duration;

use reqwest::StatusCode;

use super::smtp_sink::link_in;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sign_up_makes_an_owner_and_later_ones_need_an_invitation() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    assert_eq!(owner.get("/clients").await.status(), StatusCode::OK);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM memberships WHERE role = 'owner'")
            .await,
        1
    );

    let stranger = app.browser();
    let page = stranger.get("/sign-up").await.text().await.unwrap();
    assert!(page.contains("by invitation"), "{page}");
    let response = stranger
        .post_form(
            "/sign-up",
            &[
                ("name", "Mallory"),
                ("email", "mallory@example.com"),
                ("password", PASSWORD),
                ("org_name", "Takeover"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM orgs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_form_errors_are_shown_per_field_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let response = browser
        .post_form(
            "/sign-up",
            &[
                ("name", ""),
                ("email", "not-an-address"),
                ("password", "short"),
                ("org_name", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    for message in [
        "is required",
        "is not an email address",
        "at least 10 characters",
    ] {
        assert!(page.contains(message), "missing {message:?}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_addresses_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let browser = app.browser();
    let wrong_password = browser.sign_in(&owner.email, "not the password").await;
    assert_eq!(wrong_password.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let first = wrong_password.text().await.unwrap();
    let unknown = browser
        .sign_in("nobody@example.com", "not the password")
        .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let second = unknown.text().await.unwrap();
    let message = "The email or password is not right.";
    assert!(first.contains(message) && second.contains(message));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'sign_in.failed'")
            .await,
        2,
        "both failures are audited"
    );
    let ok = browser.sign_in(&owner.email, PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_http_only_lax_and_stored_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let email = format!("o-{}@example.com", unique());
    let response = browser
        .post_form(
            "/sign-up",
            &[
                ("name", "O"),
                ("email", &email),
                ("password", PASSWORD),
                ("org_name", "A"),
            ],
        )
        .await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sw_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: not Secure");
    let token = cookie["sw_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 43, "256 random bits");
    let hash = hex::encode(siteward::crypto::token_hash(&token));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM sessions WHERE token_hash = '\\x{hash}'::bytea"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM sessions WHERE encode(token_hash, 'escape') LIKE '%{token}%'"
        ))
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end_and_active_ones_end_at_their_lifetime() {
    let app = TestApp::spawn_with(&[
        ("SITEWARD_SESSION_IDLE_TIMEOUT", "2s"),
        ("SITEWARD_SESSION_LIFETIME", "4s"),
    ])
    .await;
    let owner = app.sign_up_first("Agency").await;
    assert_eq!(owner.get("/clients").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = owner.get("/clients").await;
    assert_eq!(
        idle.status(),
        StatusCode::SEE_OTHER,
        "idle for longer than 2 s"
    );
    assert!(location(&idle).starts_with("/sign-in"));

    assert_eq!(
        owner.sign_in(&owner.email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let started = std::time::Instant::now();
    let mut ended_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        if owner.get("/clients").await.status() == StatusCode::SEE_OTHER {
            ended_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let ended_after = ended_after.expect("the session ends despite activity");
    assert!(
        ended_after >= Duration::from_millis(3500),
        "activity kept the session alive until its lifetime: ended after {ended_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_ends_every_session_of_the_person() {
    let app = TestApp::spawn().await;
    let laptop = app.sign_up_first("Agency").await;
    let phone = app.browser();
    assert_eq!(
        phone.sign_in(&laptop.email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(phone.get("/clients").await.status(), StatusCode::OK);
    let response = laptop.post_form("/sign-out-everywhere", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(phone.get("/clients").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(laptop.get("/clients").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("SELECT count(*) AS n FROM sessions").await, 0);
}

fn between<'a>(page: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    page.split(start)
        .skip(1)
        .filter_map(|part| part.split(end).next())
        .collect()
}

fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_enrolment_then_sign_in_with_totp_and_with_a_recovery_code() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let setup = owner.post_form("/settings/two-factor", &[]).await;
    assert_eq!(setup.status(), StatusCode::OK);
    let page = setup.text().await.unwrap();
    let base32 = between(&page, "<code class=\"secret\">", "</code>")[0].to_string();
    let secret = totp_rs::Secret::try_from_base32(&base32).unwrap().to_vec();

    let sealed = app
        .count("SELECT length(totp_secret)::bigint AS n FROM users")
        .await;
    assert!(sealed > secret.len() as i64, "the secret is stored sealed");

    let wrong = owner
        .post_form("/settings/two-factor/confirm", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let code = siteward::auth::totp::code_at(&secret, now()).unwrap();
    let confirmed = owner
        .post_form("/settings/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let page = confirmed.text().await.unwrap();
    let codes: Vec<String> = between(&page, "<li><code>", "</code>")
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes");

    // Password alone now leads to the second step only.
    let browser = app.browser();
    let step_one = browser.sign_in(&owner.email, PASSWORD).await;
    assert_eq!(location(&step_one), "/sign-in/two-factor");
    assert_eq!(
        browser.get("/clients").await.status(),
        StatusCode::SEE_OTHER
    );
    // The code used at enrolment cannot be replayed.
    let replay = browser
        .post_form("/sign-in/two-factor", &[("code", &code)])
        .await;
    assert_eq!(replay.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let next_code = siteward::auth::totp::code_at(&secret, now() + 30).unwrap();
    let step_two = browser
        .post_form("/sign-in/two-factor", &[("code", &next_code)])
        .await;
    assert_eq!(step_two.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/clients").await.status(), StatusCode::OK);

    // A recovery code works once.
    let other = app.browser();
    other.sign_in(&owner.email, PASSWORD).await;
    let recovery = other
        .post_form("/sign-in/two-factor", &[("code", &codes[3].to_uppercase())])
        .await;
    assert_eq!(recovery.status(), StatusCode::SEE_OTHER);
    let again = app.browser();
    again.sign_in(&owner.email, PASSWORD).await;
    let reused = again
        .post_form("/sign-in/two-factor", &[("code", &codes[3])])
        .await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    for action in ["two_factor.enabled", "sign_in.succeeded", "sign_in.failed"] {
        assert!(
            app.count(&format!(
                "SELECT count(*) AS n FROM audit_log WHERE action = '{action}'"
            ))
            .await
                > 0,
            "{action} is audited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_second_factor_codes_lock_the_second_step_and_end_the_attempt() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let page = owner
        .post_form("/settings/two-factor", &[])
        .await
        .text()
        .await
        .unwrap();
    let base32 = between(&page, "<code class=\"secret\">", "</code>")[0].to_string();
    let secret = totp_rs::Secret::try_from_base32(&base32).unwrap().to_vec();
    let code = siteward::auth::totp::code_at(&secret, now()).unwrap();
    let enabled = owner
        .post_form("/settings/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);

    let attacker = app.browser();
    attacker.sign_in(&owner.email, PASSWORD).await;
    for _ in 0..4 {
        let wrong = attacker
            .post_form("/sign-in/two-factor", &[("code", "123456")])
            .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let fifth = attacker
        .post_form("/sign-in/two-factor", &[("code", "123456")])
        .await;
    assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = fifth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (800..=900).contains(&retry_after),
        "about 15 minutes: {retry_after}"
    );
    // The attempt is over: the password has to be entered again, and the right code waits too.
    let after = attacker.get("/sign-in/two-factor").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    attacker.sign_in(&owner.email, PASSWORD).await;
    let right = siteward::auth::totp::code_at(&secret, now() + 30).unwrap();
    let locked = attacker
        .post_form("/sign-in/two-factor", &[("code", &right)])
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        app.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'sign_in.second_factor_locked'"
        )
        .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sign_in_failures_get_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let attacker = app.browser();
    for _ in 0..10 {
        let response = attacker.sign_in(&owner.email, "guess guess guess").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = attacker.sign_in(&owner.email, PASSWORD).await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(limited.text().await.unwrap().contains("Too many attempts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_a_valid_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let missing = owner.post_raw("/clients", "name=Sneaky".to_string()).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let forged = owner
        .post_raw(
            "/clients",
            "name=Sneaky&_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // A token from another browser (an attacker's own page load) does not fit this cookie.
    let attacker = app.browser();
    let foreign = attacker.csrf().await;
    let cross = owner
        .post_raw("/clients", format!("name=Sneaky&_csrf={foreign}"))
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(cross.text().await.unwrap().contains("reload the page"));
    assert_eq!(app.count("SELECT count(*) AS n FROM clients").await, 0);
    let ok = owner.post_form("/clients", &[("name", "Honest")]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_by_mailed_link_changes_the_password_and_ends_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let stranger = app.browser();
    let unknown = stranger
        .post_form("/password-reset", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(unknown.status(), StatusCode::OK);
    let unknown_page = unknown.text().await.unwrap();
    let known = stranger
        .post_form("/password-reset", &[("email", &owner.email)])
        .await;
    assert_eq!(known.status(), StatusCode::OK);
    let known_page = known.text().await.unwrap();
    assert_eq!(
        unknown_page.replace("nobody@example.com", "X"),
        known_page.replace(&owner.email, "X"),
        "the same answer whether or not the account exists"
    );
    let mail = app.mail.wait_for(&owner.email, 1).await;
    assert!(app.mail.mails_to("nobody@example.com").is_empty());
    let link = link_in(&mail, "/password-reset/confirm");
    let token = token_of(&link);

    let weak = stranger
        .post_form(
            "/password-reset/confirm",
            &[
                ("token", &token),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let new_password = "a brand new passphrase";
    let done = stranger
        .post_form(
            "/password-reset/confirm",
            &[
                ("token", &token),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        owner.get("/clients").await.status(),
        StatusCode::SEE_OTHER,
        "old sessions end"
    );
    let reused = stranger
        .post_form(
            "/password-reset/confirm",
            &[
                ("token", &token),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(reused.status(), StatusCode::NOT_FOUND, "a link works once");
    let browser = app.browser();
    assert_eq!(
        browser.sign_in(&owner.email, PASSWORD).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        browser.sign_in(&owner.email, new_password).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let anonymous = app.browser();
    let responses = vec![
        anonymous.get("/healthz").await,
        anonymous.get("/sign-in").await,
        anonymous.get("/no-such-page").await,
        anonymous.get("/api/v1/clients").await,
        owner.get("/clients").await,
        owner.get("/static/app.css").await,
    ];
    for response in responses {
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["permissions-policy"]
                .to_str()
                .unwrap()
                .contains("camera=()")
        );
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
    }
    let problem = anonymous.get("/api/v1/clients").await;
    assert_eq!(problem.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_cookies_are_secure_and_hsts_is_sent() {
    let app =
        TestApp::spawn_with(&[("SITEWARD_PUBLIC_URL", "https://watch.agency.example/")]).await;
    let browser = app.browser();
    let response = browser.get("/sign-in").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("__Host-sw_csrf=") && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_by_route() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    owner.post_form("/clients", &[("name", "Shop")]).await;
    let id = app.count("SELECT max(id) AS n FROM clients").await;
    owner.get(&format!("/clients/{id}")).await;
    let anonymous = app.browser();
    assert_eq!(anonymous.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(
        anonymous.get("/readyz").await.text().await.unwrap(),
        "ready\n"
    );
    let metrics = anonymous.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "siteward_http_requests_total{method=\"GET\",route=\"/clients/{client_id}\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "siteward_http_request_duration_seconds_bucket{method=\"POST\",route=\"/clients\""
    ));
    assert!(
        !metrics.contains(&format!("/clients/{id}")),
        "ids never become labels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_the_other_devices() {
    let app = TestApp::spawn().await;
    let laptop = app.sign_up_first("Agency").await;
    let phone = app.browser();
    phone.sign_in(&laptop.email, PASSWORD).await;
    let new_password = "another long passphrase";
    let wrong = laptop
        .post_form(
            "/settings/password",
            &[
                ("current_password", "not it at all"),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("is not your current password")
    );
    let changed = laptop
        .post_form(
            "/settings/password",
            &[
                ("current_password", PASSWORD),
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        laptop.get("/clients").await.status(),
        StatusCode::OK,
        "this device stays"
    );
    assert_eq!(
        phone.get("/clients").await.status(),
        StatusCode::SEE_OTHER,
        "others end"
    );
    let browser = app.browser();
    assert_eq!(
        browser.sign_in(&laptop.email, new_password).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'password.changed'")
            .await,
        1
    );
}
