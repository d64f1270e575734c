//! `[storage]` configuration: Supabase Storage's API at `/storage/v1`, and where the
//! bytes go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Serve `/storage/v1` at all.
    pub enabled: bool,
    /// Where the local backend keeps objects; `<data_dir>/storage` when unset.
    pub root: Option<PathBuf>,
    /// Keep objects in this S3-compatible bucket instead (`s3://bucket` or
    /// `s3://bucket/prefix`); credentials and region from `storage.s3_*` where set,
    /// otherwise from the standard `AWS_*` environment.
    pub s3_url: Option<String>,
    /// An S3-compatible service other than AWS (`http://` allows plain HTTP).
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    #[serde(serialize_with = "galley_auth::redact")]
    pub s3_secret_access_key: Option<secrecy::SecretString>,
    /// Address the bucket as `bucket.host` rather than `host/bucket` (path style, the
    /// default, which MinIO and most self-hosted services expect).
    pub s3_virtual_hosted_style: bool,
    /// Largest object, in bytes; a bucket's own limit may only be lower.
    pub file_size_limit: u64,
    /// How long a signed upload URL stays valid, in seconds.
    pub signed_upload_expiry_secs: u64,
    /// How long an unfinished resumable upload is kept, in seconds.
    pub resumable_expiry_secs: u64,
    /// Uploads (of any kind) one user, or one client address without a user, may start
    /// per minute (a rate: a burst may use up to five minutes' worth), on each instance.
    pub uploads_per_minute_per_user: u32,
    /// Uploads this instance accepts per minute from everyone together.
    pub uploads_per_minute: u32,
    /// Serve HTML, SVG, XML and JavaScript objects inline, with their own content type
    /// (only safe when `/storage/v1` is served from an origin of its own). Off: they are
    /// downloaded as attachments.
    pub serve_active_content_inline: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            root: None,
            s3_url: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_virtual_hosted_style: false,
            file_size_limit: 50 * 1024 * 1024,
            signed_upload_expiry_secs: 2 * 60 * 60,
            resumable_expiry_secs: 24 * 60 * 60,
            uploads_per_minute_per_user: 600,
            uploads_per_minute: 6000,
            serve_active_content_inline: false,
        }
    }
}
