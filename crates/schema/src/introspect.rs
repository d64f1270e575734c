//! Reading the catalog out of PostgreSQL in one statement, whose JSON result is the
//! snapshot: no per-table round trips, and a consistent view of the schema.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::{Catalog, EnumType, Function, Relation};
use crate::error::SchemaError;

const QUERY: &str = r#"
WITH rels AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
         obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
),
fk_action(code, action) AS (
  VALUES ('a', 'no action'), ('r', 'restrict'), ('c', 'cascade'), ('n', 'set null'), ('d', 'set default')
),
fks AS (
  SELECT con.conname AS name, con.conrelid, con.confrelid, con.conkey, con.confkey,
         n.nspname AS schema, c.relname AS table_name, fn.nspname AS target_schema, fc.relname AS target_table,
         (SELECT json_agg(a.attname ORDER BY k.ord)
          FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS columns,
         (SELECT json_agg(a.attname ORDER BY k.ord)
          FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS target_columns,
         (SELECT action FROM fk_action WHERE code = con.confdeltype::text) AS on_delete,
         (SELECT action FROM fk_action WHERE code = con.confupdtype::text) AS on_update
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class fc ON fc.oid = con.confrelid
  JOIN pg_namespace fn ON fn.oid = fc.relnamespace
  WHERE con.contype = 'f'
)
SELECT json_build_object(
  'postgis_schema', (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'postgis'),
  'relations', coalesce((
    SELECT json_agg(json_build_object(
      'schema', r.nspname,
      'name', r.relname,
      'kind', CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned_table' WHEN 'v' THEN 'view'
                             WHEN 'm' THEN 'materialized_view' ELSE 'foreign_table' END,
      'rls_enabled', r.relrowsecurity,
      'rls_forced', r.relforcerowsecurity,
      'realtime', EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = r.oid AND t.tgname = 'galley_realtime'),
      'comment', r.comment,
      'oid', r.oid::bigint,
      'columns', coalesce((
        SELECT json_agg(json_build_object(
          'name', a.attname,
          'position', a.attnum::int,
          'data_type', format_type(a.atttypid, a.atttypmod),
          'nullable', NOT a.attnotnull,
          'default', pg_get_expr(d.adbin, d.adrelid),
          'identity', a.attidentity <> '',
          'generated', a.attgenerated <> '',
          'comment', col_description(a.attrelid, a.attnum)
        ) ORDER BY a.attnum)
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      ), '[]'),
      'primary_key', coalesce((
        SELECT json_agg(a.attname ORDER BY k.ord)
        FROM pg_constraint con
        CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
        WHERE con.conrelid = r.oid AND con.contype = 'p'
      ), '[]'),
      'unique', coalesce((
        SELECT json_agg((
          SELECT json_agg(a.attname ORDER BY k.ord)
          FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        ) ORDER BY i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = r.oid AND i.indisunique AND NOT i.indisprimary
          AND i.indpred IS NULL AND i.indexprs IS NULL
      ), '[]'),
      'indexes', coalesce((
        SELECT json_agg(json_build_object(
          'name', ic.relname,
          'unique', i.indisunique,
          'definition', pg_get_indexdef(i.indexrelid)
        ) ORDER BY ic.relname)
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = r.oid
      ), '[]'),
      'constraints', coalesce((
        SELECT json_agg(json_build_object(
          'name', con.conname,
          'kind', CASE con.contype WHEN 'p' THEN 'primary_key' WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check'
                                   WHEN 'f' THEN 'foreign_key' ELSE 'other' END,
          'columns', coalesce((SELECT json_agg(a.attname ORDER BY k.ord)
                      FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), '[]'),
          'definition', pg_get_constraintdef(con.oid)
        ) ORDER BY con.conname)
        FROM pg_constraint con
        WHERE con.conrelid = r.oid
      ), '[]'),
      'foreign_keys', coalesce((
        SELECT json_agg(json_build_object(
          'name', f.name,
          'columns', f.columns,
          'target_schema', f.target_schema,
          'target_table', f.target_table,
          'target_columns', f.target_columns,
          'on_delete', f.on_delete,
          'on_update', f.on_update
        ) ORDER BY f.name)
        FROM fks f
        WHERE f.conrelid = r.oid
      ), '[]')
    ) ORDER BY r.nspname, r.relname)
    FROM rels r
  ), '[]'),
  'rules', coalesce((
    SELECT json_object_agg(r.nspname || '.' || r.relname, rw.ev_action::text)
    FROM rels r
    JOIN pg_rewrite rw ON rw.ev_class = r.oid AND rw.rulename = '_RETURN'
    WHERE r.relkind IN ('v', 'm')
  ), '{}'),
  'base_keys', coalesce((
    SELECT json_agg(json_build_object(
      'name', f.name,
      'relation', f.conrelid::bigint,
      'schema', f.schema,
      'table', f.table_name,
      'attnums', f.conkey,
      'columns', f.columns,
      'target', f.confrelid::bigint,
      'target_schema', f.target_schema,
      'target_table', f.target_table,
      'target_attnums', f.confkey,
      'target_columns', f.target_columns,
      'on_delete', f.on_delete,
      'on_update', f.on_update
    ) ORDER BY f.name)
    FROM fks f
    WHERE EXISTS (
      -- A key of a table, or to a table, that some exposed view reads.
      SELECT 1 FROM rels v
      JOIN pg_rewrite rw ON rw.ev_class = v.oid AND rw.rulename = '_RETURN'
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                      AND d.refclassid = 'pg_class'::regclass
      WHERE v.relkind IN ('v', 'm') AND d.refobjid IN (f.conrelid, f.confrelid)
    )
  ), '[]'),
  'enums', coalesce((
    SELECT json_agg(json_build_object(
      'schema', n.nspname,
      'name', t.typname,
      'values', (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
    ) ORDER BY n.nspname, t.typname)
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = ANY($1) AND t.typtype = 'e'
  ), '[]'),
  'functions', coalesce((
    SELECT json_agg(json_build_object(
      'schema', n.nspname,
      'name', p.proname,
      'returns', pg_get_function_result(p.oid),
      'returns_set', p.proretset,
      'volatility', CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
      'rows', p.prorows,
      'returns_relation', (SELECT json_build_object('schema', rn.nspname, 'name', rc.relname)
                           FROM pg_type rt
                           JOIN pg_class rc ON rc.oid = rt.typrelid
                           JOIN pg_namespace rn ON rn.oid = rc.relnamespace
                           WHERE rt.oid = p.prorettype),
      'args', coalesce((
        SELECT json_agg(json_build_object(
          'name', nullif(p.proargnames[k.ord], ''),
          'data_type', format_type(k.typ, NULL),
          'type_name', (SELECT t.typname FROM pg_type t WHERE t.oid = k.typ),
          'relation', (SELECT json_build_object('schema', an.nspname, 'name', ac.relname)
                       FROM pg_type at
                       JOIN pg_class ac ON ac.oid = at.typrelid
                       JOIN pg_namespace an ON an.oid = ac.relnamespace
                       WHERE at.oid = k.typ),
          'mode', CASE coalesce(p.proargmodes[k.ord], 'i')
                    WHEN 'i' THEN 'in' WHEN 'o' THEN 'out' WHEN 'b' THEN 'inout'
                    WHEN 'v' THEN 'variadic' ELSE 'table' END,
          'has_default', coalesce(p.proargmodes[k.ord], 'i') IN ('i', 'b', 'v')
                         AND k.ord > p.pronargs - p.pronargdefaults
        ) ORDER BY k.ord)
        FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) WITH ORDINALITY AS k(typ, ord)
      ), '[]')
    ) ORDER BY n.nspname, p.proname, p.oid)
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY($1) AND p.prokind = 'f'
  ), '[]')
)
"#;

#[derive(Deserialize)]
struct Raw {
    relations: Vec<Relation>,
    enums: Vec<EnumType>,
    functions: Vec<Function>,
    postgis_schema: Option<String>,
    /// Each view's `_RETURN` rule, by `schema.name`.
    rules: BTreeMap<String, String>,
    base_keys: Vec<crate::views::BaseKey>,
}

/// Introspects the `exposed` schemas. Runs in a REPEATABLE READ read-only transaction so
/// the snapshot is consistent even while DDL commits around it.
pub async fn load_catalog(
    client: &mut galley_db::PooledClient,
    exposed: &[String],
) -> Result<Catalog, SchemaError> {
    let tx = client
        .build_transaction()
        .isolation_level(galley_db::tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let row = tx.query_one(QUERY, &[&exposed]).await?;
    tx.commit().await?;
    let json: serde_json::Value = row.get(0);
    let raw: Raw = serde_json::from_value(json)
        .map_err(|err| SchemaError::UnreadableCatalog(err.to_string()))?;
    let mut relations: BTreeMap<String, Relation> = raw
        .relations
        .into_iter()
        .map(|relation| (format!("{}.{}", relation.schema, relation.name), relation))
        .collect();
    crate::views::add_view_keys(&mut relations, &raw.rules, &raw.base_keys);
    let mut catalog = Catalog {
        relations,
        enums: raw.enums,
        functions: raw.functions,
        postgis_schema: raw.postgis_schema,
        over_rows: BTreeMap::new(),
    };
    catalog.index_functions();
    Ok(catalog)
}
