//! OAuth and OpenID Connect sign-in against a small OpenID provider the test starts
//! (discovery, published keys, an authorization endpoint that approves at once, a token
//! endpoint that checks the client secret, the redirect URI and the PKCE verifier, and
//! ES256 ID tokens carrying the nonce it was given), driven as a browser would: following
//! each redirect by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use galley_testkit::{TestApp, spawn_app_with};
use serde_json::{Value, json};

const CLIENT_ID: &str = "galley-client";
const CLIENT_SECRET: &str = "provider-secret";
const APP: &str = "http://app.example/welcome";

/// Who the provider signs in next, and what it got.
#[derive(Default)]
struct OpState {
    /// The claims of the next sign-in (`sub`, `email`, `email_verified`, `name`).
    account: Value,
    /// Issue ID tokens with this nonce instead of the one asked for.
    wrong_nonce: Option<String>,
    /// code -> (nonce, PKCE challenge, redirect URI)
    codes: HashMap<String, (String, String, String)>,
}

struct Op {
    url: String,
    key: jsonwebtoken::EncodingKey,
    jwks: Value,
    state: Mutex<OpState>,
}

impl Op {
    fn id_token(&self, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("op-key".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    fn claims(&self, account: &Value, nonce: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": nonce,
        });
        for (key, value) in account.as_object().expect("account") {
            claims[key] = value.clone();
        }
        claims
    }
}

/// An ES256 private key (PEM) made by openssl.
fn ec_key(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("op.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&path)
        .status()
        .expect("openssl runs");
    assert!(status.success());
    path
}

async fn start_op(dir: &std::path::Path) -> Arc<Op> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let pem_path = ec_key(dir);
    let pem = std::fs::read(&pem_path).expect("pem");
    let keys = galley_auth::KeySet::load(&[galley_auth::SigningKeyConfig {
        kid: "op-key".to_owned(),
        algorithm: "ES256".to_owned(),
        private_key_file: pem_path,
    }])
    .expect("key set");
    let op = Arc::new(Op {
        url,
        key: jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("ec key"),
        jwks: keys.jwks(),
        state: Mutex::new(OpState::default()),
    });
    let shared = web::Data::from(op.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route(
                "/jwks",
                web::get().to(|op: web::Data<Op>| async move { HttpResponse::Ok().json(&op.jwks) }),
            )
            .route("/authorize", web::get().to(authorize))
            .route("/token", web::post().to(token))
            .route("/login/oauth/authorize", web::get().to(github_authorize))
            .route("/login/oauth/access_token", web::post().to(github_token))
            .route("/user", web::get().to(github_user))
            .route("/user/emails", web::get().to(github_emails))
    })
    .listen(listener)
    .expect("listen")
    .workers(1)
    .run();
    tokio::spawn(server);
    op
}

async fn discovery(op: web::Data<Op>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "issuer": op.url,
        "authorization_endpoint": format!("{}/authorize", op.url),
        "token_endpoint": format!("{}/token", op.url),
        "jwks_uri": format!("{}/jwks", op.url),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn authorize(op: web::Data<Op>, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    assert_eq!(get("client_id"), CLIENT_ID);
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("code_challenge_method"), "S256");
    assert!(
        get("scope").split(' ').any(|s| s == "openid"),
        "{:?}",
        get("scope")
    );
    let code = uuid::Uuid::new_v4().to_string();
    op.state.lock().expect("lock").codes.insert(
        code.clone(),
        (get("nonce"), get("code_challenge"), get("redirect_uri")),
    );
    let location = format!(
        "{}?{}",
        get("redirect_uri"),
        serde_urlencoded::to_string([("code", code.as_str()), ("state", get("state").as_str())])
            .expect("query")
    );
    HttpResponse::Found()
        .insert_header(("location", location))
        .finish()
}

async fn token(op: web::Data<Op>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    use base64::Engine;
    use sha2::Digest;
    let get = |key: &str| form.get(key).cloned().unwrap_or_default();
    let refuse = |why: &str| {
        HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": why}))
    };
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let mut state = op.state.lock().expect("lock");
    let Some((nonce, challenge, redirect_uri)) = state.codes.remove(&get("code")) else {
        return refuse("unknown code");
    };
    if redirect_uri != get("redirect_uri") {
        return refuse("redirect_uri");
    }
    let answered = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if answered != challenge {
        return refuse("PKCE verifier");
    }
    let nonce = state.wrong_nonce.clone().unwrap_or(nonce);
    let id_token = op.id_token(op.claims(&state.account, &nonce));
    HttpResponse::Ok().json(json!({
        "access_token": "provider-access-token", "token_type": "Bearer", "expires_in": 300,
        "refresh_token": "provider-refresh-token", "id_token": id_token,
    }))
}

/// GitHub's OAuth app endpoints, as far as Galley uses them.
async fn github_authorize(
    op: web::Data<Op>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    assert_eq!(get("client_id"), "github-client");
    assert!(
        get("scope").split(' ').any(|s| s == "user:email"),
        "{:?}",
        get("scope")
    );
    assert!(get("nonce").is_empty(), "GitHub is not sent a nonce");
    let code = uuid::Uuid::new_v4().to_string();
    op.state.lock().expect("lock").codes.insert(
        code.clone(),
        (String::new(), get("code_challenge"), get("redirect_uri")),
    );
    let location = format!(
        "{}?{}",
        get("redirect_uri"),
        serde_urlencoded::to_string([("code", code.as_str()), ("state", get("state").as_str())])
            .expect("query")
    );
    HttpResponse::Found()
        .insert_header(("location", location))
        .finish()
}

async fn github_token(op: web::Data<Op>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    use base64::Engine;
    use sha2::Digest;
    let get = |key: &str| form.get(key).cloned().unwrap_or_default();
    // GitHub answers errors with 200 and an `error` field.
    let refuse = |why: &str| {
        HttpResponse::Ok().json(json!({"error": "bad_verification_code", "error_description": why}))
    };
    if get("client_id") != "github-client" || get("client_secret") != "github-secret" {
        return refuse("client");
    }
    let Some((_, challenge, _)) = op.state.lock().expect("lock").codes.remove(&get("code")) else {
        return refuse("unknown code");
    };
    let answered = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if answered != challenge {
        return refuse("PKCE verifier");
    }
    HttpResponse::Ok().json(json!({"access_token": "github-access-token", "token_type": "bearer", "scope": "user:email"}))
}

fn github_authorized(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some("Bearer github-access-token")
}

async fn github_user(req: actix_web::HttpRequest) -> HttpResponse {
    if !github_authorized(&req) {
        return HttpResponse::Unauthorized().finish();
    }
    HttpResponse::Ok().json(json!({"id": 4242, "login": "octo", "name": "Octo Cat", "avatar_url": "https://avatars.example/octo.png", "email": null}))
}

async fn github_emails(req: actix_web::HttpRequest) -> HttpResponse {
    if !github_authorized(&req) {
        return HttpResponse::Unauthorized().finish();
    }
    HttpResponse::Ok().json(json!([
        {"email": "octo.unverified@example.com", "primary": false, "verified": false},
        {"email": "Octo@Example.com", "primary": true, "verified": true},
    ]))
}

async fn spawn(op: &Op, manual_linking: bool) -> TestApp {
    let issuer = op.url.clone();
    let op_url = op.url.clone();
    spawn_app_with(move |config| {
        config.auth.site_url = Some(APP.to_owned());
        config.auth.manual_linking = manual_linking;
        config.auth.anonymous_sign_ins = true;
        config.auth.external.insert(
            "corp".to_owned(),
            galley_auth::ExternalProviderConfig {
                client_id: CLIENT_ID.to_owned(),
                secret: Some(CLIENT_SECRET.to_owned().into()),
                issuer: Some(issuer),
                additional_client_ids: vec!["native-app".to_owned()],
                ..Default::default()
            },
        );
        // GitHub's preset, its web and API URLs pointed at the provider in the test as
        // GitHub Enterprise's would be.
        config.auth.external.insert(
            "github".to_owned(),
            galley_auth::ExternalProviderConfig {
                client_id: "github-client".to_owned(),
                secret: Some("github-secret".to_owned().into()),
                url: Some(op_url.clone()),
                api_url: Some(op_url),
                ..Default::default()
            },
        );
    })
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302, "{response:?}");
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned()
}

/// Follows a sign-in from Galley's `/authorize` URL through the provider and back:
/// where Galley finally sends the browser.
async fn browse(app: &TestApp, authorize_url: &str) -> String {
    browse_to(app, authorize_url, "http://127.0.0.1").await
}

/// As [`browse`], checking the provider's URL starts with `provider`.
async fn browse_to(app: &TestApp, authorize_url: &str, provider: &str) -> String {
    let browser = no_redirects();
    let to_provider = location(&browser.get(authorize_url).send().await.expect("authorize"));
    assert!(to_provider.starts_with(provider), "{to_provider}");
    let to_galley = location(&browser.get(&to_provider).send().await.expect("provider"));
    assert!(
        to_galley.starts_with(&app.url("/auth/v1/callback")),
        "{to_galley}"
    );
    location(&browser.get(&to_galley).send().await.expect("callback"))
}

fn fragment(url: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str(url.split_once('#').map_or("", |(_, f)| f)).expect("fragment")
}

fn query(url: &str) -> HashMap<String, String> {
    let before = url.split('#').next().unwrap_or_default();
    serde_urlencoded::from_str(before.split_once('?').map_or("", |(_, q)| q)).expect("query")
}

async fn get_user(app: &TestApp, access: &str) -> Value {
    app.http
        .get(app.url("/auth/v1/user"))
        .header("apikey", app.anon_key())
        .bearer_auth(access)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json")
}

fn claims_of(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("claims")
}

/// `POST /signup` with `body`: the answer.
async fn sign_up(app: &TestApp, body: Value) -> Value {
    app.http
        .post(app.url("/auth/v1/signup"))
        .header("apikey", app.anon_key())
        .json(&body)
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json")
}

fn set_account(op: &Op, account: Value) {
    op.state.lock().expect("lock").account = account;
}

#[tokio::test]
async fn oidc_sign_in_makes_links_and_recognises_users_and_refuses_bad_tokens() {
    let dir = tempfile::tempdir().expect("dir");
    let op = start_op(dir.path()).await;
    let app = spawn(&op, false).await;

    let settings: Value = app
        .http
        .get(app.url("/auth/v1/settings"))
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["external"]["corp"], true);
    assert_eq!(settings["external"]["github"], true);
    assert_eq!(settings["external"]["google"], false);

    // A new user from a verified identity.
    set_account(
        &op,
        json!({"sub": "op-1", "email": "Grace@Example.com", "email_verified": true, "name": "Grace"}),
    );
    let authorize = app.url(&format!(
        "/auth/v1/authorize?provider=corp&redirect_to={}",
        urlencode(APP)
    ));
    let landed = browse(&app, &authorize).await;
    assert!(landed.starts_with(&format!("{APP}#")), "{landed}");
    let session = fragment(&landed);
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["provider_token"], "provider-access-token");
    assert_eq!(session["provider_refresh_token"], "provider-refresh-token");
    let access = &session["access_token"];
    assert_eq!(claims_of(access)["amr"][0]["method"], "oauth");
    let user = get_user(&app, access).await;
    assert_eq!(user["email"], "grace@example.com");
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "corp", "providers": ["corp"]})
    );
    assert_eq!(user["user_metadata"]["name"], "Grace");
    let identities = user["identities"].as_array().expect("identities");
    assert_eq!(identities.len(), 1, "{user}");
    assert_eq!(identities[0]["provider"], "corp");
    assert_eq!(identities[0]["id"], "op-1");
    assert_eq!(identities[0]["identity_data"]["email"], "Grace@Example.com");
    assert_eq!(identities[0]["identity_data"]["iss"], op.url.as_str());
    let grace = user["id"].clone();

    // The same identity again is the same user.
    let again = fragment(&browse(&app, &authorize).await);
    assert_eq!(get_user(&app, &again["access_token"]).await["id"], grace);

    // A verified address that belongs to a password user joins that user.
    let signed_up: Value = sign_up(
        &app,
        json!({"email": "ada@example.com", "password": "correct horse battery"}),
    )
    .await;
    let ada = signed_up["user"]["id"].clone();
    set_account(
        &op,
        json!({"sub": "op-2", "email": "ada@example.com", "email_verified": true}),
    );
    let joined = fragment(&browse(&app, &authorize).await);
    let user = get_user(&app, &joined["access_token"]).await;
    assert_eq!(user["id"], ada);
    let providers = providers_of(&user);
    assert_eq!(providers, ["email", "corp"]);
    assert_eq!(user["app_metadata"]["providers"], json!(["corp", "email"]));

    // PKCE: the app's challenge; the callback gives a code only its verifier exchanges.
    let verifier = "a-verifier-of-the-app-that-is-long-enough-to-be-valid-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let landed = browse(
        &app,
        &format!("{authorize}&code_challenge={challenge}&code_challenge_method=s256"),
    )
    .await;
    let code = query(&landed).remove("code").expect("code in the query");
    assert!(!landed.contains('#'), "{landed}");
    let exchanged = app
        .http
        .post(app.url("/auth/v1/token?grant_type=pkce"))
        .header("apikey", app.anon_key())
        .json(&json!({"auth_code": code, "code_verifier": verifier}))
        .send()
        .await
        .expect("pkce");
    assert_eq!(exchanged.status(), 200);
    let exchanged: Value = exchanged.json().await.expect("json");
    assert_eq!(exchanged["user"]["id"], ada);
    // The provider's tokens come with the exchange, as GoTrue hands them over.
    assert_eq!(exchanged["provider_token"], "provider-access-token");
    assert_eq!(
        exchanged["provider_refresh_token"],
        "provider-refresh-token"
    );

    // A callback's state works once.
    let browser = no_redirects();
    let to_provider = location(&browser.get(&authorize).send().await.expect("authorize"));
    let to_galley = location(&browser.get(&to_provider).send().await.expect("provider"));
    let first = location(&browser.get(&to_galley).send().await.expect("callback"));
    assert!(fragment(&first).contains_key("access_token"));
    let replayed = location(&browser.get(&to_galley).send().await.expect("callback"));
    assert_eq!(
        query(&replayed)["error_code"],
        "bad_oauth_state",
        "{replayed}"
    );
    assert_eq!(
        fragment(&replayed)["error_description"],
        "OAuth state parameter is invalid"
    );

    // An ID token whose nonce is not the one Galley sent is refused.
    op.state.lock().expect("lock").wrong_nonce = Some("someone-elses".to_owned());
    let refused = browse(&app, &authorize).await;
    assert!(refused.starts_with(APP), "{refused}");
    assert_eq!(query(&refused)["error"], "server_error", "{refused}");
    op.state.lock().expect("lock").wrong_nonce = None;

    // An address someone registered without proving it is taken back by the person the
    // provider vouches for: the first comer's password, metadata and identity go.
    let created = app
        .http
        .post(app.url("/auth/v1/admin/users"))
        .bearer_auth(app.service_key())
        .header("apikey", app.anon_key())
        .json(&json!({"email": "squatted@example.com", "password": "correct horse battery", "user_metadata": {"planted": true}}))
        .send()
        .await
        .expect("admin create");
    assert_eq!(created.status(), 200);
    let squatted: Value = created.json().await.expect("json");
    assert!(squatted["email_confirmed_at"].is_null(), "{squatted}");
    set_account(
        &op,
        json!({"sub": "op-4", "email": "squatted@example.com", "email_verified": true, "name": "Owner"}),
    );
    let owner = fragment(&browse(&app, &authorize).await);
    let user = get_user(&app, &owner["access_token"]).await;
    assert_eq!(user["id"], squatted["id"]);
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert_eq!(user["user_metadata"].get("planted"), None, "{user}");
    assert_eq!(user["user_metadata"]["name"], "Owner");
    let providers = providers_of(&user);
    assert_eq!(providers, ["corp"], "{user}");
    let password = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("apikey", app.anon_key())
        .json(&json!({"email": "squatted@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("password grant");
    assert_eq!(password.status(), 400);

    // An unverified address does not join the user who has it; with confirmations off, a
    // new user is not made on it either (the address is taken).
    set_account(
        &op,
        json!({"sub": "op-3", "email": "ada@example.com", "email_verified": false}),
    );
    let refused = browse(&app, &authorize).await;
    assert_eq!(query(&refused)["error_code"], "email_exists", "{refused}");

    // Unknown and disabled providers, as GoTrue words them.
    for (provider, message) in [
        ("google", "Unsupported provider: provider is not enabled"),
        (
            "nope",
            "Unsupported provider: Provider nope could not be found",
        ),
    ] {
        let response = no_redirects()
            .get(app.url(&format!("/auth/v1/authorize?provider={provider}")))
            .header("x-supabase-api-version", "2024-01-01")
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({"code": "validation_failed", "message": message})
        );
    }

    // A native app's ID token (grant_type=id_token): the nonce is the SHA-256 of the one
    // the app passes; the audience may be an additional client id.
    let app_ref = &app;
    let native = |claims: Value| {
        let token = op.id_token(claims);
        let app = app_ref;
        async move {
            let response = app
                .http
                .post(app.url("/auth/v1/token?grant_type=id_token"))
                .header("apikey", app.anon_key())
                .json(&json!({"provider": "corp", "id_token": token, "nonce": "raw-nonce"}))
                .send()
                .await
                .expect("grant");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    };
    let hashed = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"raw-nonce"))
    };
    let mut claims = op.claims(
        &json!({"sub": "op-1", "email": "grace@example.com", "email_verified": true}),
        &hashed,
    );
    claims["aud"] = json!("native-app");
    let (status, body) = native(claims.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], grace);
    let mut wrong = claims.clone();
    wrong["nonce"] = json!("0000");
    assert_eq!(
        native(wrong).await,
        (
            400,
            json!({"error": "invalid nonce", "error_description": "Nonces mismatch"})
        )
    );
    let mut stranger = claims.clone();
    stranger["aud"] = json!("someone-else");
    let (status, body) = native(stranger).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid request");
    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    assert_eq!(native(expired).await.0, 400);
    let mut other_issuer = claims;
    other_issuer["iss"] = json!("https://evil.example");
    assert_eq!(native(other_issuer).await.0, 400);
    // A token signed with a key the provider does not publish.
    let forged = {
        let pem = std::fs::read(ec_key(&dir.path().join(".."))).expect("pem");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("op-key".to_owned());
        jsonwebtoken::encode(
            &header,
            &op.claims(&json!({"sub": "op-1"}), &hashed),
            &jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("key"),
        )
        .expect("sign")
    };
    let response = app
        .http
        .post(app.url("/auth/v1/token?grant_type=id_token"))
        .header("apikey", app.anon_key())
        .json(&json!({"provider": "corp", "id_token": forged, "nonce": "raw-nonce"}))
        .send()
        .await
        .expect("grant");
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn signed_in_users_link_and_unlink_identities_and_anonymous_ones_become_permanent() {
    let dir = tempfile::tempdir().expect("dir");
    let op = start_op(dir.path()).await;
    let off = spawn(&op, false).await;
    let anonymous: Value = sign_up(&off, json!({})).await;
    let response = off
        .http
        .get(off.url("/auth/v1/user/identities/authorize?provider=corp"))
        .header("x-supabase-api-version", "2024-01-01")
        .bearer_auth(anonymous["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("link");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"code": "manual_linking_disabled", "message": "Manual linking is disabled"})
    );

    let app = spawn(&op, true).await;
    let link = |access: String| {
        let app = &app;
        async move {
            let answer: Value = app
                .http
                .get(app.url(&format!("/auth/v1/user/identities/authorize?provider=corp&redirect_to={}&skip_http_redirect=true", urlencode(APP))))
                .header("apikey", app.anon_key())
                .bearer_auth(access)
                .send().await.expect("link").json().await.expect("json");
            let url = answer["url"].as_str().expect("url").to_owned();
            let browser = no_redirects();
            let to_galley = location(&browser.get(&url).send().await.expect("provider"));
            location(&browser.get(&to_galley).send().await.expect("callback"))
        }
    };

    // An anonymous user links an identity: the same id, now permanent, with its address.
    let anonymous: Value = sign_up(&app, json!({})).await;
    let id = anonymous["user"]["id"].clone();
    set_account(
        &op,
        json!({"sub": "op-9", "email": "lin@example.com", "email_verified": true}),
    );
    let landed = link(
        anonymous["access_token"]
            .as_str()
            .expect("token")
            .to_owned(),
    )
    .await;
    let session = fragment(&landed);
    let user = get_user(&app, &session["access_token"]).await;
    assert_eq!(user["id"], id, "{landed}");
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["email"], "lin@example.com");
    assert_eq!(
        user["identities"].as_array().map(Vec::len),
        Some(1),
        "{user}"
    );

    // A password user links a second identity, then unlinks it; the last cannot go.
    let signed_up: Value = sign_up(
        &app,
        json!({"email": "mo@example.com", "password": "correct horse battery"}),
    )
    .await;
    let access = signed_up["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The identity another user holds cannot be linked.
    let taken = link(access.clone()).await;
    assert_eq!(
        query(&taken)["error_code"],
        "identity_already_exists",
        "{taken}"
    );
    set_account(
        &op,
        json!({"sub": "op-10", "email": "mo.work@example.com", "email_verified": true}),
    );
    link(access.clone()).await;
    // Linking it a second time is refused, in GoTrue's words.
    let again = link(access.clone()).await;
    assert_eq!(
        query(&again)["error_code"],
        "identity_already_exists",
        "{again}"
    );
    assert_eq!(
        fragment(&again)["error_description"],
        "Identity is already linked",
        "{again}"
    );
    let user = get_user(&app, &access).await;
    let identities = user["identities"].as_array().expect("identities").clone();
    assert_eq!(
        identities
            .iter()
            .map(|i| i["provider"].clone())
            .collect::<Vec<_>>(),
        [json!("email"), json!("corp")]
    );
    let unlink = |identity: Value, access: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .delete(app.url(&format!(
                    "/auth/v1/user/identities/{}",
                    identity.as_str().expect("id")
                )))
                .header("apikey", app.anon_key())
                .header("x-supabase-api-version", "2024-01-01")
                .bearer_auth(access)
                .send()
                .await
                .expect("unlink");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    };
    assert_eq!(
        unlink(identities[1]["identity_id"].clone(), access.clone()).await,
        (200, json!({}))
    );
    let user = get_user(&app, &access).await;
    assert_eq!(user["identities"].as_array().map(Vec::len), Some(1));
    assert_eq!(user["app_metadata"]["providers"], json!(["email"]));
    assert_eq!(
        unlink(user["identities"][0]["identity_id"].clone(), access.clone()).await,
        (
            422,
            json!({"code": "single_identity_not_deletable", "message": "User must have at least 1 identity after unlinking"})
        )
    );
}

/// The providers of a user's identities, in order.
fn providers_of(user: &Value) -> Vec<&str> {
    user["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["provider"].as_str())
        .collect()
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)])
        .expect("encode")
        .trim_start_matches("v=")
        .to_owned()
}

#[tokio::test]
async fn the_github_preset_signs_in_with_the_api_user_and_its_verified_primary_address() {
    let dir = tempfile::tempdir().expect("dir");
    let op = start_op(dir.path()).await;
    let app = spawn(&op, false).await;
    let authorize = app.url(&format!(
        "/auth/v1/authorize?provider=github&redirect_to={}",
        urlencode(APP)
    ));
    let landed = browse_to(&app, &authorize, &op.url).await;
    let session = fragment(&landed);
    assert_eq!(session["provider_token"], "github-access-token");
    let user = get_user(&app, &session["access_token"]).await;
    assert_eq!(user["email"], "octo@example.com");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "github", "providers": ["github"]})
    );
    assert_eq!(user["user_metadata"]["user_name"], "octo");
    assert_eq!(user["user_metadata"]["full_name"], "Octo Cat");
    assert_eq!(
        user["user_metadata"]["avatar_url"],
        "https://avatars.example/octo.png"
    );
    let identity = &user["identities"][0];
    assert_eq!(identity["provider"], "github");
    assert_eq!(identity["id"], "4242");
    assert_eq!(identity["identity_data"]["email_verified"], true);
    // GitHub issues no ID tokens.
    let response = app
        .http
        .post(app.url("/auth/v1/token?grant_type=id_token"))
        .header("apikey", app.anon_key())
        .json(&json!({"provider": "github", "id_token": "a.b.c"}))
        .send()
        .await
        .expect("grant");
    assert_eq!(response.status(), 400);
}
