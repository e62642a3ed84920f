//! The authorization matrix: every route of the app's route table × every kind of caller gets
//! the status its declared access allows, and another organization's objects answer 404. Built
//! from `route_table()`, so a new route is covered without anyone remembering.

use reqwest::{Method, StatusCode};
use siteward::auth::Role;
use siteward::web::{Access, RouteDoc, Surface};

use super::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Member,
    Admin,
    Owner,
    OtherOwner,
    KeyRead,
    KeyReadWrite,
    OtherKey,
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Member,
    Who::Admin,
    Who::Owner,
    Who::OtherOwner,
    Who::KeyRead,
    Who::KeyReadWrite,
    Who::OtherKey,
];

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Dashboard without a session: 303 to the sign-in page.
    SignIn,
    /// API without a key: 401.
    Unauthorized,
    Forbidden,
    NotFound,
    Allowed,
    /// Public routes: anything but a server error.
    NoServerError,
}

impl Who {
    fn session_role(self) -> Option<Role> {
        match self {
            Who::Member => Some(Role::Member),
            Who::Admin => Some(Role::Admin),
            Who::Owner | Who::OtherOwner => Some(Role::Owner),
            _ => None,
        }
    }

    fn key_role(self) -> Option<Role> {
        match self {
            Who::KeyRead => Some(Role::Member),
            Who::KeyReadWrite | Who::OtherKey => Some(Role::Admin),
            _ => None,
        }
    }

    fn other_org(self) -> bool {
        matches!(self, Who::OtherOwner | Who::OtherKey)
    }
}

/// Whether the request names an object of the caller's organization, in its path (`{…_id}`) or
/// its body: another organization's caller must then get 404. Names like `{rule}` or
/// `{artifact}` are not objects.
fn has_object(doc: &RouteDoc) -> bool {
    // `{org_id}` is always the caller's own organization; a `…_token` names an object too.
    doc.params()
        .iter()
        .any(|p| (p.ends_with("_id") && *p != "org_id") || p.ends_with("_token"))
        || doc.example.replace("{org_id}", "").contains("_id}")
}

fn expected(doc: &RouteDoc, who: Who) -> Expect {
    let role_check = |role: Option<Role>, needed: Role| {
        if who.other_org() && has_object(doc) {
            Expect::NotFound
        } else if role.is_some_and(|r| r >= needed) {
            Expect::Allowed
        } else {
            Expect::Forbidden
        }
    };
    match doc.surface {
        Surface::Public => Expect::NoServerError,
        Surface::Page => match (who.session_role(), doc.access) {
            (None, _) => Expect::SignIn,
            (Some(_), Access::SignedIn | Access::Anyone) => Expect::Allowed,
            (Some(role), Access::Role(needed)) => role_check(Some(role), needed),
            (Some(_), Access::Runner) => Expect::SignIn,
        },
        Surface::Api => match (who.key_role(), doc.access) {
            (None, _) => Expect::Unauthorized,
            (Some(_), Access::SignedIn | Access::Anyone) => Expect::Allowed,
            (Some(role), Access::Role(needed)) => role_check(Some(role), needed),
            (Some(_), Access::Runner) => Expect::Unauthorized,
        },
        // No session and no API key gets into the runners' API.
        Surface::Internal => Expect::Unauthorized,
    }
}

struct World {
    app: TestApp,
    owner: Browser,
    admin: Browser,
    member: Browser,
    other: Browser,
    spare: Browser,
    anonymous: Browser,
    key_read: Browser,
    key_rw: Browser,
    other_key: Browser,
    rw_api: ApiClient,
    org_a: i64,
    org_b: i64,
    owner_id: i64,
    spare_id: i64,
}

fn with_key(app: &TestApp, key: &str) -> Browser {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    let mut browser = app.browser();
    browser.client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    browser
}

impl World {
    async fn build() -> World {
        let app = TestApp::spawn().await;
        let owner = app.sign_up_first("Agency A").await;
        let admin = app.invite_and_sign_up(&owner, "admin").await;
        let member = app.invite_and_sign_up(&owner, "member").await;
        let spare = app.invite_and_sign_up(&owner, "member").await;
        let other = app.invite_and_sign_up(&owner, "member").await;
        let org_a = app
            .count("SELECT id AS n FROM orgs WHERE name = 'Agency A'")
            .await;
        let response = other.post_form("/orgs", &[("name", "Agency B")]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let org_b = app
            .count("SELECT id AS n FROM orgs WHERE name = 'Agency B'")
            .await;
        let other_id = app.user_id(&other.email).await;
        let response = owner
            .post_form(&format!("/members/{other_id}/remove"), &[])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "the other owner leaves org A"
        );
        let key_read = app.create_key(&owner, "read").await;
        let key_rw = app.create_key(&owner, "read_write").await;
        let other_key = app.create_key(&other, "read_write").await;
        World {
            owner_id: app.user_id(&owner.email).await,
            spare_id: app.user_id(&spare.email).await,
            anonymous: app.browser(),
            key_read: with_key(&app, &key_read),
            key_rw: with_key(&app, &key_rw),
            other_key: with_key(&app, &other_key),
            rw_api: app.api(&key_rw),
            app,
            owner,
            admin,
            member,
            other,
            spare,
            org_a,
            org_b,
        }
    }

    fn caller(&self, who: Who) -> &Browser {
        match who {
            Who::Anonymous => &self.anonymous,
            Who::Member => &self.member,
            Who::Admin => &self.admin,
            Who::Owner => &self.owner,
            Who::OtherOwner => &self.other,
            Who::KeyRead => &self.key_read,
            Who::KeyReadWrite => &self.key_rw,
            Who::OtherKey => &self.other_key,
        }
    }

    fn home_org(&self, who: Who) -> i64 {
        if who.other_org() {
            self.org_b
        } else {
            self.org_a
        }
    }

    async fn new_client(&self) -> i64 {
        let response = self
            .rw_api
            .send_json(
                Method::POST,
                "/api/v1/clients",
                serde_json::json!({"name": format!("Fixture {}", unique())}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// A site target (crawled), through the API.
    async fn new_site_target(&self) -> i64 {
        let target = self.new_target().await;
        let response = self
            .rw_api
            .send_json(
                Method::PATCH,
                &format!("/api/v1/targets/{target}"),
                serde_json::json!({"kind": "site", "crawl": {"max_pages": 5}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        target
    }

    async fn new_target(&self) -> i64 {
        let client = self.new_client().await;
        let response = self
            .rw_api
            .send_json(
                Method::POST,
                &format!("/api/v1/clients/{client}/targets"),
                serde_json::json!({"url": format!("https://f{}.example.com/", unique())}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// The spare person is a member of org A again (cases may remove them).
    async fn spare_in_org_a(&self) {
        let sql = format!(
            "SELECT count(*) AS n FROM memberships WHERE org_id = {} AND user_id = {}",
            self.org_a, self.spare_id
        );
        if self.app.count(&sql).await == 0 {
            let token = self
                .app
                .invite(&self.owner, &self.spare.email, "member")
                .await;
            let response = self
                .spare
                .post_form("/invitations/accept", &[("token", &token)])
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
        }
    }

    /// An invitation for `who` into a throwaway organization of the spare person.
    async fn invitation_token_for(&self, who: Who) -> String {
        let response = self
            .spare
            .post_form("/orgs", &[("name", &format!("Throwaway {}", unique()))])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let email = match who.session_role() {
            Some(_) => self.caller(who).email.clone(),
            None => format!("nobody-{}@example.com", unique()),
        };
        self.app.invite(&self.spare, &email, "member").await
    }

    /// A checkout test of organization A on a new target, with its secret `card_number` set.
    async fn new_checkout_test(&self) -> i64 {
        let target = self.new_target().await;
        let response = self
            .rw_api
            .send_json(
                Method::POST,
                &format!("/api/v1/targets/{target}/checkout-tests"),
                serde_json::json!({"name": format!("Checkout {}", unique()), "script": "steps:\n  - goto: /\n  - fill: {selector: '#card', secret: card_number}\n  - stop\n"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let test = response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let response = self
            .rw_api
            .send_json(
                Method::PUT,
                &format!("/api/v1/checkout-tests/{test}/secrets/card_number"),
                serde_json::json!({"value": "4000000000000002"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        test
    }

    async fn new_report(&self) -> i64 {
        let client = self.new_client().await;
        let response = self
            .rw_api
            .send_json(
                Method::POST,
                &format!("/api/v1/clients/{client}/reports"),
                serde_json::json!({"days": 7}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let report = response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        // A runner prints its PDF (and finishes whatever else waits in the queue).
        let runner = RunnerApi::new(&self.app, &runner_token(&self.app, "matrix").await);
        while let Some(job) = runner.claim_no_lanes(0).await {
            let finished = if job.scan_id == 0 {
                runner.finish_checkout(&job, "passed").await
            } else {
                runner.finish(&job).await
            };
            assert_eq!(finished.status(), StatusCode::OK);
        }
        report
    }

    /// A share of `report`: its id and its token.
    async fn new_share(&self, report: i64) -> (i64, String) {
        let response = self
            .rw_api
            .send_json(
                Method::POST,
                &format!("/api/v1/reports/{report}/shares"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        let url = body["url"].as_str().unwrap();
        (
            body["share"]["id"].as_i64().unwrap(),
            url.rsplit('/').next().unwrap().to_string(),
        )
    }

    async fn value_for(&self, name: &str, who: Who) -> String {
        match name {
            "client_id" => self.new_client().await.to_string(),
            "target_id" => self.new_target().await.to_string(),
            "site_target_id" => self.new_site_target().await.to_string(),
            "crawl_id" => {
                let target = self.new_site_target().await;
                let response = self
                    .rw_api
                    .request(Method::POST, &format!("/api/v1/targets/{target}/crawls"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                let crawl = response.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_i64()
                    .unwrap();
                // Its lanes stay out of the other fixtures' way: the matrix needs its rows.
                self.app
                    .count(&format!(
                        "WITH done AS (UPDATE jobs SET state = 'done'
                                       WHERE kind = 'crawl' AND payload->>'crawl_id' = '{crawl}'
                                       RETURNING 1) SELECT count(*) AS n FROM done"
                    ))
                    .await;
                crawl.to_string()
            }
            "key_id" => {
                self.app.create_key(&self.owner, "read").await;
                self.app
                    .count(&format!(
                        "SELECT max(id) AS n FROM api_keys WHERE org_id = {}",
                        self.org_a
                    ))
                    .await
                    .to_string()
            }
            "invitation_id" => {
                self.app
                    .invite(
                        &self.owner,
                        &format!("invitee-{}@example.com", unique()),
                        "member",
                    )
                    .await;
                self.app
                    .count(&format!(
                        "SELECT max(id) AS n FROM invitations WHERE org_id = {}",
                        self.org_a
                    ))
                    .await
                    .to_string()
            }
            "user_id" => {
                self.spare_in_org_a().await;
                self.spare_id.to_string()
            }
            "org_id" => self.home_org(who).to_string(),
            "scan_id" => scan_now(&self.rw_api, self.new_target().await)
                .await
                .to_string(),
            "job_id" => {
                let scan = scan_now(&self.rw_api, self.new_target().await).await;
                self.app
                    .count(&format!("SELECT job_id AS n FROM scans WHERE id = {scan}"))
                    .await
                    .to_string()
            }
            "snapshot_id" => {
                // The target's second snapshot, so that it has one to be compared with.
                let target = self.new_target().await;
                scan_now(&self.rw_api, target).await;
                let scan = scan_now(&self.rw_api, target).await;
                // Complete queued scans (oldest first) until this one has its snapshot.
                let runner = RunnerApi::new(&self.app, &runner_token(&self.app, "matrix").await);
                loop {
                    let job = runner
                        .claim_no_lanes(0)
                        .await
                        .expect("the scan's job is queued");
                    let finished = if job.scan_id == 0 {
                        runner.finish_checkout(&job, "passed").await
                    } else {
                        runner.finish(&job).await
                    };
                    assert_eq!(finished.status(), StatusCode::OK);
                    if job.scan_id == scan {
                        break;
                    }
                }
                self.app
                    .count(&format!(
                        "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
                    ))
                    .await
                    .to_string()
            }
            "compliance_scan_id" => {
                let target = self.new_target().await;
                let response = self
                    .rw_api
                    .request(
                        Method::POST,
                        &format!("/api/v1/targets/{target}/compliance-scans"),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                response.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_i64()
                    .unwrap()
                    .to_string()
            }
            "report_id" => self.new_report().await.to_string(),
            "share_id" => {
                let report = self.new_report().await;
                self.new_share(report).await.0.to_string()
            }
            "token" => {
                let report = self.new_report().await;
                self.new_share(report).await.1
            }
            "export_token" => {
                let before = self.app.mail.mails_to(&self.owner.email).len();
                let asked = self
                    .owner
                    .post_form("/settings/export", &[("client_id", "")])
                    .await;
                assert_eq!(asked.status(), StatusCode::SEE_OTHER);
                let mail = self.app.mail.wait_for(&self.owner.email, before + 1).await;
                let link = crate::smtp_sink::link_in(&mail, "/exports/download/");
                link.rsplit('/').next().unwrap().to_string()
            }
            "artifact" => "viewport.png".into(),
            "test_id" => self.new_checkout_test().await.to_string(),
            "secret" => "card_number".into(),
            "screenshot" => "step-1.png".into(),
            "run_id" => {
                let test = self.new_checkout_test().await;
                let response = self
                    .rw_api
                    .request(Method::POST, &format!("/api/v1/checkout-tests/{test}/runs"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                let run = response.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_i64()
                    .unwrap();
                // Complete queued jobs (oldest first) until this run has reported.
                let runner = RunnerApi::new(&self.app, &runner_token(&self.app, "matrix").await);
                loop {
                    let job = runner
                        .claim_no_lanes(0)
                        .await
                        .expect("the run's job is queued");
                    if job.scan_id != 0 {
                        assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
                        continue;
                    }
                    assert_eq!(
                        runner.finish_checkout(&job, "passed").await.status(),
                        StatusCode::OK
                    );
                    if job.body["checkout"]["run_id"] == run {
                        break;
                    }
                }
                run.to_string()
            }
            "rule" => "visual_change".into(),
            "channel_id" => {
                let response = self
                    .rw_api
                    .send_json(
                        Method::POST,
                        "/api/v1/notification-channels",
                        serde_json::json!({"name": format!("Ops {}", unique()), "kind": "email", "to": "ops@example.com"}),
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED);
                response.json::<serde_json::Value>().await.unwrap()["channel"]["id"]
                    .as_i64()
                    .unwrap()
                    .to_string()
            }
            "alert_id" => {
                let target = self.new_target().await;
                self.app
                    .count(&format!(
                        "INSERT INTO alerts (org_id, target_id, rule, severity, fingerprint, title, detail, state)
                         VALUES ({}, {target}, 'visual_change', 'medium', 'visual:viewport', 'Looks different', '{{}}', 'open')
                         RETURNING id AS n",
                        self.org_a
                    ))
                    .await
                    .to_string()
            }
            "version_id" => {
                let target = self.new_target().await;
                self.app
                    .count(&format!(
                        "WITH script AS (
                           INSERT INTO payment_scripts (org_id, target_id, identity, kind, url, host)
                           VALUES ({org}, {target}, 'http://cdn.test/a.js', 'external', 'http://cdn.test/a.js', 'cdn.test')
                           RETURNING id)
                         INSERT INTO payment_script_versions (org_id, script_id, sha256, size_bytes, frame_url,
                                                              in_iframe, integrity_state)
                         SELECT {org}, id, '{sha}', 1, 'http://shop.test/', false, 'missing' FROM script
                         RETURNING id AS n",
                        org = self.org_a,
                        sha = "ab".repeat(32),
                    ))
                    .await
                    .to_string()
            }
            "rule_id" => self
                .app
                .count(&format!(
                    "INSERT INTO payment_script_rules (org_id, host, justification, created_by_name)
                     VALUES ({}, 'js.stripe.com', 'Card fields', 'matrix') RETURNING id AS n",
                    self.org_a
                ))
                .await
                .to_string(),
            "invitation_token" => self.invitation_token_for(who).await,
            "unique" => unique(),
            other => panic!(
                "the authorization matrix does not know how to make a `{other}`: teach World::value_for"
            ),
        }
    }

    /// Puts everyone back where the world expects them.
    async fn restore(&self) {
        let owner_now = self
            .app
            .count(&format!(
                "SELECT user_id AS n FROM memberships WHERE org_id = {} AND role = 'owner'",
                self.org_a
            ))
            .await;
        if owner_now == self.spare_id {
            let org = self.org_a.to_string();
            self.spare
                .post_form("/orgs/switch", &[("org_id", &org)])
                .await;
            let response = self
                .spare
                .post_form(
                    &format!("/members/{}/transfer-ownership", self.owner_id),
                    &[],
                )
                .await;
            assert_eq!(
                response.status(),
                StatusCode::SEE_OTHER,
                "ownership goes back"
            );
        }
        for who in [Who::Member, Who::Admin, Who::Owner, Who::OtherOwner] {
            let browser = self.caller(who);
            if browser.get("/settings").await.status() == StatusCode::SEE_OTHER {
                let response = browser.sign_in(&browser.email, PASSWORD).await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "signs in again");
            }
            let org = self.home_org(who).to_string();
            let response = browser.post_form("/orgs/switch", &[("org_id", &org)]).await;
            assert_eq!(
                response.status(),
                StatusCode::SEE_OTHER,
                "{who:?} back home"
            );
        }
    }
}

/// Replaces `{name}` placeholders in a path or example with fresh fixtures.
async fn fill(
    world: &World,
    template: &str,
    who: Who,
    path_params: &mut Vec<(String, String)>,
) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..start + len];
        let name = inner.split(':').next().unwrap_or(inner);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            // JSON braces, not a placeholder.
            out.push('{');
            rest = &rest[start + 1..];
            continue;
        }
        let value = match path_params.iter().find(|(n, _)| n == name) {
            Some((_, v)) if name != "unique" => v.clone(),
            _ => {
                let v = world.value_for(name, who).await;
                path_params.push((name.to_string(), v.clone()));
                v
            }
        };
        out.push_str(&value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

async fn call(world: &World, doc: &RouteDoc, who: Who) -> (reqwest::Response, String) {
    let mut params = Vec::new();
    let path = fill(world, doc.path, who, &mut params).await;
    let body = fill(world, doc.example, who, &mut params).await;
    let browser = world.caller(who);
    let url = format!("{}{path}", world.app.base);
    let method = Method::from_bytes(doc.method.as_str().as_bytes()).unwrap();
    let request = browser.client.request(method.clone(), &url);
    let request = match (doc.surface, method) {
        // A GET's example is its query string.
        (_, Method::GET) if !body.is_empty() => {
            browser.client.request(Method::GET, format!("{url}?{body}"))
        }
        (_, Method::GET) => request,
        (Surface::Api, _) => {
            request
                .header("content-type", "application/json")
                .body(if body.is_empty() {
                    "{}".to_string()
                } else {
                    body
                })
        }
        (_, _) => {
            let token = browser.csrf().await;
            let form = if body.is_empty() {
                format!("_csrf={token}")
            } else {
                format!("{body}&_csrf={token}")
            };
            request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
        }
    };
    (request.send().await.unwrap(), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_its_access_says() {
    let world = World::build().await;
    let routes = siteward::app::route_table();
    assert!(routes.len() > 40, "the table lists the app's routes");
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in &routes {
        let doc = &route.doc;
        for who in EVERYONE {
            let expect = expected(doc, who);
            let (response, path) = call(&world, doc, who).await;
            let status = response.status();
            let location = location(&response);
            let ok = match expect {
                Expect::SignIn => {
                    status == StatusCode::SEE_OTHER && location.starts_with("/sign-in")
                }
                Expect::Unauthorized => status == StatusCode::UNAUTHORIZED,
                Expect::Forbidden => status == StatusCode::FORBIDDEN,
                Expect::NotFound => status == StatusCode::NOT_FOUND,
                Expect::NoServerError => !status.is_server_error(),
                Expect::Allowed if doc.ends_session => {
                    status == StatusCode::SEE_OTHER
                        && location.contains("notice=signed-out")
                        && world.caller(who).get("/settings").await.status()
                            == StatusCode::SEE_OTHER
                }
                Expect::Allowed => match doc.surface {
                    Surface::Api => status.as_u16() == doc.success,
                    _ => {
                        (status.is_success() || status == StatusCode::UNPROCESSABLE_ENTITY)
                            || (status.is_redirection() && !location.starts_with("/sign-in"))
                    }
                },
            };
            if doc.surface == Surface::Api && !ok {
                let body = response.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} {} as {who:?}: expected {expect:?}, got {status} {body}",
                    doc.method, path
                ));
            } else if !ok {
                failures.push(format!(
                    "{} {} as {who:?}: expected {expect:?}, got {status} (location {location:?})",
                    doc.method, path
                ));
            }
            checked += 1;
            world.restore().await;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
