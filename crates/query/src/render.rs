//! Requests rendered as one SQL statement whose single row carries the response: the
//! total (when asked), the number of rows, and the body, built inside PostgreSQL.
//!
//! Names reach SQL only after matching a column or a relationship of the [`SchemaView`]
//! exactly, and always double-quoted; values only as `$n` parameters, bound as text and
//! cast in SQL to the column's type, so PostgreSQL parses them. Casts asked for in
//! `select` come from a fixed allowlist. Embedded tables are joined laterally, each a
//! subquery that PostgreSQL runs under the embedded table's own row-level security.

use crate::ast::{
    Aggregate, Compare, EmbedHint, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp,
    LogicTree, Nulls, Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
use crate::params::QueryParams;
use crate::shape::{FunctionName, Relationship, ResolveError, SchemaView, TableShape, resolve};

/// What an insert does when a row conflicts with an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnConflict {
    /// Fail (the default).
    Error,
    /// `resolution=merge-duplicates`: update the existing row with the new values.
    Merge(Option<Vec<String>>),
    /// `resolution=ignore-duplicates`: keep the existing row.
    Ignore(Option<Vec<String>>),
}

/// `Prefer: count=…`: how the total of matching rows is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Count {
    #[default]
    None,
    Exact,
    /// From the planner's estimate: the caller EXPLAINs [`Statement::count_source`].
    Planned,
    /// Exact up to `max_rows`, the planner's estimate beyond.
    Estimated,
}

/// How the rows become the response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON array of objects.
    #[default]
    Json,
    /// The same without null members (`nulls=stripped`).
    StrippedJson,
    /// `text/csv`: a header line of the keys, then one line per row.
    Csv,
    /// `application/geo+json`: a GeoJSON FeatureCollection, each row a Feature made by
    /// PostGIS's `ST_AsGeoJSON(record)` from the schema PostGIS is installed in.
    GeoJson { postgis: String },
}

/// How a read is bounded, counted and shaped.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Upper bound on rows returned, whatever `limit` says.
    pub max_rows: Option<u64>,
    pub count: Count,
    pub format: BodyFormat,
}

/// What a write answers with, when it answers with rows (`return=representation`).
#[derive(Debug, Clone, Default)]
pub struct Representation<'a> {
    pub select: Option<&'a [SelectItem]>,
    pub format: BodyFormat,
    /// The request's query, for an insert's representation: its order, and its embeds'
    /// filters, order and pages, as PostgREST applies them to the rows written.
    pub query: Option<&'a QueryParams>,
}

/// SQL and its parameters, all sent as text. The row it returns has the columns
/// `total_result_set` (bigint), `page_total` (bigint), `body` (text) and `inserted`
/// (bigint: rows an upsert inserted rather than updated, else NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<String>,
    /// For `count=planned`/`estimated`: a query of the matching rows to EXPLAIN with the
    /// same parameters.
    pub count_source: Option<String>,
}

/// Why a request cannot be rendered; each maps to a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("column {table}.{column} does not exist")]
    UnknownColumn { table: String, column: String },
    #[error("Could not find the '{column}' column of '{table}' in the schema cache")]
    UnknownBodyColumn { table: String, column: String },
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    #[error("the cast to {0} is not allowed")]
    CastNotAllowed(String),
    #[error("function {function} has no argument {argument}")]
    UnknownArgument { function: String, argument: String },
    #[error("function {function} needs the argument {argument}")]
    MissingArgument { function: String, argument: String },
    /// An update or delete without a filter would touch every row: refused in the words
    /// of the `safeupdate` extension Supabase runs (`DELETE requires a WHERE clause`).
    #[error("{0} requires a WHERE clause")]
    MissingFilter(&'static str),
    #[error(
        "Could not find a relationship between '{parent}' and '{relation}' in the schema cache"
    )]
    NoRelationship {
        schema: String,
        parent: String,
        relation: String,
        hint: Option<String>,
    },
    #[error(
        "Could not embed because more than one relationship was found for '{parent}' and '{relation}'"
    )]
    AmbiguousRelationship {
        parent: String,
        relation: String,
        /// `(cardinality, embedding, relationship)` for each candidate.
        candidates: Vec<(String, String, String)>,
        hint: String,
    },
    #[error("'{0}' is not an embedded resource in this request")]
    NotEmbedded(String),
    /// `(parent, embed)`.
    #[error("A related order on '{1}' is not possible")]
    RelatedOrder(String, String),
    #[error("Bad operator on the '{0}' embedded resource")]
    EmbedOperator(String),
}

/// Types a `select` may cast to.
const CASTS: &[&str] = &[
    "text",
    "varchar",
    "integer",
    "int",
    "int4",
    "bigint",
    "int8",
    "smallint",
    "numeric",
    "real",
    "double precision",
    "float8",
    "boolean",
    "bool",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
];

/// Renders a read of `table`: the `select` with its embeds, filters, order and page.
pub fn render_read(
    schema: &dyn SchemaView,
    table: &TableShape,
    query: &QueryParams,
    options: ReadOptions,
) -> Result<Statement, RenderError> {
    let from = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let mut r = Renderer::new(schema, query);
    let scope = Scope {
        table,
        reference: from.clone(),
        label: table.name.clone(),
        path: Vec::new(),
    };
    let read = r.read(&scope, &from, &options)?;
    r.check_paths()?;
    let body = body_sql(&options.format, false);
    let sql = format!(
        "WITH pgrst_source AS ({}) SELECT {} AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, \
         {body} AS body, NULL::bigint AS inserted FROM (SELECT * FROM pgrst_source) AS _pgrst_t",
        read.source, read.total
    );
    Ok(Statement {
        sql,
        params: r.params,
        count_source: Some(read.count_source),
    })
}

/// One group of rows to insert, all giving the same columns.
#[derive(Debug, Clone, Default)]
pub struct InsertGroup {
    pub columns: Vec<String>,
    /// A JSON array of objects.
    pub body: String,
    /// `Prefer: missing=default`: a column a row leaves out takes its default, evaluated
    /// as PostgREST evaluates it (the defaults as a JSON object under each row), so a
    /// merging upsert's conflict sets it to its default too.
    pub defaults: bool,
}

/// Renders an insert of the JSON rows of each group into its columns (one `INSERT` per
/// group, in one statement), answering with the inserted rows shaped by the
/// representation when there is one.
pub fn render_insert(
    schema: &dyn SchemaView,
    table: &TableShape,
    groups: &[InsertGroup],
    on_conflict: &OnConflict,
    representation: Option<Representation<'_>>,
) -> Result<Statement, RenderError> {
    let target = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let empty = QueryParams::default();
    let query = representation
        .as_ref()
        .and_then(|r| r.query)
        .unwrap_or(&empty);
    let mut r = Renderer::new(schema, query);
    let shape = r.write_shape(table, representation)?;
    r.check_paths()?;
    let merge = matches!(on_conflict, OnConflict::Merge(_));
    let mut returning = shape.returning.clone();
    if merge {
        // A row the upsert inserted has no deleting transaction yet.
        returning.push_str(&format!(
            ", ({target}.xmax = 0) AS {}",
            quote("pgrst_inserted")
        ));
    }
    let mut ctes = Vec::with_capacity(groups.len());
    for (index, group) in groups.iter().enumerate() {
        let mut quoted = Vec::with_capacity(group.columns.len());
        for column in &group.columns {
            table
                .column_type(column)
                .ok_or_else(|| RenderError::UnknownBodyColumn {
                    table: table.name.clone(),
                    column: column.clone(),
                })?;
            quoted.push(quote(column));
        }
        if quoted.is_empty() {
            return Err(RenderError::Unsupported("an insert without columns"));
        }
        let list = quoted.join(", ");
        let conflict = match on_conflict {
            OnConflict::Error => String::new(),
            OnConflict::Merge(keys) | OnConflict::Ignore(keys) => {
                let keys = keys.clone().unwrap_or_else(|| table.primary_key.clone());
                if keys.is_empty() {
                    return Err(RenderError::Unsupported(
                        "upserts on a table without a primary key or on_conflict",
                    ));
                }
                for key in &keys {
                    r.column(table, key)?;
                }
                let keys = keys.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
                if merge {
                    let sets: Vec<String> = quoted
                        .iter()
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect();
                    format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", sets.join(", "))
                } else {
                    format!(" ON CONFLICT ({keys}) DO NOTHING")
                }
            }
        };
        let rows = r.param(group.body.clone());
        let defaults: Vec<String> = if group.defaults {
            group
                .columns
                .iter()
                .filter_map(|column| {
                    let expression = table.column_default(column)?;
                    Some(format!("{}, ({expression})", literal(column)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let source = if defaults.is_empty() {
            format!("CAST({rows} AS json)")
        } else {
            // Each row over its columns' defaults; jsonb_build_object takes 50 pairs.
            let objects: Vec<String> = defaults
                .chunks(50)
                .map(|pairs| format!("pg_catalog.jsonb_build_object({})", pairs.join(", ")))
                .collect();
            format!(
                "(SELECT pg_catalog.json_agg(({}) || _pgrst_row.value ORDER BY _pgrst_row.ordinality) \
                 FROM pg_catalog.jsonb_array_elements(CAST({rows} AS jsonb)) WITH ORDINALITY AS _pgrst_row)",
                objects.join(" || ")
            )
        };
        ctes.push(format!(
            "pgrst_insert_{index} AS (INSERT INTO {target} ({list}) SELECT {list} FROM \
             pg_catalog.json_populate_recordset(NULL::{target}, {source}){conflict} RETURNING {returning})"
        ));
    }
    if ctes.is_empty() {
        return Err(RenderError::Unsupported("an insert without rows"));
    }
    let union = (0..ctes.len())
        .map(|index| format!("SELECT * FROM pgrst_insert_{index}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let inserted = if merge {
        "(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_source.pgrst_inserted)"
    } else {
        "NULL::bigint"
    };
    let sql = format!(
        "WITH {}, pgrst_source AS ({union}) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, \
         {} AS body, {inserted} AS inserted FROM ({}) AS _pgrst_t",
        ctes.join(", "),
        shape.body,
        shape.rows
    );
    Ok(Statement {
        sql,
        params: r.params,
        count_source: None,
    })
}

/// What a filtered write does to the rows it matches.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Set the columns to the values in one JSON object.
    Update {
        columns: Vec<String>,
        body: String,
    },
    Delete,
}

/// Renders an update or delete of the rows `query`'s filters match. Filters are required:
/// a write to every row of a table is refused, as Supabase's `safeupdate` does.
pub fn render_mutation(
    schema: &dyn SchemaView,
    table: &TableShape,
    query: &QueryParams,
    mutation: &Mutation,
    representation: Option<Representation<'_>>,
) -> Result<Statement, RenderError> {
    let target = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let mut r = Renderer::new(schema, query);
    let scope = Scope {
        table,
        reference: target.clone(),
        label: table.name.clone(),
        path: Vec::new(),
    };
    let conditions = r.conditions(&scope, &[])?.conditions;
    if conditions.is_empty() {
        return Err(RenderError::MissingFilter(match mutation {
            Mutation::Update { .. } => "UPDATE",
            Mutation::Delete => "DELETE",
        }));
    }
    let where_clause = conditions.join(" AND ");
    let shape = r.write_shape(table, representation)?;
    let head = match mutation {
        // Nothing to set: PostgREST answers as if no row matched.
        Mutation::Update { columns, .. } if columns.is_empty() => {
            format!(
                "SELECT {} FROM {target} WHERE false AND {where_clause}",
                shape.returning
            )
        }
        Mutation::Update { columns, body } => {
            let mut sets = Vec::with_capacity(columns.len());
            for column in columns {
                table
                    .column_type(column)
                    .ok_or_else(|| RenderError::UnknownBodyColumn {
                        table: table.name.clone(),
                        column: column.clone(),
                    })?;
                sets.push(format!("{0} = _pgrst_body.{0}", quote(column)));
            }
            let body = r.param(body.clone());
            format!(
                "UPDATE {target} SET {} FROM (SELECT * FROM pg_catalog.json_populate_record(NULL::{target}, CAST({body} AS json))) AS _pgrst_body WHERE {where_clause} RETURNING {}",
                sets.join(", "),
                shape.returning
            )
        }
        Mutation::Delete => format!(
            "DELETE FROM {target} WHERE {where_clause} RETURNING {}",
            shape.returning
        ),
    };
    r.check_paths()?;
    let sql = format!(
        "WITH pgrst_source AS ({head}) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, \
         {} AS body, NULL::bigint AS inserted FROM ({}) AS _pgrst_t",
        shape.body, shape.rows
    );
    Ok(Statement {
        sql,
        params: r.params,
        count_source: None,
    })
}

/// A function as the catalog describes it: what an RPC may call.
#[derive(Debug, Clone)]
pub struct FunctionShape {
    pub schema: String,
    pub name: String,
    /// Input arguments: name, type, whether it has a default.
    pub args: Vec<(String, String, bool)>,
    /// The arguments of a composite type (a table's row or `CREATE TYPE … AS (…)`), which
    /// a JSON object builds.
    pub composite_args: Vec<String>,
    pub returns_set: bool,
    /// The rows it returns (a table type or `TABLE(...)`); `None` for a scalar.
    pub returns: Option<TableShape>,
    /// Returns `void`: the call answers without a body.
    pub returns_void: bool,
}

/// Renders a call of `function` with named arguments taken from one JSON object. A
/// function returning rows is read like a table (select, filters, order, page, embeds);
/// a scalar one answers with its value, or an array of values if it returns a set.
pub fn render_call(
    schema: &dyn SchemaView,
    function: &FunctionShape,
    arguments: &[String],
    body: String,
    query: &QueryParams,
    options: ReadOptions,
) -> Result<Statement, RenderError> {
    let mut r = Renderer::new(schema, query);
    let json = r.param(body);
    let mut named = Vec::with_capacity(arguments.len());
    for argument in arguments {
        let (name, ty, _) = function
            .args
            .iter()
            .find(|(name, _, _)| name == argument)
            .ok_or_else(|| RenderError::UnknownArgument {
                function: function.name.clone(),
                argument: argument.clone(),
            })?;
        // The value is the JSON body's member converted to the argument's type as
        // json_to_record converts it (PostgREST's way): an object becomes a composite,
        // an array an array, a string goes through the type's input. For a scalar type
        // that is the member's text cast to the type, written so: a subquery argument
        // would keep PostgreSQL from inlining a SQL function into the statement.
        let column = quote(name);
        let scalar = !ty.ends_with(']')
            && ty != "json"
            && ty != "jsonb"
            && !function.composite_args.contains(name);
        if scalar {
            let key = r.param(name.clone());
            named.push(format!(
                "{column} := CAST(CAST({json} AS json)->>{key} AS {ty})"
            ));
        } else {
            named.push(format!(
                "{column} := (SELECT _pgrst_r.{column} FROM pg_catalog.json_to_record(CAST({json} AS json)) AS _pgrst_r({column} {ty}))"
            ));
        }
    }
    for (name, _, has_default) in &function.args {
        if !has_default && !arguments.contains(name) {
            return Err(RenderError::MissingArgument {
                function: function.name.clone(),
                argument: name.clone(),
            });
        }
    }
    finish_call(r, function, &named.join(", "), query, options)
}

/// Renders a call of `function`'s single unnamed parameter with `value`, the request's
/// whole body as text (`bytea` as hex, decoded in SQL), as PostgREST passes a raw body.
pub fn render_single_call(
    schema: &dyn SchemaView,
    function: &FunctionShape,
    value: String,
    query: &QueryParams,
    options: ReadOptions,
) -> Result<Statement, RenderError> {
    let mut r = Renderer::new(schema, query);
    let Some((_, ty, _)) = function.args.first() else {
        return Err(RenderError::Unsupported("a call without its parameter"));
    };
    let value = r.param(value);
    let argument = if ty == "bytea" {
        format!("pg_catalog.decode({value}, 'hex')")
    } else {
        format!("CAST({value} AS {ty})")
    };
    finish_call(r, function, &argument, query, options)
}

/// The statement around a call of `function` with `arguments` (SQL): read like a table
/// when it returns rows, its value otherwise.
fn finish_call(
    mut r: Renderer<'_>,
    function: &FunctionShape,
    arguments: &str,
    query: &QueryParams,
    options: ReadOptions,
) -> Result<Statement, RenderError> {
    let call = format!(
        "{}.{}({arguments})",
        quote(&function.schema),
        quote(&function.name),
    );
    let sql = match &function.returns {
        Some(table) => {
            let from = format!("{call} AS {}", quote("pgrst_call"));
            let scope = Scope {
                table,
                reference: quote("pgrst_call"),
                label: function.name.clone(),
                path: Vec::new(),
            };
            let read = r.read(&scope, &from, &options)?;
            r.check_paths()?;
            let body = body_sql(&options.format, !function.returns_set);
            format!(
                "WITH pgrst_source AS ({}) SELECT {} AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, \
                 {body} AS body, NULL::bigint AS inserted FROM (SELECT * FROM pgrst_source) AS _pgrst_t",
                read.source, read.total
            )
        }
        None => {
            if query.select.is_some()
                || !query.filters.is_empty()
                || !query.logic.is_empty()
                || !query.order.is_empty()
            {
                return Err(RenderError::Unsupported(
                    "shaping or filtering the result of a function that returns no rows",
                ));
            }
            if function.returns_set {
                format!(
                    "SELECT NULL::bigint AS total_result_set, pg_catalog.count(*) AS page_total, \
                     coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, NULL::bigint AS inserted FROM {call} AS _pgrst_t"
                )
            } else {
                format!(
                    "SELECT NULL::bigint AS total_result_set, 1::bigint AS page_total, \
                     pg_catalog.to_json({call})::text AS body, NULL::bigint AS inserted"
                )
            }
        }
    };
    Ok(Statement {
        sql,
        params: r.params,
        count_source: None,
    })
}

/// The body column: the rows `_pgrst_t` aggregated as the format asks; `single` takes
/// the first row as an object (functions returning one row).
fn body_sql(format: &BodyFormat, single: bool) -> String {
    let rows = "pg_catalog.json_agg(_pgrst_t)";
    match (format, single) {
        (BodyFormat::GeoJson { postgis }, _) => format!(
            "pg_catalog.json_build_object('type', 'FeatureCollection', 'features', \
             coalesce(pg_catalog.json_agg({}.\"st_asgeojson\"(_pgrst_t)::json), '[]'))::text",
            quote(postgis)
        ),
        (BodyFormat::Csv, _) => "coalesce((SELECT pg_catalog.string_agg(_pgrst_k, ',') \
             FROM pg_catalog.json_object_keys(pg_catalog.json_agg(_pgrst_t)->0) AS _pgrst_k), '') \
             || E'\\n' || coalesce(pg_catalog.string_agg(substr(_pgrst_t::text, 2, length(_pgrst_t::text) - 2), E'\\n'), '')"
            .to_owned(),
        (BodyFormat::Json, false) => format!("coalesce({rows}, '[]')::text"),
        (BodyFormat::StrippedJson, false) => {
            format!("coalesce(pg_catalog.json_strip_nulls({rows}), '[]')::text")
        }
        (BodyFormat::Json, true) => format!("coalesce({rows}->0, 'null')::text"),
        (BodyFormat::StrippedJson, true) => {
            format!("coalesce(pg_catalog.json_strip_nulls({rows}->0), 'null')::text")
        }
    }
}

/// A double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal: `'it''s'`.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."name"` of a function.
fn quote_function(function: &FunctionName) -> String {
    format!("{}.{}", quote(&function.schema), quote(&function.name))
}

/// How a write's statement names the rows it wrote.
const WRITTEN: &str = "\"pgrst_source\"";

/// A table being read, under the name its columns are qualified with.
struct Scope<'t> {
    table: &'t TableShape,
    reference: String,
    /// The name PostgreSQL's messages give it: the table (or function) at the root,
    /// `<table>_<depth>` for an embed, as PostgREST aliases them.
    label: String,
    /// The embed names leading here from the root: filters keyed `a.b.col` apply at
    /// `["a", "b"]`.
    path: Vec<String>,
}

/// One selected value and the key it gets in the row's JSON.
struct Output {
    sql: String,
    name: String,
    aggregate: bool,
    /// Not part of the response: an empty embed `rel()`, kept for filtering.
    hidden: bool,
}

/// An embed of a level: what filters and orders of the parent may refer to.
struct Embedded {
    name: String,
    lateral: String,
    relationship: Relationship,
    spread: bool,
    /// Index of its join in [`Level::joins`].
    join: usize,
}

/// A level's select list and the joins it needs.
#[derive(Default)]
struct Level {
    outputs: Vec<Output>,
    /// `(join SQL, whether it can remove parent rows)`.
    joins: Vec<(String, bool)>,
    embeds: Vec<Embedded>,
}

/// A level's WHERE conditions, and the joins they made row-removing.
struct Conditions {
    conditions: Vec<String>,
    row_joins: Vec<usize>,
}

/// The parts of a rendered read.
struct Read {
    source: String,
    total: String,
    count_source: String,
}

/// The rows a write answers with.
struct WriteShape {
    returning: String,
    rows: String,
    body: String,
}

struct Renderer<'a> {
    schema: &'a dyn SchemaView,
    query: &'a QueryParams,
    params: Vec<String>,
    aliases: usize,
    /// Every alias given so far.
    names: std::collections::HashSet<String>,
    /// The `<table>_<depth>` aliases given to embedded tables.
    labels: std::collections::HashSet<String>,
    /// Embed paths rendered so far: every filter, order and page key must name one.
    embedded: Vec<Vec<String>>,
    /// Columns referenced through `pgrst_source`: what a write must return.
    returned: Vec<String>,
    /// A computed field or relationship reads the written row whole: the write returns
    /// it as `pgrst_row`.
    returned_row: bool,
}

impl<'a> Renderer<'a> {
    fn new(schema: &'a dyn SchemaView, query: &'a QueryParams) -> Self {
        Self {
            schema,
            query,
            params: Vec::new(),
            aliases: 0,
            names: std::collections::HashSet::new(),
            labels: std::collections::HashSet::new(),
            embedded: vec![Vec::new()],
            returned: Vec::new(),
            returned_row: false,
        }
    }

    fn param(&mut self, value: String) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// A name of Galley's for a subquery or a joined table, unlike any other in the
    /// statement (a table named `pgrst` embeds as `pgrst_1`, so names are checked).
    fn alias(&mut self) -> String {
        loop {
            self.aliases += 1;
            let alias = format!("pgrst_{}", self.aliases);
            if self.names.insert(alias.clone()) {
                return alias;
            }
        }
    }

    /// `wanted` as an alias when it is free and PostgreSQL keeps it whole (63 bytes),
    /// else one of Galley's.
    fn alias_like(&mut self, wanted: String) -> String {
        if wanted.len() <= 63 && self.names.insert(wanted.clone()) {
            wanted
        } else {
            self.alias()
        }
    }

    /// A column of `table` qualified by `reference`, once the catalog knows it.
    fn column(&mut self, table: &TableShape, name: &str) -> Result<String, RenderError> {
        table
            .column_type(name)
            .ok_or_else(|| RenderError::UnknownColumn {
                table: table.name.clone(),
                column: name.to_owned(),
            })?;
        Ok(quote(name))
    }

    /// The scope's row whole, as a function over it takes it.
    fn row(&mut self, scope: &Scope<'_>) -> String {
        if scope.reference == WRITTEN {
            self.returned_row = true;
            format!("{WRITTEN}.\"pgrst_row\"")
        } else {
            format!("{}.*", scope.reference)
        }
    }

    fn qualified(&mut self, scope: &Scope<'_>, name: &str) -> Result<String, RenderError> {
        if let Some(computed) = scope.table.computed_field(name) {
            let function = quote_function(&computed.function);
            return Ok(format!("{function}({})", self.row(scope)));
        }
        if scope.table.column_type(name).is_none() {
            return Err(RenderError::UnknownColumn {
                table: scope.label.clone(),
                column: name.to_owned(),
            });
        }
        let column = quote(name);
        if scope.reference == WRITTEN && !self.returned.iter().any(|c| c == name) {
            self.returned.push(name.to_owned());
        }
        Ok(format!("{}.{column}", scope.reference))
    }

    /// Every filter, logic tree, order and page key must name the root or an embed.
    fn check_paths(&self) -> Result<(), RenderError> {
        let q = self.query;
        let paths = q
            .filters
            .iter()
            .map(|(p, _)| p)
            .chain(q.logic.iter().map(|(p, _)| p))
            .chain(q.order.iter().map(|(p, _)| p))
            .chain(q.limit.iter().map(|(p, _)| p))
            .chain(q.offset.iter().map(|(p, _)| p));
        for path in paths {
            if !self.embedded.contains(path) {
                return Err(RenderError::NotEmbedded(path.join(".")));
            }
        }
        Ok(())
    }

    /// The root of a read: `SELECT … FROM from … WHERE … ORDER BY … LIMIT … OFFSET …`,
    /// the total the options ask for, and the matching rows for EXPLAIN.
    fn read(
        &mut self,
        scope: &Scope<'_>,
        from: &str,
        options: &ReadOptions,
    ) -> Result<Read, RenderError> {
        let items = self.query.select.clone();
        let level = self.level(scope, items.as_deref())?;
        let conditions = self.conditions(scope, &level.embeds)?;
        let limit = page(&self.query.limit, &scope.path);
        let limit = match (limit, options.max_rows) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let offset = page(&self.query.offset, &scope.path);
        let source = self.query_sql(scope, &level, &conditions.conditions, from, limit, offset)?;
        let row_joins: String = level
            .joins
            .iter()
            .enumerate()
            .filter(|(index, (_, removes))| *removes || conditions.row_joins.contains(index))
            .map(|(_, (join, _))| format!(" {join}"))
            .collect();
        let mut count_source = format!("SELECT 1 FROM {from}{row_joins}");
        if !conditions.conditions.is_empty() {
            count_source.push_str(&format!(" WHERE {}", conditions.conditions.join(" AND ")));
        }
        if let Some(groups) = group_by(&level) {
            count_source.push_str(&groups);
        }
        let total = match (options.count, options.max_rows) {
            (Count::None | Count::Planned, _) => "NULL::bigint".to_owned(),
            (Count::Exact, _) | (Count::Estimated, None) => {
                format!("(SELECT pg_catalog.count(*) FROM ({count_source}) AS _pgrst_c)")
            }
            (Count::Estimated, Some(max_rows)) => {
                let n = self.param(max_rows.saturating_add(1).to_string());
                format!(
                    "(SELECT pg_catalog.count(*) FROM ({count_source} LIMIT CAST({n} AS bigint)) AS _pgrst_c)"
                )
            }
        };
        Ok(Read {
            source,
            total,
            count_source,
        })
    }

    /// `SELECT outputs FROM from joins WHERE … GROUP BY … ORDER BY … LIMIT … OFFSET …`.
    fn query_sql(
        &mut self,
        scope: &Scope<'_>,
        level: &Level,
        conditions: &[String],
        from: &str,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Result<String, RenderError> {
        let visible: Vec<String> = level
            .outputs
            .iter()
            .filter(|o| !o.hidden)
            .map(|o| format!("{} AS {}", o.sql, quote(&o.name)))
            .collect();
        let select = if visible.is_empty() {
            "NULL AS \"pgrst_empty\"".to_owned()
        } else {
            visible.join(", ")
        };
        let mut sql = format!("SELECT {select} FROM {from}");
        for (join, _) in &level.joins {
            sql.push(' ');
            sql.push_str(join);
        }
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if let Some(groups) = group_by(level) {
            sql.push_str(&groups);
        }
        let mut order = Vec::new();
        for (path, terms) in &self.query.order {
            if *path == scope.path {
                for term in terms {
                    order.push(self.order_term(scope, &level.embeds, term)?);
                }
            }
        }
        if !order.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        if let Some(limit) = limit {
            let n = self.param(limit.to_string());
            sql.push_str(&format!(" LIMIT CAST({n} AS bigint)"));
        }
        if let Some(offset) = offset {
            let n = self.param(offset.to_string());
            sql.push_str(&format!(" OFFSET CAST({n} AS bigint)"));
        }
        Ok(sql)
    }

    /// The select list of one level (`None`: every column), its embeds joined.
    fn level(
        &mut self,
        scope: &Scope<'_>,
        items: Option<&[SelectItem]>,
    ) -> Result<Level, RenderError> {
        let mut level = Level::default();
        let star = [SelectItem::Star];
        for item in items.unwrap_or(&star) {
            match item {
                SelectItem::Star => {
                    for (name, _) in &scope.table.columns {
                        let sql = self.qualified(scope, name)?;
                        level.outputs.push(Output {
                            sql,
                            name: name.clone(),
                            aggregate: false,
                            hidden: false,
                        });
                    }
                }
                // `rel(count)`: PostgREST's older spelling of `count()`, when the
                // table has no column of that name.
                SelectItem::Field {
                    alias,
                    field,
                    cast,
                    aggregate: None,
                } if field.name == "count"
                    && field.json_path.is_empty()
                    && !scope.path.is_empty()
                    && scope.table.column_type("count").is_none() =>
                {
                    let mut sql = "pg_catalog.count(*)".to_owned();
                    if let Some(cast) = cast {
                        sql = format!("CAST({sql} AS {})", allowed_cast(cast)?);
                    }
                    level.outputs.push(Output {
                        sql,
                        name: alias.clone().unwrap_or_else(|| "count".to_owned()),
                        aggregate: true,
                        hidden: false,
                    });
                }
                SelectItem::Field {
                    alias,
                    field,
                    cast,
                    aggregate,
                } => {
                    let (mut sql, _) = self.field(scope, field)?;
                    if let Some(cast) = cast {
                        sql = format!("CAST({sql} AS {})", allowed_cast(cast)?);
                    }
                    let mut name = alias.clone().unwrap_or_else(|| default_name(field));
                    if let Some((aggregate, cast)) = aggregate {
                        let function = match aggregate {
                            Aggregate::Count => "count",
                            Aggregate::Sum => "sum",
                            Aggregate::Avg => "avg",
                            Aggregate::Max => "max",
                            Aggregate::Min => "min",
                        };
                        sql = format!("pg_catalog.{function}({sql})");
                        if let Some(cast) = cast {
                            sql = format!("CAST({sql} AS {})", allowed_cast(cast)?);
                        }
                        if alias.is_none() {
                            function.clone_into(&mut name);
                        }
                    }
                    level.outputs.push(Output {
                        sql,
                        name,
                        aggregate: aggregate.is_some(),
                        hidden: false,
                    });
                }
                SelectItem::Count { alias, cast } => {
                    let mut sql = "pg_catalog.count(*)".to_owned();
                    if let Some(cast) = cast {
                        sql = format!("CAST({sql} AS {})", allowed_cast(cast)?);
                    }
                    level.outputs.push(Output {
                        sql,
                        name: alias.clone().unwrap_or_else(|| "count".to_owned()),
                        aggregate: true,
                        hidden: false,
                    });
                }
                SelectItem::Embed {
                    alias,
                    relation,
                    hints,
                    spread,
                    select,
                } => self.embed(
                    scope,
                    &mut level,
                    alias.as_deref(),
                    relation,
                    hints,
                    *spread,
                    select,
                )?,
            }
        }
        Ok(level)
    }

    #[allow(clippy::too_many_arguments)]
    fn embed(
        &mut self,
        scope: &Scope<'_>,
        level: &mut Level,
        alias: Option<&str>,
        relation: &str,
        hints: &[EmbedHint],
        spread: bool,
        select: &[SelectItem],
    ) -> Result<(), RenderError> {
        let mut hint = None;
        let mut inner = false;
        for h in hints {
            match h {
                EmbedHint::Inner => inner = true,
                EmbedHint::Left => inner = false,
                EmbedHint::Named(name) if hint.is_none() => hint = Some(name.as_str()),
                EmbedHint::Named(_) => {
                    return Err(RenderError::Unsupported("two relationship hints"));
                }
            }
        }
        let relationship =
            resolve(self.schema, scope.table, relation, hint).map_err(|err| match err {
                ResolveError::None => RenderError::NoRelationship {
                    schema: scope.table.schema.clone(),
                    hint: hint.map(str::to_owned),
                    parent: scope.table.name.clone(),
                    relation: relation.to_owned(),
                },
                ResolveError::Ambiguous { candidates, hint } => {
                    RenderError::AmbiguousRelationship {
                        parent: scope.table.name.clone(),
                        relation: relation.to_owned(),
                        candidates,
                        hint,
                    }
                }
            })?;
        let name = alias.unwrap_or(relation).to_owned();
        let mut path = scope.path.clone();
        path.push(name.clone());
        if self.embedded.contains(&path) {
            return Err(RenderError::Unsupported(
                "embedding two resources under one name; give one an alias",
            ));
        }
        self.embedded.push(path.clone());
        // PostgREST's names, so PostgreSQL's messages match its: the embedded table as
        // `<table>_<depth>`, its lateral as `<parent>_<embed>_<depth>`.
        let depth = path.len();
        let label = format!("{}_{depth}", relationship.target.name);
        // Two embeds of one table at one depth live in separate subqueries: the same
        // name serves both.
        let reusable = self.labels.contains(&label);
        let table_alias = if reusable || (label.len() <= 63 && !self.names.contains(&label)) {
            self.labels.insert(label.clone());
            self.names.insert(label.clone());
            quote(&label)
        } else {
            quote(&self.alias())
        };
        let lateral = quote(&self.alias_like(format!("{}_{name}_{depth}", scope.table.name)));
        let child = Scope {
            table: &relationship.target,
            reference: table_alias.clone(),
            label,
            path,
        };
        // The child's own rows: joined to the parent, filtered, ordered and paged.
        let child_level = self.level(
            &child,
            if select.is_empty() {
                Some(&[])
            } else {
                Some(select)
            },
        )?;
        let mut child_conditions = self.conditions(&child, &child_level.embeds)?;
        let target = format!(
            "{}.{}",
            quote(&relationship.target.schema),
            quote(&relationship.target.name)
        );
        let mut from = format!("{target} AS {table_alias}");
        let mut joins = Vec::new();
        match &relationship.junction {
            None if relationship.function.is_some() => {
                let function = relationship.function.as_ref().map(quote_function);
                let row = self.row(scope);
                from = format!("{}({row}) AS {table_alias}", function.unwrap_or_default());
            }
            None => {
                for (parent_column, target_column) in &relationship.join {
                    let parent = self.qualified(scope, parent_column)?;
                    let own = self.qualified(&child, target_column)?;
                    joins.push(format!("{own} = {parent}"));
                }
            }
            Some(junction) => {
                let junction_alias = quote(&self.alias());
                from.push_str(&format!(
                    ", {}.{} AS {junction_alias}",
                    quote(&junction.table.schema),
                    quote(&junction.table.name)
                ));
                for (junction_column, parent_column) in &junction.to_parent {
                    let parent = self.qualified(scope, parent_column)?;
                    let middle = self.column(&junction.table, junction_column)?;
                    joins.push(format!("{junction_alias}.{middle} = {parent}"));
                }
                for (junction_column, target_column) in &junction.to_target {
                    let own = self.qualified(&child, target_column)?;
                    let middle = self.column(&junction.table, junction_column)?;
                    joins.push(format!("{junction_alias}.{middle} = {own}"));
                }
            }
        }
        joins.append(&mut child_conditions.conditions);
        let limit = page(&self.query.limit, &child.path);
        let offset = page(&self.query.offset, &child.path);
        let rows = self.query_sql(&child, &child_level, &joins, &from, limit, offset)?;
        let to_one = relationship.cardinality.to_one();
        let visible: Vec<&str> = child_level
            .outputs
            .iter()
            .filter(|o| !o.hidden)
            .map(|o| o.name.as_str())
            .collect();
        let (subquery, condition) = match (to_one, spread) {
            (true, false) => (
                format!("SELECT pg_catalog.to_jsonb(_pgrst_e) AS body FROM ({rows}) AS _pgrst_e"),
                "TRUE".to_owned(),
            ),
            (true, true) => (rows, "TRUE".to_owned()),
            (false, false) => (
                format!("SELECT pg_catalog.jsonb_agg(_pgrst_e) AS body FROM ({rows}) AS _pgrst_e"),
                format!("{lateral}.body IS NOT NULL"),
            ),
            (false, true) => {
                let mut columns: Vec<String> = visible
                    .iter()
                    .map(|name| {
                        format!(
                            "coalesce(pg_catalog.jsonb_agg(_pgrst_e.{0}), '[]') AS {0}",
                            quote(name)
                        )
                    })
                    .collect();
                columns.push("pg_catalog.count(_pgrst_e) AS pgrst_rows".to_owned());
                (
                    format!("SELECT {} FROM ({rows}) AS _pgrst_e", columns.join(", ")),
                    format!("{lateral}.pgrst_rows > 0"),
                )
            }
        };
        let join = if inner {
            format!("INNER JOIN LATERAL ({subquery}) AS {lateral} ON {condition}")
        } else {
            format!("LEFT JOIN LATERAL ({subquery}) AS {lateral} ON TRUE")
        };
        level.joins.push((join, inner));
        let hidden = select.is_empty();
        if spread {
            for name in visible {
                level.outputs.push(Output {
                    sql: format!("{lateral}.{}", quote(name)),
                    name: name.to_owned(),
                    aggregate: false,
                    hidden,
                });
            }
        } else {
            let sql = if to_one {
                format!("{lateral}.body")
            } else {
                format!("coalesce({lateral}.body, '[]')")
            };
            level.outputs.push(Output {
                sql,
                name: name.clone(),
                aggregate: false,
                hidden,
            });
        }
        level.embeds.push(Embedded {
            name,
            lateral,
            relationship,
            spread,
            join: level.joins.len() - 1,
        });
        Ok(())
    }

    /// The filters and logic trees of one level, each one condition to AND together.
    fn conditions(
        &mut self,
        scope: &Scope<'_>,
        embeds: &[Embedded],
    ) -> Result<Conditions, RenderError> {
        let mut out = Conditions {
            conditions: Vec::new(),
            row_joins: Vec::new(),
        };
        for (path, filter) in &self.query.filters {
            if *path == scope.path {
                let condition = self.filter(scope, embeds, filter, &mut out.row_joins)?;
                out.conditions.push(condition);
            }
        }
        for (path, tree) in &self.query.logic {
            if *path == scope.path {
                let condition = self.tree(scope, embeds, tree, &mut out.row_joins)?;
                out.conditions.push(condition);
            }
        }
        Ok(out)
    }

    /// The field's SQL and the type a compared value should be cast to (`None`: text).
    fn field(
        &mut self,
        scope: &Scope<'_>,
        field: &Field,
    ) -> Result<(String, Option<String>), RenderError> {
        let ty = scope
            .table
            .field_type(&field.name)
            .unwrap_or_default()
            .to_owned();
        let mut sql = self.qualified(scope, &field.name)?;
        if field.json_path.is_empty() {
            return Ok((sql, Some(ty)));
        }
        if !(ty == "json" || ty == "jsonb") {
            sql = format!("to_jsonb({sql})");
        }
        let mut text = false;
        for step in &field.json_path {
            let (arrow, key) = match step {
                JsonStep::Arrow(key) => ("->", key),
                JsonStep::DoubleArrow(key) => ("->>", key),
            };
            text = arrow == "->>";
            let key = match key {
                JsonKey::Key(key) => self.param(key.clone()),
                JsonKey::Index(index) => {
                    format!("CAST({} AS integer)", self.param(index.to_string()))
                }
            };
            sql = format!("{sql}{arrow}{key}");
        }
        Ok((sql, if text { None } else { Some("jsonb".to_owned()) }))
    }

    fn filter(
        &mut self,
        scope: &Scope<'_>,
        embeds: &[Embedded],
        filter: &Filter,
        row_joins: &mut Vec<usize>,
    ) -> Result<String, RenderError> {
        // `rel=is.null` / `rel=not.is.null` on an embed: an anti- or semi-join.
        if filter.field.json_path.is_empty()
            && let Some(embed) = embeds.iter().find(|e| e.name == filter.field.name)
        {
            let null =
                match (&filter.operation, filter.negated) {
                    (Operation::Is(IsValue::Null), false)
                    | (Operation::Is(IsValue::NotNull), true) => true,
                    (Operation::Is(IsValue::NotNull), false)
                    | (Operation::Is(IsValue::Null), true) => false,
                    _ => return Err(RenderError::EmbedOperator(embed.name.clone())),
                };
            let test = match (embed.spread, embed.relationship.cardinality.to_one()) {
                (false, _) => format!("{}.body", embed.lateral),
                // A spread to-many embed counts its rows; a spread to-one one has none.
                (true, false) => format!("nullif({}.pgrst_rows, 0)", embed.lateral),
                (true, true) => return Err(RenderError::EmbedOperator(embed.name.clone())),
            };
            row_joins.push(embed.join);
            return Ok(format!(
                "{test} {}",
                if null { "IS NULL" } else { "IS NOT NULL" }
            ));
        }
        let (expr, ty) = self.field(scope, &filter.field)?;
        let cast = |placeholder: String, ty: &Option<String>| match ty {
            Some(ty) => format!("CAST({placeholder} AS {ty})"),
            None => placeholder,
        };
        let condition = match &filter.operation {
            Operation::Compare {
                op,
                quantifier,
                value,
            } => {
                let (operator, pattern) = match op {
                    Compare::Eq => ("=", false),
                    Compare::Neq => ("<>", false),
                    Compare::Gt => (">", false),
                    Compare::Gte => (">=", false),
                    Compare::Lt => ("<", false),
                    Compare::Lte => ("<=", false),
                    Compare::Like => ("LIKE", true),
                    Compare::Ilike => ("ILIKE", true),
                    Compare::Match => ("~", true),
                    Compare::Imatch => ("~*", true),
                    Compare::Contains => ("@>", false),
                    Compare::ContainedIn => ("<@", false),
                    Compare::Overlaps => ("&&", false),
                    Compare::StrictlyLeft => ("<<", false),
                    Compare::StrictlyRight => (">>", false),
                    Compare::NotExtendRight => ("&<", false),
                    Compare::NotExtendLeft => ("&>", false),
                    Compare::Adjacent => ("-|-", false),
                    Compare::IsDistinct => ("IS DISTINCT FROM", false),
                };
                let like = matches!(op, Compare::Like | Compare::Ilike);
                let value = if like {
                    value.replace('*', "%")
                } else {
                    value.clone()
                };
                // Patterns compare text; a non-text column is compared as its text.
                let expr = if pattern && ty.as_deref().is_some_and(|t| !is_text(t)) {
                    format!("CAST({expr} AS text)")
                } else {
                    expr
                };
                match quantifier {
                    None if pattern => format!("{expr} {operator} {}", self.param(value)),
                    None => {
                        let p = self.param(value);
                        format!("{expr} {operator} {}", cast(p, &ty))
                    }
                    Some(quantifier) => {
                        let which = if *quantifier == Quantifier::Any {
                            "ANY"
                        } else {
                            "ALL"
                        };
                        let element = if pattern { None } else { ty.clone() };
                        let array_type = Some(format!(
                            "{}[]",
                            element.unwrap_or_else(|| "text".to_owned())
                        ));
                        let p = self.param(value);
                        format!("{expr} {operator} {which}({})", cast(p, &array_type))
                    }
                }
            }
            Operation::In(values) => {
                let array_type = Some(format!(
                    "{}[]",
                    ty.clone().unwrap_or_else(|| "text".to_owned())
                ));
                let p = self.param(array_literal(values));
                format!("{expr} = ANY({})", cast(p, &array_type))
            }
            Operation::Is(value) => {
                let test = match value {
                    IsValue::Null => "IS NULL",
                    IsValue::NotNull => "IS NOT NULL",
                    IsValue::True => "IS TRUE",
                    IsValue::False => "IS FALSE",
                    IsValue::Unknown => "IS UNKNOWN",
                };
                format!("{expr} {test}")
            }
            Operation::Fts {
                kind,
                config,
                value,
            } => {
                let function = match kind {
                    FtsKind::Fts => "to_tsquery",
                    FtsKind::Plain => "plainto_tsquery",
                    FtsKind::Phrase => "phraseto_tsquery",
                    FtsKind::Websearch => "websearch_to_tsquery",
                };
                let config = config
                    .as_ref()
                    .map(|c| format!("CAST({} AS regconfig), ", self.param(c.clone())));
                let config = config.unwrap_or_default();
                let vector = if ty.as_deref() == Some("tsvector") {
                    expr
                } else {
                    format!("to_tsvector({config}{expr})")
                };
                let q = self.param(value.clone());
                format!("{vector} @@ {function}({config}{q})")
            }
        };
        Ok(if filter.negated {
            format!("NOT ({condition})")
        } else {
            condition
        })
    }

    fn tree(
        &mut self,
        scope: &Scope<'_>,
        embeds: &[Embedded],
        tree: &LogicTree,
        row_joins: &mut Vec<usize>,
    ) -> Result<String, RenderError> {
        match tree {
            LogicTree::Leaf { filter } => self.filter(scope, embeds, filter, row_joins),
            LogicTree::Node {
                op,
                negated,
                children,
            } => {
                let joiner = if *op == LogicOp::And { " AND " } else { " OR " };
                let parts = children
                    .iter()
                    .map(|child| self.tree(scope, embeds, child, row_joins))
                    .collect::<Result<Vec<_>, _>>()?;
                let joined = format!("({})", parts.join(joiner));
                Ok(if *negated {
                    format!("NOT {joined}")
                } else {
                    joined
                })
            }
        }
    }

    fn order_term(
        &mut self,
        scope: &Scope<'_>,
        embeds: &[Embedded],
        term: &OrderTerm,
    ) -> Result<String, RenderError> {
        let mut sql = match &term.relation {
            None => self.field(scope, &term.field)?.0,
            Some(relation) => {
                // By a column of a to-one embed: that row's value, looked up again.
                let embed = embeds
                    .iter()
                    .find(|e| e.name == *relation)
                    .ok_or_else(|| RenderError::NotEmbedded(relation.clone()))?;
                let relationship = &embed.relationship;
                if !relationship.cardinality.to_one() || relationship.junction.is_some() {
                    return Err(RenderError::RelatedOrder(
                        scope.table.name.clone(),
                        relation.clone(),
                    ));
                }
                let alias = quote(&self.alias());
                let target = Scope {
                    table: &relationship.target,
                    reference: alias.clone(),
                    label: relationship.target.name.clone(),
                    path: Vec::new(),
                };
                let (value, _) = self.field(&target, &term.field)?;
                if let Some(function) = &relationship.function {
                    let row = self.row(scope);
                    format!(
                        "(SELECT {value} FROM {}({row}) AS {alias} LIMIT 1)",
                        quote_function(function)
                    )
                } else {
                    let mut joins = Vec::new();
                    for (parent_column, target_column) in &relationship.join {
                        let parent = self.qualified(scope, parent_column)?;
                        let own = self.qualified(&target, target_column)?;
                        joins.push(format!("{own} = {parent}"));
                    }
                    // At most one row: a view's key need not be unique.
                    format!(
                        "(SELECT {value} FROM {}.{} AS {alias} WHERE {} LIMIT 1)",
                        quote(&relationship.target.schema),
                        quote(&relationship.target.name),
                        joins.join(" AND ")
                    )
                }
            }
        };
        match term.direction {
            Some(OrderDirection::Asc) => sql.push_str(" ASC"),
            Some(OrderDirection::Desc) => sql.push_str(" DESC"),
            None => {}
        }
        match term.nulls {
            Some(Nulls::First) => sql.push_str(" NULLS FIRST"),
            Some(Nulls::Last) => sql.push_str(" NULLS LAST"),
            None => {}
        }
        Ok(sql)
    }

    /// The rows a write answers with, read from `pgrst_source`, and what the write must
    /// return for them: only the columns the shape names, so a column the caller may
    /// not read is never asked for unless the caller asks for it.
    fn write_shape(
        &mut self,
        table: &TableShape,
        representation: Option<Representation<'_>>,
    ) -> Result<WriteShape, RenderError> {
        let Some(representation) = representation else {
            return Ok(WriteShape {
                returning: "1".to_owned(),
                rows: "SELECT 1 FROM pgrst_source".to_owned(),
                body: "''".to_owned(),
            });
        };
        let scope = Scope {
            table,
            reference: WRITTEN.to_owned(),
            label: table.name.clone(),
            path: Vec::new(),
        };
        let level = self.level(&scope, representation.select)?;
        if level.outputs.iter().any(|o| o.aggregate) {
            return Err(RenderError::Unsupported(
                "aggregates in a write's representation",
            ));
        }
        let rows = self.query_sql(&scope, &level, &[], "pgrst_source", None, None)?;
        let target = format!("{}.{}", quote(&table.schema), quote(&table.name));
        let mut returning: Vec<String> = self
            .returned
            .iter()
            .map(|c| format!("{target}.{}", quote(c)))
            .collect();
        if self.returned_row {
            returning.push(format!("ROW({target}.*)::{target} AS \"pgrst_row\""));
        }
        let returning = if returning.is_empty() {
            "1".to_owned()
        } else {
            returning.join(", ")
        };
        Ok(WriteShape {
            returning,
            rows,
            body: body_sql(&representation.format, false),
        })
    }
}

/// The page key (`limit`/`offset`) given for `path`, the last one if repeated.
fn page(values: &[(Vec<String>, u64)], path: &[String]) -> Option<u64> {
    values
        .iter()
        .rev()
        .find(|(p, _)| p == path)
        .map(|(_, value)| *value)
}

/// ` GROUP BY` every selected value that is not an aggregate, when one is.
fn group_by(level: &Level) -> Option<String> {
    if !level.outputs.iter().any(|o| o.aggregate) {
        return None;
    }
    let groups: Vec<&str> = level
        .outputs
        .iter()
        .filter(|o| !o.aggregate)
        .map(|o| o.sql.as_str())
        .collect();
    if groups.is_empty() {
        Some(String::new())
    } else {
        Some(format!(" GROUP BY {}", groups.join(", ")))
    }
}

fn allowed_cast(cast: &str) -> Result<&str, RenderError> {
    CASTS
        .iter()
        .find(|allowed| **allowed == cast)
        .copied()
        .ok_or_else(|| RenderError::CastNotAllowed(cast.to_owned()))
}

fn is_text(ty: &str) -> bool {
    ty == "text" || ty.starts_with("character") || ty == "citext" || ty == "name"
}

/// The output key of a selected field: the last JSON key, else the column name.
fn default_name(field: &Field) -> String {
    field
        .json_path
        .iter()
        .rev()
        .find_map(|step| match step {
            JsonStep::Arrow(JsonKey::Key(key)) | JsonStep::DoubleArrow(JsonKey::Key(key)) => {
                Some(key.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| field.name.clone())
}

/// `{"a","b\"c"}`: every element quoted, so commas, braces and `NULL` stay text.
fn array_literal(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|value| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::params::parse_query;
    use crate::shape::ForeignKeyShape;

    fn todos() -> TableShape {
        TableShape {
            schema: "public".into(),
            name: "todos".into(),
            columns: vec![
                ("id".into(), "bigint".into()),
                ("title".into(), "text".into()),
                ("done".into(), "boolean".into()),
                ("meta".into(), "jsonb".into()),
                ("owner".into(), "uuid".into()),
            ],
            primary_key: vec!["id".into()],
            foreign_keys: vec![ForeignKeyShape {
                name: "todos_owner_fkey".into(),
                columns: vec!["owner".into()],
                target_schema: "public".into(),
                target_table: "people".into(),
                target_columns: vec!["id".into()],
            }],
            ..TableShape::default()
        }
    }

    fn people() -> TableShape {
        TableShape {
            schema: "public".into(),
            name: "people".into(),
            columns: vec![("id".into(), "uuid".into()), ("name".into(), "text".into())],
            primary_key: vec!["id".into()],
            ..TableShape::default()
        }
    }

    fn schema() -> Vec<TableShape> {
        vec![todos(), people()]
    }

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse_query(&pairs, false).expect("parses")
    }

    fn render(pairs: &[(&str, &str)], options: ReadOptions) -> Result<Statement, RenderError> {
        render_read(&schema(), &todos(), &query(pairs), options)
    }

    #[test]
    fn a_filtered_ordered_page_renders_with_every_value_bound() {
        let statement = render(
            &[
                ("select", "id,name:title,meta->>kind,done::text"),
                ("done", "is.false"),
                ("id", "in.(1,2,3)"),
                ("title", "ilike.*milk*"),
                ("or", "(id.gt.10,meta->>kind.eq.home)"),
                ("order", "id.desc.nullslast"),
                ("limit", "20"),
                ("offset", "40"),
            ],
            ReadOptions {
                max_rows: Some(1000),
                count: Count::Exact,
                format: BodyFormat::Json,
            },
        )
        .expect("renders");
        expect![[r#"WITH pgrst_source AS (SELECT "public"."todos"."id" AS "id", "public"."todos"."title" AS "name", "public"."todos"."meta"->>$1 AS "kind", CAST("public"."todos"."done" AS text) AS "done" FROM "public"."todos" WHERE "public"."todos"."done" IS FALSE AND "public"."todos"."id" = ANY(CAST($2 AS bigint[])) AND "public"."todos"."title" ILIKE $3 AND ("public"."todos"."id" > CAST($4 AS bigint) OR "public"."todos"."meta"->>$5 = $6) ORDER BY "public"."todos"."id" DESC NULLS LAST LIMIT CAST($7 AS bigint) OFFSET CAST($8 AS bigint)) SELECT (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM "public"."todos" WHERE "public"."todos"."done" IS FALSE AND "public"."todos"."id" = ANY(CAST($2 AS bigint[])) AND "public"."todos"."title" ILIKE $3 AND ("public"."todos"."id" > CAST($4 AS bigint) OR "public"."todos"."meta"->>$5 = $6)) AS _pgrst_c) AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, NULL::bigint AS inserted FROM (SELECT * FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(
            statement.params,
            vec![
                "kind",
                "{\"1\",\"2\",\"3\"}",
                "%milk%",
                "10",
                "kind",
                "home",
                "20",
                "40"
            ]
        );
    }

    #[test]
    fn embeds_join_laterally_with_their_own_filters_and_page() {
        let statement = render(
            &[
                ("select", "title,owner:people!inner(name)"),
                ("owner.name", "eq.ann"),
                ("order", "owner(name).desc"),
            ],
            ReadOptions::default(),
        )
        .expect("renders");
        expect![[r#"WITH pgrst_source AS (SELECT "public"."todos"."title" AS "title", "todos_owner_1".body AS "owner" FROM "public"."todos" INNER JOIN LATERAL (SELECT pg_catalog.to_jsonb(_pgrst_e) AS body FROM (SELECT "people_1"."name" AS "name" FROM "public"."people" AS "people_1" WHERE "people_1"."id" = "public"."todos"."owner" AND "people_1"."name" = CAST($1 AS text)) AS _pgrst_e) AS "todos_owner_1" ON TRUE ORDER BY (SELECT "pgrst_1"."name" FROM "public"."people" AS "pgrst_1" WHERE "pgrst_1"."id" = "public"."todos"."owner" LIMIT 1) DESC) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, NULL::bigint AS inserted FROM (SELECT * FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params, vec!["ann"]);
        // The other direction is to-many, an array.
        let people = render_read(
            &schema(),
            &people(),
            &query(&[("select", "name,todos(title)"), ("todos.limit", "2")]),
            ReadOptions::default(),
        )
        .expect("renders");
        assert!(
            people
                .sql
                .contains("coalesce(\"people_todos_1\".body, '[]') AS \"todos\""),
            "{}",
            people.sql
        );
        assert!(
            people.sql.contains("pg_catalog.jsonb_agg(_pgrst_e)"),
            "{}",
            people.sql
        );
    }

    #[test]
    fn keys_for_resources_not_embedded_are_refused() {
        assert_eq!(
            render(&[("owner.name", "eq.x")], ReadOptions::default()),
            Err(RenderError::NotEmbedded("owner".into()))
        );
        assert_eq!(
            render(
                &[("select", "*,people(*)"), ("people", "eq.1")],
                ReadOptions::default()
            ),
            Err(RenderError::EmbedOperator("people".into()))
        );
        assert!(matches!(
            render(&[("select", "*,nope(*)")], ReadOptions::default()),
            Err(RenderError::NoRelationship { .. })
        ));
    }

    #[test]
    fn aggregates_group_by_the_other_columns() {
        let statement = render(
            &[("select", "done,count(),total:id.sum()")],
            ReadOptions::default(),
        )
        .expect("renders");
        assert!(
            statement.sql.contains(
                r#"SELECT "public"."todos"."done" AS "done", pg_catalog.count(*) AS "count", pg_catalog.sum("public"."todos"."id") AS "total" FROM "public"."todos" GROUP BY "public"."todos"."done""#
            ),
            "{}",
            statement.sql
        );
    }

    #[test]
    fn hostile_values_never_reach_the_sql_text() {
        let hostile = "1'; DROP TABLE todos; --";
        let statement = render(
            &[
                ("title", &format!("eq.{hostile}")),
                ("id", "in.(\"a\\\"b\",c)"),
            ],
            ReadOptions::default(),
        )
        .expect("renders");
        assert!(!statement.sql.contains("DROP"));
        assert_eq!(statement.params[0], hostile);
        assert_eq!(statement.params[1], "{\"a\\\"b\",\"c\"}");
    }

    #[test]
    fn unknown_names_and_disallowed_casts_are_refused() {
        assert_eq!(
            render(&[("nope", "eq.1")], ReadOptions::default()),
            Err(RenderError::UnknownColumn {
                table: "todos".into(),
                column: "nope".into()
            })
        );
        assert!(matches!(
            render(&[("select", "title::regclass")], ReadOptions::default()),
            Err(RenderError::CastNotAllowed(_))
        ));
        assert!(matches!(
            render(&[("order", "\"id\\\" DESC; --\"")], ReadOptions::default()),
            Err(RenderError::UnknownColumn { .. })
        ));
    }

    fn insert(
        columns: &[&str],
        on_conflict: &OnConflict,
        representation: Option<Representation<'_>>,
    ) -> Result<Statement, RenderError> {
        render_insert(
            &schema(),
            &todos(),
            &[InsertGroup {
                columns: columns.iter().map(|c| (*c).into()).collect(),
                body: "[]".into(),
                ..InsertGroup::default()
            }],
            on_conflict,
            representation,
        )
    }

    #[test]
    fn inserts_read_rows_from_one_json_parameter_and_return_only_what_is_shown() {
        let items = crate::params::parse_select("id,title").expect("parses");
        let statement = insert(
            &["title", "done"],
            &OnConflict::Error,
            Some(Representation {
                select: Some(&items),
                format: BodyFormat::Json,
                query: None,
            }),
        )
        .expect("renders");
        expect![[r#"WITH pgrst_insert_0 AS (INSERT INTO "public"."todos" ("title", "done") SELECT "title", "done" FROM pg_catalog.json_populate_recordset(NULL::"public"."todos", CAST($1 AS json)) RETURNING "public"."todos"."id", "public"."todos"."title"), pgrst_source AS (SELECT * FROM pgrst_insert_0) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, NULL::bigint AS inserted FROM (SELECT "pgrst_source"."id" AS "id", "pgrst_source"."title" AS "title" FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params.len(), 1);
        assert!(matches!(
            insert(&["nope"], &OnConflict::Error, None),
            Err(RenderError::UnknownBodyColumn { .. })
        ));
    }

    #[test]
    fn upserts_merge_or_ignore_on_the_key() {
        let merge = insert(&["id", "title"], &OnConflict::Merge(None), None).expect("renders");
        assert!(merge.sql.contains(
            r#"ON CONFLICT ("id") DO UPDATE SET "id" = EXCLUDED."id", "title" = EXCLUDED."title""#
        ));
        let ignore = insert(
            &["title"],
            &OnConflict::Ignore(Some(vec!["title".into()])),
            None,
        )
        .expect("renders");
        assert!(ignore.sql.contains(r#"ON CONFLICT ("title") DO NOTHING"#));
    }

    #[test]
    fn updates_and_deletes_need_a_filter_and_bind_their_values() {
        let query = query(&[("id", "eq.5")]);
        let update = Mutation::Update {
            columns: vec!["done".into()],
            body: r#"{"done":true}"#.into(),
        };
        let statement =
            render_mutation(&schema(), &todos(), &query, &update, None).expect("renders");
        expect![[r#"WITH pgrst_source AS (UPDATE "public"."todos" SET "done" = _pgrst_body."done" FROM (SELECT * FROM pg_catalog.json_populate_record(NULL::"public"."todos", CAST($2 AS json))) AS _pgrst_body WHERE "public"."todos"."id" = CAST($1 AS bigint) RETURNING 1) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, '' AS body, NULL::bigint AS inserted FROM (SELECT 1 FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params, vec!["5", r#"{"done":true}"#]);
        let everything = QueryParams::default();
        assert_eq!(
            render_mutation(&schema(), &todos(), &everything, &Mutation::Delete, None),
            Err(RenderError::MissingFilter("DELETE"))
        );
    }

    #[test]
    fn calls_bind_each_argument_by_name() {
        let function = FunctionShape {
            schema: "public".into(),
            name: "add".into(),
            args: vec![
                ("a".into(), "integer".into(), false),
                ("b".into(), "integer".into(), true),
                ("p".into(), "public.pair".into(), true),
                ("xs".into(), "integer[]".into(), true),
            ],
            composite_args: vec!["p".into()],
            returns_set: false,
            returns: None,
            returns_void: false,
        };
        let none = QueryParams::default();
        let call = |args: &[&str], body: &str| {
            let args: Vec<String> = args.iter().map(|a| (*a).into()).collect();
            render_call(
                &schema(),
                &function,
                &args,
                body.into(),
                &none,
                ReadOptions::default(),
            )
        };
        let statement = call(&["a"], r#"{"a":1}"#).expect("renders");
        expect![[r#"SELECT NULL::bigint AS total_result_set, 1::bigint AS page_total, pg_catalog.to_json("public"."add"("a" := CAST(CAST($1 AS json)->>$2 AS integer)))::text AS body, NULL::bigint AS inserted"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params, vec![r#"{"a":1}"#, "a"]);
        // Composites and arrays are built from JSON as json_to_record builds them.
        let built = call(&["a", "p", "xs"], r#"{"a":1,"p":{"x":1},"xs":[1]}"#).expect("renders");
        assert!(
            built.sql.contains(r#""p" := (SELECT _pgrst_r."p" FROM pg_catalog.json_to_record(CAST($1 AS json)) AS _pgrst_r("p" public.pair))"#)
                && built.sql.contains(r#""xs" := (SELECT _pgrst_r."xs" FROM pg_catalog.json_to_record(CAST($1 AS json)) AS _pgrst_r("xs" integer[]))"#),
            "{}",
            built.sql
        );
        assert!(matches!(
            call(&["b"], "{}"),
            Err(RenderError::MissingArgument { .. })
        ));
        assert!(matches!(
            call(&["a", "c"], "{}"),
            Err(RenderError::UnknownArgument { .. })
        ));
    }

    #[test]
    fn max_rows_caps_the_limit() {
        let statement = render(
            &[("limit", "5000")],
            ReadOptions {
                max_rows: Some(1000),
                ..ReadOptions::default()
            },
        )
        .expect("renders");
        assert_eq!(statement.params, vec!["1000"]);
    }

    /// `people` with a computed field `initials` and a computed relationship `open_todos`.
    fn people_with_functions() -> TableShape {
        let function = |name: &str| crate::shape::FunctionName {
            schema: "public".into(),
            name: name.into(),
        };
        TableShape {
            computed_fields: vec![crate::shape::ComputedField {
                function: function("initials"),
                data_type: "text".into(),
            }],
            computed_relationships: vec![crate::shape::ComputedRelationship {
                function: function("open_todos"),
                target_schema: "public".into(),
                target_table: "todos".into(),
                to_one: false,
            }],
            ..people()
        }
    }

    #[test]
    fn functions_over_a_row_read_as_columns_and_embed_as_relationships() {
        let schema = vec![todos(), people_with_functions()];
        let statement = render_read(
            &schema,
            &people_with_functions(),
            &query(&[
                ("select", "name,initials,open_todos!inner(title)"),
                ("initials", "eq.AB"),
                ("order", "initials.desc"),
                ("open_todos.done", "is.false"),
            ]),
            ReadOptions::default(),
        )
        .expect("renders");
        expect![[r#"WITH pgrst_source AS (SELECT "public"."people"."name" AS "name", "public"."initials"("public"."people".*) AS "initials", coalesce("people_open_todos_1".body, '[]') AS "open_todos" FROM "public"."people" INNER JOIN LATERAL (SELECT pg_catalog.jsonb_agg(_pgrst_e) AS body FROM (SELECT "todos_1"."title" AS "title" FROM "public"."open_todos"("public"."people".*) AS "todos_1" WHERE "todos_1"."done" IS FALSE) AS _pgrst_e) AS "people_open_todos_1" ON "people_open_todos_1".body IS NOT NULL WHERE "public"."initials"("public"."people".*) = CAST($1 AS text) ORDER BY "public"."initials"("public"."people".*) DESC) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, NULL::bigint AS inserted FROM (SELECT * FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        // `*` is the columns only.
        let star = render_read(
            &schema,
            &people_with_functions(),
            &query(&[("select", "*")]),
            ReadOptions::default(),
        )
        .expect("renders");
        assert!(!star.sql.contains("initials"), "{}", star.sql);
        // A write reads the row it wrote whole, once, for every function over it.
        let insert = render_insert(
            &schema,
            &people_with_functions(),
            &[InsertGroup {
                columns: vec!["name".into()],
                body: "[{\"name\":\"ann\"}]".into(),
                ..InsertGroup::default()
            }],
            &OnConflict::Error,
            Some(Representation {
                select: Some(
                    &crate::params::parse_select("name,initials,open_todos(id)").expect("parses"),
                ),
                format: BodyFormat::Json,
                query: None,
            }),
        )
        .expect("renders");
        assert!(
            insert.sql.contains(r#"RETURNING "public"."people"."name", ROW("public"."people".*)::"public"."people" AS "pgrst_row")"#),
            "{}",
            insert.sql
        );
        assert!(
            insert
                .sql
                .contains(r#""public"."initials"("pgrst_source"."pgrst_row") AS "initials""#)
                && insert
                    .sql
                    .contains(r#"FROM "public"."open_todos"("pgrst_source"."pgrst_row")"#),
            "{}",
            insert.sql
        );
        // Not a column: never written.
        let written = render_insert(
            &schema,
            &people_with_functions(),
            &[InsertGroup {
                columns: vec!["initials".into()],
                body: "[{\"initials\":\"AB\"}]".into(),
                ..InsertGroup::default()
            }],
            &OnConflict::Error,
            None,
        );
        assert!(matches!(
            written,
            Err(RenderError::UnknownBodyColumn { .. })
        ));
    }
}
