//! `/bucket`: list, get, create, update, empty, delete, each as the caller (row-level
//! security on `storage.buckets` decides), answers as Supabase Storage's.

use serde::Deserialize;

use crate::error::StorageError;
use crate::sql::first_json;
use crate::{Caller, Storage, rules, settings, sql, statement};

/// `GET /bucket`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBuckets {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub sort_column: Option<String>,
    pub sort_order: Option<String>,
    pub search: Option<String>,
}

/// The fields create and update read; absent and `null` differ.
#[derive(Debug, Default, Deserialize)]
pub struct BucketBody {
    pub id: Option<String>,
    pub name: Option<serde_json::Value>,
    pub public: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub file_size_limit: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_mime_types: Option<serde_json::Value>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A member that is present, even as `null` (`Some(Null)`), apart from an absent one.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn bool_field(value: &Option<serde_json::Value>, name: &str) -> Result<Option<bool>, StorageError> {
    match value {
        None => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(serde_json::Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(StorageError::validation(format!(
            "body/{name} must be boolean"
        ))),
    }
}

/// `allowed_mime_types` as JSON text for SQL (`null` for none), each entry validated.
fn mime_types(value: &serde_json::Value) -> Result<String, StorageError> {
    match value {
        serde_json::Value::Null => Ok("null".to_owned()),
        serde_json::Value::Array(entries) => {
            let mut kept = Vec::new();
            for entry in entries {
                let serde_json::Value::String(entry) = entry else {
                    return Err(StorageError::validation(
                        "body/allowed_mime_types must be array",
                    ));
                };
                if entry.is_empty() {
                    continue;
                }
                if !rules::mime_entry_is_valid(entry) {
                    return Err(StorageError::invalid_mime_type(entry));
                }
                kept.push(entry.clone());
            }
            Ok(serde_json::Value::from(kept).to_string())
        }
        _ => Err(StorageError::validation(
            "body/allowed_mime_types must be array",
        )),
    }
}

impl Storage {
    /// A size limit as given, checked against the instance's.
    fn bucket_limit(&self, value: &serde_json::Value) -> Result<String, StorageError> {
        match rules::parse_size(value)? {
            None => Ok(String::new()),
            Some(limit) if limit > self.config.file_size_limit => {
                Err(StorageError::entity_too_large())
            }
            Some(limit) => Ok(limit.to_string()),
        }
    }

    pub async fn list_buckets(
        &self,
        caller: &Caller,
        query: &ListBuckets,
    ) -> Result<String, StorageError> {
        let number =
            |value: &Option<String>, name: &str, min: i64| -> Result<String, StorageError> {
                match value {
                    None => Ok(String::new()),
                    Some(v) => match v.parse::<i64>() {
                        Ok(n) if n >= min => Ok(n.to_string()),
                        _ => Err(StorageError::validation(format!(
                            "querystring/{name} must be >= {min}"
                        ))),
                    },
                }
            };
        let limit = number(&query.limit, "limit", 1)?;
        let offset = number(&query.offset, "offset", 0)?;
        let order = match query.sort_column.as_deref() {
            None => "",
            Some(column @ ("id" | "name" | "created_at" | "updated_at")) => {
                match (column, query.sort_order.as_deref()) {
                    ("id", Some("desc")) => " ORDER BY b.id DESC",
                    ("id", _) => " ORDER BY b.id ASC",
                    ("name", Some("desc")) => " ORDER BY b.name DESC",
                    ("name", _) => " ORDER BY b.name ASC",
                    ("created_at", Some("desc")) => " ORDER BY b.created_at DESC",
                    ("created_at", _) => " ORDER BY b.created_at ASC",
                    (_, Some("desc")) => " ORDER BY b.updated_at DESC",
                    (_, _) => " ORDER BY b.updated_at ASC",
                }
            }
            Some(_) => {
                return Err(StorageError::validation(
                    "querystring/sortColumn must be equal to one of the allowed values",
                ));
            }
        };
        if let Some(direction) = &query.sort_order
            && direction != "asc"
            && direction != "desc"
        {
            return Err(StorageError::validation(
                "querystring/sortOrder must be equal to one of the allowed values",
            ));
        }
        let sql = format!(
            "SELECT coalesce(json_agg({} {order}), '[]')::text FROM (SELECT * FROM storage.buckets b \
             WHERE $1::text = '' OR b.name ILIKE '%' || replace(replace(replace($1::text, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' \
             {order} LIMIT NULLIF($2::text, '')::bigint OFFSET coalesce(NULLIF($3::text, '')::bigint, 0)) b",
            sql::LIST_BUCKETS_COLUMNS
        );
        let statements = vec![
            settings(caller, "storage.bucket.list"),
            (
                std::borrow::Cow::Owned(sql),
                vec![query.search.clone().unwrap_or_default(), limit, offset],
            ),
        ];
        let rows = self.read(statements, "listing buckets").await?;
        Ok(first_json(&rows, 1).unwrap_or_else(|| "[]".to_owned()))
    }

    pub async fn get_bucket(&self, caller: &Caller, id: &str) -> Result<String, StorageError> {
        rules::check_bucket_name(id)?;
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.bucket.get"),
                    statement(sql::GET_BUCKET, vec![id.to_owned()]),
                ],
                "reading a bucket",
            )
            .await?;
        first_json(&rows, 1).ok_or_else(StorageError::no_such_bucket)
    }

    /// Creates a bucket; answers `{"name": <name>}`.
    pub async fn create_bucket(
        &self,
        caller: &Caller,
        body: &BucketBody,
    ) -> Result<String, StorageError> {
        let name = match &body.name {
            Some(serde_json::Value::String(name)) => name.clone(),
            Some(_) => return Err(StorageError::validation("body/name must be string")),
            None => {
                return Err(StorageError::validation(
                    "body must have required property 'name'",
                ));
            }
        };
        rules::check_new_bucket_name(&name)?;
        let id = body
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| name.clone());
        rules::check_new_bucket_name(&id)?;
        if let Some(kind) = &body.kind
            && kind != "STANDARD"
        {
            return Err(StorageError::validation(
                "body/type must be equal to one of the allowed values",
            ));
        }
        let public = bool_field(&body.public, "public")?.unwrap_or(false);
        let limit = match &body.file_size_limit {
            Some(value) => self.bucket_limit(value)?,
            None => String::new(),
        };
        let mimes = match &body.allowed_mime_types {
            Some(value) => mime_types(value)?,
            None => "null".to_owned(),
        };
        let statements = vec![
            settings(caller, "storage.bucket.create"),
            statement(
                sql::CREATE_BUCKET,
                vec![
                    id,
                    name.clone(),
                    caller.owner_uuid().to_owned(),
                    caller.sub().to_owned(),
                    public.to_string(),
                    limit,
                    mimes,
                ],
            ),
        ];
        self.write(statements, StorageError::bucket_exists, "creating a bucket")
            .await?;
        Ok(serde_json::json!({ "name": name }).to_string())
    }

    pub async fn update_bucket(
        &self,
        caller: &Caller,
        id: &str,
        body: &BucketBody,
    ) -> Result<String, StorageError> {
        rules::check_bucket_name(id)?;
        if body.public.is_none()
            && body.file_size_limit.is_none()
            && body.allowed_mime_types.is_none()
        {
            return Err(StorageError::validation(
                "body must match a schema in anyOf",
            ));
        }
        let public = bool_field(&body.public, "public")?
            .map(|b| b.to_string())
            .unwrap_or_default();
        let limit = match &body.file_size_limit {
            Some(value) => self.bucket_limit(value)?,
            None => "keep".to_owned(),
        };
        let mimes = match &body.allowed_mime_types {
            Some(value) => mime_types(value)?,
            None => "keep".to_owned(),
        };
        let statements = vec![
            settings(caller, "storage.bucket.update"),
            statement(
                sql::UPDATE_BUCKET,
                vec![id.to_owned(), public, limit, mimes],
            ),
        ];
        let rows = self
            .write(statements, StorageError::bucket_exists, "updating a bucket")
            .await?;
        if rows.get(1).is_none_or(Vec::is_empty) {
            return Err(StorageError::no_such_bucket());
        }
        Ok(r#"{"message":"Successfully updated"}"#.to_owned())
    }

    /// Deletes an empty bucket (one with objects is refused: the foreign key says so).
    pub async fn delete_bucket(&self, caller: &Caller, id: &str) -> Result<String, StorageError> {
        rules::check_bucket_name(id)?;
        let statements = vec![
            settings(caller, "storage.bucket.delete"),
            statement(sql::DELETE_BUCKET, vec![id.to_owned()]),
        ];
        let result = self.run_write(statements).await;
        match result {
            Ok(rows) if rows.get(1).is_some_and(|r| !r.is_empty()) => {
                Ok(r#"{"message":"Successfully deleted"}"#.to_owned())
            }
            Ok(_) => Err(StorageError::no_such_bucket()),
            Err(err) if err.sql_state() == galley_db::SqlState::ForeignKeyViolation => {
                Err(StorageError::bucket_not_empty())
            }
            Err(err) => Err(StorageError::from_database(
                &err,
                StorageError::bucket_exists,
                "deleting a bucket",
            )),
        }
    }

    /// Removes every object of a bucket (only `service_role` may), rows first, then
    /// their bytes.
    pub async fn empty_bucket(&self, caller: &Caller, id: &str) -> Result<String, StorageError> {
        if !caller.is_service() {
            return Err(StorageError::invalid_role());
        }
        rules::check_bucket_name(id)?;
        let rows = self
            .read(
                vec![
                    settings(caller, "storage.bucket.empty"),
                    statement(sql::BUCKET_EXISTS, vec![id.to_owned()]),
                ],
                "reading a bucket",
            )
            .await?;
        if rows.get(1).is_none_or(Vec::is_empty) {
            return Err(StorageError::no_such_bucket());
        }
        loop {
            let rows = self
                .write(
                    vec![
                        settings(caller, "storage.bucket.empty"),
                        statement(sql::EMPTY_BUCKET_BATCH, vec![id.to_owned()]),
                    ],
                    StorageError::resource_exists,
                    "emptying a bucket",
                )
                .await?;
            let versions: Vec<String> = rows
                .get(1)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r.text(0).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if versions.is_empty() {
                break;
            }
            for version in &versions {
                self.store
                    .delete_logged(&self.store.object_path(version))
                    .await;
            }
            self.metrics
                .storage_objects
                .with_label_values(&["removed"])
                .inc_by(versions.len() as u64);
        }
        Ok(r#"{"message":"Successfully emptied"}"#.to_owned())
    }
}
