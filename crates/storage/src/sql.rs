//! Storage's statements. Every value is a bound parameter (text, cast in SQL); answers
//! are JSON built by PostgreSQL with members in Supabase's order (`json_build_object`
//! keeps it) and timestamps as Supabase writes them (`2024-05-22T23:06:05.580Z`); the
//! helpers below read the answers.

/// A timestamp column as Supabase serializes it (UTC, milliseconds, `Z`).
macro_rules! ts {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// An object row as remove and copy answer it (string columns never null).
macro_rules! object_json {
    ($o:literal) => {
        concat!(
            "json_build_object('name', ",
            $o,
            ".name, 'bucket_id', ",
            $o,
            ".bucket_id, ",
            "'owner', coalesce(",
            $o,
            ".owner::text, ''), 'owner_id', coalesce(",
            $o,
            ".owner_id, ''), ",
            "'version', coalesce(",
            $o,
            ".version, ''), 'id', ",
            $o,
            ".id, ",
            "'updated_at', ",
            ts!("o.updated_at"),
            ", 'created_at', ",
            ts!("o.created_at"),
            ", ",
            "'last_accessed_at', ",
            ts!("o.last_accessed_at"),
            ", 'metadata', ",
            $o,
            ".metadata, ",
            "'user_metadata', ",
            $o,
            ".user_metadata)"
        )
    };
}

pub(crate) const SETTINGS: &str = "SELECT set_config('role', $1::text, true), \
     set_config('request.jwt.claims', $2::text, true), \
     set_config('request.jwt.claim.sub', $3::text, true), \
     set_config('request.jwt.claim.role', $1::text, true), \
     set_config('storage.operation', $4::text, true)";

// Buckets.

pub(crate) const LIST_BUCKETS_COLUMNS: &str = concat!(
    "json_build_object('id', b.id, 'name', b.name, 'owner', coalesce(b.owner::text, ''), ",
    "'public', b.public, 'type', 'STANDARD', 'file_size_limit', b.file_size_limit, ",
    "'allowed_mime_types', b.allowed_mime_types, 'created_at', ",
    ts!("b.created_at"),
    ", 'updated_at', ",
    ts!("b.updated_at"),
    ")"
);

pub(crate) const GET_BUCKET: &str = concat!(
    "SELECT json_build_object('id', b.id, 'name', b.name, 'owner', coalesce(b.owner::text, ''), ",
    "'public', b.public, 'file_size_limit', b.file_size_limit, ",
    "'allowed_mime_types', b.allowed_mime_types, 'created_at', ",
    ts!("b.created_at"),
    ", 'updated_at', ",
    ts!("b.updated_at"),
    ")::text FROM storage.buckets b WHERE b.id = $1::text"
);

pub(crate) const CREATE_BUCKET: &str = "INSERT INTO storage.buckets \
     (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types) \
     VALUES ($1::text, $2::text, NULLIF($3::text, '')::uuid, NULLIF($4::text, ''), $5::text::boolean, \
     NULLIF($6::text, '')::bigint, \
     CASE WHEN $7::text = 'null' THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($7::text::jsonb)) END)";

pub(crate) const UPDATE_BUCKET: &str = "UPDATE storage.buckets SET \
     public = CASE WHEN $2::text = '' THEN public ELSE $2::text::boolean END, \
     file_size_limit = CASE WHEN $3::text = 'keep' THEN file_size_limit ELSE NULLIF($3::text, '')::bigint END, \
     allowed_mime_types = CASE WHEN $4::text = 'keep' THEN allowed_mime_types \
       WHEN $4::text = 'null' THEN NULL \
       ELSE ARRAY(SELECT jsonb_array_elements_text($4::text::jsonb)) END \
     WHERE id = $1::text RETURNING 1";

pub(crate) const DELETE_BUCKET: &str =
    "DELETE FROM storage.buckets WHERE id = $1::text RETURNING 1";

pub(crate) const BUCKET_EXISTS: &str = "SELECT 1 FROM storage.buckets WHERE id = $1::text";

/// Removes up to 1,000 of a bucket's objects, answering the versions whose bytes go.
pub(crate) const EMPTY_BUCKET_BATCH: &str = "DELETE FROM storage.objects WHERE id IN \
     (SELECT id FROM storage.objects WHERE bucket_id = $1::text LIMIT 1000) RETURNING version";

// Objects.

/// As `authenticator`, before the role changes: the bucket, and the object when the
/// bucket is public.
pub(crate) const LOOKUP: &str = concat!(
    "SELECT l.public::text, l.file_size_limit::text, array_to_json(l.allowed_mime_types)::text, ",
    "l.id::text, l.version, l.metadata::text, l.user_metadata::text, ",
    ts!("l.updated_at"),
    ", ",
    ts!("l.created_at"),
    " FROM galley.storage_lookup($1::text, $2::text) l"
);

/// The object as the caller sees it.
pub(crate) const READ_OBJECT: &str = concat!(
    "SELECT o.id::text, o.version, o.metadata::text, o.user_metadata::text, ",
    ts!("o.updated_at"),
    ", ",
    ts!("o.created_at"),
    " FROM storage.objects o WHERE o.bucket_id = $1::text AND o.name = $2::text"
);

/// What the permission probe writes: the row an upload would make, with the declared
/// type and length as its metadata, so policies can judge them.
pub(crate) const PROBE_INSERT: &str = "INSERT INTO storage.objects \
     (bucket_id, name, owner, owner_id, metadata, version, user_metadata) \
     VALUES ($1::text, $2::text, NULLIF($3::text, '')::uuid, NULLIF($4::text, ''), $5::text::jsonb, '1', \
     NULLIF($6::text, '')::jsonb)";

pub(crate) const PROBE_UPSERT: &str = "INSERT INTO storage.objects \
     (bucket_id, name, owner, owner_id, metadata, version, user_metadata) \
     VALUES ($1::text, $2::text, NULLIF($3::text, '')::uuid, NULLIF($4::text, ''), $5::text::jsonb, '1', \
     NULLIF($6::text, '')::jsonb) \
     ON CONFLICT (bucket_id, name) DO UPDATE SET metadata = EXCLUDED.metadata, \
     user_metadata = EXCLUDED.user_metadata, version = EXCLUDED.version, \
     owner = coalesce(EXCLUDED.owner, storage.objects.owner), \
     owner_id = coalesce(EXCLUDED.owner_id, storage.objects.owner_id) RETURNING 1";

/// The stored object's row. `$5` is the metadata without `lastModified`, added here.
pub(crate) const FINAL_INSERT: &str = "INSERT INTO storage.objects \
     (bucket_id, name, owner, owner_id, metadata, version, user_metadata) \
     VALUES ($1::text, $2::text, NULLIF($3::text, '')::uuid, NULLIF($4::text, ''), \
     $5::text::jsonb || jsonb_build_object('lastModified', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')), \
     $6::text, NULLIF($7::text, '')::jsonb) RETURNING id::text";

pub(crate) const LOCK_PREVIOUS: &str = "SELECT version FROM storage.objects \
     WHERE bucket_id = $1::text AND name = $2::text FOR UPDATE";

pub(crate) const FINAL_UPSERT: &str = "INSERT INTO storage.objects \
     (bucket_id, name, owner, owner_id, metadata, version, user_metadata) \
     VALUES ($1::text, $2::text, NULLIF($3::text, '')::uuid, NULLIF($4::text, ''), \
     $5::text::jsonb || jsonb_build_object('lastModified', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')), \
     $6::text, NULLIF($7::text, '')::jsonb) \
     ON CONFLICT (bucket_id, name) DO UPDATE SET metadata = EXCLUDED.metadata, \
     user_metadata = EXCLUDED.user_metadata, version = EXCLUDED.version, \
     owner = coalesce(EXCLUDED.owner, storage.objects.owner), \
     owner_id = coalesce(EXCLUDED.owner_id, storage.objects.owner_id) RETURNING id::text";

pub(crate) const SEARCH: &str = concat!(
    "SELECT coalesce(json_agg(json_build_object('name', s.name, 'id', s.id, ",
    "'updated_at', ",
    ts!("s.updated_at"),
    ", 'created_at', ",
    ts!("s.created_at"),
    ", 'last_accessed_at', ",
    ts!("s.last_accessed_at"),
    ", 'metadata', s.metadata)), '[]')::text ",
    "FROM storage.search($1::text, $2::text, $3::text::int, 1, $4::text::int, $5::text, $6::text, $7::text) s"
);

/// A move, as the caller: the row renamed (its bytes stay where they are).
pub(crate) const MOVE: &str = "UPDATE storage.objects SET bucket_id = $3::text, name = $4::text, \
     owner = coalesce(NULLIF($5::text, '')::uuid, owner), owner_id = coalesce(NULLIF($6::text, ''), owner_id) \
     WHERE bucket_id = $1::text AND name = $2::text RETURNING 1";

pub(crate) const COPY_SOURCE: &str = "SELECT version, metadata::text, coalesce(user_metadata::text, '') \
     FROM storage.objects WHERE bucket_id = $1::text AND name = $2::text";

pub(crate) const COPY_ANSWER: &str = concat!(
    "SELECT ",
    object_json!("o"),
    "::text FROM storage.objects o WHERE o.id = $1::text::uuid"
);

pub(crate) const REMOVE: &str = concat!(
    "DELETE FROM storage.objects o WHERE o.bucket_id = $1::text ",
    "AND o.name = ANY (ARRAY(SELECT jsonb_array_elements_text($2::text::jsonb))) RETURNING o.version, ",
    object_json!("o"),
    "::text"
);

pub(crate) const VISIBLE_NAMES: &str = "SELECT o.name FROM storage.objects o \
     WHERE o.bucket_id = $1::text AND o.name = ANY (ARRAY(SELECT jsonb_array_elements_text($2::text::jsonb)))";

/// The first column of the first row of statement `index`'s answer.
pub(crate) fn first_text(rows: &[Vec<galley_db::wire::Row>], index: usize) -> Option<String> {
    rows.get(index)?.first()?.text(0).map(str::to_owned)
}

/// The same, a JSON answer: PostgreSQL's `json` text keeps the spaces it was built with
/// (`"id" : 1`); Supabase's answers have none.
pub(crate) fn first_json(rows: &[Vec<galley_db::wire::Row>], index: usize) -> Option<String> {
    rows.get(index)?.first()?.text(0).map(compact)
}

/// `json` without whitespace outside its strings.
pub(crate) fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_keeps_strings_whole() {
        assert_eq!(
            super::compact(r#"{"a b" : [1, "x \" y"], "c" : {"d": null}}"#),
            r#"{"a b":[1,"x \" y"],"c":{"d":null}}"#
        );
    }
}
