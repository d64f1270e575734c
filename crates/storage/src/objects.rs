//! `/object`: uploads, reads, listing, move, copy, remove and signed URLs. An upload is
//! judged before its body is read (bucket, key, declared size and type, and a permission
//! probe: the row it would write, inserted as the caller and rolled back), streamed into
//! the store under a new version, and only then recorded, as `service_role`; a failure at
//! any step leaves no row, and the bytes are removed (or, after a crash, swept).

use bytes::Bytes;
use futures_util::Stream;
use galley_db::wire::{Queued, Row, WireError};
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::signing::SignedClaims;
use crate::sql::{compact, first_json, first_text};
use crate::store::{Download, PutError};
use crate::{Caller, Storage, rules, settings, sql, statement};

/// Where an upload goes.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    pub bucket: String,
    pub key: String,
    /// Overwrite an existing object (`x-upsert: true`, every `PUT`).
    pub upsert: bool,
}

/// What an upload says about itself.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    pub content_type: String,
    pub cache_control: String,
    pub user_metadata: Option<serde_json::Value>,
    /// `Content-Length` (or the resumable upload's length), when known.
    pub declared_length: Option<u64>,
}

/// Which reading route: `/object/public/…` (the bucket must be public), `/object/
/// authenticated/…` (a token is required; RLS unless the bucket is public), or `/object/
/// {bucket}/…` (a public bucket for anyone, a private one for a valid token's holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Public,
    Authenticated,
    Any,
}

/// An object's row, as a read finds it.
#[derive(Debug, Clone)]
pub struct ObjectRead {
    pub bucket: String,
    pub name: String,
    pub id: String,
    pub version: String,
    pub metadata: serde_json::Value,
    pub user_metadata: Option<serde_json::Value>,
    pub updated_at: String,
    pub created_at: String,
}

impl ObjectRead {
    pub fn size(&self) -> u64 {
        self.metadata
            .get("size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    pub fn mimetype(&self) -> &str {
        self.metadata
            .get("mimetype")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("application/octet-stream")
    }

    pub fn cache_control(&self) -> &str {
        self.metadata
            .get("cacheControl")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no-cache")
    }

    pub fn etag(&self) -> &str {
        self.metadata
            .get("eTag")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }

    pub fn last_modified(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.metadata
            .get("lastModified")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// `GET /object/info/…`'s body, members in Supabase's order.
#[derive(Serialize)]
pub struct ObjectInfo<'a> {
    id: &'a str,
    name: &'a str,
    version: &'a str,
    bucket_id: &'a str,
    size: Option<u64>,
    content_type: Option<&'a str>,
    cache_control: Option<&'a str>,
    etag: Option<&'a str>,
    metadata: &'a Option<serde_json::Value>,
    last_modified: &'a str,
    created_at: &'a str,
}

impl<'a> ObjectInfo<'a> {
    pub fn of(object: &'a ObjectRead) -> Self {
        let text = |key: &str| object.metadata.get(key).and_then(serde_json::Value::as_str);
        Self {
            id: &object.id,
            name: &object.name,
            version: &object.version,
            bucket_id: &object.bucket,
            size: object
                .metadata
                .get("size")
                .and_then(serde_json::Value::as_u64),
            content_type: text("mimetype"),
            cache_control: text("cacheControl"),
            etag: text("eTag"),
            metadata: &object.user_metadata,
            last_modified: &object.updated_at,
            created_at: &object.created_at,
        }
    }
}

/// `POST /object/list/{bucket}`'s body.
#[derive(Debug, Deserialize)]
pub struct ListBody {
    pub prefix: Option<String>,
    pub limit: Option<serde_json::Value>,
    pub offset: Option<serde_json::Value>,
    #[serde(rename = "sortBy")]
    pub sort_by: Option<SortBy>,
    pub search: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SortBy {
    pub column: Option<String>,
    pub order: Option<String>,
}

/// `POST /object/move` and `/object/copy`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveBody {
    pub bucket_id: Option<String>,
    pub source_key: Option<String>,
    pub destination_key: Option<String>,
    pub destination_bucket: Option<String>,
}

/// An integer member as Supabase's schema coerces it (`"60"` is 60).
fn integer(
    value: &Option<serde_json::Value>,
    name: &str,
    min: i64,
) -> Result<Option<i64>, StorageError> {
    let n = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n >= min => Ok(Some(n)),
        Some(_) => Err(StorageError::validation(format!(
            "body/{name} must be >= {min}"
        ))),
        None => Err(StorageError::validation(format!(
            "body/{name} must be integer"
        ))),
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, StorageError> {
    value.as_deref().ok_or_else(|| {
        StorageError::validation(format!("body must have required property '{name}'"))
    })
}

impl Storage {
    /// Runs a read as one group of this worker's next batch.
    pub(crate) async fn read(
        &self,
        statements: Vec<Queued>,
        what: &str,
    ) -> Result<Vec<Vec<Row>>, StorageError> {
        let (result, _) = self.api.run_group(statements).await;
        result.map_err(|err| StorageError::from_database(&err, StorageError::resource_exists, what))
    }

    pub(crate) async fn run_write(
        &self,
        statements: Vec<Queued>,
    ) -> Result<Vec<Vec<Row>>, WireError> {
        self.api.run_alone(statements).await.0
    }

    pub(crate) async fn write(
        &self,
        statements: Vec<Queued>,
        duplicate: fn() -> StorageError,
        what: &str,
    ) -> Result<Vec<Vec<Row>>, StorageError> {
        self.run_write(statements)
            .await
            .map_err(|err| StorageError::from_database(&err, duplicate, what))
    }

    /// The bucket's upload rules: `(size limit, allowed types)`; `NoSuchBucket` if there
    /// is none.
    async fn bucket_rules(&self, bucket: &str) -> Result<(u64, Vec<String>), StorageError> {
        let rows = self
            .read(
                vec![statement(
                    sql::LOOKUP,
                    vec![bucket.to_owned(), String::new()],
                )],
                "reading a bucket",
            )
            .await?;
        let row = rows
            .first()
            .and_then(|rows| rows.first())
            .ok_or_else(StorageError::no_such_bucket)?;
        let limit = row
            .text(1)
            .and_then(|l| l.parse::<u64>().ok())
            .map_or(self.config.file_size_limit, |l| {
                l.min(self.config.file_size_limit)
            });
        let allowed: Vec<String> = row
            .text(2)
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        Ok((limit, allowed))
    }

    /// Everything an upload is judged on before its body is read. Answers the size limit
    /// the body is held to.
    pub async fn prepare_upload(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        meta: &UploadMeta,
        operation: &str,
    ) -> Result<u64, StorageError> {
        rules::check_bucket_name(&target.bucket)?;
        let (limit, allowed) = self.bucket_rules(&target.bucket).await?;
        rules::check_key(&target.key)?;
        let placeholder = target.key.ends_with(".emptyFolderPlaceholder");
        let limit = if placeholder { 0 } else { limit };
        if meta.declared_length.is_some_and(|length| length > limit) {
            return Err(StorageError::entity_too_large());
        }
        if !placeholder && !rules::mime_is_allowed(&allowed, &meta.content_type) {
            return Err(StorageError::invalid_mime_type(&meta.content_type));
        }
        if let Some(user) = &meta.user_metadata
            && user.to_string().len() > 1024 * 1024
        {
            return Err(StorageError::user_metadata_too_large());
        }
        if caller.is_service() {
            // Row-level security does not apply; a duplicate is found when the row is
            // written (nothing of the upload remains then).
            if !target.upsert {
                self.refuse_existing(target).await?;
            }
            return Ok(limit);
        }
        let probe_metadata = serde_json::json!({
            "mimetype": meta.content_type,
            "contentLength": meta.declared_length,
        })
        .to_string();
        let probe = if target.upsert {
            sql::PROBE_UPSERT
        } else {
            sql::PROBE_INSERT
        };
        let statements = vec![
            statement("BEGIN", Vec::new()),
            settings(caller, operation),
            statement(
                probe,
                vec![
                    target.bucket.clone(),
                    target.key.clone(),
                    caller.owner_uuid().to_owned(),
                    caller.sub().to_owned(),
                    probe_metadata,
                    user_metadata_text(&meta.user_metadata),
                ],
            ),
            statement("ROLLBACK", Vec::new()),
        ];
        self.write(statements, StorageError::key_exists, "checking an upload")
            .await?;
        Ok(limit)
    }

    async fn refuse_existing(&self, target: &UploadTarget) -> Result<(), StorageError> {
        let rows = self
            .read(
                vec![
                    settings(&Caller::service(), "storage.object.upload"),
                    statement(
                        sql::READ_OBJECT,
                        vec![target.bucket.clone(), target.key.clone()],
                    ),
                ],
                "checking an upload",
            )
            .await?;
        if rows.get(1).is_some_and(|rows| !rows.is_empty()) {
            return Err(StorageError::key_exists());
        }
        Ok(())
    }

    /// Streams `body` into the store and records the object; answers its id. The bytes
    /// are removed again if the body fails, passes `limit`, or the row cannot be written.
    pub async fn finish_upload<S, E>(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        meta: &UploadMeta,
        limit: u64,
        body: S,
    ) -> Result<String, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let version = uuid::Uuid::new_v4().to_string();
        let path = self.store.object_path(&version);
        let stored = match self.store.put(&path, body, limit, false).await {
            Ok(stored) => stored,
            Err(PutError::TooLarge) => return Err(StorageError::entity_too_large()),
            Err(PutError::Body(reason)) => {
                tracing::info!(reason, "an upload's body broke off; nothing was stored");
                return Err(StorageError::invalid_request(reason));
            }
            Err(err) => {
                tracing::error!(error = %err, "storing an upload failed");
                return Err(StorageError::internal());
            }
        };
        self.metrics
            .storage_bytes
            .with_label_values(&["in"])
            .inc_by(stored.size);
        let recorded = self
            .record(caller, target, meta, &version, &stored.etag, stored.size)
            .await;
        if recorded.is_err() {
            self.store.delete_logged(&path).await;
        }
        recorded
    }

    /// Writes the row of an object whose bytes are stored as `version`; an overwritten
    /// version's bytes are removed after the commit.
    pub(crate) async fn record(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        meta: &UploadMeta,
        version: &str,
        etag: &str,
        size: u64,
    ) -> Result<String, StorageError> {
        let metadata = serde_json::json!({
            "eTag": etag,
            "size": size,
            "mimetype": meta.content_type,
            "cacheControl": meta.cache_control,
            "contentLength": size,
            "httpStatusCode": 200,
        })
        .to_string();
        let params = vec![
            target.bucket.clone(),
            target.key.clone(),
            caller.owner_uuid().to_owned(),
            caller.sub().to_owned(),
            metadata,
            version.to_owned(),
            user_metadata_text(&meta.user_metadata),
        ];
        let service = Caller::service();
        let (statements, answer, previous) = if target.upsert {
            (
                vec![
                    statement("BEGIN", Vec::new()),
                    settings(&service, "storage.object.upload"),
                    statement(
                        sql::LOCK_PREVIOUS,
                        vec![target.bucket.clone(), target.key.clone()],
                    ),
                    statement(sql::FINAL_UPSERT, params),
                    statement("COMMIT", Vec::new()),
                ],
                3,
                Some(2),
            )
        } else {
            (
                vec![
                    settings(&service, "storage.object.upload"),
                    statement(sql::FINAL_INSERT, params),
                ],
                1,
                None,
            )
        };
        let rows = self
            .write(statements, StorageError::key_exists, "recording an upload")
            .await?;
        let id = first_text(&rows, answer).ok_or_else(StorageError::internal)?;
        self.metrics
            .storage_objects
            .with_label_values(&["stored"])
            .inc();
        if let Some(old) = previous.and_then(|index| first_text(&rows, index))
            && old != version
        {
            self.store
                .delete_logged(&self.store.object_path(&old))
                .await;
            self.metrics
                .storage_objects
                .with_label_values(&["removed"])
                .inc();
        }
        Ok(id)
    }

    /// The object `key` of `bucket` as `caller` may read it by `mode` (`caller` is `None`
    /// for a request without a valid token).
    pub async fn find(
        &self,
        caller: Option<&Caller>,
        bucket: &str,
        key: &str,
        mode: ReadMode,
        operation: &str,
    ) -> Result<ObjectRead, StorageError> {
        rules::check_bucket_name(bucket)?;
        rules::check_key(key)?;
        let mut statements = vec![statement(
            sql::LOOKUP,
            vec![bucket.to_owned(), key.to_owned()],
        )];
        let caller = match mode {
            ReadMode::Public => None,
            ReadMode::Authenticated | ReadMode::Any => caller,
        };
        if let Some(caller) = caller {
            statements.push(settings(caller, operation));
            statements.push(statement(
                sql::READ_OBJECT,
                vec![bucket.to_owned(), key.to_owned()],
            ));
        }
        let rows = self.read(statements, "reading an object").await?;
        let lookup = rows
            .first()
            .and_then(|rows| rows.first())
            .ok_or_else(StorageError::no_such_bucket)?;
        let public = lookup.text(0) == Some("true");
        let object = |row: &Row, offset: usize| -> Option<ObjectRead> {
            Some(ObjectRead {
                bucket: bucket.to_owned(),
                name: key.to_owned(),
                id: row.text(offset)?.to_owned(),
                version: row.text(offset + 1).unwrap_or_default().to_owned(),
                metadata: row
                    .text(offset + 2)
                    .and_then(|m| serde_json::from_str(m).ok())
                    .unwrap_or(serde_json::Value::Null),
                user_metadata: row
                    .text(offset + 3)
                    .and_then(|m| serde_json::from_str(m).ok()),
                updated_at: row.text(offset + 4).unwrap_or_default().to_owned(),
                created_at: row.text(offset + 5).unwrap_or_default().to_owned(),
            })
        };
        if public {
            return object(lookup, 3).ok_or_else(StorageError::no_such_key);
        }
        match caller {
            None => Err(StorageError::no_such_bucket()),
            Some(_) => rows
                .get(2)
                .and_then(|rows| rows.first())
                .and_then(|row| object(row, 0))
                .ok_or_else(StorageError::no_such_key),
        }
    }

    /// The object's bytes (`range` of them). `None` when the stored version is gone (an
    /// overwrite committed since the row was read): read the row again.
    pub async fn bytes(
        &self,
        object: &ObjectRead,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Download>, StorageError> {
        match self
            .store
            .get(&self.store.object_path(&object.version), range)
            .await
        {
            Ok(download) => {
                self.metrics
                    .storage_bytes
                    .with_label_values(&["out"])
                    .inc_by(download.range.end - download.range.start);
                Ok(Some(download))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => {
                tracing::error!(error = %err, version = object.version, "reading stored bytes failed");
                Err(StorageError::internal())
            }
        }
    }

    pub async fn list(
        &self,
        caller: &Caller,
        bucket: &str,
        body: &ListBody,
    ) -> Result<String, StorageError> {
        let Some(prefix) = &body.prefix else {
            return Err(StorageError::validation(
                "body must have required property 'prefix'",
            ));
        };
        let limit = integer(&body.limit, "limit", 1)?.unwrap_or(100);
        let offset = integer(&body.offset, "offset", 0)?.unwrap_or(0);
        let (column, order) = match &body.sort_by {
            None => ("name".to_owned(), "asc".to_owned()),
            Some(sort) => {
                let column = sort.column.clone().ok_or_else(|| {
                    StorageError::validation("body/sortBy must have required property 'column'")
                })?;
                if !matches!(
                    column.as_str(),
                    "name" | "updated_at" | "created_at" | "last_accessed_at"
                ) {
                    return Err(StorageError::validation(
                        "body/sortBy/column must be equal to one of the allowed values",
                    ));
                }
                let order = sort.order.clone().unwrap_or_else(|| "asc".to_owned());
                if !matches!(order.as_str(), "asc" | "desc") {
                    return Err(StorageError::validation(
                        "body/sortBy/order must be equal to one of the allowed values",
                    ));
                }
                (column, order)
            }
        };
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.clone()
        } else {
            format!("{prefix}/")
        };
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.object.list"),
                    statement(
                        sql::SEARCH,
                        vec![
                            prefix,
                            bucket.to_owned(),
                            limit.min(i32::MAX.into()).to_string(),
                            offset.min(i32::MAX.into()).to_string(),
                            body.search.clone().unwrap_or_default(),
                            column,
                            order,
                        ],
                    ),
                ],
                "listing objects",
            )
            .await?;
        Ok(first_json(&rows, 1).unwrap_or_else(|| "[]".to_owned()))
    }

    fn move_parts(body: &MoveBody) -> Result<(&str, &str, &str, &str), StorageError> {
        let bucket = required(&body.bucket_id, "bucketId")?;
        let source = required(&body.source_key, "sourceKey")?;
        let destination = required(&body.destination_key, "destinationKey")?;
        let destination_bucket = body.destination_bucket.as_deref().unwrap_or(bucket);
        rules::check_bucket_name(bucket)?;
        rules::check_bucket_name(destination_bucket)?;
        rules::check_key(destination)?;
        Ok((bucket, source, destination_bucket, destination))
    }

    /// Renames an object (its bytes stay where they are), as the caller.
    pub async fn move_object(
        &self,
        caller: &Caller,
        body: &MoveBody,
    ) -> Result<String, StorageError> {
        let (bucket, source, destination_bucket, destination) = Self::move_parts(body)?;
        if bucket == destination_bucket && source == destination {
            return Ok(r#"{"message":"Successfully moved"}"#.to_owned());
        }
        let statements = vec![
            settings(caller, "storage.object.move"),
            statement(
                sql::MOVE,
                vec![
                    bucket.to_owned(),
                    source.to_owned(),
                    destination_bucket.to_owned(),
                    destination.to_owned(),
                    caller.owner_uuid().to_owned(),
                    caller.sub().to_owned(),
                ],
            ),
        ];
        let rows = self
            .write(
                statements,
                StorageError::resource_exists,
                "moving an object",
            )
            .await?;
        if rows.get(1).is_none_or(Vec::is_empty) {
            return Err(StorageError::no_such_key());
        }
        Ok(r#"{"message":"Successfully moved"}"#.to_owned())
    }

    /// Copies an object: the source read as the caller, the destination judged as an
    /// upload, the bytes copied to a new version, the row written.
    pub async fn copy_object(
        &self,
        caller: &Caller,
        body: &MoveBody,
        upsert: bool,
    ) -> Result<String, StorageError> {
        let (bucket, source, destination_bucket, destination) = Self::move_parts(body)?;
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.object.copy"),
                    statement(sql::COPY_SOURCE, vec![bucket.to_owned(), source.to_owned()]),
                ],
                "reading an object",
            )
            .await?;
        let row = rows
            .get(1)
            .and_then(|rows| rows.first())
            .ok_or_else(StorageError::no_such_key)?;
        let from_version = row.text(0).unwrap_or_default().to_owned();
        let metadata: serde_json::Value = row
            .text(1)
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        let user_metadata = row
            .text(2)
            .filter(|m| !m.is_empty())
            .and_then(|m| serde_json::from_str(m).ok());
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let size = metadata
            .get("size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let meta = UploadMeta {
            content_type: text("mimetype").unwrap_or_else(|| "application/octet-stream".to_owned()),
            cache_control: text("cacheControl").unwrap_or_else(|| "no-cache".to_owned()),
            user_metadata,
            declared_length: Some(size),
        };
        let target = UploadTarget {
            bucket: destination_bucket.to_owned(),
            key: destination.to_owned(),
            upsert,
        };
        self.prepare_upload(caller, &target, &meta, "storage.object.copy")
            .await?;
        let version = uuid::Uuid::new_v4().to_string();
        let to = self.store.object_path(&version);
        if let Err(err) = self
            .store
            .copy(&self.store.object_path(&from_version), &to)
            .await
        {
            tracing::error!(error = %err, "copying stored bytes failed");
            self.store.delete_logged(&to).await;
            return Err(match err {
                object_store::Error::NotFound { .. } => StorageError::no_such_key(),
                _ => StorageError::internal(),
            });
        }
        let etag = text("eTag").unwrap_or_default();
        let id = match self
            .record(caller, &target, &meta, &version, &etag, size)
            .await
        {
            Ok(id) => id,
            Err(err) => {
                self.store.delete_logged(&to).await;
                return Err(err);
            }
        };
        let rows = self
            .read(
                vec![
                    settings(&Caller::service(), "storage.object.copy"),
                    statement(sql::COPY_ANSWER, vec![id.clone()]),
                ],
                "reading a copy",
            )
            .await?;
        let rest = first_json(&rows, 1).unwrap_or_else(|| "{}".to_owned());
        let head =
            serde_json::json!({ "Id": id, "Key": format!("{destination_bucket}/{destination}") })
                .to_string();
        // `{"Id":…,"Key":…}` then the row's members, in Supabase's order.
        let head = &head[..head.len() - 1];
        let rest = rest.strip_prefix('{').unwrap_or("}");
        Ok(if rest == "}" {
            format!("{head}}}")
        } else {
            format!("{head},{rest}")
        })
    }

    /// Removes the objects named exactly (those the caller may not delete are skipped),
    /// answering the removed rows.
    pub async fn remove(
        &self,
        caller: &Caller,
        bucket: &str,
        prefixes: &serde_json::Value,
    ) -> Result<String, StorageError> {
        rules::check_bucket_name(bucket)?;
        let names = match prefixes {
            serde_json::Value::Array(names)
                if !names.is_empty() && names.iter().all(serde_json::Value::is_string) =>
            {
                names
            }
            serde_json::Value::Array(names) if names.is_empty() => {
                return Err(StorageError::validation(
                    "body/prefixes must NOT have fewer than 1 items",
                ));
            }
            serde_json::Value::Null => {
                return Err(StorageError::validation(
                    "body must have required property 'prefixes'",
                ));
            }
            _ => return Err(StorageError::validation("body/prefixes must be array")),
        };
        if names.len() > 1000 {
            return Err(StorageError::invalid_request(
                "Bulk object requests are limited to 1000 objects per request.",
            ));
        }
        let rows = self
            .write(
                vec![
                    settings(caller, "storage.object.delete_many"),
                    statement(sql::REMOVE, vec![bucket.to_owned(), prefixes.to_string()]),
                ],
                StorageError::resource_exists,
                "removing objects",
            )
            .await?;
        let removed = rows.get(1).map(Vec::as_slice).unwrap_or_default();
        let mut body = String::from("[");
        for (index, row) in removed.iter().enumerate() {
            if let Some(version) = row.text(0) {
                self.store
                    .delete_logged(&self.store.object_path(version))
                    .await;
            }
            if index > 0 {
                body.push(',');
            }
            body.push_str(&compact(row.text(1).unwrap_or("{}")));
        }
        body.push(']');
        self.metrics
            .storage_objects
            .with_label_values(&["removed"])
            .inc_by(removed.len() as u64);
        Ok(body)
    }

    fn check_expiry(&self, expires_in: &Option<serde_json::Value>) -> Result<i64, StorageError> {
        let now = chrono::Utc::now().timestamp();
        let max = (9_007_199_254_740_991_i64 / 1000) - now;
        match integer(expires_in, "expiresIn", 1) {
            Ok(Some(n)) if n <= max => Ok(n),
            Ok(None) => Err(StorageError::validation(
                "body must have required property 'expiresIn'",
            )),
            _ => Err(StorageError::invalid_parameter("expiresIn")),
        }
    }

    /// A signed download URL for one object the caller may read.
    pub async fn sign(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        expires_in: &Option<serde_json::Value>,
        transform: Option<serde_json::Value>,
    ) -> Result<String, StorageError> {
        let expires_in = self.check_expiry(expires_in)?;
        rules::check_bucket_name(bucket)?;
        rules::check_key(key)?;
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.object.sign"),
                    statement(sql::READ_OBJECT, vec![bucket.to_owned(), key.to_owned()]),
                ],
                "reading an object",
            )
            .await?;
        if rows.get(1).is_none_or(Vec::is_empty) {
            return Err(StorageError::no_such_key());
        }
        let transform = transform.filter(|t| t.as_object().is_some_and(|o| !o.is_empty()));
        // Transformations are checked now, and the URL is the renderer's.
        let route = match &transform {
            Some(serde_json::Value::Object(fields)) => {
                crate::transform::Transform::from_fields(fields)?;
                "render/image"
            }
            _ => "object",
        };
        let token = self.download_token(bucket, key, expires_in, transform);
        Ok(serde_json::json!({ "signedURL": format!("/{route}/sign/{bucket}/{key}?token={token}") }).to_string())
    }

    fn download_token(
        &self,
        bucket: &str,
        key: &str,
        expires_in: i64,
        transformations: Option<serde_json::Value>,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        self.signer.sign(&SignedClaims {
            url: format!("{bucket}/{key}"),
            scope: "download".to_owned(),
            owner: None,
            upsert: None,
            transformations,
            iat: now,
            exp: now + expires_in,
        })
    }

    /// Signed download URLs for several objects; one the caller may not read gets an
    /// error in its place.
    pub async fn sign_many(
        &self,
        caller: &Caller,
        bucket: &str,
        expires_in: &Option<serde_json::Value>,
        paths: &serde_json::Value,
    ) -> Result<String, StorageError> {
        let expires_in = self.check_expiry(expires_in)?;
        rules::check_bucket_name(bucket)?;
        let paths: Vec<String> = match paths {
            serde_json::Value::Array(items) if !items.is_empty() && items.len() <= 1000 => items
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| StorageError::validation("body/paths must be array"))?,
            serde_json::Value::Null => {
                return Err(StorageError::validation(
                    "body must have required property 'paths'",
                ));
            }
            _ => return Err(StorageError::validation("body/paths must be array")),
        };
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.object.sign"),
                    statement(
                        sql::VISIBLE_NAMES,
                        vec![
                            bucket.to_owned(),
                            serde_json::Value::from(paths.clone()).to_string(),
                        ],
                    ),
                ],
                "reading objects",
            )
            .await?;
        let visible: std::collections::HashSet<&str> = rows
            .get(1)
            .map(|rows| rows.iter().filter_map(|r| r.text(0)).collect())
            .unwrap_or_default();
        #[derive(Serialize)]
        struct Item {
            error: Option<&'static str>,
            path: String,
            #[serde(rename = "signedURL")]
            signed_url: Option<String>,
        }
        let items: Vec<Item> = paths
            .into_iter()
            .map(|path| {
                if visible.contains(path.as_str()) {
                    let token = self.download_token(bucket, &path, expires_in, None);
                    Item {
                        error: None,
                        signed_url: Some(format!("/object/sign/{bucket}/{path}?token={token}")),
                        path,
                    }
                } else {
                    Item {
                        error: Some(
                            "Either the object does not exist or you do not have access to it",
                        ),
                        path,
                        signed_url: None,
                    }
                }
            })
            .collect();
        serde_json::to_string(&items).map_err(|_| StorageError::internal())
    }

    /// A signed upload URL: the upload judged now (as for an upload of unknown size), the
    /// token carrying the caller as owner.
    pub async fn sign_upload(
        &self,
        caller: &Caller,
        target: &UploadTarget,
        meta: &UploadMeta,
    ) -> Result<String, StorageError> {
        self.prepare_upload(caller, target, meta, "storage.object.upload_sign")
            .await?;
        let now = chrono::Utc::now().timestamp();
        let token = self.signer.sign(&SignedClaims {
            url: format!("{}/{}", target.bucket, target.key),
            scope: "upload".to_owned(),
            owner: Some(caller.sub().to_owned()).filter(|s| !s.is_empty()),
            upsert: Some(target.upsert),
            transformations: None,
            iat: now,
            exp: now + self.config.signed_upload_expiry_secs as i64,
        });
        Ok(serde_json::json!({
            "url": format!("/object/upload/sign/{}/{}?token={token}", target.bucket, target.key),
            "token": token,
        })
        .to_string())
    }

    /// Who a signed upload runs as: `service_role` with the signer as `sub`.
    pub fn signed_uploader(claims: &SignedClaims) -> Caller {
        let mut caller = Caller::service();
        if let Some(owner) = &claims.owner {
            caller.claims["sub"] = serde_json::Value::from(owner.clone());
        }
        caller
    }
}

fn user_metadata_text(value: &Option<serde_json::Value>) -> String {
    value.as_ref().map(|v| v.to_string()).unwrap_or_default()
}
