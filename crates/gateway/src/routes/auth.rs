//! `/auth/v1`: the Supabase Auth (GoTrue) dialect, so `@supabase/supabase-js`'s `auth`
//! works unchanged: signup, password and refresh-token grants, logout, the user's own
//! record, recovery and confirmation links, settings, JWKS, and the admin's users.
//! The work is `galley_auth::Accounts`'; this module is HTTP only.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use galley_auth::{
    AdminUser, AuthError, Caller, ExternalSignIn, LogoutScope, Pkce, Proof, Session, Signup,
    UserUpdate, Verified, VerifyKind,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::extract::AdminAccess;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/auth/v1")
            // Tokens and user records must not be kept by a browser or a shared cache.
            .wrap(actix_web::middleware::DefaultHeaders::new().add(("cache-control", "no-store")))
            .route("/signup", web::post().to(signup))
            .route("/token", web::post().to(token))
            .route("/logout", web::post().to(logout))
            .route("/user", web::get().to(get_user))
            .route("/user", web::put().to(put_user))
            .route("/recover", web::post().to(recover))
            .route("/resend", web::post().to(resend))
            .route("/otp", web::post().to(otp))
            .route("/reauthenticate", web::get().to(reauthenticate))
            .route("/passkeys", web::get().to(list_passkeys))
            .route(
                "/passkeys/registration/options",
                web::post().to(passkey_registration_options),
            )
            .route(
                "/passkeys/registration/verify",
                web::post().to(passkey_registration_verify),
            )
            .route(
                "/passkeys/authentication/options",
                web::post().to(passkey_authentication_options),
            )
            .route(
                "/passkeys/authentication/verify",
                web::post().to(passkey_authentication_verify),
            )
            .route("/passkeys/{id}", web::patch().to(rename_passkey))
            .route("/passkeys/{id}", web::delete().to(delete_passkey))
            .route("/factors", web::post().to(enroll_factor))
            .route(
                "/factors/{factor}/challenge",
                web::post().to(challenge_factor),
            )
            .route("/factors/{factor}/verify", web::post().to(verify_factor))
            .route("/factors/{factor}", web::delete().to(unenroll_factor))
            .route("/authorize", web::get().to(authorize))
            .route("/sso", web::post().to(saml_disabled))
            .route("/sso/saml/acs", web::post().to(saml_disabled))
            .route("/sso/saml/metadata", web::get().to(saml_disabled))
            .route("/callback", web::get().to(callback))
            .route("/callback", web::post().to(callback_form))
            .route("/user/identities/authorize", web::get().to(link_identity))
            .route("/user/identities/{id}", web::delete().to(unlink_identity))
            .service(
                web::resource("/invite")
                    .wrap(actix_web::middleware::from_fn(crate::audit::track))
                    .route(web::post().to(invite)),
            )
            .route("/verify", web::post().to(verify_post))
            .route("/verify", web::get().to(verify_get))
            .route("/settings", web::get().to(settings))
            .route("/health", web::get().to(health))
            .route("/.well-known/jwks.json", web::get().to(jwks))
            .service(
                web::scope("/admin")
                    .wrap(actix_web::middleware::from_fn(crate::audit::track))
                    .route("/users", web::get().to(admin_list))
                    .route("/users", web::post().to(admin_create))
                    .route("/users/{id}", web::get().to(admin_get))
                    .route("/users/{id}", web::put().to(admin_update))
                    .route("/users/{id}", web::delete().to(admin_delete))
                    .route("/users/{id}/factors", web::get().to(admin_factors))
                    .route("/users/{id}/passkeys", web::get().to(admin_passkeys))
                    .route(
                        "/users/{id}/passkeys/{passkey}",
                        web::delete().to(admin_delete_passkey),
                    )
                    .route(
                        "/users/{id}/factors/{factor}",
                        web::delete().to(admin_delete_factor),
                    )
                    .route(
                        "/users/{id}/factors/{factor}",
                        web::put().to(admin_update_factor),
                    )
                    .route("/generate_link", web::post().to(admin_generate_link)),
            ),
    );
}

/// An auth error as GoTrue answers it: `{code, message}` with the API version header
/// when the client sent `X-Supabase-Api-Version` (auth-js always does), the older
/// `{code: <status>, error_code, msg}` otherwise.
struct Failure {
    error: AuthError,
    versioned: bool,
    /// Seconds until a rate-limited client may try again.
    retry_after: Option<u64>,
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl actix_web::ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = if self.error.oauth {
            json!({"error": self.error.code, "error_description": self.error.message})
        } else if self.versioned {
            json!({"code": self.error.code, "message": self.error.message})
        } else {
            json!({"code": self.error.status, "error_code": self.error.code, "msg": self.error.message})
        };
        if let (Some(weak), Some(object)) = (&self.error.weak, body.as_object_mut()) {
            object.insert("weak_password".into(), json!({"reasons": weak.reasons}));
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((crate::middleware::metrics::SB_ERROR_CODE, self.error.code));
        if let Some(seconds) = self.retry_after {
            response.insert_header(("retry-after", seconds.to_string()));
        }
        if self.versioned {
            response.insert_header(("x-supabase-api-version", API_VERSION));
        }
        response.json(body)
    }
}

const API_VERSION: &str = "2024-01-01";

fn versioned(req: &HttpRequest) -> bool {
    req.headers()
        .get("x-supabase-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= API_VERSION)
}

type Answer = Result<HttpResponse, Failure>;

/// Attaches the request's error dialect to an auth error.
trait Dialect<T> {
    fn dialect(self, req: &HttpRequest) -> Result<T, Failure>;
}

impl<T> Dialect<T> for Result<T, AuthError> {
    fn dialect(self, req: &HttpRequest) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            error,
            versioned: versioned(req),
            retry_after: None,
        })
    }
}

/// Takes a request from the caller's IP bucket and, when given, the account's; 429 with
/// `Retry-After` when either is empty.
async fn limit(
    state: &AppState,
    req: &HttpRequest,
    bucket: Bucket,
    account: Option<&str>,
) -> Result<(), Failure> {
    let ip = state.limits.client_ip(req);
    state
        .limits
        .take(bucket, &ip)
        .map_err(|wait| limited(req, bucket, &ip, wait))?;
    match account {
        Some(account) => limit_account(state, req, account).await,
        None => Ok(()),
    }
}

/// Takes a request from the account's buckets, whichever instance serves it: the one of
/// this account and this client refuses when empty (a guesser is stopped), the one of
/// this account and every client only slows (many guessers are held back, and the owner,
/// from their own address, still gets in).
async fn limit_account(state: &AppState, req: &HttpRequest, account: &str) -> Result<(), Failure> {
    let account = account.trim().to_lowercase();
    let ip = state.limits.client_ip(req);
    let wait = state
        .limits
        .take_account(&state.pools.owner, &account, &ip)
        .await
        .map_err(AuthError::from)
        .dialect(req)?
        .map_err(|wait| limited(req, Bucket::Account, &ip, wait))?;
    if !wait.is_zero() {
        state.metrics.auth_event("slowed");
        tracing::info!(event = "auth.slowed", wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), client_ip = %ip, "an account under many attempts: this one waits");
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

fn limited(req: &HttpRequest, bucket: Bucket, ip: &str, wait: std::time::Duration) -> Failure {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        state.metrics.auth_event("rate_limited");
    }
    tracing::warn!(event = "auth.rate_limited", bucket = ?bucket, client_ip = %ip, "a client was rate limited");
    Failure {
        error: AuthError::new(429, "over_request_rate_limit", "Request rate limit reached"),
        versioned: versioned(req),
        retry_after: Some(wait.as_secs().max(1)),
    }
}

fn ok(req: &HttpRequest, body: Value) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if versioned(req) {
        response.insert_header(("x-supabase-api-version", API_VERSION));
    }
    response.json(body)
}

/// A JSON body, or GoTrue's `bad_json`; a body declared as another media type is 415.
fn body<T: for<'de> Deserialize<'de>>(req: &HttpRequest, bytes: &[u8]) -> Result<T, AuthError> {
    if !bytes.is_empty()
        && let Some(media) = crate::content_type::not_json(req)
    {
        return Err(AuthError::new(
            415,
            "validation_failed",
            format!("Content-Type {media} is not supported; send application/json"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_str("{}").map_err(|err| bad_json(&err));
    }
    serde_json::from_slice(bytes).map_err(|err| bad_json(&err))
}

fn bad_json(err: &serde_json::Error) -> AuthError {
    AuthError::new(
        400,
        "bad_json",
        format!("Could not parse request body as JSON: {err}"),
    )
}

#[derive(Deserialize, Default)]
struct RedirectQuery {
    redirect_to: Option<String>,
}

fn redirect_to(req: &HttpRequest) -> Option<String> {
    web::Query::<RedirectQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().redirect_to)
}

#[derive(Deserialize)]
struct SignupBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    data: Option<Map<String, Value>>,
    #[serde(flatten)]
    challenge: ChallengeFields,
}

/// The PKCE challenge a request that mails a link may carry (`flow_type: 'pkce'`).
#[derive(Deserialize)]
struct ChallengeFields {
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

impl ChallengeFields {
    fn pkce(&self) -> Result<Option<Pkce>, AuthError> {
        Pkce::parse(
            self.code_challenge.as_deref(),
            self.code_challenge_method.as_deref(),
        )
    }
}

async fn signup(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    limit(&state, &req, Bucket::Email, None).await?;
    let input: SignupBody = body(&req, &bytes).dialect(&req)?;
    if input.phone.is_some() {
        return Err(AuthError::new(
            400,
            "phone_provider_disabled",
            "Phone signups are disabled",
        ))
        .dialect(&req);
    }
    let Some(email) = input.email else {
        let session = state
            .accounts
            .signup_anonymous(input.data, user_agent(&req).as_deref())
            .await
            .dialect(&req)?;
        state.metrics.auth_event("signup_anonymous");
        return Ok(session_response(&req, &session));
    };
    let challenge = input.challenge.pkce().dialect(&req)?;
    let outcome = state
        .accounts
        .signup(
            &email,
            input.password.as_deref().unwrap_or_default(),
            input.data,
            redirect_to(&req).as_deref(),
            challenge.as_ref(),
        )
        .await
        .dialect(&req)?;
    state.metrics.auth_event("signup");
    Ok(match outcome {
        Signup::Session(session) => session_response(&req, &session),
        Signup::User(user) => ok(&req, user),
    })
}

fn session_response(req: &HttpRequest, session: &Session) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if versioned(req) {
        response.insert_header(("x-supabase-api-version", API_VERSION));
    }
    response
        .insert_header(("cache-control", "no-store"))
        .json(session.to_json())
}

#[derive(Deserialize)]
struct GrantQuery {
    grant_type: Option<String>,
}

#[derive(Deserialize)]
struct TokenBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    auth_code: Option<String>,
    code_verifier: Option<String>,
    provider: Option<String>,
    id_token: Option<String>,
    nonce: Option<String>,
}

async fn token(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let grant = web::Query::<GrantQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().grant_type)
        .unwrap_or_default();
    limit(&state, &req, Bucket::Token, None).await?;
    let input: TokenBody = body(&req, &bytes).dialect(&req)?;
    let session = match grant.as_str() {
        "password" => {
            let (email, password) = match (input.email, input.phone, input.password) {
                (Some(_), Some(_), _) => {
                    return Err(AuthError::validation(
                        "Only an email address or phone number should be provided on login.",
                    ))
                    .dialect(&req);
                }
                (Some(email), None, Some(password)) => {
                    limit_account(&state, &req, &email).await?;
                    (email, password)
                }
                (None, None, _) => {
                    return Err(AuthError::validation("missing email or phone")).dialect(&req);
                }
                (None, Some(_), _) => return Err(phone_disabled(422)).dialect(&req),
                _ => return Err(AuthError::invalid_credentials()).dialect(&req),
            };
            let result = state
                .accounts
                .password_grant(&email, &password, user_agent(&req).as_deref())
                .await;
            record_login(&state, &result);
            result.dialect(&req)?
        }
        "refresh_token" => {
            let Some(token) = input.refresh_token.filter(|t| !t.is_empty()) else {
                return Ok(HttpResponse::BadRequest().json(json!({
                    "error": "invalid_request",
                    "error_description": "refresh_token required",
                })));
            };
            let result = state.accounts.refresh_grant(&token).await;
            match &result {
                Ok(_) => state.metrics.auth_event("refresh"),
                Err(err) if err.code == "refresh_token_already_used" => {
                    state.metrics.auth_event("refresh_token_reuse");
                }
                Err(_) => {}
            }
            result.dialect(&req)?
        }
        "web3" => {
            return Err(AuthError::new(
                422,
                "web3_provider_disabled",
                "Web3 provider is disabled",
            ))
            .dialect(&req);
        }
        "id_token" => {
            let result = state
                .accounts
                .id_token_grant(
                    input.provider.as_deref().unwrap_or_default(),
                    input.id_token.as_deref().unwrap_or_default(),
                    input.nonce.as_deref(),
                    user_agent(&req).as_deref(),
                )
                .await;
            record_login(&state, &result);
            result.dialect(&req)?
        }
        "pkce" => {
            let result = state
                .accounts
                .exchange_pkce(
                    input.auth_code.as_deref().unwrap_or_default(),
                    input.code_verifier.as_deref().unwrap_or_default(),
                    user_agent(&req).as_deref(),
                )
                .await;
            if result.is_ok() {
                state.metrics.auth_event("pkce");
            }
            result.dialect(&req)?
        }
        _ => {
            return Err(AuthError::new(
                400,
                "invalid_credentials",
                "unsupported_grant_type",
            ))
            .dialect(&req);
        }
    };
    Ok(session_response(&req, &session))
}

/// Counts a sign-in, and logs a refused one with its code.
fn record_login(state: &AppState, result: &Result<Session, AuthError>) {
    match result {
        Ok(_) => state.metrics.auth_event("login_success"),
        Err(err) => {
            state.metrics.auth_event("login_failure");
            tracing::info!(
                event = "auth.login_failed",
                code = err.code,
                "a sign-in was refused"
            );
        }
    }
}

/// What a phone sign-in answers: Galley sends no SMS, so phone logins are off.
fn phone_disabled(status: u16) -> AuthError {
    AuthError::new(
        status,
        "phone_provider_disabled",
        "Phone logins are disabled",
    )
}

/// SAML single sign-on (`/sso`, its ACS and metadata): not offered, answered as a
/// GoTrue with SAML off answers.
async fn saml_disabled(req: HttpRequest) -> Answer {
    Err(AuthError::new(
        404,
        "saml_provider_disabled",
        "SAML 2.0 is disabled",
    ))
    .dialect(&req)
}

/// Identity linking while manual linking is off.
fn manual_linking_disabled() -> AuthError {
    AuthError::new(404, "manual_linking_disabled", "Manual linking is disabled")
}

/// The OAuth providers Supabase Auth knows, as `/settings` lists them.
const OAUTH_PROVIDERS: &[&str] = &[
    "apple",
    "azure",
    "bitbucket",
    "discord",
    "facebook",
    "figma",
    "fly",
    "github",
    "gitlab",
    "google",
    "keycloak",
    "kakao",
    "linkedin",
    "linkedin_oidc",
    "notion",
    "spotify",
    "slack",
    "slack_oidc",
    "snapchat",
    "twitch",
    "twitter",
    "workos",
    "zoom",
];

#[derive(Deserialize)]
struct AuthorizeQuery {
    provider: Option<String>,
    redirect_to: Option<String>,
    scopes: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    skip_http_redirect: Option<String>,
}

/// The provider named, if offered; else GoTrue's refusal for a disabled (known) or
/// unknown provider.
fn offered_provider(state: &AppState, provider: &str) -> Result<(), AuthError> {
    if state.accounts.offers_provider(provider) {
        return Ok(());
    }
    let why = if OAUTH_PROVIDERS.contains(&provider.to_ascii_lowercase().as_str()) {
        "provider is not enabled".to_owned()
    } else {
        format!("Provider {provider} could not be found")
    };
    Err(AuthError::validation(format!(
        "Unsupported provider: {why}"
    )))
}

/// `GET /authorize?provider=…` (and, for a signed-in user, `/user/identities/authorize`):
/// sends the browser to the provider, or answers `{url}` with `skip_http_redirect`.
async fn begin_oauth(state: &AppState, req: &HttpRequest, link: Option<&Caller>) -> Answer {
    limit(state, req, Bucket::Verify, None).await?;
    let query = web::Query::<AuthorizeQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| AuthError::validation("Invalid query parameters"))
        .dialect(req)?;
    let provider = query.provider.clone().unwrap_or_default();
    offered_provider(state, &provider).dialect(req)?;
    let pkce = Pkce::parse(
        query.code_challenge.as_deref(),
        query.code_challenge_method.as_deref(),
    )
    .dialect(req)?;
    let url = state
        .accounts
        .oauth_authorize(
            &provider,
            query.redirect_to.as_deref(),
            pkce,
            query.scopes.as_deref(),
            link,
        )
        .await
        .dialect(req)?;
    if link.is_some() || query.skip_http_redirect.as_deref() == Some("true") {
        return Ok(ok(req, json!({"url": url})));
    }
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, url))
        .insert_header(("cache-control", "no-store"))
        .finish())
}

async fn authorize(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    begin_oauth(&state, &req, None).await
}

async fn link_identity(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    if !state.accounts.settings().manual_linking {
        return Err(manual_linking_disabled()).dialect(&req);
    }
    let caller = caller(&state, &req).dialect(&req)?;
    begin_oauth(&state, &req, Some(&caller)).await
}

async fn unlink_identity(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    if !state.accounts.settings().manual_linking {
        return Err(manual_linking_disabled()).dialect(&req);
    }
    let caller = caller(&state, &req).dialect(&req)?;
    state
        .accounts
        .unlink_identity(&caller, &path)
        .await
        .dialect(&req)?;
    Ok(ok(&req, json!({})))
}

#[derive(Deserialize, Default)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: the provider sends the browser back here; Galley finishes the
/// sign-in and sends it on to the app with the session in the fragment, a PKCE code in
/// the query, or the error in both, as GoTrue does.
async fn callback(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let query = web::Query::<CallbackQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    finish_callback(&state, &req, query).await
}

/// `POST /callback`: providers answering with `response_mode=form_post`.
async fn callback_form(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let query = serde_urlencoded::from_bytes::<CallbackQuery>(&bytes).unwrap_or_default();
    finish_callback(&state, &req, query).await
}

async fn finish_callback(state: &AppState, req: &HttpRequest, query: CallbackQuery) -> Answer {
    limit(state, req, Bucket::Verify, None).await?;
    let failure = query.error.as_deref().map(|error| {
        (
            error,
            query.error_description.as_deref().unwrap_or_default(),
        )
    });
    let (target, result) = state
        .accounts
        .oauth_callback(
            query.state.as_deref().unwrap_or_default(),
            query.code.as_deref().unwrap_or_default(),
            failure,
            user_agent(req).as_deref(),
        )
        .await;
    let (base, _) = target.split_once('#').unwrap_or((&target, ""));
    let location = match result {
        Ok(ExternalSignIn::AuthCode(code)) => {
            let joiner = if base.contains('?') { '&' } else { '?' };
            let query = serde_urlencoded::to_string([("code", code.as_str())]).unwrap_or_default();
            format!("{base}{joiner}{query}")
        }
        Ok(ExternalSignIn::Session {
            session,
            provider_token,
            provider_refresh_token,
        }) => {
            state.metrics.auth_event("login_success");
            let expires_at = session.expires_at.to_string();
            let expires_in = session.expires_in.to_string();
            let mut pairs = vec![
                ("access_token", session.access_token.as_str()),
                ("expires_at", expires_at.as_str()),
                ("expires_in", expires_in.as_str()),
            ];
            if let Some(token) = provider_refresh_token.as_deref() {
                pairs.push(("provider_refresh_token", token));
            }
            if let Some(token) = provider_token.as_deref() {
                pairs.push(("provider_token", token));
            }
            pairs.push(("refresh_token", session.refresh_token.as_str()));
            pairs.push(("token_type", "bearer"));
            format!(
                "{base}#{}",
                serde_urlencoded::to_string(&pairs).unwrap_or_default()
            )
        }
        Err(err) => {
            state.metrics.auth_event("login_failure");
            tracing::info!(
                event = "auth.oauth_failed",
                code = err.code,
                "an OAuth sign-in was refused"
            );
            let error = match err.code {
                "signup_disabled" | "user_banned" | "provider_email_needs_verification" => {
                    "access_denied"
                }
                _ if err.status >= 500 => "server_error",
                _ => "invalid_request",
            };
            let pairs = [
                ("error", error),
                ("error_code", err.code),
                ("error_description", err.message.as_str()),
            ];
            let encoded = serde_urlencoded::to_string(pairs).unwrap_or_default();
            let joiner = if base.contains('?') { '&' } else { '?' };
            format!("{base}{joiner}{encoded}#{encoded}&sb=")
        }
    };
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, location))
        .insert_header(("cache-control", "no-store"))
        .finish())
}

/// The client's `User-Agent`, cut to 256 characters, for the session it starts.
fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect::<String>())
}

/// The caller of a user endpoint: a verified access token naming a user. API keys (no
/// `sub`) are not users.
fn caller(state: &AppState, req: &HttpRequest) -> Result<Caller, AuthError> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            AuthError::new(
                401,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })?;
    let claims = state.tokens.verify(token).map_err(|err| {
        AuthError::new(
            401,
            "bad_jwt",
            format!("invalid JWT: unable to parse or verify signature, {err}"),
        )
    })?;
    let sub = claims
        .raw
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::new(403, "bad_jwt", "invalid claim: missing sub claim"))?;
    let user_id = Uuid::parse_str(sub)
        .map_err(|_| AuthError::new(400, "bad_jwt", "invalid claim: sub claim must be a UUID"))?;
    crate::extract::record_identity(req, &claims.role, &claims.raw);
    let session_id = claims
        .raw
        .get("session_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    Ok(Caller {
        user_id,
        session_id,
    })
}

#[derive(Deserialize)]
struct LogoutQuery {
    scope: Option<String>,
}

async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let scope = web::Query::<LogoutQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().scope)
        .unwrap_or_default();
    let scope = match scope.as_str() {
        "" | "global" => LogoutScope::Global,
        "local" => LogoutScope::Local,
        "others" => LogoutScope::Others,
        other => {
            return Err(AuthError::validation(format!(
                "Unsupported logout scope {:?}",
                other.chars().take(32).collect::<String>()
            )))
            .dialect(&req);
        }
    };
    state.accounts.logout(&caller, scope).await.dialect(&req)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_user(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let user = state.accounts.current_user(&caller).await.dialect(&req)?;
    Ok(ok(&req, user.to_json()))
}

#[derive(Deserialize)]
struct UserBody {
    email: Option<String>,
    password: Option<String>,
    nonce: Option<String>,
    data: Option<Map<String, Value>>,
    app_metadata: Option<Value>,
    phone: Option<String>,
}

async fn put_user(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let input: UserBody = body(&req, &bytes).dialect(&req)?;
    if input.app_metadata.is_some() {
        return Err(AuthError::new(
            403,
            "not_admin",
            "Updating app_metadata requires admin privileges",
        ))
        .dialect(&req);
    }
    if input.phone.is_some() {
        return Err(AuthError::new(
            400,
            "phone_provider_disabled",
            "Phone logins are disabled",
        ))
        .dialect(&req);
    }
    let update = UserUpdate {
        email: input.email,
        password: input.password,
        data: input.data,
        nonce: input.nonce,
    };
    let user = state
        .accounts
        .update_user(&caller, update, redirect_to(&req).as_deref())
        .await
        .dialect(&req)?;
    Ok(ok(&req, user.to_json()))
}

#[derive(Deserialize)]
struct RecoverBody {
    email: Option<String>,
    #[serde(flatten)]
    challenge: ChallengeFields,
}

async fn recover(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let input: RecoverBody = body(&req, &bytes).dialect(&req)?;
    limit(&state, &req, Bucket::Email, input.email.as_deref()).await?;
    state
        .accounts
        .recover_in_background(
            input.email.as_deref().unwrap_or_default(),
            redirect_to(&req).as_deref(),
            input.challenge.pkce().dialect(&req)?,
        )
        .dialect(&req)?;
    Ok(ok(&req, json!({})))
}

#[derive(Deserialize)]
struct ResendBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(flatten)]
    challenge: ChallengeFields,
}

async fn resend(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let input: ResendBody = body(&req, &bytes).dialect(&req)?;
    limit(&state, &req, Bucket::Email, input.email.as_deref()).await?;
    // GoTrue's checks, in its order: the type, then what it needs, then the provider.
    let kind = input.kind.as_deref().unwrap_or_default();
    if !matches!(kind, "signup" | "email_change" | "sms" | "phone_change") {
        return Err(AuthError::validation(
            "Missing one of these types: signup, email_change, sms, phone_change",
        ))
        .dialect(&req);
    }
    let Some(email) = input.email.filter(|e| !e.is_empty()) else {
        return Err(match input.phone.filter(|p| !p.is_empty()) {
            Some(_) => phone_disabled(400),
            None => AuthError::validation("Missing email address or phone number"),
        })
        .dialect(&req);
    };
    state
        .accounts
        .resend(
            input.kind.as_deref().unwrap_or_default(),
            &email,
            redirect_to(&req).as_deref(),
            input.challenge.pkce().dialect(&req)?.as_ref(),
        )
        .await
        .dialect(&req)?;
    Ok(ok(&req, json!({})))
}

#[derive(Deserialize)]
struct OtpBody {
    email: Option<String>,
    phone: Option<String>,
    create_user: Option<bool>,
    data: Option<Map<String, Value>>,
    #[serde(flatten)]
    challenge: ChallengeFields,
}

/// `POST /otp`: a sign-in link and code by mail (`signInWithOtp`).
async fn otp(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let input: OtpBody = body(&req, &bytes).dialect(&req)?;
    limit(&state, &req, Bucket::Email, input.email.as_deref()).await?;
    if input.phone.is_some() {
        return Err(AuthError::new(
            400,
            "phone_provider_disabled",
            "Unsupported phone provider",
        ))
        .dialect(&req);
    }
    let Some(email) = input.email else {
        return Err(AuthError::validation("One of email or phone must be set")).dialect(&req);
    };
    state
        .accounts
        .otp(
            &email,
            input.create_user.unwrap_or(true),
            input.data,
            redirect_to(&req).as_deref(),
            input.challenge.pkce().dialect(&req)?.as_ref(),
        )
        .await
        .dialect(&req)?;
    state.metrics.auth_event("otp");
    Ok(ok(&req, json!({})))
}

#[derive(Deserialize)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
    email: Option<String>,
}

async fn verify_post(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    limit(&state, &req, Bucket::Verify, None).await?;
    let input: VerifyBody = body(&req, &bytes).dialect(&req)?;
    let kind = verify_kind(input.kind.as_deref()).dialect(&req)?;
    let proof = match (&input.token, &input.token_hash, &input.email) {
        (Some(code), None, Some(email)) => Proof::Code { email, code },
        (None, Some(hash), None) => Proof::Link(hash),
        (Some(_), Some(_), _) | (None, None, _) => {
            return Err(AuthError::validation(
                "Verify requires either a token or a token hash",
            ))
            .dialect(&req);
        }
        _ => {
            return Err(AuthError::validation(
                "Only the token_hash and type should be provided",
            ))
            .dialect(&req);
        }
    };
    match state
        .accounts
        .verify(kind, proof, false)
        .await
        .dialect(&req)?
    {
        Verified::Session(session) => Ok(session_response(&req, &session)),
        // Only a followed link gives a code.
        Verified::AuthCode(_) => Err(AuthError::unexpected()).dialect(&req),
    }
}

fn verify_kind(kind: Option<&str>) -> Result<VerifyKind, AuthError> {
    let kind = kind.ok_or_else(|| AuthError::validation("Verify requires a verification type"))?;
    VerifyKind::parse(kind).ok_or_else(|| AuthError::validation("Unsupported verification type"))
}

#[derive(Deserialize)]
struct VerifyQuery {
    token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    redirect_to: Option<String>,
}

/// The link in a mail: follows it and sends the browser on, to `redirect_to` when it is
/// allowed, else the site URL, with the session (or the error) in the fragment.
async fn verify_get(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    limit(&state, &req, Bucket::Verify, None).await?;
    let query = web::Query::<VerifyQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(VerifyQuery {
            token: None,
            kind: None,
            redirect_to: None,
        });
    let accounts = &state.accounts;
    let target = query
        .redirect_to
        .filter(|target| accounts.allowed_redirect(target))
        .unwrap_or_else(|| accounts.settings().site_url.clone());
    let result = match verify_kind(query.kind.as_deref()) {
        Ok(kind) => accounts
            .verify(
                kind,
                Proof::Link(query.token.as_deref().unwrap_or_default()),
                true,
            )
            .await
            .map(|verified| (verified, kind)),
        Err(err) => Err(err),
    };
    let base = target.split('#').next().unwrap_or_default();
    // A PKCE link: the code goes in the query, for the client that holds the verifier.
    if let Ok((Verified::AuthCode(code), _)) = &result {
        let joiner = if base.contains('?') { '&' } else { '?' };
        let query = serde_urlencoded::to_string([("code", code.as_str())]).unwrap_or_default();
        return Ok(HttpResponse::SeeOther()
            .insert_header((LOCATION, format!("{base}{joiner}{query}")))
            .insert_header(("cache-control", "no-store"))
            .finish());
    }
    let fragment = match result {
        Ok((Verified::AuthCode(_), _)) => Ok(String::new()),
        Ok((Verified::Session(session), kind)) => serde_urlencoded::to_string([
            ("access_token", session.access_token.as_str()),
            ("expires_at", &session.expires_at.to_string()),
            ("expires_in", &session.expires_in.to_string()),
            ("refresh_token", session.refresh_token.as_str()),
            ("token_type", "bearer"),
            ("type", kind.as_str()),
        ]),
        Err(err) => serde_urlencoded::to_string([
            ("error", "access_denied"),
            ("error_code", err.code),
            ("error_description", err.message.as_str()),
        ]),
    }
    .unwrap_or_default();
    let base = target.split('#').next().unwrap_or_default();
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, format!("{base}#{fragment}")))
        .insert_header(("cache-control", "no-store"))
        .finish())
}

async fn settings(state: web::Data<AppState>) -> HttpResponse {
    let settings = state.accounts.settings();
    let mut external: Map<String, Value> = OAUTH_PROVIDERS
        .iter()
        .map(|provider| ((*provider).to_owned(), json!(false)))
        .collect();
    for name in settings.external.names() {
        external.insert(name.to_owned(), json!(true));
    }
    external.insert("anonymous_users".into(), json!(settings.anonymous_sign_ins));
    external.insert("email".into(), json!(true));
    external.insert("phone".into(), json!(false));
    HttpResponse::Ok().json(json!({
        "external": external,
        "disable_signup": settings.disable_signup,
        "mailer_autoconfirm": !settings.confirm_email,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "saml_private_key_next_configured": false,
        "passkeys_enabled": state.accounts.passkeys_enabled(),
    }))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "Galley's Supabase Auth-compatible API",
    }))
}

/// The public keys access tokens may be verified with: the configured RS256/ES256 keys.
/// The HS256 secret is never published, so without such keys the set is empty.
async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=600"))
        .json(state.tokens.jwks())
}

// ---- admin ----

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// A page parameter as GoTrue reads it (Go's `strconv.ParseUint`): digits only, and its
/// refusal in Go's words.
fn page_number(text: Option<&str>, default: u64) -> Result<u64, AuthError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(text) => text.parse::<u64>().map_err(|err| {
            let why = if matches!(err.kind(), std::num::IntErrorKind::PosOverflow)
                && text.bytes().all(|b| b.is_ascii_digit())
            {
                "value out of range"
            } else {
                "invalid syntax"
            };
            AuthError::validation(format!(
                "Bad Pagination Parameters: strconv.ParseUint: parsing {text:?}: {why}"
            ))
        }),
    }
}

async fn admin_list(_admin: AdminAccess, state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let query = web::Query::<PageQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(PageQuery {
            page: None,
            per_page: None,
        });
    let page = page_number(query.page.as_deref(), 1).dialect(&req)?;
    let per_page = page_number(query.per_page.as_deref(), 50).dialect(&req)?;
    // Past a billion pages there is nothing to show; the offset must not overflow.
    let page = i64::try_from(page.clamp(1, 1_000_000_000)).unwrap_or(1);
    let per_page = i64::try_from(per_page.clamp(1, 1000)).unwrap_or(1000);
    let (users, total) = state
        .accounts
        .list_users(page, per_page)
        .await
        .dialect(&req)?;
    let last = ((total + per_page - 1) / per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "</admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</admin/users?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    let mut response = ok(
        &req,
        json!({
            "users": users.iter().map(galley_auth::UserRecord::to_json).collect::<Vec<_>>(),
            "aud": "authenticated",
        }),
    );
    let headers = response.headers_mut();
    if let Ok(value) = total.to_string().parse() {
        headers.insert(
            actix_web::http::header::HeaderName::from_static("x-total-count"),
            value,
        );
    }
    if let Ok(value) = links.join(", ").parse() {
        headers.insert(actix_web::http::header::LINK, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct AdminBody {
    email: Option<String>,
    password: Option<String>,
    email_confirm: Option<bool>,
    user_metadata: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
    ban_duration: Option<String>,
    role: Option<String>,
    phone: Option<String>,
}

impl AdminBody {
    fn into_spec(self) -> Result<AdminUser, AuthError> {
        if self.phone.is_some() {
            return Err(AuthError::new(
                400,
                "phone_provider_disabled",
                "Phone logins are disabled",
            ));
        }
        Ok(AdminUser {
            email: self.email,
            password: self.password,
            email_confirm: self.email_confirm,
            user_metadata: self.user_metadata,
            app_metadata: self.app_metadata,
            ban_duration: self.ban_duration,
            role: self.role,
        })
    }
}

async fn admin_create(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Answer {
    let spec = body::<AdminBody>(&req, &bytes)
        .and_then(AdminBody::into_spec)
        .dialect(&req)?;
    let user = state.accounts.create_user(spec).await.dialect(&req)?;
    tracing::info!(event = "auth.admin_user_created", user_id = %user.id, "an admin created a user");
    Ok(ok(&req, user.to_json()))
}

#[derive(Deserialize)]
struct InviteBody {
    email: Option<String>,
    data: Option<Map<String, Value>>,
}

/// `POST /invite` (admins): an account without a password and an invitation mail.
async fn invite(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Answer {
    let input: InviteBody = body(&req, &bytes).dialect(&req)?;
    let Some(email) = input.email else {
        return Err(AuthError::validation("An email address is required")).dialect(&req);
    };
    let user = state
        .accounts
        .invite(&email, input.data, redirect_to(&req).as_deref())
        .await
        .dialect(&req)?;
    tracing::info!(event = "auth.user_invited", user_id = %user.id, "an admin invited a user");
    Ok(ok(&req, user.to_json()))
}

#[derive(Deserialize)]
struct GenerateLinkBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    password: Option<String>,
    new_email: Option<String>,
    data: Option<Map<String, Value>>,
    redirect_to: Option<String>,
}

/// `POST /admin/generate_link`: a mail's link and code, answered instead of sent.
async fn admin_generate_link(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Answer {
    let input: GenerateLinkBody = body(&req, &bytes).dialect(&req)?;
    let Some(email) = input.email else {
        return Err(AuthError::validation("An email address is required")).dialect(&req);
    };
    let redirect = input.redirect_to.or_else(|| redirect_to(&req));
    let link = state
        .accounts
        .generate_link(
            input.kind.as_deref().unwrap_or_default(),
            &email,
            input.password.as_deref(),
            input.new_email.as_deref(),
            input.data,
            redirect.as_deref(),
        )
        .await
        .dialect(&req)?;
    tracing::info!(event = "auth.link_generated", user_id = %link.user.id, kind = link.verification_type, "an admin generated a link");
    Ok(ok(&req, link.to_json()))
}

/// `GET /reauthenticate`: a code by mail, for a password change that needs one.
async fn reauthenticate(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    limit(&state, &req, Bucket::Email, None).await?;
    state.accounts.reauthenticate(&caller).await.dialect(&req)?;
    Ok(ok(&req, json!({})))
}

fn user_id(path: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(path).map_err(|_| AuthError::new(404, "user_not_found", "User not found"))
}

async fn admin_get(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let id = user_id(&path).dialect(&req)?;
    let user = state.accounts.get_user(id).await.dialect(&req)?;
    Ok(ok(&req, user.to_json()))
}

async fn admin_update(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Answer {
    let id = user_id(&path).dialect(&req)?;
    let spec = body::<AdminBody>(&req, &bytes)
        .and_then(AdminBody::into_spec)
        .dialect(&req)?;
    let user = state
        .accounts
        .admin_update_user(id, spec)
        .await
        .dialect(&req)?;
    tracing::info!(event = "auth.admin_user_updated", user_id = %id, "an admin changed a user");
    Ok(ok(&req, user.to_json()))
}

#[derive(Deserialize, Default)]
struct DeleteBody {
    should_soft_delete: Option<bool>,
}

async fn admin_delete(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Answer {
    let id = user_id(&path).dialect(&req)?;
    let input: DeleteBody = body(&req, &bytes).dialect(&req)?;
    state
        .accounts
        .delete_user(id, input.should_soft_delete.unwrap_or(false))
        .await
        .dialect(&req)?;
    tracing::info!(event = "auth.admin_user_deleted", user_id = %id, "an admin deleted a user");
    Ok(ok(&req, json!({})))
}

#[derive(Deserialize)]
struct EnrollBody {
    factor_type: Option<String>,
    friendly_name: Option<String>,
    issuer: Option<String>,
}

/// `POST /factors`: a TOTP factor, its secret and QR code shown this once.
async fn enroll_factor(state: web::Data<AppState>, req: HttpRequest, bytes: web::Bytes) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let input: EnrollBody = body(&req, &bytes).dialect(&req)?;
    let enrolled = state
        .accounts
        .enroll_factor(
            &caller,
            input.factor_type.as_deref().unwrap_or_default(),
            input.friendly_name,
            input.issuer,
        )
        .await
        .dialect(&req)?;
    Ok(ok(&req, enrolled.to_json()))
}

async fn challenge_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    limit(&state, &req, Bucket::Verify, None).await?;
    let ip = state.limits.client_ip(&req);
    let challenge = state
        .accounts
        .challenge_factor(&caller, &path, &ip)
        .await
        .dialect(&req)?;
    Ok(ok(&req, challenge))
}

#[derive(Deserialize)]
struct VerifyFactorBody {
    challenge_id: Option<String>,
    code: Option<String>,
}

/// `POST /factors/{id}/verify`: the session at `aal2`.
async fn verify_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let input: VerifyFactorBody = body(&req, &bytes).dialect(&req)?;
    limit(&state, &req, Bucket::Verify, None).await?;
    let ip = state.limits.client_ip(&req);
    let session = state
        .accounts
        .verify_factor(
            &caller,
            &path,
            input.challenge_id.as_deref().unwrap_or_default(),
            input.code.as_deref().unwrap_or_default(),
            &ip,
        )
        .await
        .dialect(&req)?;
    Ok(ok(&req, session.to_json()))
}

async fn unenroll_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let caller = caller(&state, &req).dialect(&req)?;
    let removed = state
        .accounts
        .unenroll_factor(&caller, &path)
        .await
        .dialect(&req)?;
    Ok(ok(&req, removed))
}

async fn admin_factors(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let id = user_id(&path).dialect(&req)?;
    let factors = state.accounts.admin_factors(id).await.dialect(&req)?;
    Ok(ok(&req, factors))
}

async fn admin_delete_factor(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Answer {
    let (id, factor) = path.into_inner();
    let id = user_id(&id).dialect(&req)?;
    let removed = state
        .accounts
        .admin_delete_factor(id, &factor)
        .await
        .dialect(&req)?;
    Ok(ok(&req, removed))
}

#[derive(Deserialize)]
struct FactorUpdateBody {
    friendly_name: Option<String>,
}

async fn admin_update_factor(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    bytes: web::Bytes,
) -> Answer {
    let (id, factor) = path.into_inner();
    let id = user_id(&id).dialect(&req)?;
    let input: FactorUpdateBody = body(&req, &bytes).dialect(&req)?;
    let updated = state
        .accounts
        .admin_update_factor(id, &factor, input.friendly_name)
        .await
        .dialect(&req)?;
    Ok(ok(&req, updated))
}

/// Passkeys answer GoTrue's 404 while `auth.passkeys` is off, before anything else.
fn passkeys_on(state: &AppState, req: &HttpRequest) -> Result<(), Failure> {
    if state.accounts.passkeys_enabled() {
        Ok(())
    } else {
        Err(AuthError::new(
            404,
            "passkey_disabled",
            "Passkeys are disabled",
        ))
        .dialect(req)
    }
}

#[derive(Deserialize)]
struct CeremonyBody {
    challenge_id: Option<String>,
    credential: Option<Value>,
}

async fn passkey_registration_options(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    passkeys_on(&state, &req)?;
    let caller = caller(&state, &req).dialect(&req)?;
    let options = state
        .accounts
        .passkey_registration_options(&caller)
        .await
        .dialect(&req)?;
    Ok(ok(&req, options))
}

async fn passkey_registration_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Answer {
    passkeys_on(&state, &req)?;
    let caller = caller(&state, &req).dialect(&req)?;
    let input: CeremonyBody = body(&req, &bytes).dialect(&req)?;
    let passkey = state
        .accounts
        .passkey_registration_verify(
            &caller,
            input.challenge_id.as_deref().unwrap_or_default(),
            input.credential,
        )
        .await
        .dialect(&req)?;
    Ok(ok(&req, passkey))
}

async fn passkey_authentication_options(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    passkeys_on(&state, &req)?;
    limit(&state, &req, Bucket::Token, None).await?;
    let options = state
        .accounts
        .passkey_authentication_options()
        .await
        .dialect(&req)?;
    Ok(ok(&req, options))
}

/// `POST /passkeys/authentication/verify`: a session, as a token grant answers.
async fn passkey_authentication_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Answer {
    passkeys_on(&state, &req)?;
    limit(&state, &req, Bucket::Token, None).await?;
    let input: CeremonyBody = body(&req, &bytes).dialect(&req)?;
    let result = state
        .accounts
        .passkey_authentication_verify(
            input.challenge_id.as_deref().unwrap_or_default(),
            input.credential,
            user_agent(&req).as_deref(),
        )
        .await;
    record_login(&state, &result);
    Ok(session_response(&req, &result.dialect(&req)?))
}

async fn list_passkeys(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    passkeys_on(&state, &req)?;
    let caller = caller(&state, &req).dialect(&req)?;
    let list = state
        .accounts
        .list_passkeys(Some(&caller), caller.user_id)
        .await
        .dialect(&req)?;
    Ok(ok(&req, list))
}

#[derive(Deserialize)]
struct PasskeyUpdateBody {
    friendly_name: Option<String>,
}

async fn rename_passkey(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Answer {
    passkeys_on(&state, &req)?;
    let caller = caller(&state, &req).dialect(&req)?;
    let input: PasskeyUpdateBody = body(&req, &bytes).dialect(&req)?;
    let passkey = state
        .accounts
        .rename_passkey(&caller, &path, input.friendly_name.as_deref())
        .await
        .dialect(&req)?;
    Ok(ok(&req, passkey))
}

async fn delete_passkey(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    passkeys_on(&state, &req)?;
    let caller = caller(&state, &req).dialect(&req)?;
    state
        .accounts
        .delete_passkey(Some(&caller), caller.user_id, &path)
        .await
        .dialect(&req)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn admin_passkeys(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    passkeys_on(&state, &req)?;
    let id = user_id(&path).dialect(&req)?;
    let list = state.accounts.list_passkeys(None, id).await.dialect(&req)?;
    Ok(ok(&req, list))
}

async fn admin_delete_passkey(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Answer {
    passkeys_on(&state, &req)?;
    let (id, passkey) = path.into_inner();
    let id = user_id(&id).dialect(&req)?;
    state
        .accounts
        .delete_passkey(None, id, &passkey)
        .await
        .dialect(&req)?;
    Ok(HttpResponse::NoContent().finish())
}
