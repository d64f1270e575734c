//! `[auth]` configuration.

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret shared by every instance. When unset, Galley generates one on
    /// first start and keeps it in `<data_dir>/jwt_secret` (mode 0600).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    /// The URL clients reach this Galley at (behind a proxy: the public one). Emailed
    /// links start with it; the request's `Host` header is never used. Default: the HTTP
    /// listen address.
    pub public_url: Option<String>,
    /// The app: where a followed link sends the browser when `redirect_to` is absent or
    /// not allowed. Default: `public_url`.
    pub site_url: Option<String>,
    /// Further `redirect_to` targets links may send the browser to (URL prefixes).
    pub redirect_urls: Vec<String>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// How long a rotated refresh token may still be presented (by a client that lost the
    /// answer to its refresh) before presenting it counts as reuse.
    pub refresh_reuse_interval_secs: u64,
    /// New accounts confirm their email before signing in. Default: on when SMTP is
    /// configured, off otherwise (mail would never arrive).
    pub confirm_email: Option<bool>,
    pub disable_signup: bool,
    /// `/signup` with neither email nor phone makes an anonymous user (`is_anonymous`),
    /// who may later add an email and keep their id and rows. Off by default, as in
    /// Supabase Auth.
    pub anonymous_sign_ins: bool,
    /// A new password needs the code `GET /reauthenticate` mails, unless the session
    /// signed in within the last 24 hours (Supabase Auth's secure password change).
    pub secure_password_change: bool,
    /// At least 6, as Supabase Auth allows; below 8 is logged as weaker at start-up.
    pub password_min_length: usize,
    pub password_max_bytes: usize,
    /// Refuse the 20,000 commonest breached passwords. Off is logged as weaker.
    pub password_blocklist: bool,
    /// Passwords hashed at once; more wait. Default: the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// How long an emailed link works.
    pub link_ttl_secs: u64,
    /// Named in the mails.
    pub project_name: String,
    /// RS256/ES256 keys for access tokens; the first signs, all verify and are published
    /// in the JWKS. Empty: HS256 with `jwt_secret`.
    pub signing_keys: Vec<crate::SigningKeyConfig>,
    /// The operator's own mail texts.
    pub templates: crate::MailTemplates,
    /// OAuth and OpenID Connect providers users may sign in with, by name: `github`,
    /// `google`, or any name with an `issuer`.
    pub external: std::collections::BTreeMap<String, crate::ExternalProviderConfig>,
    /// Signed-in users may link further identities (`/user/identities/authorize`) and
    /// unlink them. Off by default, as in Supabase Auth.
    pub manual_linking: bool,
    /// Passkeys (WebAuthn) as a way to sign in. Off by default, as in Supabase Auth.
    pub passkeys: bool,
    /// The WebAuthn relying party: its id (a domain; default: `site_url`'s host) and the
    /// origins ceremonies may come from (default: `site_url`'s origin).
    pub webauthn_rp_id: Option<String>,
    pub webauthn_origins: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            public_url: None,
            site_url: None,
            redirect_urls: Vec::new(),
            access_token_ttl_secs: 3600,
            refresh_reuse_interval_secs: 10,
            confirm_email: None,
            disable_signup: false,
            anonymous_sign_ins: false,
            secure_password_change: false,
            password_min_length: 8,
            password_max_bytes: 128,
            password_blocklist: true,
            hash_concurrency: None,
            link_ttl_secs: 3600,
            project_name: "Galley".to_owned(),
            signing_keys: Vec::new(),
            templates: crate::MailTemplates::default(),
            external: std::collections::BTreeMap::new(),
            manual_linking: false,
            passkeys: false,
            webauthn_rp_id: None,
            webauthn_origins: Vec::new(),
        }
    }
}

/// Serialises a secret as `[redacted]` (for the effective configuration Galley logs).
pub fn redact<S: Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => ser.serialize_str("[redacted]"),
        None => ser.serialize_none(),
    }
}
