//! Resumable uploads: TUS 1.0.0 as Supabase Storage serves it at `/upload/resumable`
//! (creation, creation-with-upload, termination, expiration). Creating an upload judges
//! it as a whole (bucket, key, declared length and type, the permission probe as the
//! caller) and records it in `galley.storage_uploads`; each PATCH streams its body into
//! a part of its own (`uploads/<id>/<n>-<random>`), kept even when the connection breaks
//! off, and advances the offset only by a compare-and-set on the row, so two PATCHes at
//! one offset cannot both count. The last part assembles the object (the parts streamed
//! in order into a new version, hashed as they go), records it as the creator, and removes
//! the parts and the row. Parts of an abandoned upload are swept after it expires.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::StorageError;
use crate::store::PutError;
use crate::{Caller, Storage, UploadMeta, UploadTarget};

/// A resumable upload, as its row holds it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: uuid::Uuid,
    pub target: UploadTarget,
    pub meta: UploadMeta,
    pub length: u64,
    pub received: u64,
    pub parts: Vec<String>,
    pub caller: Caller,
    /// The client's `Upload-Metadata`, returned as it was sent.
    pub raw_metadata: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// What a PATCH did.
pub enum Patched {
    /// The offset now.
    Partial(u64),
    /// The upload is complete and the object stored.
    Complete(u64),
}

/// Why a resumable request was refused: the status and a plain-text body, as the TUS
/// server Supabase runs answers them.
#[derive(Debug)]
pub struct TusRefusal {
    pub status: u16,
    pub message: String,
}

impl From<StorageError> for TusRefusal {
    fn from(err: StorageError) -> Self {
        Self {
            status: err.status,
            message: err.message,
        }
    }
}

fn tus(status: u16, message: &str) -> TusRefusal {
    TusRefusal {
        status,
        message: message.to_owned(),
    }
}

fn db_failure(err: impl std::fmt::Display) -> TusRefusal {
    tracing::error!(error = %err, "a resumable upload's bookkeeping failed");
    tus(500, "Internal Server Error")
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
pub fn parse_metadata(header: &str) -> Result<Vec<(String, String)>, TusRefusal> {
    use base64::Engine as _;
    let mut pairs = Vec::new();
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| tus(400, "Upload-Metadata is invalid. It MUST consist of one or more comma-separated key-value pairs. The key and value MUST be separated by a space. The key MUST NOT contain spaces and commas and MUST NOT be empty. The key SHOULD be ASCII encoded and the value MUST be Base64 encoded. All keys MUST be unique"))?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

impl Storage {
    /// The largest upload this instance takes at all (`Tus-Max-Size`).
    pub fn max_upload(&self) -> u64 {
        self.config.file_size_limit
    }

    /// `POST /upload/resumable`: judges and records a new upload.
    pub async fn create_upload(
        &self,
        caller: &Caller,
        length: u64,
        raw_metadata: &str,
        upsert: bool,
    ) -> Result<Upload, TusRefusal> {
        let pairs = parse_metadata(raw_metadata)?;
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let (Some(bucket), Some(key)) = (get("bucketName"), get("objectName")) else {
            return Err(tus(400, "Metadata header is required"));
        };
        // An integer is seconds of max-age; anything else is no-cache, as Supabase reads it.
        let cache_control = match get("cacheControl") {
            Some(n) if n.parse::<i64>().is_ok() => format!("max-age={n}"),
            _ => "no-cache".to_owned(),
        };
        let meta = UploadMeta {
            content_type: get("contentType")
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            cache_control,
            user_metadata: get("metadata")
                .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
                .filter(serde_json::Value::is_object),
            declared_length: Some(length),
        };
        let target = UploadTarget {
            bucket,
            key,
            upsert,
        };
        match self
            .prepare_upload(caller, &target, &meta, "storage.tus.upload.create")
            .await
        {
            Ok(_) => {}
            Err(err) if err.code == "EntityTooLarge" => {
                return Err(tus(413, "Maximum size exceeded"));
            }
            Err(err) => return Err(err.into()),
        }
        let upload = Upload {
            id: uuid::Uuid::new_v4(),
            target,
            meta,
            length,
            received: 0,
            parts: Vec::new(),
            caller: caller.clone(),
            raw_metadata: raw_metadata.to_owned(),
            expires_at: chrono::Utc::now()
                + chrono::Duration::seconds(self.config.resumable_expiry_secs as i64),
        };
        let client = self.owner.get().await.map_err(db_failure)?;
        client
            .execute(
                "INSERT INTO galley.storage_uploads (id, bucket_id, name, length, content_type, \
                 cache_control, user_metadata, upsert, role, claims, raw_metadata, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &upload.id,
                    &upload.target.bucket,
                    &upload.target.key,
                    &(length as i64),
                    &upload.meta.content_type,
                    &upload.meta.cache_control,
                    &upload.meta.user_metadata,
                    &upsert,
                    &caller.role,
                    &caller.claims,
                    &upload.raw_metadata,
                    &upload.expires_at,
                ],
            )
            .await
            .map_err(db_failure)?;
        Ok(upload)
    }

    /// The upload `id` when `caller` made it (or is `service_role`); unknown, expired and
    /// other people's uploads alike are not found.
    pub async fn find_upload(&self, caller: &Caller, id: &str) -> Result<Upload, TusRefusal> {
        let not_found = || tus(404, "The file for this url was not found");
        let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
        let client = self.owner.get().await.map_err(db_failure)?;
        let row = client
            .query_opt(
                "SELECT bucket_id, name, length, received, part_keys, content_type, cache_control, \
                 user_metadata, upsert, role, claims, raw_metadata, expires_at \
                 FROM galley.storage_uploads WHERE id = $1 AND expires_at > now()",
                &[&id],
            )
            .await
            .map_err(db_failure)?
            .ok_or_else(not_found)?;
        let caller_of = Caller {
            role: row.get(9),
            claims: row.get(10),
        };
        if !caller.is_service() && caller.sub() != caller_of.sub() {
            return Err(not_found());
        }
        let length: i64 = row.get(2);
        let received: i64 = row.get(3);
        Ok(Upload {
            id,
            target: UploadTarget {
                bucket: row.get(0),
                key: row.get(1),
                upsert: row.get(8),
            },
            meta: UploadMeta {
                content_type: row.get(5),
                cache_control: row.get(6),
                user_metadata: row.get(7),
                declared_length: Some(length as u64),
            },
            length: length as u64,
            received: received as u64,
            parts: row.get(4),
            caller: caller_of,
            raw_metadata: row.get(11),
            expires_at: row.get(12),
        })
    }

    /// `PATCH`: appends `body` at `offset`.
    pub async fn patch_upload<S, E>(
        &self,
        upload: &Upload,
        offset: u64,
        body: S,
    ) -> Result<Patched, TusRefusal>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if offset != upload.received {
            return Err(tus(409, "Upload-Offset conflict"));
        }
        let part = format!(
            "{:06}-{}",
            upload.parts.len(),
            uuid::Uuid::new_v4().simple()
        );
        let path = self.store.upload_part_path(&upload.id.to_string(), &part);
        let remaining = upload.length - upload.received;
        let stored = match self.store.put(&path, body, remaining, true).await {
            Ok(stored) => stored,
            Err(PutError::TooLarge) => return Err(tus(413, "Maximum size exceeded")),
            Err(err) => {
                tracing::error!(error = %err, "storing a resumable upload's part failed");
                return Err(tus(500, "Internal Server Error"));
            }
        };
        self.metrics
            .storage_bytes
            .with_label_values(&["in"])
            .inc_by(stored.size);
        if stored.size == 0 {
            self.store.delete_logged(&path).await;
            return Ok(Patched::Partial(upload.received));
        }
        let client = self.owner.get().await.map_err(db_failure)?;
        let advanced = client
            .query_opt(
                "UPDATE galley.storage_uploads SET received = received + $3, \
                 part_keys = part_keys || $4::text \
                 WHERE id = $1 AND received = $2 RETURNING received",
                &[&upload.id, &(offset as i64), &(stored.size as i64), &part],
            )
            .await
            .map_err(db_failure)?;
        let Some(row) = advanced else {
            // Another PATCH at this offset counted first.
            self.store.delete_logged(&path).await;
            return Err(tus(409, "Upload-Offset conflict"));
        };
        let received: i64 = row.get(0);
        let received = received as u64;
        if received < upload.length {
            return Ok(Patched::Partial(received));
        }
        let mut parts = upload.parts.clone();
        parts.push(part);
        self.complete_upload(upload, &parts).await?;
        Ok(Patched::Complete(received))
    }

    /// Assembles the parts into the object and records it as the upload's creator.
    async fn complete_upload(&self, upload: &Upload, parts: &[String]) -> Result<(), TusRefusal> {
        let id = upload.id.to_string();
        let store = self.store.clone();
        let paths: Vec<_> = parts
            .iter()
            .map(|part| store.upload_part_path(&id, part))
            .collect();
        let reading = paths.clone();
        let body = futures_util::stream::iter(reading)
            .then(move |path| {
                let store = store.clone();
                async move { store.get(&path, None).await.map(|download| download.body) }
            })
            .map(|opened| match opened {
                Ok(body) => body,
                Err(err) => {
                    futures_util::stream::once(async move { Err(std::io::Error::other(err)) })
                        .boxed()
                }
            })
            .flatten();
        let version = uuid::Uuid::new_v4().to_string();
        let path = self.store.object_path(&version);
        let stored = match self
            .store
            .put(&path, Box::pin(body), upload.length, false)
            .await
        {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(error = %err, "assembling a resumable upload failed");
                return Err(tus(500, "Internal Server Error"));
            }
        };
        let recorded = self
            .record(
                &upload.caller,
                &upload.target,
                &upload.meta,
                &version,
                &stored.etag,
                stored.size,
            )
            .await;
        if let Err(err) = recorded {
            self.store.delete_logged(&path).await;
            return Err(err.into());
        }
        self.forget_upload(upload, &paths).await;
        Ok(())
    }

    async fn forget_upload(&self, upload: &Upload, paths: &[object_store::path::Path]) {
        if let Ok(client) = self.owner.get().await
            && let Err(err) = client
                .execute(
                    "DELETE FROM galley.storage_uploads WHERE id = $1",
                    &[&upload.id],
                )
                .await
        {
            tracing::warn!(error = %galley_db::report(&err), "forgetting a finished upload failed; it expires");
        }
        for path in paths {
            self.store.delete_logged(path).await;
        }
    }

    /// `DELETE`: ends an unfinished upload, its parts removed.
    pub async fn terminate_upload(&self, upload: &Upload) {
        let id = upload.id.to_string();
        let paths: Vec<_> = upload
            .parts
            .iter()
            .map(|part| self.store.upload_part_path(&id, part))
            .collect();
        self.forget_upload(upload, &paths).await;
    }
}
