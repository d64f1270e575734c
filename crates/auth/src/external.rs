//! External identity providers for OAuth and OpenID Connect sign-in: the configuration
//! (`[auth.external.<name>]`), and what Galley asks of a provider. `github` is GitHub's
//! OAuth apps (the user and their verified addresses read from its API); `google` and
//! every other name are OpenID Connect providers found by discovery at their `issuer`,
//! whose ID tokens are verified against the provider's published keys (issuer, audience,
//! expiry, nonce). Galley always sends the provider a PKCE challenge and, to OIDC
//! providers, a nonce.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::AuthError;

/// One `[auth.external.<name>]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalProviderConfig {
    pub enabled: bool,
    pub client_id: String,
    #[serde(serialize_with = "crate::config::redact")]
    pub secret: Option<SecretString>,
    /// An OpenID Connect provider's issuer URL (discovery is at
    /// `<issuer>/.well-known/openid-configuration`). Google's is preset; GitHub has none.
    pub issuer: Option<String>,
    /// Scopes asked for besides the preset ones.
    pub scopes: Vec<String>,
    /// Further audiences an ID token given to `grant_type=id_token` may name (a native
    /// app's own client id).
    pub additional_client_ids: Vec<String>,
    /// Accept ID tokens without a nonce check on `grant_type=id_token`.
    pub skip_nonce_check: bool,
    /// GitHub Enterprise: the web and API URLs (default github.com's).
    pub url: Option<String>,
    pub api_url: Option<String>,
}

impl Default for ExternalProviderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            client_id: String::new(),
            secret: None,
            issuer: None,
            scopes: Vec::new(),
            additional_client_ids: Vec::new(),
            skip_nonce_check: false,
            url: None,
            api_url: None,
        }
    }
}

/// What a provider says of the account that signed in.
/// `Debug` leaves the provider's tokens out.
#[derive(Clone)]
pub struct ExternalUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The provider's claims as GoTrue keeps them in `identity_data` (and merges into
    /// `user_metadata`).
    pub identity_data: Map<String, Value>,
    /// The provider's own tokens, handed to the app once (`provider_token`).
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

enum Kind {
    Oidc { issuer: String },
    GitHub { web: String, api: String },
}

/// What discovery found, and the keys, refreshed as they age.
struct OidcMeta {
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    jwks: JwkSet,
    fetched: Instant,
    keys_fetched: Instant,
}

pub(crate) struct Provider {
    pub(crate) name: String,
    kind: Kind,
    client_id: String,
    secret: Option<SecretString>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    pub(crate) skip_nonce_check: bool,
    meta: tokio::sync::Mutex<Option<Arc<OidcMeta>>>,
}

/// The providers this Galley offers, by name.
pub struct Providers {
    providers: BTreeMap<String, Arc<Provider>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for ExternalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalUser")
            .field("subject", &self.subject)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.providers.keys()).finish()
    }
}

/// Discovery documents are re-read this often; keys on an unknown `kid`, at most once a
/// minute.
const META_TTL: Duration = Duration::from_secs(3600);
const KEYS_MIN_AGE: Duration = Duration::from_secs(60);
/// A provider's answer larger than this is refused.
const MAX_ANSWER_BYTES: usize = 1 << 20;

fn provider_error(provider: &str, what: &str, detail: impl std::fmt::Display) -> AuthError {
    tracing::warn!(event = "auth.oauth_provider_failed", provider, what, detail = %detail, "an identity provider's answer was refused");
    AuthError::new(
        500,
        "unexpected_failure",
        format!("Error getting user profile from external provider {provider}"),
    )
}

impl Providers {
    /// The enabled providers of `[auth.external]`; a table that could not work is an
    /// error at start-up.
    pub fn from_config(config: &BTreeMap<String, ExternalProviderConfig>) -> Result<Self, String> {
        let mut providers = BTreeMap::new();
        for (name, spec) in config {
            if !spec.enabled {
                continue;
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            {
                return Err(format!(
                    "auth.external.{name}: a provider's name is lower-case letters, digits, '_' and '-'"
                ));
            }
            if spec.client_id.trim().is_empty() {
                return Err(format!("auth.external.{name}.client_id is required"));
            }
            let issuer = spec
                .issuer
                .clone()
                .or_else(|| (name == "google").then(|| "https://accounts.google.com".to_owned()));
            let kind = match (name.as_str(), issuer) {
                ("github", _) => Kind::GitHub {
                    web: spec
                        .url
                        .clone()
                        .unwrap_or_else(|| "https://github.com".to_owned())
                        .trim_end_matches('/')
                        .to_owned(),
                    api: spec
                        .api_url
                        .clone()
                        .unwrap_or_else(|| "https://api.github.com".to_owned())
                        .trim_end_matches('/')
                        .to_owned(),
                },
                (_, Some(issuer)) => {
                    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                        return Err(format!(
                            "auth.external.{name}.issuer must be an http(s) URL"
                        ));
                    }
                    Kind::Oidc { issuer }
                }
                (_, None) => {
                    return Err(format!(
                        "auth.external.{name}: an OpenID Connect provider needs `issuer` (only github and google are preset)"
                    ));
                }
            };
            if matches!(kind, Kind::GitHub { .. }) && spec.secret.is_none() {
                return Err(format!("auth.external.{name}.secret is required"));
            }
            let mut audiences = vec![spec.client_id.clone()];
            audiences.extend(spec.additional_client_ids.iter().cloned());
            providers.insert(
                name.clone(),
                Arc::new(Provider {
                    name: name.clone(),
                    kind,
                    client_id: spec.client_id.clone(),
                    secret: spec.secret.clone(),
                    scopes: spec.scopes.clone(),
                    audiences,
                    skip_nonce_check: spec.skip_nonce_check,
                    meta: tokio::sync::Mutex::new(None),
                }),
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Galley")
            .build()
            .map_err(|err| format!("setting up the HTTP client for identity providers: {err}"))?;
        Ok(Self { providers, http })
    }

    pub fn none() -> Self {
        Self::from_config(&BTreeMap::new()).expect("no providers is a valid configuration")
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.get(name)
    }

    /// The names of the enabled providers.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Where to send the browser: the provider's authorization endpoint with Galley's
    /// client id, `redirect_uri`, `state`, a PKCE challenge for `verifier`, and for OIDC
    /// the `nonce`.
    pub(crate) async fn authorize_url(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        state: &str,
        verifier: &str,
        nonce: &str,
        scopes: Option<&str>,
    ) -> Result<String, AuthError> {
        let (endpoint, mut scope) = match &provider.kind {
            Kind::GitHub { web, .. } => (
                format!("{web}/login/oauth/authorize"),
                vec!["user:email".to_owned()],
            ),
            Kind::Oidc { .. } => (
                self.meta(provider).await?.authorization_endpoint.clone(),
                vec![
                    "openid".to_owned(),
                    "email".to_owned(),
                    "profile".to_owned(),
                ],
            ),
        };
        for extra in provider
            .scopes
            .iter()
            .map(String::as_str)
            .chain(scopes.unwrap_or_default().split([' ', ',']))
        {
            if !extra.is_empty() && !scope.iter().any(|s| s == extra) {
                scope.push(extra.to_owned());
            }
        }
        let challenge = pkce_s256(verifier);
        let mut params = vec![
            ("client_id", provider.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("state", state),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let scope = scope.join(" ");
        params.push(("scope", scope.as_str()));
        if matches!(provider.kind, Kind::Oidc { .. }) {
            params.push(("nonce", nonce));
        }
        let query = serde_urlencoded::to_string(&params).map_err(|_| AuthError::unexpected())?;
        let joiner = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{joiner}{query}"))
    }

    /// The account behind an authorization `code`: the code exchanged (with the PKCE
    /// verifier), then the ID token verified (OIDC, its nonce `nonce`) or the user read
    /// from the API (GitHub).
    pub(crate) async fn exchange(
        &self,
        provider: &Provider,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<ExternalUser, AuthError> {
        let token_endpoint = match &provider.kind {
            Kind::GitHub { web, .. } => format!("{web}/login/oauth/access_token"),
            Kind::Oidc { .. } => self.meta(provider).await?.token_endpoint.clone(),
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", provider.client_id.as_str()),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &provider.secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        let answer = self
            .http
            .post(&token_endpoint)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|err| provider_error(&provider.name, "token request", err))?;
        let status = answer.status();
        let tokens = read_json(&provider.name, answer).await?;
        if !status.is_success() || tokens.get("error").is_some() {
            return Err(provider_error(
                &provider.name,
                "token answer",
                format!(
                    "{status}: {}",
                    tokens
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("no access token")
                ),
            ));
        }
        let access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let refresh_token = tokens
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut user = match &provider.kind {
            Kind::GitHub { api, .. } => {
                let token = access_token.as_deref().ok_or_else(|| {
                    provider_error(&provider.name, "token answer", "no access token")
                })?;
                self.github_user(provider, api, token).await?
            }
            Kind::Oidc { .. } => {
                let id_token = tokens
                    .get("id_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| provider_error(&provider.name, "token answer", "no id_token"))?;
                self.verify_id_token(provider, id_token, Nonce::Exactly(nonce))
                    .await
                    .map_err(|err| provider_error(&provider.name, "id_token", err.message))?
            }
        };
        user.access_token = access_token;
        user.refresh_token = refresh_token;
        Ok(user)
    }

    /// An OIDC provider's ID token, verified: signature by a key the provider publishes,
    /// `iss`, `aud` (the client id or an additional one), `exp`, and the nonce.
    pub(crate) async fn verify_id_token(
        &self,
        provider: &Provider,
        token: &str,
        nonce: Nonce<'_>,
    ) -> Result<ExternalUser, AuthError> {
        let Kind::Oidc { issuer } = &provider.kind else {
            return Err(AuthError::oauth(
                "invalid request",
                format!("Provider {} does not issue ID tokens", provider.name),
            ));
        };
        let bad = |why: &str| AuthError::oauth("invalid request", format!("Bad ID token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(bad("symmetric algorithms are refused"));
        }
        let mut meta = self.meta(provider).await?;
        let find = |meta: &OidcMeta| match &header.kid {
            Some(kid) => meta.jwks.find(kid).cloned(),
            None if meta.jwks.keys.len() == 1 => meta.jwks.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&meta) {
            Some(jwk) => jwk,
            None => {
                meta = self.refresh_keys(provider).await?;
                find(&meta).ok_or_else(|| bad("signed by a key the provider does not publish"))?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(bad("the token's algorithm is not its key's"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("the provider's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer.trim_end_matches('/'), issuer.as_str()]);
        validation.set_audience(&provider.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|err| bad(&err.to_string()))?
            .claims;
        let token_nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match nonce {
            Nonce::Exactly(expected) => {
                use subtle::ConstantTimeEq;
                if !bool::from(token_nonce.as_bytes().ct_eq(expected.as_bytes())) {
                    return Err(AuthError::oauth("invalid nonce", "Nonces mismatch"));
                }
            }
            Nonce::Hashed(given) if !provider.skip_nonce_check => {
                if token_nonce.is_empty() != given.is_none_or(str::is_empty) {
                    return Err(AuthError::oauth(
                        "invalid request",
                        "Passed nonce and nonce in id_token should either both exist or not.",
                    ));
                }
                if let Some(given) = given.filter(|g| !g.is_empty()) {
                    use sha2::Digest;
                    let hashed = hex::encode(sha2::Sha256::digest(given.as_bytes()));
                    if hashed != token_nonce {
                        return Err(AuthError::oauth("invalid nonce", "Nonces mismatch"));
                    }
                }
            }
            Nonce::Hashed(_) => {}
        }
        Ok(oidc_user(&claims))
    }

    async fn github_user(
        &self,
        provider: &Provider,
        api: &str,
        token: &str,
    ) -> Result<ExternalUser, AuthError> {
        let get = |path: &str| {
            self.http
                .get(format!("{api}{path}"))
                .bearer_auth(token)
                .header("accept", "application/vnd.github+json")
                .send()
        };
        let answer = get("/user")
            .await
            .map_err(|err| provider_error(&provider.name, "user", err))?;
        if !answer.status().is_success() {
            return Err(provider_error(&provider.name, "user", answer.status()));
        }
        let profile = read_json(&provider.name, answer).await?;
        let id = match profile.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(provider_error(&provider.name, "user", "no id")),
        };
        let answer = get("/user/emails")
            .await
            .map_err(|err| provider_error(&provider.name, "emails", err))?;
        let emails = if answer.status().is_success() {
            read_json(&provider.name, answer).await?
        } else {
            Value::Array(Vec::new())
        };
        // The primary address if verified, else any verified one.
        let verified: Vec<&Value> = emails
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e.get("verified").and_then(Value::as_bool) == Some(true))
            .collect();
        let chosen = verified
            .iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| verified.first())
            .and_then(|e| e.get("email").and_then(Value::as_str));
        let (email, email_verified) = match chosen {
            Some(email) => (Some(email.to_owned()), true),
            None => (
                profile
                    .get("email")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                false,
            ),
        };
        let text = |key: &str| profile.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut data = Map::new();
        data.insert("iss".into(), json!(api));
        data.insert("sub".into(), json!(id));
        data.insert("provider_id".into(), json!(id));
        if let Some(name) = text("name") {
            data.insert("name".into(), json!(name));
            data.insert("full_name".into(), json!(name));
        }
        if let Some(login) = text("login") {
            data.insert("user_name".into(), json!(login));
            data.insert("preferred_username".into(), json!(login));
        }
        if let Some(avatar) = text("avatar_url") {
            data.insert("avatar_url".into(), json!(avatar));
        }
        if let Some(email) = &email {
            data.insert("email".into(), json!(email));
        }
        data.insert("email_verified".into(), json!(email_verified));
        data.insert("phone_verified".into(), json!(false));
        Ok(ExternalUser {
            subject: id,
            email,
            email_verified,
            identity_data: data,
            access_token: None,
            refresh_token: None,
        })
    }

    /// Discovery's answer and the keys, fetched on first use and again once an hour.
    async fn meta(&self, provider: &Provider) -> Result<Arc<OidcMeta>, AuthError> {
        let Kind::Oidc { issuer } = &provider.kind else {
            return Err(AuthError::unexpected());
        };
        let mut cached = provider.meta.lock().await;
        if let Some(meta) = cached.as_ref()
            && meta.fetched.elapsed() < META_TTL
        {
            return Ok(meta.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|err| provider_error(&provider.name, "discovery", err))?;
        if !answer.status().is_success() {
            return Err(provider_error(&provider.name, "discovery", answer.status()));
        }
        let doc = read_json(&provider.name, answer).await?;
        let field = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| provider_error(&provider.name, "discovery", format!("no {key}")))
        };
        if field("issuer")?.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(provider_error(
                &provider.name,
                "discovery",
                "the document names another issuer",
            ));
        }
        let jwks_uri = field("jwks_uri")?;
        let jwks = self.fetch_keys(provider, &jwks_uri).await?;
        let meta = Arc::new(OidcMeta {
            authorization_endpoint: field("authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
            jwks_uri,
            jwks,
            fetched: Instant::now(),
            keys_fetched: Instant::now(),
        });
        *cached = Some(meta.clone());
        Ok(meta)
    }

    /// The keys again, for a `kid` not seen (the provider rotated), at most once a minute.
    async fn refresh_keys(&self, provider: &Provider) -> Result<Arc<OidcMeta>, AuthError> {
        let current = self.meta(provider).await?;
        if current.keys_fetched.elapsed() < KEYS_MIN_AGE {
            return Ok(current);
        }
        let jwks = self.fetch_keys(provider, &current.jwks_uri).await?;
        let meta = Arc::new(OidcMeta {
            authorization_endpoint: current.authorization_endpoint.clone(),
            token_endpoint: current.token_endpoint.clone(),
            jwks_uri: current.jwks_uri.clone(),
            jwks,
            fetched: current.fetched,
            keys_fetched: Instant::now(),
        });
        *provider.meta.lock().await = Some(meta.clone());
        Ok(meta)
    }

    async fn fetch_keys(&self, provider: &Provider, uri: &str) -> Result<JwkSet, AuthError> {
        let answer = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|err| provider_error(&provider.name, "keys", err))?;
        let doc = read_json(&provider.name, answer).await?;
        serde_json::from_value(doc).map_err(|err| provider_error(&provider.name, "keys", err))
    }
}

/// How an ID token's nonce is checked: equal to the one Galley sent (`/callback`), or
/// (`grant_type=id_token`) the SHA-256 hex of the one the app passes, as GoTrue checks.
pub(crate) enum Nonce<'a> {
    Exactly(&'a str),
    Hashed(Option<&'a str>),
}

async fn read_json(provider: &str, answer: reqwest::Response) -> Result<Value, AuthError> {
    if answer
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(provider_error(provider, "answer", "too large"));
    }
    let bytes = answer
        .bytes()
        .await
        .map_err(|err| provider_error(provider, "answer", err))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(provider_error(provider, "answer", "too large"));
    }
    serde_json::from_slice(&bytes).map_err(|err| provider_error(provider, "answer", err))
}

/// An ID token's claims as GoTrue keeps an OIDC identity.
fn oidc_user(claims: &Map<String, Value>) -> ExternalUser {
    let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
    let subject = text("sub").unwrap_or_default();
    let email = text("email");
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let mut data = Map::new();
    for key in [
        "iss",
        "sub",
        "name",
        "picture",
        "email",
        "preferred_username",
        "nickname",
        "given_name",
        "family_name",
        "locale",
    ] {
        if let Some(value) = claims.get(key).filter(|v| v.is_string()) {
            data.insert(key.into(), value.clone());
        }
    }
    data.insert("provider_id".into(), json!(subject));
    if let Some(name) = text("name") {
        data.insert("full_name".into(), json!(name));
    }
    if let Some(picture) = text("picture") {
        data.insert("avatar_url".into(), json!(picture));
    }
    data.insert("email_verified".into(), json!(email_verified));
    data.insert("phone_verified".into(), json!(false));
    ExternalUser {
        subject,
        email,
        email_verified,
        identity_data: data,
        access_token: None,
        refresh_token: None,
    }
}

/// The S256 challenge of a PKCE verifier.
fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: serde_json::Value) -> BTreeMap<String, ExternalProviderConfig> {
        serde_json::from_value(toml).expect("config")
    }

    #[test]
    fn presets_and_refusals() {
        let providers = Providers::from_config(&config(json!({
            "github": {"client_id": "a", "secret": "s"},
            "google": {"client_id": "b"},
            "corp": {"client_id": "c", "issuer": "https://id.example.com"},
            "off": {"client_id": "d", "enabled": false},
        })))
        .expect("valid");
        assert_eq!(
            providers.names().collect::<Vec<_>>(),
            ["corp", "github", "google"]
        );
        for (bad, why) in [
            (json!({"corp": {"client_id": "c"}}), "needs `issuer`"),
            (json!({"github": {"client_id": "a"}}), "secret is required"),
            (
                json!({"corp": {"issuer": "https://x"}}),
                "client_id is required",
            ),
            (
                json!({"Corp": {"client_id": "c", "issuer": "https://x"}}),
                "lower-case",
            ),
            (
                json!({"corp": {"client_id": "c", "issuer": "ftp://x"}}),
                "http(s) URL",
            ),
        ] {
            let err = Providers::from_config(&config(bad)).expect_err(why);
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn pkce_challenges_are_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
