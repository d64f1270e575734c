//! `/auth/v1/passkeys`: what is refused, and the shape of the options a browser gets. The
//! whole ceremony (a credential made and used by an authenticator) runs in
//! tests/auth-browser, with Chromium's virtual authenticator.

use galley_testkit::{TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key())
        .header("x-supabase-api-version", "2024-01-01");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn passkeys_are_off_by_default_and_refuse_what_does_not_verify() {
    let off = spawn_app().await;
    let (status, body) = call(
        &off,
        reqwest::Method::POST,
        "/passkeys/authentication/options",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "passkey_disabled", "message": "Passkeys are disabled"})
        )
    );
    let settings: Value = off
        .http
        .get(off.url("/auth/v1/settings"))
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["passkeys_enabled"], false);

    let app = spawn_app_with(|config| {
        config.auth.passkeys = true;
        config.auth.site_url = Some("http://localhost:3000/app".to_owned());
    })
    .await;
    let settings: Value = app
        .http
        .get(app.url("/auth/v1/settings"))
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["passkeys_enabled"], true);

    // Registration needs a signed-in user.
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/options",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (_, session) = call(
        &app,
        reqwest::Method::POST,
        "/signup",
        None,
        Some(json!({"email": "key@example.com", "password": "correct horse battery", "data": {"name": "Key Holder"}})),
    )
    .await;
    let access = session["access_token"].as_str().expect("token").to_owned();
    let user_id = session["user"]["id"].as_str().expect("id").to_owned();

    // The options a browser passes to navigator.credentials.create().
    let (status, begun) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/options",
        Some(&access),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{begun}");
    let options = &begun["options"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "key@example.com");
    assert_eq!(options["user"]["displayName"], "Key Holder");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert!(
        options["challenge"].as_str().is_some_and(|c| c.len() >= 43),
        "{options}"
    );
    assert!(
        begun["expires_at"]
            .as_i64()
            .is_some_and(|at| at > chrono::Utc::now().timestamp())
    );
    let challenge = begun["challenge_id"]
        .as_str()
        .expect("challenge id")
        .to_owned();

    // An answer that is not a credential is refused, and the challenge is spent.
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/verify",
        Some(&access),
        Some(json!({"challenge_id": challenge, "credential": {"id": "x", "rawId": "eA", "type": "public-key", "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "webauthn_verification_failed");
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/verify",
        Some(&access),
        Some(json!({"challenge_id": challenge, "credential": {}})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "webauthn_challenge_not_found", "message": "Challenge not found or already used"})
        )
    );
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/verify",
        Some(&access),
        Some(json!({"challenge_id": "nope", "credential": {}})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "validation_failed", "message": "challenge_id must be a valid UUID"})
        )
    );

    // Sign-in options name no user and no credential: the authenticator offers its own.
    let (status, begun) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/authentication/options",
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{begun}");
    assert_eq!(begun["options"]["rpId"], "localhost");
    assert!(
        begun["options"]
            .get("allowCredentials")
            .is_none_or(|c| c == &json!([])),
        "{begun}"
    );
    let challenge = begun["challenge_id"]
        .as_str()
        .expect("challenge id")
        .to_owned();
    // A registration challenge does not answer a sign-in, nor the other way round.
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/registration/verify",
        Some(&access),
        Some(json!({"challenge_id": challenge, "credential": {}})),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("webauthn_challenge_not_found"))
    );
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/passkeys/authentication/verify",
        None,
        Some(json!({"challenge_id": challenge, "credential": {"id": "x"}})),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("webauthn_verification_failed"))
    );

    // Lists, renames and deletions of passkeys that are not there.
    let (status, list) = call(&app, reqwest::Method::GET, "/passkeys", Some(&access), None).await;
    assert_eq!((status, list), (200, json!([])));
    let missing = uuid::Uuid::new_v4();
    let (status, body) = call(
        &app,
        reqwest::Method::PATCH,
        &format!("/passkeys/{missing}"),
        Some(&access),
        Some(json!({"friendly_name": "x"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "validation_failed", "message": "Passkey not found"})
        )
    );
    let (status, body) = call(
        &app,
        reqwest::Method::PATCH,
        &format!("/passkeys/{missing}"),
        Some(&access),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "validation_failed", "message": "friendly_name is required"})
        )
    );
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/passkeys/{missing}"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let admin = app
        .http
        .get(app.url(&format!("/auth/v1/admin/users/{user_id}/passkeys")))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("admin list");
    assert_eq!(admin.status(), 200);
    assert_eq!(admin.json::<Value>().await.expect("json"), json!([]));
}
