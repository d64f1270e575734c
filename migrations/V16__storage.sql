-- Storage's metadata, laid out as Supabase Storage's so that policies written for
-- Supabase work unchanged: `storage.buckets`, `storage.objects` (row-level security on
-- both, no policy by default, so nobody but `service_role` may do anything), and the
-- helpers policies call (`storage.foldername`, `storage.filename`, `storage.extension`,
-- `storage.operation`). The bytes live in Galley's object store under the row's
-- `version`; a row is written only after its bytes are stored, so a row never points at
-- missing bytes (crates/storage).

CREATE SCHEMA storage;
REVOKE ALL ON SCHEMA storage FROM PUBLIC;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role;

CREATE TABLE storage.buckets (
  id                 text PRIMARY KEY,
  name               text NOT NULL,
  owner              uuid,
  created_at         timestamptz DEFAULT now(),
  updated_at         timestamptz DEFAULT now(),
  public             boolean DEFAULT false,
  avif_autodetection boolean DEFAULT false,
  file_size_limit    bigint,
  allowed_mime_types text[],
  owner_id           text,
  CONSTRAINT buckets_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
  CONSTRAINT buckets_file_size_limit CHECK (file_size_limit IS NULL OR file_size_limit >= 0)
);
CREATE UNIQUE INDEX bname ON storage.buckets (name);
ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY;
CREATE TRIGGER galley_set_updated_at BEFORE UPDATE ON storage.buckets
  FOR EACH ROW EXECUTE FUNCTION galley.set_updated_at();

CREATE TABLE storage.objects (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bucket_id        text REFERENCES storage.buckets (id),
  name             text,
  owner            uuid,
  created_at       timestamptz DEFAULT now(),
  updated_at       timestamptz DEFAULT now(),
  last_accessed_at timestamptz DEFAULT now(),
  metadata         jsonb,
  path_tokens      text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  version          text,
  owner_id         text,
  user_metadata    jsonb
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects (bucket_id, name);
CREATE INDEX name_prefix_search ON storage.objects (name text_pattern_ops);
CREATE INDEX objects_bucket_id_name_lower ON storage.objects (bucket_id, lower(name) COLLATE "C");
-- The orphan sweep asks which stored versions a row names.
CREATE INDEX objects_version ON storage.objects (version);
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE TRIGGER galley_set_updated_at BEFORE UPDATE ON storage.objects
  FOR EACH ROW EXECUTE FUNCTION galley.set_updated_at();

REVOKE ALL ON storage.buckets, storage.objects FROM PUBLIC;
GRANT ALL ON storage.buckets, storage.objects TO anon, authenticated, service_role;

-- The folders of a key: foldername('a/b/c.png') = {a,b}.
CREATE FUNCTION storage.foldername(name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
  parts text[];
BEGIN
  parts := pg_catalog.string_to_array(name, '/');
  RETURN parts[1 : pg_catalog.array_length(parts, 1) - 1];
END
$$;

-- The last segment of a key: filename('a/b/c.png') = 'c.png'.
CREATE FUNCTION storage.filename(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
  parts text[];
BEGIN
  parts := pg_catalog.string_to_array(name, '/');
  RETURN parts[pg_catalog.array_length(parts, 1)];
END
$$;

-- What follows the file name's last dot (the whole name when it has none).
CREATE FUNCTION storage.extension(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
  parts text[];
  filename text;
BEGIN
  parts := pg_catalog.string_to_array(name, '/');
  filename := parts[pg_catalog.array_length(parts, 1)];
  RETURN pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(filename), '.', 1));
END
$$;

-- The storage operation a request performs ('storage.object.upload', ...), for policies.
CREATE FUNCTION storage.operation() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.current_setting('storage.operation', true)
$$;

CREATE FUNCTION storage.get_size_by_bucket() RETURNS TABLE (size bigint, bucket_id text)
LANGUAGE sql STABLE
AS $$
  SELECT sum((metadata ->> 'size')::bigint)::bigint, bucket_id
  FROM storage.objects
  GROUP BY bucket_id
$$;

-- One level of a bucket below `prefix`, as Supabase's `storage.search`: a folder row
-- (only `name`) for each next segment with objects under it, a file row for each object
-- directly in it. `search` narrows by a case-insensitive prefix of the rest of the name.
-- Sorted by name (folders and files together), or folders first then files by the
-- column. Runs as the caller, so row-level security decides what is listed.
CREATE FUNCTION storage.search(
  prefix text,
  bucketname text,
  limits int DEFAULT 100,
  levels int DEFAULT 1,
  offsets int DEFAULT 0,
  search text DEFAULT '',
  sortcolumn text DEFAULT 'name',
  sortorder text DEFAULT 'asc'
) RETURNS TABLE (
  name text,
  id uuid,
  updated_at timestamptz,
  created_at timestamptz,
  last_accessed_at timestamptz,
  metadata jsonb
)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
  direction text := CASE WHEN pg_catalog.lower(sortorder) = 'desc' THEN 'DESC' ELSE 'ASC' END;
  column_name text := pg_catalog.lower(sortcolumn);
  ordering text;
BEGIN
  IF column_name NOT IN ('name', 'updated_at', 'created_at', 'last_accessed_at') THEN
    column_name := 'name';
  END IF;
  IF column_name = 'name' THEN
    ordering := pg_catalog.format('pg_catalog.lower(e.name) COLLATE "C" %s', direction);
  ELSE
    ordering := pg_catalog.format('e.is_file, CASE WHEN e.is_file THEN NULL ELSE pg_catalog.lower(e.name) END COLLATE "C" %1$s, e.%2$I %1$s', direction, column_name);
  END IF;
  RETURN QUERY EXECUTE pg_catalog.format($query$
    WITH matched AS (
      SELECT pg_catalog.substr(o.name, pg_catalog.length($1) + 1) AS rest, o.id, o.updated_at,
             o.created_at, o.last_accessed_at, o.metadata
      FROM storage.objects o
      WHERE o.bucket_id = $2
        -- The range lets objects_bucket_id_name_lower find the prefix (keys are ASCII,
        -- all below U+10FFFF); starts_with decides.
        AND pg_catalog.lower(o.name) COLLATE "C" >= pg_catalog.lower($1 || $3) COLLATE "C"
        AND pg_catalog.lower(o.name) COLLATE "C"
            < (pg_catalog.lower($1 || $3) || pg_catalog.chr(1114111)) COLLATE "C"
        AND pg_catalog.starts_with(pg_catalog.lower(o.name), pg_catalog.lower($1 || $3))
    ), entries AS (
      SELECT DISTINCT pg_catalog.split_part(m.rest, '/', 1) AS name, NULL::uuid AS id,
             NULL::timestamptz AS updated_at, NULL::timestamptz AS created_at,
             NULL::timestamptz AS last_accessed_at, NULL::jsonb AS metadata, false AS is_file
      FROM matched m
      WHERE pg_catalog.strpos(m.rest, '/') > 0
      UNION ALL
      SELECT m.rest, m.id, m.updated_at, m.created_at, m.last_accessed_at, m.metadata, true
      FROM matched m
      WHERE pg_catalog.strpos(m.rest, '/') = 0
    )
    SELECT e.name, e.id, e.updated_at, e.created_at, e.last_accessed_at, e.metadata
    FROM entries e
    ORDER BY %s
    LIMIT $4 OFFSET $5
  $query$, ordering)
  USING prefix, bucketname, search, LEAST(GREATEST(limits, 0), 1500), GREATEST(offsets, 0);
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA storage TO anon, authenticated, service_role;

-- What a request learns before it switches to the caller's role (it runs as
-- `authenticator`): the bucket (no row when there is none), and, when the bucket is
-- public, the object itself, which anyone may then read.
CREATE FUNCTION galley.storage_lookup(bucket text, key text)
RETURNS TABLE (
  public boolean,
  file_size_limit bigint,
  allowed_mime_types text[],
  id uuid,
  version text,
  metadata jsonb,
  user_metadata jsonb,
  updated_at timestamptz,
  created_at timestamptz
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
  SELECT b.public, b.file_size_limit, b.allowed_mime_types,
         o.id, o.version, o.metadata, o.user_metadata, o.updated_at, o.created_at
  FROM storage.buckets b
  LEFT JOIN storage.objects o ON b.public AND o.bucket_id = b.id AND o.name = key
  WHERE b.id = bucket
$$;
REVOKE ALL ON FUNCTION galley.storage_lookup(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION galley.storage_lookup(text, text) TO authenticator;

-- Resumable (TUS) uploads in progress: the bytes received so far live in the object
-- store under `uploads/<id>/`, one object per PATCH, in the order `part_keys` lists them;
-- the row says where the upload goes and as whom it was authorized.
CREATE TABLE galley.storage_uploads (
  id              uuid PRIMARY KEY,
  bucket_id       text NOT NULL,
  name            text NOT NULL,
  length          bigint NOT NULL CHECK (length >= 0),
  received        bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
  part_keys       text[] NOT NULL DEFAULT '{}',
  content_type    text NOT NULL,
  cache_control   text NOT NULL,
  user_metadata   jsonb,
  upsert          boolean NOT NULL,
  role            text NOT NULL,
  claims          jsonb NOT NULL,
  raw_metadata    text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
);
CREATE INDEX storage_uploads_expires_at ON galley.storage_uploads (expires_at);
