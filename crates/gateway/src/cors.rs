//! Cross-origin policy: an explicit allowlist, `null` never allowed, credentials only
//! with exact origins (enforced when the config is validated).

use actix_cors::Cors;

use crate::config::HttpConfig;

pub(crate) fn cors(config: &HttpConfig) -> Cors {
    let any = config
        .cors_allowed_origins
        .iter()
        .any(|origin| origin == "*");
    let allowed = config.cors_allowed_origins.clone();
    let mut cors = Cors::default()
        .allowed_origin_fn(move |origin, _head| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            // `null` is what sandboxed iframes and file:// pages send; it names no one.
            origin != "null" && (any || allowed.iter().any(|allowed| allowed == origin))
        })
        // The methods some route serves; a preflight for any other is refused.
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allow_any_header()
        .expose_headers([
            "content-range",
            "x-request-id",
            "preference-applied",
            "location",
            // Storage downloads and resumable uploads (TUS).
            "etag",
            "content-disposition",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-expires",
            "tus-resumable",
            "tus-version",
            "tus-max-size",
            "tus-extension",
        ])
        .max_age(3600);
    if config.cors_allow_credentials {
        cors = cors.supports_credentials();
    }
    cors
}
