//! Branding: an agency's name, colour and logo (an SVG that could run anything is refused, as
//! are oversized and mistyped uploads), a client's contact, and reports that carry them.

use reqwest::{Method, StatusCode};

use super::support::*;

const CLEAN_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#0a7"/></svg>"##;
const HOSTILE_SVG: &str =
    r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>"#;

async fn put_logo(api: &ApiClient, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    api.send_json(
        Method::PUT,
        "/api/v1/branding/logo",
        serde_json::json!({"content_type": content_type, "base64": encoded}),
    )
    .await
}

/// A `multipart/form-data` body as a browser sends the branding form.
fn branding_form(csrf: &str, name: &str, logo: Option<(&str, &str)>) -> (String, Vec<u8>) {
    let boundary = "----sitewardtestboundary";
    let mut body = String::new();
    for (field, value) in [("_csrf", csrf), ("name", name), ("color", "#0a7f3c")] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
        ));
    }
    if let Some((content_type, content)) = logo {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"logo.svg\"\r\nContent-Type: {content_type}\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test]
async fn branding_is_checked_on_the_way_in_and_reports_carry_it() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);

    // Name and colour; a bad colour is a field error.
    let response = api
        .send_json(
            Method::PATCH,
            "/api/v1/branding",
            serde_json::json!({"name": "Webwerk Studio", "color": "#0A7F3C"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let branding: serde_json::Value = response.json().await.unwrap();
    assert_eq!(branding["name"], "Webwerk Studio");
    assert_eq!(branding["color"], "#0a7f3c");
    let response = api
        .send_json(
            Method::PATCH,
            "/api/v1/branding",
            serde_json::json!({"color": "red; background: url(x)"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Logos: a drawing passes; script, the wrong type and too many bytes do not.
    let response = put_logo(&api, "image/svg+xml", HOSTILE_SVG.into()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("<script>"));
    let response = put_logo(&api, "text/html", CLEAN_SVG.into()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = put_logo(&api, "image/png", vec![0u8; 300 * 1024]).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orgs WHERE logo IS NOT NULL")
            .await,
        0,
        "nothing refused was kept"
    );
    let response = put_logo(&api, "image/svg+xml", CLEAN_SVG.into()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // The dashboard form takes the same checks (multipart, CSRF first).
    let csrf = owner.csrf().await;
    let (content_type, body) =
        branding_form(&csrf, "Webwerk", Some(("image/svg+xml", HOSTILE_SVG)));
    let response = owner
        .client
        .post(format!("{}/settings/branding", owner.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("a logo may not"));
    let (content_type, body) = branding_form("not-the-token", "Webwerk", None);
    let response = owner
        .client
        .post(format!("{}/settings/branding", owner.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (content_type, body) =
        branding_form(&csrf, "Webwerk Studio", Some(("image/svg+xml", CLEAN_SVG)));
    let response = owner
        .client
        .post(format!("{}/settings/branding", owner.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // A client's contact; a bad address is refused.
    let target = new_target(&api, "http://branded-shop.test/").await;
    let client = app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {target}"
        ))
        .await;
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/clients/{client}"),
            serde_json::json!({"contact_email": "not an address"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/clients/{client}"),
            serde_json::json!({"contact_name": "Frau Gruber", "contact_email": "gruber@shop.example"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // Reports made now carry the agency's name, colour and logo, and the contact.
    let report: serde_json::Value = api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{client}/reports"),
            serde_json::json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let html = api
        .get(&format!("/api/v1/reports/{}/document", report["id"]))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Website report by Webwerk Studio for Frau Gruber"),
        "{html}"
    );
    assert!(html.contains("background: #0a7f3c"));
    assert!(html.contains("data:image/svg+xml;base64,"));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'branding.changed'")
            .await,
        3
    );
}
