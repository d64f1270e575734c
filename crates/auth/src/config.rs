//! `[auth]` configuration.

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret shared by every instance. When unset, Galley generates one on
    /// first start and keeps it in `<data_dir>/jwt_secret` (mode 0600).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
}

fn redact<S: Serializer>(secret: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => ser.serialize_str("[redacted]"),
        None => ser.serialize_none(),
    }
}
