//! `/auth/v1` over HTTP: accounts, sessions and rotating refresh tokens, recovery links
//! from the outbox, the admin's users, GoTrue's error shapes, and the attacks the
//! security checklist names (token reuse, concurrent refreshes and signups, forged JWTs).

use galley_testkit::{TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key())
        .header("x-supabase-api-version", "2024-01-01")
        .json(&body)
        .send()
        .await
        .expect("response")
}

async fn with_token(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key())
        .header("x-supabase-api-version", "2024-01-01")
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("response")
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn sign_up(app: &TestApp, email: &str, password: &str) -> Value {
    let (status, body) = json_of(
        post(
            app,
            "/signup",
            json!({"email": email, "password": password, "data": {"name": "Ada"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    json_of(
        post(
            app,
            "/token?grant_type=password",
            json!({"email": email, "password": password}),
        )
        .await,
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    json_of(
        post(
            app,
            "/token?grant_type=refresh_token",
            json!({"refresh_token": token}),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn signup_signin_user_and_logout_speak_gotrue() {
    let app = spawn_app().await;
    let session = sign_up(&app, "  Ada@Example.com ", "correct horse battery").await;
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    assert_eq!(session["user"]["email"], "ada@example.com");
    assert_eq!(session["user"]["user_metadata"]["name"], "Ada");
    assert_eq!(session["user"]["app_metadata"]["provider"], "email");
    assert!(session["user"]["email_confirmed_at"].is_string());
    let access = session["access_token"].as_str().expect("access token");

    // The access token carries GoTrue's claims and works on the REST side as the user.
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64"),
    )
    .expect("claims");
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "role",
        "aal",
        "amr",
        "session_id",
        "is_anonymous",
    ] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["amr"][0]["method"], "password");

    let (status, user) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", access, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(user["id"], claims["sub"]);

    let (status, error) = sign_in(&app, "ada@example.com", "wrong horse battery").await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_credentials");
    let (status, unknown) = sign_in(&app, "nobody@example.com", "wrong horse battery").await;
    assert_eq!(
        (status, &unknown),
        (400, &error),
        "an unknown email answers the same"
    );
    let (status, second) = sign_in(&app, "ADA@example.com", "correct horse battery").await;
    assert_eq!(status, 200);

    // Logout of this session only; the other session still works.
    let response = with_token(
        &app,
        reqwest::Method::POST,
        "/logout?scope=local",
        access,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    let (status, error) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", access, None).await).await;
    assert_eq!(status, 403);
    assert_eq!(error["code"], "session_not_found");
    let other = second["access_token"].as_str().expect("token");
    let (status, _) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", other, None).await).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&app, session["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(
        status, 400,
        "the signed-out session's refresh token is dead"
    );

    // Errors in the legacy shape without the version header.
    let legacy = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .json(&json!({"email": "ada@example.com", "password": "nope nope nope"}))
        .send()
        .await
        .expect("response");
    assert!(legacy.headers().get("x-supabase-api-version").is_none());
    let (status, body) = json_of(legacy).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"})
    );
}

#[tokio::test]
async fn weak_or_malformed_signups_are_refused() {
    let app = spawn_app().await;
    for (body, status, code) in [
        (
            json!({"email": "a@example.com", "password": "short"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": "password123"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129)}),
            422,
            "weak_password",
        ),
        (json!({"email": "a@example.com"}), 400, "validation_failed"),
        (
            json!({"email": "not an email", "password": "correct horse battery"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "a@b.c\r\nBcc: x@y.z", "password": "correct horse battery"}),
            400,
            "validation_failed",
        ),
    ] {
        let (got, error) = json_of(post(&app, "/signup", body.clone()).await).await;
        assert_eq!(
            (got, error["code"].as_str()),
            (status, Some(code)),
            "{body}: {error}"
        );
    }
    let response = app
        .http
        .post(app.url("/auth/v1/signup"))
        .header("x-supabase-api-version", "2024-01-01")
        .body("{not json")
        .send()
        .await
        .expect("response");
    let (status, error) = json_of(response).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_json")));
    let (_, weak) = json_of(
        post(
            &app,
            "/signup",
            json!({"email": "b@example.com", "password": "iloveyou"}),
        )
        .await,
    )
    .await;
    assert_eq!(weak["weak_password"]["reasons"], json!(["pwned"]));
    sign_up(&app, "dup@example.com", "correct horse battery").await;
    let (status, error) = json_of(
        post(
            &app,
            "/signup",
            json!({"email": "DUP@example.com", "password": "another good one"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("user_already_exists"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_ends_the_session() {
    let app = spawn_app_with(|config| config.auth.refresh_reuse_interval_secs = 0).await;
    let session = sign_up(&app, "rot@example.com", "correct horse battery").await;
    let first = session["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (status, second) = refresh(&app, &first).await;
    assert_eq!(status, 200, "{second}");
    let second_token = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(second_token, first);
    // The first token again, after the reuse interval: reuse, and the session is gone.
    let (status, error) = refresh(&app, &first).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("refresh_token_already_used"))
    );
    let (status, error) = refresh(&app, &second_token).await;
    assert_eq!(status, 400, "{error}");
    let access = second["access_token"].as_str().expect("access");
    let (status, _) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", access, None).await).await;
    assert_eq!(
        status, 403,
        "the revoked session's access token is refused by /user"
    );
    let (status, error) = refresh(&app, "not-a-token").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("refresh_token_not_found"))
    );
    let (status, error) =
        json_of(post(&app, "/token?grant_type=refresh_token", json!({})).await).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn twenty_concurrent_refreshes_of_one_token_leave_one_live_branch() {
    let app = spawn_app().await;
    let session = sign_up(&app, "race@example.com", "correct horse battery").await;
    let token = session["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let answers = futures_util::future::join_all((0..20).map(|_| refresh(&app, &token))).await;
    let mut tokens: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["refresh_token"].as_str().expect("token").to_owned()
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        1,
        "every concurrent refresh got the same successor"
    );
    // The successor is the one live token; it rotates on.
    let (status, next) = refresh(&app, &tokens[0]).await;
    assert_eq!(status, 200);
    assert_ne!(next["refresh_token"], tokens[0].as_str());
    let client = app.db.connect().await.expect("connect");
    let sessions: i64 = client
        .query_one("SELECT count(*) FROM auth.sessions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn fifty_concurrent_signups_with_one_email_make_one_user() {
    // Fifty from one address is past the per-IP signup limit; this is about the race.
    let app = spawn_app_with(|config| config.ratelimit.email_per_ip = 100).await;
    let spellings = [
        "same@example.com",
        "SAME@example.com",
        "Same@Example.com",
        " same@EXAMPLE.com ",
    ];
    let app = &app;
    let answers = futures_util::future::join_all((0..50).map(|n| {
        let email = spellings[n % spellings.len()];
        async move {
            json_of(
                post(
                    app,
                    "/signup",
                    json!({"email": email, "password": "correct horse battery"}),
                )
                .await,
            )
            .await
        }
    }))
    .await;
    let created = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(status, body)| *status == 200
        || (*status == 422 && body["code"] == "user_already_exists")));
    let client = app.db.connect().await.expect("connect");
    let users: i64 = client
        .query_one("SELECT count(*) FROM auth.users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(users, 1);
}

/// The body of the newest mail to `email`, once the outbox holds `nth` of them (recovery
/// mail is queued after `/recover` has answered).
async fn mail_in_outbox(app: &TestApp, email: &str, nth: usize) -> String {
    for _ in 0..100 {
        let mails: Value = app
            .http
            .get(app.url("/admin/v1/outbox"))
            .bearer_auth(app.service_key())
            .send()
            .await
            .expect("response")
            .json()
            .await
            .expect("json");
        // Newest first.
        let mine: Vec<&Value> = mails
            .as_array()
            .expect("mails")
            .iter()
            .filter(|m| m["recipient"] == email)
            .collect();
        if mine.len() >= nth {
            return mine[0]["body"].as_str().expect("body").to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {nth} mails to {email} reached the outbox");
}

/// The link in the newest mail to `email`, once the outbox holds `nth` of them.
async fn link_in_outbox(app: &TestApp, email: &str, nth: usize) -> String {
    mail_in_outbox(app, email, nth)
        .await
        .split_whitespace()
        .find(|word| word.starts_with("http"))
        .expect("a link")
        .to_owned()
}

/// The six-digit code in the newest mail to `email`, once the outbox holds `nth` of them.
async fn code_in_outbox(app: &TestApp, email: &str, nth: usize) -> String {
    mail_in_outbox(app, email, nth)
        .await
        .split_whitespace()
        .find(|word| word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()))
        .expect("a code")
        .to_owned()
}

/// The claims of an access token, unverified.
fn claims_of(access: &str) -> Value {
    serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).expect("payload"),
        )
        .expect("base64"),
    )
    .expect("claims")
}

/// Follows a mailed link as a browser would, one hop: where it sends the browser.
async fn follow(app: &TestApp, link: &str) -> String {
    let path = link.split_once("/auth/v1").expect("verify path").1;
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url(&format!("/auth/v1{path}")))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 303);
    response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

fn query_value(link: &str, key: &str) -> String {
    let query = link.split_once('?').expect("query").1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("pairs");
    pairs
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .expect("key")
}

#[tokio::test]
async fn password_recovery_by_link_ends_the_other_sessions() {
    let app = spawn_app_with(|config| {
        config.auth.public_url = Some("https://galley.example".into());
        config.auth.site_url = Some("https://app.example".into());
    })
    .await;
    let first = sign_up(&app, "lost@example.com", "correct horse battery").await;
    let (status, body) =
        json_of(post(&app, "/recover", json!({"email": "lost@example.com"})).await).await;
    assert_eq!((status, body), (200, json!({})));
    let (status, body) =
        json_of(post(&app, "/recover", json!({"email": "ghost@example.com"})).await).await;
    assert_eq!(
        (status, body),
        (200, json!({})),
        "an unknown address answers the same"
    );

    let link = link_in_outbox(&app, "lost@example.com", 1).await;
    assert!(
        link.starts_with("https://galley.example/auth/v1/verify?"),
        "{link}"
    );
    let token = query_value(&link, "token");
    let client = app.db.connect().await.expect("connect");
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM auth.one_time_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
            &[&token],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 1, "only the token's SHA-256 is stored");
    let plain: i64 = client
        .query_one(
            "SELECT count(*) FROM auth.one_time_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(plain, 0);

    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"type": "recovery", "token_hash": token}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let (status, error) = json_of(
        post(
            &app,
            "/verify",
            json!({"type": "recovery", "token_hash": token}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("otp_expired")),
        "single use"
    );

    let access = session["access_token"].as_str().expect("access");
    let (status, _) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"password": "a brand new secret"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = sign_in(&app, "lost@example.com", "correct horse battery").await;
    assert_eq!(status, 400, "the old password is refused");
    let (status, _) = sign_in(&app, "lost@example.com", "a brand new secret").await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&app, first["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(status, 400, "the session from before the reset is revoked");
    let (status, error) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"password": "a brand new secret"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("same_password"))
    );

    // The link followed in a browser: 303 to the site with the session in the fragment.
    post(&app, "/recover", json!({"email": "lost@example.com"})).await;
    let link = link_in_outbox(&app, "lost@example.com", 2).await;
    let path = link
        .strip_prefix("https://galley.example")
        .expect("public url");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = no_redirect
        .get(app.url(path))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with("https://app.example#access_token="),
        "{location}"
    );
    assert!(location.contains("&type=recovery"));
    let again = no_redirect
        .get(app.url(path))
        .send()
        .await
        .expect("response");
    let location = again.headers()["location"].to_str().expect("location");
    assert!(location.contains("error_code=otp_expired"), "{location}");
    let evil = no_redirect
        .get(app.url(&format!(
            "{}&redirect_to=https%3A%2F%2Fevil.example",
            path.replace("&redirect_to=", "&x=")
        )))
        .send()
        .await
        .expect("response");
    let location = evil.headers()["location"].to_str().expect("location");
    assert!(location.starts_with("https://app.example#"), "{location}");
}

#[tokio::test]
async fn user_updates_merge_metadata_and_refuse_app_metadata() {
    let app = spawn_app().await;
    let session = sign_up(&app, "meta@example.com", "correct horse battery").await;
    let access = session["access_token"].as_str().expect("access");
    let (status, user) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"data": {"theme": "dark", "name": null}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(user["user_metadata"]["theme"], "dark");
    assert!(user["user_metadata"].get("name").is_none(), "{user}");
    let (status, error) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"app_metadata": {"role": "admin"}})),
        )
        .await,
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (403, Some("not_admin")));
    let (status, user) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"email": "New@Example.com"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, user["email"].as_str()),
        (200, Some("new@example.com"))
    );
}

#[tokio::test]
async fn admins_manage_users_and_a_ban_ends_sessions() {
    let app = spawn_app().await;
    let admin = app.service_key();
    let (status, created) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/admin/users",
            &admin,
            Some(json!({"email": "made@example.com", "password": "correct horse battery", "email_confirm": true, "app_metadata": {"plan": "pro"}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["app_metadata"]["plan"], "pro");
    let id = created["id"].as_str().expect("id").to_owned();
    for n in 0..3 {
        with_token(
            &app,
            reqwest::Method::POST,
            "/admin/users",
            &admin,
            Some(json!({"email": format!("u{n}@example.com")})),
        )
        .await;
    }
    let response = with_token(
        &app,
        reqwest::Method::GET,
        "/admin/users?page=1&per_page=2",
        &admin,
        None,
    )
    .await;
    assert_eq!(response.headers()["x-total-count"], "4");
    assert!(
        response.headers()["link"]
            .to_str()
            .expect("link")
            .contains("rel=\"next\"")
    );
    let (_, page) = json_of(response).await;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(2));

    let (status, session) = sign_in(&app, "made@example.com", "correct horse battery").await;
    assert_eq!(status, 200);
    let (status, banned) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            &format!("/admin/users/{id}"),
            &admin,
            Some(json!({"ban_duration": "24h"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(banned["banned_until"].is_string());
    let (status, _) = refresh(&app, session["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(
        status, 400,
        "a banned user's session stops at the next refresh"
    );
    let (status, error) = sign_in(&app, "made@example.com", "correct horse battery").await;
    assert_eq!((status, error["code"].as_str()), (400, Some("user_banned")));

    // Users cannot reach the admin endpoints.
    let user_token = session["access_token"].as_str().expect("access");
    let response = with_token(&app, reqwest::Method::GET, "/admin/users", user_token, None).await;
    assert_eq!(response.status(), 403);

    let response = with_token(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let (status, error) = json_of(
        with_token(
            &app,
            reqwest::Method::GET,
            &format!("/admin/users/{id}"),
            &admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("user_not_found"))
    );
}

fn sign(header: Value, claims: Value, key: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", encode(&header), encode(&claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    mac.update(input.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_refused_with_401() {
    let app = spawn_app().await;
    let session = sign_up(&app, "jwt@example.com", "correct horse battery").await;
    let sub = session["user"]["id"].as_str().expect("id").to_owned();
    let secret = app.config.auth.jwt_secret.as_ref().map(|s| {
        use secrecy::ExposeSecret;
        s.expose_secret().to_owned()
    });
    let secret = secret.expect("the test app has a secret");
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut base = json!({"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": now + 600, "iat": now});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base
    };
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let valid = sign(hs.clone(), claims(json!({})), secret.as_bytes());
    let tampered = {
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        use base64::Engine;
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims(json!({"role": "service_role"})).to_string());
        parts.join(".")
    };
    let none = {
        use base64::Engine;
        let encode =
            |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            encode(json!({"alg": "none", "typ": "JWT"})),
            encode(claims(json!({})))
        )
    };
    let attacks = [
        ("alg none", none),
        (
            "HS/RS confusion",
            sign(
                json!({"alg": "RS256", "typ": "JWT"}),
                claims(json!({})),
                secret.as_bytes(),
            ),
        ),
        (
            "expired",
            sign(
                hs.clone(),
                claims(json!({"exp": now - 3600})),
                secret.as_bytes(),
            ),
        ),
        (
            "not yet valid",
            sign(
                hs.clone(),
                claims(json!({"nbf": now + 3600})),
                secret.as_bytes(),
            ),
        ),
        (
            "issued in the future",
            sign(
                hs.clone(),
                claims(json!({"iat": now + 3600})),
                secret.as_bytes(),
            ),
        ),
        (
            "wrong audience",
            sign(
                hs.clone(),
                claims(json!({"aud": "someone-else"})),
                secret.as_bytes(),
            ),
        ),
        ("tampered payload", tampered),
        (
            "other secret",
            sign(
                hs.clone(),
                claims(json!({})),
                b"an entirely different secret of 32+ bytes",
            ),
        ),
        (
            "role outside the allowlist",
            sign(
                hs.clone(),
                claims(json!({"role": "postgres"})),
                secret.as_bytes(),
            ),
        ),
    ];
    let (status, _) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", &valid, None).await).await;
    assert_eq!(status, 200, "the control token works");
    for (name, token) in attacks {
        let rest = app
            .http
            .get(app.url("/rest/v1/nowhere"))
            .header("apikey", app.anon_key())
            .bearer_auth(&token)
            .send()
            .await
            .expect("response");
        assert_eq!(rest.status(), 401, "REST, {name}");
        if name != "role outside the allowlist" {
            let (status, error) =
                json_of(with_token(&app, reqwest::Method::GET, "/user", &token, None).await).await;
            assert_eq!(status, 401, "auth, {name}: {error}");
        }
    }
}

#[tokio::test]
async fn settings_health_and_jwks_answer() {
    let app = spawn_app().await;
    for (path, check) in [
        ("/auth/v1/settings", "external"),
        ("/auth/v1/health", "version"),
        ("/auth/v1/.well-known/jwks.json", "keys"),
    ] {
        let body: Value = app
            .http
            .get(app.url(path))
            .send()
            .await
            .expect("response")
            .json()
            .await
            .expect("json");
        assert!(body.get(check).is_some(), "{path}: {body}");
    }
}

#[tokio::test]
async fn rate_limits_count_per_ip_and_per_account_and_trust_only_configured_proxies() {
    let app = spawn_app_with(|config| {
        config.ratelimit.token_per_ip = 3;
        config.ratelimit.per_account = 5;
        config.ratelimit.email_per_ip = 2;
    })
    .await;
    let login = |forwarded: &'static str, email: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/auth/v1/token?grant_type=password"))
                .header("x-supabase-api-version", "2024-01-01")
                .header("x-forwarded-for", forwarded)
                .json(&json!({"email": email, "password": "whatever it is"}))
                .send()
                .await
                .expect("response")
        }
    };
    for _ in 0..3 {
        assert_eq!(login("10.0.0.1", "a@example.com").await.status(), 400);
    }
    // X-Forwarded-For from an untrusted peer changes nothing: the peer is the client.
    let limited = login("10.0.0.2", "a@example.com").await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=300).contains(&wait), "{wait}");
    let (_, error) = json_of(limited).await;
    assert_eq!(error["code"], "over_request_rate_limit");
    for _ in 0..2 {
        assert_eq!(
            post(&app, "/recover", json!({"email": "b@example.com"}))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        post(&app, "/recover", json!({"email": "b@example.com"}))
            .await
            .status(),
        429
    );

    // Behind a trusted proxy, each forwarded client has its own buckets, for its IP and
    // for each account it tries: five clients guessing one account are each answered
    // until their own bucket for it is empty.
    let proxied = spawn_app_with(|config| {
        config.ratelimit.token_per_ip = 3;
        config.ratelimit.per_account = 4;
        config.ratelimit.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let login = |forwarded: String| {
        let app = &proxied;
        async move {
            app.http
                .post(app.url("/auth/v1/token?grant_type=password"))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"email": "c@example.com", "password": "whatever it is"}))
                .send()
                .await
                .expect("response")
                .status()
                .as_u16()
        }
    };
    let statuses: Vec<u16> =
        futures_util::future::join_all((1..=6).map(|n| login(format!("203.0.113.{n}, 127.0.0.1"))))
            .await;
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
}

#[tokio::test]
async fn the_account_limit_holds_across_instances_sharing_the_database() {
    let limits = |config: &mut galley_server::Config| {
        config.ratelimit.per_account = 4;
        // Per-IP buckets out of the way: each instance counts only its own.
        config.ratelimit.token_per_ip = 1_000;
    };
    let first = spawn_app_with(limits).await;
    let second = galley_testkit::spawn_second_instance_with(&first, limits).await;
    let third = galley_testkit::spawn_second_instance_with(&first, limits).await;
    let login = |app: &galley_testkit::TestApp, email: &'static str| {
        let request = app
            .http
            .post(app.url("/auth/v1/token?grant_type=password"))
            .json(&json!({"email": email, "password": "whatever it is"}));
        async move { request.send().await.expect("response").status().as_u16() }
    };
    let mut statuses = Vec::new();
    for round in 0..3 {
        for app in [&first, &second, &third] {
            statuses.push((round, login(app, "shared@example.com").await));
        }
    }
    let allowed = statuses.iter().filter(|(_, s)| *s == 400).count();
    let limited = statuses.iter().filter(|(_, s)| *s == 429).count();
    assert_eq!(
        (allowed, limited),
        (4, 5),
        "one limit for the account, not one per instance: {statuses:?}"
    );
    // Another account is untouched by this one's bucket.
    assert_eq!(login(&second, "other@example.com").await, 400);
    // The table keeps digests, not addresses.
    let client = first.db.connect().await.expect("connect");
    let keys: Vec<String> = client
        .query("SELECT key FROM galley.rate_limits", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Two accounts, each with a bucket for this client and one for all clients.
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.iter().all(|key| key.len() == 64 && !key.contains('@')),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_and_many_guessers_are_only_slowed() {
    let app = spawn_app_with(|config| {
        config.ratelimit.per_account = 3;
        config.ratelimit.per_account_all_clients = 4;
        config.ratelimit.token_per_ip = 1_000;
        config.ratelimit.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let email = "owner@example.com";
    let password = "the owner's own password";
    let signup = post(
        &app,
        "/signup",
        json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(signup.status(), 200);
    let login = |client: &'static str, password: &'static str| {
        let request = app
            .http
            .post(app.url("/auth/v1/token?grant_type=password"))
            .header("x-forwarded-for", client)
            .json(&json!({"email": email, "password": password}));
        async move {
            let started = std::time::Instant::now();
            let status = request.send().await.expect("response").status().as_u16();
            (status, started.elapsed())
        }
    };
    // A guesser from one address is refused once its bucket for the account is empty.
    let mut guesses = Vec::new();
    for _ in 0..4 {
        guesses.push(login("203.0.113.66", "guess").await.0);
    }
    assert_eq!(guesses, [400, 400, 400, 429]);
    // The owner, from their own address, signs in (the account's all-clients bucket has
    // one token left).
    let (status, _) = login("198.51.100.1", password).await;
    assert_eq!(status, 200, "the owner is not locked out");
    // Many guessers from many addresses drain the all-clients bucket: then every attempt
    // waits, none is refused, and the owner still gets in, late.
    let (status, took) = login("203.0.113.67", "guess").await;
    assert_eq!(status, 400);
    assert!(
        took >= std::time::Duration::from_secs(4),
        "slowed: {took:?}"
    );
    let (status, took) = login("198.51.100.1", password).await;
    assert_eq!(status, 200, "slowed, not refused");
    assert!(
        took >= std::time::Duration::from_secs(4),
        "slowed: {took:?}"
    );
}

/// A private key PEM made by openssl: `ec` (P-256) or `rsa` (2048 bits).
fn private_key(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{kind}.pem"));
    let args: &[&str] = match kind {
        "ec" => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        _ => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
    };
    let status = std::process::Command::new("openssl")
        .args(args)
        .arg("-out")
        .arg(&path)
        .status()
        .expect("openssl runs");
    assert!(status.success());
    path
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64"),
    )
    .expect("json")
}

#[tokio::test]
async fn asymmetric_keys_sign_publish_in_jwks_and_rotate() {
    use galley_auth::SigningKeyConfig;
    let dir = tempfile::tempdir().expect("dir");
    let ec = private_key(dir.path(), "ec");
    let rsa = private_key(dir.path(), "rsa");
    let key = |kid: &str, algorithm: &str, file: &std::path::Path| SigningKeyConfig {
        kid: kid.into(),
        algorithm: algorithm.into(),
        private_key_file: file.to_path_buf(),
    };
    let first_keys = vec![key("ec-1", "ES256", &ec)];
    let app = spawn_app_with(move |config| config.auth.signing_keys = first_keys).await;
    let session = sign_up(&app, "keys@example.com", "correct horse battery").await;
    let old_token = session["access_token"].as_str().expect("access").to_owned();
    let header = header_of(&old_token);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("ES256"), Some("ec-1"))
    );
    let jwks: Value = app
        .http
        .get(app.url("/auth/v1/.well-known/jwks.json"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["kid"], "ec-1");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part: {jwks}"
    );
    let (status, _) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", &old_token, None).await).await;
    assert_eq!(status, 200);

    // Rotation: RS256 signs, the EC key still verifies.
    let rotated_keys = vec![key("rsa-2", "RS256", &rsa), key("ec-1", "ES256", &ec)];
    let rotated = galley_testkit::spawn_second_instance_with(&app, move |config| {
        config.auth.signing_keys = rotated_keys
    })
    .await;
    let (status, fresh) = sign_in(&rotated, "keys@example.com", "correct horse battery").await;
    assert_eq!(status, 200);
    let new_token = fresh["access_token"].as_str().expect("access").to_owned();
    assert_eq!(header_of(&new_token)["kid"], "rsa-2");
    for token in [&old_token, &new_token] {
        let (status, _) =
            json_of(with_token(&rotated, reqwest::Method::GET, "/user", token, None).await).await;
        assert_eq!(status, 200);
    }
    // HS/RS confusion: an HMAC over the token with the RSA key's public JWK is no signature.
    let public: Value = rotated
        .http
        .get(rotated.url("/auth/v1/.well-known/jwks.json"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(public["keys"].as_array().map(Vec::len), Some(2));
    let forged = sign(
        json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-2"}),
        json!({"sub": session["user"]["id"], "role": "authenticated", "exp": chrono::Utc::now().timestamp() + 600}),
        public["keys"][0]["n"].as_str().expect("n").as_bytes(),
    );
    let (status, _) =
        json_of(with_token(&rotated, reqwest::Method::GET, "/user", &forged, None).await).await;
    assert_eq!(status, 401);

    // The EC key removed: its tokens are refused at once.
    let last_keys = vec![key("rsa-2", "RS256", &rsa)];
    let last = galley_testkit::spawn_second_instance_with(&app, move |config| {
        config.auth.signing_keys = last_keys
    })
    .await;
    let (status, _) =
        json_of(with_token(&last, reqwest::Method::GET, "/user", &old_token, None).await).await;
    assert_eq!(status, 401);
    let rest = last
        .http
        .get(last.url("/rest/v1/nowhere"))
        .header("apikey", last.anon_key())
        .bearer_auth(&old_token)
        .send()
        .await
        .expect("response");
    assert_eq!(rest.status(), 401);
    let (status, _) =
        json_of(with_token(&last, reqwest::Method::GET, "/user", &new_token, None).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_time_codes_sign_in_once_expire_and_die_after_five_misses() {
    let app = spawn_app().await;
    // An unknown address with create_user off is refused as Supabase Auth refuses it.
    let (status, body) = json_of(
        post(
            &app,
            "/otp",
            json!({"email": "nobody@example.com", "create_user": false}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": "otp_disabled", "message": "Signups not allowed for otp"})
        )
    );

    // A new address gets an account and a code; the code signs in once.
    let (status, _) = json_of(post(&app, "/otp", json!({"email": "Otp@Example.com"})).await).await;
    assert_eq!(status, 200);
    let code = code_in_outbox(&app, "otp@example.com", 1).await;
    let verify = |code: String| {
        let app = &app;
        async move {
            json_of(
                post(
                    app,
                    "/verify",
                    json!({"email": "otp@example.com", "token": code, "type": "email"}),
                )
                .await,
            )
            .await
        }
    };
    let (status, session) = verify(code.clone()).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], "otp@example.com");
    assert!(session["user"]["email_confirmed_at"].is_string());
    let (status, body) = verify(code).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"code": "otp_expired", "message": "Token has expired or is invalid"})
        )
    );

    // Now confirmed, the address gets a magic link and code; five wrong codes kill it.
    assert_eq!(
        post(&app, "/otp", json!({"email": "otp@example.com"}))
            .await
            .status(),
        200
    );
    let code = code_in_outbox(&app, "otp@example.com", 2).await;
    let link = link_in_outbox(&app, "otp@example.com", 2).await;
    assert_eq!(query_value(&link, "type"), "magiclink");
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    for _ in 0..5 {
        assert_eq!(verify(wrong.clone()).await.0, 403);
    }
    assert_eq!(
        verify(code).await.0,
        403,
        "the right code after five misses"
    );
    // The link of the dead token is dead too.
    let (status, _) = json_of(
        post(
            &app,
            "/verify",
            json!({"token_hash": query_value(&link, "token"), "type": "magiclink"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);

    // An expired code is refused.
    assert_eq!(
        post(&app, "/otp", json!({"email": "otp@example.com"}))
            .await
            .status(),
        200
    );
    let code = code_in_outbox(&app, "otp@example.com", 3).await;
    app.db
        .connect()
        .await
        .expect("connect")
        .execute(
            "UPDATE auth.one_time_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
            &[],
        )
        .await
        .expect("expire");
    assert_eq!(verify(code).await.0, 403);

    // A fresh magic link signs in, by its link this time, with `otp` as the method.
    assert_eq!(
        post(&app, "/otp", json!({"email": "otp@example.com"}))
            .await
            .status(),
        200
    );
    let link = link_in_outbox(&app, "otp@example.com", 4).await;
    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"token_hash": query_value(&link, "token"), "type": "magiclink"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let claims = claims_of(session["access_token"].as_str().expect("token"));
    assert_eq!(claims["amr"][0]["method"], "otp");
}

#[tokio::test]
async fn a_pkce_link_gives_a_code_only_its_verifier_can_exchange_once() {
    use sha2::Digest;
    let app = spawn_app().await;
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha2::Sha256::digest(verifier.as_bytes()),
    );
    // GoTrue's checks on the challenge.
    let (status, body) = json_of(
        post(
            &app,
            "/otp",
            json!({"email": "pkce@example.com", "code_challenge": challenge}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            400,
            json!("PKCE flow requires code_challenge_method and code_challenge")
        )
    );

    let (status, _) = json_of(
        post(
            &app,
            "/otp",
            json!({"email": "pkce@example.com", "code_challenge": challenge, "code_challenge_method": "S256"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let location = follow(&app, &link_in_outbox(&app, "pkce@example.com", 1).await).await;
    assert!(!location.contains("access_token"), "{location}");
    let code = query_value(&location, "code");

    let exchange = |code: String, verifier: &'static str| {
        let app = &app;
        async move {
            json_of(
                post(
                    app,
                    "/token?grant_type=pkce",
                    json!({"auth_code": code, "code_verifier": verifier}),
                )
                .await,
            )
            .await
        }
    };
    let (status, body) = exchange(
        code.clone(),
        "another-verifier-of-at-least-forty-three-characters-012",
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "bad_code_verifier", "message": "code challenge does not match previously saved code verifier"})
        )
    );
    let (status, session) = exchange(code.clone(), verifier).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], "pkce@example.com");
    let (status, body) = exchange(code, verifier).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "flow_state_not_found", "message": "invalid flow state, no valid flow state found"})
        )
    );

    // A code older than five minutes is refused as expired.
    assert_eq!(
        post(
            &app,
            "/recover",
            json!({"email": "pkce@example.com", "code_challenge": verifier, "code_challenge_method": "plain"}),
        )
        .await
        .status(),
        200
    );
    let location = follow(&app, &link_in_outbox(&app, "pkce@example.com", 2).await).await;
    let code = query_value(&location, "code");
    app.db
        .connect()
        .await
        .expect("connect")
        .execute(
            "UPDATE auth.flow_states SET auth_code_issued_at = now() - interval '301 seconds'",
            &[],
        )
        .await
        .expect("age");
    let (status, body) = exchange(code, verifier).await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": "flow_state_expired", "message": "invalid flow state, flow state has expired"})
        )
    );
    let (status, body) = json_of(
        post(
            &app,
            "/token?grant_type=pkce",
            json!({"auth_code": "", "code_verifier": verifier}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            400,
            json!("invalid request: both auth code and code verifier should be non-empty")
        )
    );
}

#[tokio::test]
async fn anonymous_sign_ins_are_off_by_default_and_become_permanent_with_an_email() {
    let app = spawn_app().await;
    let (status, body) = json_of(post(&app, "/signup", json!({})).await).await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": "anonymous_provider_disabled", "message": "Anonymous sign-ins are disabled"})
        )
    );

    let app = spawn_app_with(|config| config.auth.anonymous_sign_ins = true).await;
    let settings: Value = app
        .http
        .get(app.url("/auth/v1/settings"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["external"]["anonymous_users"], true);
    let (status, session) =
        json_of(post(&app, "/signup", json!({"data": {"theme": "dark"}})).await).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["is_anonymous"], true);
    assert_eq!(session["user"]["app_metadata"], json!({}));
    assert_eq!(session["user"]["user_metadata"]["theme"], "dark");
    let access = session["access_token"].as_str().expect("token");
    let id = session["user"]["id"].clone();

    // Without confirmation (no SMTP here), the address applies at once.
    let (status, user) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            access,
            Some(json!({"email": "Kept@Example.com"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["id"], id);
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["email"], "kept@example.com");
    assert_eq!(user["app_metadata"]["provider"], "email");
}

async fn as_admin(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    json_of(
        app.http
            .post(app.url(&format!("/auth/v1{path}")))
            .header("apikey", app.anon_key())
            .header("x-supabase-api-version", "2024-01-01")
            .bearer_auth(app.service_key())
            .json(&body)
            .send()
            .await
            .expect("response"),
    )
    .await
}

#[tokio::test]
async fn invitations_and_generated_links_sign_in_once_and_generated_ones_send_nothing() {
    let app = spawn_app().await;
    // Only an admin invites.
    let (status, _) =
        json_of(post(&app, "/invite", json!({"email": "guest@example.com"})).await).await;
    assert_eq!(status, 403);
    let (status, user) = as_admin(
        &app,
        "/invite",
        json!({"email": "guest@example.com", "data": {"team": "red"}}),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert!(user["invited_at"].is_string());
    assert!(user.get("email_confirmed_at").is_none());
    let code = code_in_outbox(&app, "guest@example.com", 1).await;
    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"email": "guest@example.com", "token": code, "type": "invite"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["user_metadata"]["team"], "red");
    assert_eq!(
        claims_of(session["access_token"].as_str().expect("token"))["amr"][0]["method"],
        "invite"
    );
    // A confirmed address cannot be invited again.
    let (status, body) = as_admin(&app, "/invite", json!({"email": "guest@example.com"})).await;
    assert_eq!((status, body["code"].clone()), (422, json!("email_exists")));

    // Generated links: the answer carries what a mail would, and no mail goes out.
    let outbox_size = || async {
        app.http
            .get(app.url("/admin/v1/outbox"))
            .bearer_auth(app.service_key())
            .send()
            .await
            .expect("response")
            .json::<Value>()
            .await
            .expect("json")
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = outbox_size().await;
    let (status, link) = as_admin(
        &app,
        "/admin/generate_link",
        json!({"type": "signup", "email": "made@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["email"], "made@example.com");
    assert_eq!(link["verification_type"], "signup");
    for key in ["action_link", "email_otp", "hashed_token", "redirect_to"] {
        assert!(link[key].is_string(), "{key} in {link}");
    }
    let location = follow(&app, link["action_link"].as_str().expect("link")).await;
    assert!(location.contains("access_token="), "{location}");

    let (status, link) = as_admin(
        &app,
        "/admin/generate_link",
        json!({"type": "recovery", "email": "made@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{link}");
    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"email": "made@example.com", "token": link["email_otp"], "type": "recovery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"token_hash": link["hashed_token"], "type": "recovery"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        status, 403,
        "a link works once, by code or by link: {session}"
    );

    let (status, link) = as_admin(
        &app,
        "/admin/generate_link",
        json!({"type": "email_change_new", "email": "made@example.com", "new_email": "moved@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["new_email"], "moved@example.com");
    let (status, session) = json_of(
        post(
            &app,
            "/verify",
            json!({"token_hash": link["hashed_token"], "type": "email_change"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], "moved@example.com");

    let (status, body) = as_admin(
        &app,
        "/admin/generate_link",
        json!({"type": "recovery", "email": "nobody@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "user_not_found", "message": "User with this email not found"})
        )
    );
    assert_eq!(outbox_size().await, before, "generated links send no mail");

    // Listing users reads its page parameters as GoTrue does.
    for (query, expected) in [
        (
            "page=abc",
            "Bad Pagination Parameters: strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "per_page=-1",
            "Bad Pagination Parameters: strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
    ] {
        let (status, body) = json_of(
            app.http
                .get(app.url(&format!("/auth/v1/admin/users?{query}")))
                .header("x-supabase-api-version", "2024-01-01")
                .bearer_auth(app.service_key())
                .send()
                .await
                .expect("response"),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"code": "validation_failed", "message": expected})
            )
        );
    }
    let (status, page) = json_of(
        app.http
            .get(app.url("/auth/v1/admin/users?page=99999999999&per_page=5"))
            .bearer_auth(app.service_key())
            .send()
            .await
            .expect("response"),
    )
    .await;
    assert_eq!((status, page["users"].clone()), (200, json!([])));
}

#[tokio::test]
async fn a_password_change_needs_a_mailed_nonce_once_the_session_is_a_day_old() {
    let app = spawn_app_with(|config| config.auth.secure_password_change = true).await;
    sign_up(&app, "careful@example.com", "correct horse battery").await;
    let (_, session) = sign_in(&app, "careful@example.com", "correct horse battery").await;
    let access = session["access_token"].as_str().expect("token").to_owned();
    let change = |body: Value| {
        let app = &app;
        let access = access.clone();
        async move {
            json_of(with_token(app, reqwest::Method::PUT, "/user", &access, Some(body)).await).await
        }
    };
    // A fresh sign-in may change it directly.
    assert_eq!(
        change(json!({"password": "a second passphrase"})).await.0,
        200
    );
    app.db
        .connect()
        .await
        .expect("connect")
        .execute(
            "UPDATE auth.sessions SET created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .expect("age");
    assert_eq!(
        change(json!({"password": "a third passphrase"})).await,
        (
            400,
            json!({"code": "reauthentication_needed", "message": "Password update requires reauthentication"})
        )
    );
    assert_eq!(
        change(json!({"password": "a third passphrase", "nonce": "000000"})).await,
        (
            422,
            json!({"code": "reauthentication_not_valid", "message": "Nonce has expired or is invalid"})
        )
    );
    let (status, _) =
        json_of(with_token(&app, reqwest::Method::GET, "/reauthenticate", &access, None).await)
            .await;
    assert_eq!(status, 200);
    let nonce = code_in_outbox(&app, "careful@example.com", 1).await;
    assert_eq!(
        change(json!({"password": "a third passphrase", "nonce": nonce}))
            .await
            .0,
        200
    );
    assert_eq!(
        sign_in(&app, "careful@example.com", "a third passphrase")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn methods_galley_does_not_offer_answer_as_a_gotrue_with_them_off() {
    let app = spawn_app().await;
    let get = |path: &'static str| {
        let app = &app;
        async move {
            json_of(
                app.http
                    .get(app.url(&format!("/auth/v1{path}")))
                    .header("x-supabase-api-version", "2024-01-01")
                    .send()
                    .await
                    .expect("response"),
            )
            .await
        }
    };
    let refusal = |status: u16, code: &str, message: &str| {
        (status, json!({"code": code, "message": message}))
    };
    assert_eq!(
        json_of(
            post(
                &app,
                "/token?grant_type=password",
                json!({"phone": "+15551234567", "password": "x"})
            )
            .await
        )
        .await,
        refusal(422, "phone_provider_disabled", "Phone logins are disabled")
    );
    assert_eq!(
        json_of(post(&app, "/otp", json!({"phone": "+15551234567"})).await).await,
        refusal(400, "phone_provider_disabled", "Unsupported phone provider")
    );
    assert_eq!(
        json_of(
            post(
                &app,
                "/resend",
                json!({"type": "sms", "phone": "+15551234567"})
            )
            .await
        )
        .await,
        refusal(400, "phone_provider_disabled", "Phone logins are disabled")
    );
    assert_eq!(
        json_of(post(&app, "/resend", json!({"type": "magic"})).await).await,
        refusal(
            400,
            "validation_failed",
            "Missing one of these types: signup, email_change, sms, phone_change"
        )
    );
    assert_eq!(
        json_of(post(&app, "/sso", json!({"domain": "example.com"})).await).await,
        refusal(404, "saml_provider_disabled", "SAML 2.0 is disabled")
    );
    assert_eq!(
        json_of(post(&app, "/token?grant_type=web3", json!({"chain": "solana"})).await).await,
        refusal(422, "web3_provider_disabled", "Web3 provider is disabled")
    );
    assert_eq!(
        get("/authorize?provider=github").await,
        refusal(
            400,
            "validation_failed",
            "Unsupported provider: provider is not enabled"
        )
    );
    assert_eq!(
        get("/authorize?provider=myspace").await,
        refusal(
            400,
            "validation_failed",
            "Unsupported provider: Provider myspace could not be found"
        )
    );
    assert_eq!(
        get("/user/identities/authorize?provider=github").await,
        refusal(404, "manual_linking_disabled", "Manual linking is disabled")
    );
    let (_, settings) = get("/settings").await;
    assert_eq!(settings["external"]["github"], false);
    assert_eq!(settings["external"]["phone"], false);
    assert_eq!(settings["external"]["email"], true);
    assert_eq!(settings["saml_enabled"], false);
}

#[tokio::test]
async fn a_weaker_password_policy_is_the_operators_choice() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        post(
            &app,
            "/signup",
            json!({"email": "weak@example.com", "password": "iloveyou"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["weak_password"]["reasons"].clone()),
        (422, json!(["pwned"]))
    );
    let app = spawn_app_with(|config| {
        config.auth.password_min_length = 6;
        config.auth.password_blocklist = false;
    })
    .await;
    let (status, body) = json_of(
        post(
            &app,
            "/signup",
            json!({"email": "weak@example.com", "password": "123456"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The current code of a TOTP secret as an authenticator app shows it.
fn totp_code(secret: &str) -> String {
    crate::support::totp_code(secret, chrono::Utc::now().timestamp() / 30)
}

/// The `vault` rows `token` may read, once the table is served.
async fn vault_rows(app: &TestApp, token: &str) -> Value {
    for _ in 0..200 {
        let response = app
            .http
            .get(app.url("/rest/v1/vault?select=note"))
            .header("apikey", app.anon_key())
            .bearer_auth(token)
            .send()
            .await
            .expect("response");
        if response.status() == 200 {
            return response.json().await.expect("json");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the vault table was not served");
}

async fn challenge(app: &TestApp, access: &str, factor: &str) -> String {
    let (status, body) = json_of(
        with_token(
            app,
            reqwest::Method::POST,
            &format!("/factors/{factor}/challenge"),
            access,
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("challenge id").to_owned()
}

async fn verify_code(
    app: &TestApp,
    access: &str,
    factor: &str,
    id: &str,
    code: &str,
) -> (u16, Value) {
    json_of(
        with_token(
            app,
            reqwest::Method::POST,
            &format!("/factors/{factor}/verify"),
            access,
            Some(json!({"challenge_id": id, "code": code})),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn totp_factors_raise_sessions_to_aal2_which_row_level_security_can_require() {
    let app = spawn_app().await;
    let signed_up = sign_up(&app, "mfa@example.com", "correct horse battery").await;
    let access = signed_up["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let user_id = signed_up["user"]["id"].as_str().expect("id").to_owned();
    let (_, other_device) = sign_in(&app, "mfa@example.com", "correct horse battery").await;

    // Enrolment answers the secret, its otpauth URI and a QR code (an SVG document).
    let (status, enrolled) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/factors",
            &access,
            Some(json!({"factor_type": "totp", "friendly_name": "phone app"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{enrolled}");
    assert_eq!(enrolled["type"], "totp");
    assert_eq!(enrolled["friendly_name"], "phone app");
    let factor = enrolled["id"].as_str().expect("factor id").to_owned();
    let secret = enrolled["totp"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    let uri = enrolled["totp"]["uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/127.0.0.1"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let qr = enrolled["totp"]["qr_code"].as_str().expect("qr");
    assert!(qr.contains("<svg") && qr.ends_with("</svg>"), "{qr:.60}");
    // Clients put the document in a data URL as it is: a `#` or `%` would break it.
    assert!(!qr.contains(['#', '%']), "{qr:.300}");
    // The secret is sealed at rest.
    let db = app.db.connect().await.expect("connect");
    let stored: Vec<u8> = db
        .query_one(
            "SELECT secret FROM auth.mfa_factors WHERE id = $1::text::uuid",
            &[&factor],
        )
        .await
        .expect("factor row")
        .get(0);
    assert!(!String::from_utf8_lossy(&stored).contains(&secret));

    // Unverified, it shows in the user object; a second unnamed factor is fine once, and
    // a name is unique per user, the empty one included, as GoTrue checks it.
    let (_, user) =
        json_of(with_token(&app, reqwest::Method::GET, "/user", &access, None).await).await;
    assert_eq!(user["factors"][0]["status"], "unverified");
    assert_eq!(user["factors"][0]["factor_type"], "totp");
    for expected in [200, 422] {
        let (status, body) = json_of(
            with_token(
                &app,
                reqwest::Method::POST,
                "/factors",
                &access,
                Some(json!({"factor_type": "totp"})),
            )
            .await,
        )
        .await;
        assert_eq!(status, expected, "{body}");
        if expected == 422 {
            assert_eq!(
                body,
                json!({"code": "mfa_factor_name_conflict", "message": "A factor with the friendly name \"\" for this user already exists"})
            );
        }
    }
    let (status, body) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/factors",
            &access,
            Some(json!({"factor_type": "sms"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "validation_failed", "message": "factor_type needs to be totp, phone, or webauthn"})
        )
    );

    // A challenge lives five minutes; a wrong code is refused; five wrong codes end it.
    let first = challenge(&app, &access, &factor).await;
    let (status, body) = verify_code(&app, &access, &factor, &first, "000000").await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": "mfa_verification_failed", "message": "Invalid TOTP code entered"})
        )
    );
    for _ in 0..4 {
        verify_code(&app, &access, &factor, &first, "999999x").await;
    }
    let (status, body) = verify_code(&app, &access, &factor, &first, &totp_code(&secret)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "mfa_factor_not_found");

    // The right code raises this session to aal2 with totp first in amr.
    let second = challenge(&app, &access, &factor).await;
    let code = totp_code(&secret);
    let (status, raised) = verify_code(&app, &access, &factor, &second, &code).await;
    assert_eq!(status, 200, "{raised}");
    let claims = claims_of(raised["access_token"].as_str().expect("token"));
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"][0]["method"], "totp");
    assert_eq!(claims["amr"][1]["method"], "password");
    assert_eq!(claims["session_id"], claims_of(&access)["session_id"]);
    assert_eq!(raised["user"]["factors"][0]["status"], "verified");
    // The unverified second factor is gone; the other device's aal1 session ended.
    assert_eq!(raised["user"]["factors"].as_array().map(Vec::len), Some(1));
    let (status, _) = refresh(&app, other_device["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 400);
    // The refreshed aal2 session stays aal2.
    let (status, refreshed) = refresh(&app, raised["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().expect("token"))["aal"],
        "aal2"
    );
    let aal2 = refreshed["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // A code is accepted once: the same code on a new challenge is refused.
    let third = challenge(&app, &aal2, &factor).await;
    let (status, _) = verify_code(&app, &aal2, &factor, &third, &code).await;
    assert_eq!(status, 422);

    // Row-level security can require aal2.
    db.batch_execute(
        "CREATE TABLE public.vault (id int PRIMARY KEY, note text);
         INSERT INTO public.vault VALUES (1, 'only with two factors');
         GRANT SELECT ON public.vault TO authenticated;
         ALTER TABLE public.vault ENABLE ROW LEVEL SECURITY;
         CREATE POLICY aal2_only ON public.vault FOR SELECT TO authenticated
           USING ((auth.jwt() ->> 'aal') = 'aal2');",
    )
    .await
    .expect("vault");
    let (_, aal1_session) = sign_in(&app, "mfa@example.com", "correct horse battery").await;
    let aal1 = aal1_session["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(claims_of(&aal1)["aal"], "aal1");
    assert_eq!(
        vault_rows(&app, &aal2).await,
        json!([{"note": "only with two factors"}])
    );
    assert_eq!(vault_rows(&app, &aal1).await, json!([]));

    // At aal1, a user with a verified factor cannot remove it, add another, or change
    // their password.
    let (status, body) = json_of(
        with_token(
            &app,
            reqwest::Method::DELETE,
            &format!("/factors/{factor}"),
            &aal1,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"code": "insufficient_aal", "message": "AAL2 required to unenroll verified factor"})
        )
    );
    let (status, body) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/factors",
            &aal1,
            Some(json!({"factor_type": "totp", "friendly_name": "second"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"code": "insufficient_aal", "message": "AAL2 required to enroll a new factor"})
        )
    );
    let (status, body) = json_of(
        with_token(
            &app,
            reqwest::Method::PUT,
            "/user",
            &aal1,
            Some(json!({"password": "another horse battery"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "insufficient_aal");
    // Another user's factor is not found.
    let stranger = sign_up(&app, "stranger@example.com", "correct horse battery").await;
    let (status, body) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            &format!("/factors/{factor}/challenge"),
            stranger["access_token"].as_str().expect("token"),
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "mfa_factor_not_found", "message": "Factor not found"})
        )
    );

    // The admin lists, renames and removes factors; the sessions the factor raised go
    // back to aal1.
    let admin = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = app
            .http
            .request(method, app.url(&format!("/auth/v1{path}")))
            .header("apikey", app.anon_key())
            .bearer_auth(app.service_key());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let listed: Value = admin(
        reqwest::Method::GET,
        format!("/admin/users/{user_id}/factors"),
        None,
    )
    .await
    .expect("response")
    .json()
    .await
    .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], factor.as_str());
    let renamed: Value = admin(
        reqwest::Method::PUT,
        format!("/admin/users/{user_id}/factors/{factor}"),
        Some(json!({"friendly_name": "old phone"})),
    )
    .await
    .expect("response")
    .json()
    .await
    .expect("json");
    assert_eq!(renamed["friendly_name"], "old phone");
    let response = admin(
        reqwest::Method::DELETE,
        format!("/admin/users/{user_id}/factors/{factor}"),
        None,
    )
    .await
    .expect("response");
    assert_eq!(response.status(), 200);
    let (status, lowered) = refresh(&app, refreshed["refresh_token"].as_str().expect("rt")).await;
    assert_eq!(status, 200, "{lowered}");
    let claims = claims_of(lowered["access_token"].as_str().expect("token"));
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"].as_array().map(Vec::len), Some(1), "{claims}");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert!(lowered["user"].get("factors").is_none(), "{lowered}");
}

#[tokio::test]
async fn nul_characters_in_auth_input_are_refused_in_the_error_shape() {
    let app = spawn_app().await;
    let signed_up = sign_up(&app, "nul@example.com", "correct horse battery").await;
    let access = signed_up["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/factors",
            json!({"factor_type": "totp", "friendly_name": "phone\u{0}"}),
        ),
        (
            reqwest::Method::PUT,
            "/user",
            json!({"data": {"note": "a\u{0}b"}}),
        ),
    ] {
        let (status, answer) =
            json_of(with_token(&app, method, path, &access, Some(body)).await).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["code"], "validation_failed", "{answer}");
        let message = answer["message"].as_str().expect("message");
        assert!(
            message.starts_with("A value in the request cannot be stored: "),
            "{message}"
        );
        assert!(!message.contains("auth."), "no statement in {message}");
    }
    // Nothing was kept.
    let user = json_of(with_token(&app, reqwest::Method::GET, "/user", &access, None).await)
        .await
        .1;
    assert!(
        user["factors"].as_array().is_none_or(Vec::is_empty),
        "{user}"
    );
    assert_eq!(user["user_metadata"].get("note"), None, "{user}");
}

#[tokio::test]
async fn a_factor_makes_each_try_wait_after_ten_wrong_codes_in_a_row_across_challenges() {
    let app = spawn_app().await;
    let signed_up = sign_up(&app, "guessed@example.com", "correct horse battery").await;
    let access = signed_up["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (status, enrolled) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/factors",
            &access,
            Some(json!({"factor_type": "totp"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{enrolled}");
    let factor = enrolled["id"].as_str().expect("factor id").to_owned();
    let secret = enrolled["totp"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    // Two challenges of five wrong codes each: a fresh challenge does not start afresh.
    for _ in 0..2 {
        let id = challenge(&app, &access, &factor).await;
        for _ in 0..5 {
            let (status, body) = verify_code(&app, &access, &factor, &id, "000000").await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["code"], "mfa_verification_failed");
        }
    }
    let id = challenge(&app, &access, &factor).await;
    let (status, body) = verify_code(&app, &access, &factor, &id, &totp_code(&secret)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "over_request_rate_limit");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Too many wrong codes for this factor. Try again in "),
        "{message}"
    );
    // A minute later (the clock moved back in the database), the right code is taken
    // and the count starts again.
    let db = app.db.connect().await.expect("connect");
    db.execute(
        "UPDATE auth.mfa_factors SET last_failed_at = last_failed_at - interval '61 seconds' WHERE id = $1::text::uuid",
        &[&factor],
    )
    .await
    .expect("age the failures");
    let (status, body) = verify_code(&app, &access, &factor, &id, &totp_code(&secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().expect("token"))["aal"],
        "aal2"
    );
    let failed: i32 = db
        .query_one(
            "SELECT failed_attempts FROM auth.mfa_factors WHERE id = $1::text::uuid",
            &[&factor],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(failed, 0);
}

#[tokio::test]
async fn the_new_sign_in_endpoints_are_rate_limited_per_client() {
    let app = spawn_app_with(|config| {
        config.ratelimit.verify_per_ip = 3;
        config.ratelimit.token_per_ip = 3;
        config.auth.passkeys = true;
        config.auth.site_url = Some("http://localhost:3000".to_owned());
    })
    .await;
    let session = sign_up(&app, "limits@example.com", "correct horse battery").await;
    let access = session["access_token"].as_str().expect("token").to_owned();
    let (_, enrolled) = json_of(
        with_token(
            &app,
            reqwest::Method::POST,
            "/factors",
            &access,
            Some(json!({"factor_type": "totp"})),
        )
        .await,
    )
    .await;
    let factor = enrolled["id"].as_str().expect("factor").to_owned();
    // MFA challenges and verifies share the verify bucket: three, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for n in 0..4 {
        let path = if n % 2 == 0 {
            format!("/factors/{factor}/challenge")
        } else {
            format!("/factors/{factor}/verify")
        };
        let response = with_token(
            &app,
            reqwest::Method::POST,
            &path,
            &access,
            Some(json!({"challenge_id": uuid::Uuid::new_v4().to_string(), "code": "000000"})),
        )
        .await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 422, 200, 429]);
    // The OAuth callback too (the same bucket, now empty).
    let response = app
        .http
        .get(app.url("/auth/v1/callback?state=x&code=y"))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 429);
    // Passkey sign-in takes from the token bucket, as password sign-in does.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            post(&app, "/passkeys/authentication/options", json!({}))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}
