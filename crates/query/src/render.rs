//! Reads rendered as one SQL statement whose single row carries the response: the total
//! (when asked), the page size, and the body as JSON built inside PostgreSQL.
//!
//! Names reach SQL only after matching a column of the [`TableShape`] exactly, and always
//! double-quoted; values only as `$n` parameters, bound as text and cast in SQL to the
//! column's type, so PostgreSQL parses them. Casts asked for in `select` come from a
//! fixed allowlist.

use crate::ast::{
    Compare, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp, LogicTree, Nulls,
    Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
use crate::params::QueryParams;

/// The table as the catalog describes it: what rendering may name.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub schema: String,
    pub name: String,
    /// Column names with their types as PostgreSQL prints them (`format_type`).
    pub columns: Vec<(String, String)>,
    /// The primary key's columns: the default conflict target of an upsert.
    pub primary_key: Vec<String>,
}

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

/// How a read is bounded and counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Upper bound on rows returned, whatever `limit` says.
    pub max_rows: Option<u64>,
    /// Compute the total number of matching rows (`Prefer: count=exact`).
    pub count_exact: bool,
}

/// SQL and its parameters, all sent as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<String>,
}

/// Why a request cannot be rendered; each maps to a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("column {table}.{column} does not exist")]
    UnknownColumn { table: String, column: String },
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
    #[error("the cast to {0} is not allowed")]
    CastNotAllowed(String),
    #[error("function {function} has no argument {argument}")]
    UnknownArgument { function: String, argument: String },
    #[error("function {function} needs the argument {argument}")]
    MissingArgument { function: String, argument: String },
    /// An update or delete without a filter would touch every row.
    #[error("UPDATE and DELETE require a filter; add one such as id=eq.1")]
    MissingFilter,
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

struct Renderer<'a> {
    table: &'a TableShape,
    qualified: String,
    params: Vec<String>,
}

/// Renders a read of `table` (root only: embeds come next).
pub fn render_read(
    table: &TableShape,
    query: &QueryParams,
    options: ReadOptions,
) -> Result<Statement, RenderError> {
    let mut r = Renderer {
        table,
        qualified: format!("{}.{}", quote(&table.schema), quote(&table.name)),
        params: Vec::new(),
    };
    let select = match &query.select {
        Some(items) => r.select_list(items)?,
        None => format!("{}.*", r.qualified),
    };
    let conditions = r.conditions(query)?;
    let mut order = Vec::new();
    for (path, terms) in &query.order {
        if !path.is_empty() {
            return Err(RenderError::Unsupported("ordering embedded resources"));
        }
        for term in terms {
            order.push(r.order_term(term)?);
        }
    }
    let mut limit = None;
    let mut offset = None;
    for (path, value) in &query.limit {
        if !path.is_empty() {
            return Err(RenderError::Unsupported("limits on embedded resources"));
        }
        limit = Some(*value);
    }
    for (path, value) in &query.offset {
        if !path.is_empty() {
            return Err(RenderError::Unsupported("offsets on embedded resources"));
        }
        offset = Some(*value);
    }
    let limit = match (limit, options.max_rows) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };

    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let mut source = format!("SELECT {select} FROM {}{where_clause}", r.qualified);
    if !order.is_empty() {
        source.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = limit {
        let n = r.param(limit.to_string());
        source.push_str(&format!(" LIMIT CAST({n} AS bigint)"));
    }
    if let Some(offset) = offset {
        let n = r.param(offset.to_string());
        source.push_str(&format!(" OFFSET CAST({n} AS bigint)"));
    }
    let total = if options.count_exact {
        format!(
            "(SELECT pg_catalog.count(*) FROM {}{where_clause})",
            r.qualified
        )
    } else {
        "NULL::bigint".to_owned()
    };
    let sql = format!(
        "WITH pgrst_source AS ({source}) SELECT {total} AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, \
         coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body FROM (SELECT * FROM pgrst_source) AS _pgrst_t"
    );
    Ok(Statement {
        sql,
        params: r.params,
    })
}

/// Renders an insert of the JSON rows in `body` (an array of objects) into `columns`,
/// answering with the inserted rows shaped by `select` when `representation` is asked for.
pub fn render_insert(
    table: &TableShape,
    columns: &[String],
    body: String,
    select: Option<&[SelectItem]>,
    representation: bool,
    on_conflict: &OnConflict,
) -> Result<Statement, RenderError> {
    let target = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let mut r = Renderer {
        table,
        qualified: quote("pgrst_source"),
        params: Vec::new(),
    };
    let mut quoted = Vec::with_capacity(columns.len());
    for column in columns {
        r.column_type(column)?;
        quoted.push(quote(column));
    }
    let list = quoted.join(", ");
    let conflict = match on_conflict {
        OnConflict::Error => String::new(),
        OnConflict::Merge(target) | OnConflict::Ignore(target) => {
            let target = target.clone().unwrap_or_else(|| table.primary_key.clone());
            if target.is_empty() {
                return Err(RenderError::Unsupported(
                    "upserts on a table without a primary key or on_conflict",
                ));
            }
            for column in &target {
                r.column_type(column)?;
            }
            let target = target
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ");
            match on_conflict {
                OnConflict::Merge(_) => {
                    let sets: Vec<String> = quoted
                        .iter()
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect();
                    if sets.is_empty() {
                        format!(" ON CONFLICT ({target}) DO NOTHING")
                    } else {
                        format!(" ON CONFLICT ({target}) DO UPDATE SET {}", sets.join(", "))
                    }
                }
                _ => format!(" ON CONFLICT ({target}) DO NOTHING"),
            }
        }
    };
    let rows = r.param(body);
    let (returning, shape) = if representation {
        let shape = match select {
            Some(items) => r.select_list(items)?,
            None => format!("{}.*", r.qualified),
        };
        (format!("{target}.*"), shape)
    } else {
        ("1".to_owned(), "1".to_owned())
    };
    let body_sql = if representation {
        "coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text"
    } else {
        "''"
    };
    let sql = format!(
        "WITH pgrst_source AS (INSERT INTO {target} ({list}) SELECT {list} FROM \
         pg_catalog.json_populate_recordset(NULL::{target}, CAST({rows} AS json)){conflict} RETURNING {returning}) \
         SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, {body_sql} AS body \
         FROM (SELECT {shape} FROM pgrst_source) AS _pgrst_t"
    );
    Ok(Statement {
        sql,
        params: r.params,
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
    table: &TableShape,
    query: &QueryParams,
    mutation: &Mutation,
    representation: bool,
) -> Result<Statement, RenderError> {
    let target = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let mut r = Renderer {
        table,
        qualified: target.clone(),
        params: Vec::new(),
    };
    let conditions = r.conditions(query)?;
    if conditions.is_empty() {
        return Err(RenderError::MissingFilter);
    }
    let head = match mutation {
        Mutation::Update { columns, body } => {
            let mut sets = Vec::with_capacity(columns.len());
            for column in columns {
                r.column_type(column)?;
                sets.push(format!("{0} = _pgrst_body.{0}", quote(column)));
            }
            if sets.is_empty() {
                return Err(RenderError::Unsupported("an update without columns"));
            }
            let body = r.param(body.clone());
            format!(
                "UPDATE {target} SET {} FROM (SELECT * FROM pg_catalog.json_populate_record(NULL::{target}, CAST({body} AS json))) AS _pgrst_body",
                sets.join(", ")
            )
        }
        Mutation::Delete => format!("DELETE FROM {target}"),
    };
    let where_clause = conditions.join(" AND ");
    r.qualified = quote("pgrst_source");
    let (returning, shape, body_sql) = if representation {
        let shape = match &query.select {
            Some(items) => r.select_list(items)?,
            None => format!("{}.*", r.qualified),
        };
        (
            format!("{target}.*"),
            shape,
            "coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text",
        )
    } else {
        ("1".to_owned(), "1".to_owned(), "''")
    };
    let sql = format!(
        "WITH pgrst_source AS ({head} WHERE {where_clause} RETURNING {returning}) \
         SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, {body_sql} AS body \
         FROM (SELECT {shape} FROM pgrst_source) AS _pgrst_t"
    );
    Ok(Statement {
        sql,
        params: r.params,
    })
}

/// A function as the catalog describes it: what an RPC may call.
#[derive(Debug, Clone)]
pub struct FunctionShape {
    pub schema: String,
    pub name: String,
    /// Input arguments: name, type, whether it has a default.
    pub args: Vec<(String, String, bool)>,
    pub returns_set: bool,
    /// Whether it returns rows (a table type or a record set) rather than a scalar.
    pub returns_rows: bool,
}

/// Renders a call of `function` with named arguments taken from one JSON object; the
/// body is the result as JSON: an array for set-returning functions, else one value.
pub fn render_call(
    function: &FunctionShape,
    arguments: &[String],
    body: String,
) -> Result<Statement, RenderError> {
    let mut params = vec![body];
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
        params.push(argument.clone());
        // The value is the JSON body's member, as text, cast to the argument's type.
        named.push(format!(
            "{} := CAST(CAST($1 AS json)->>${} AS {ty})",
            quote(name),
            params.len()
        ));
    }
    for (name, _, has_default) in &function.args {
        if !has_default && !arguments.contains(name) {
            return Err(RenderError::MissingArgument {
                function: function.name.clone(),
                argument: name.clone(),
            });
        }
    }
    let call = format!(
        "{}.{}({})",
        quote(&function.schema),
        quote(&function.name),
        named.join(", ")
    );
    let sql = if function.returns_set || function.returns_rows {
        let aggregate = if function.returns_set {
            "coalesce(pg_catalog.json_agg(_pgrst_t), '[]')"
        } else {
            "pg_catalog.to_json(_pgrst_t)"
        };
        format!(
            "SELECT NULL::bigint AS total_result_set, pg_catalog.count(*) AS page_total, {aggregate}::text AS body FROM {call} AS _pgrst_t"
        )
    } else {
        format!(
            "SELECT NULL::bigint AS total_result_set, 1::bigint AS page_total, pg_catalog.to_json({call})::text AS body"
        )
    };
    Ok(Statement { sql, params })
}

/// A double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Renderer<'_> {
    /// The root filters and logic trees, each one condition to AND together.
    fn conditions(&mut self, query: &QueryParams) -> Result<Vec<String>, RenderError> {
        let mut conditions = Vec::new();
        for (path, filter) in &query.filters {
            if !path.is_empty() {
                return Err(RenderError::Unsupported("filtering embedded resources"));
            }
            conditions.push(self.filter(filter)?);
        }
        for (path, tree) in &query.logic {
            if !path.is_empty() {
                return Err(RenderError::Unsupported(
                    "logic trees on embedded resources",
                ));
            }
            conditions.push(self.tree(tree)?);
        }
        Ok(conditions)
    }

    fn param(&mut self, value: String) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn column_type(&self, name: &str) -> Result<&str, RenderError> {
        self.table
            .columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, ty)| ty.as_str())
            .ok_or_else(|| RenderError::UnknownColumn {
                table: self.table.name.clone(),
                column: name.to_owned(),
            })
    }

    /// The field's SQL and the type a compared value should be cast to (`None`: text).
    fn field(&mut self, field: &Field) -> Result<(String, Option<String>), RenderError> {
        let ty = self.column_type(&field.name)?.to_owned();
        let mut sql = format!("{}.{}", self.qualified, quote(&field.name));
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

    fn select_list(&mut self, items: &[SelectItem]) -> Result<String, RenderError> {
        let mut out = Vec::new();
        for item in items {
            match item {
                SelectItem::Star => out.push(format!("{}.*", self.qualified)),
                SelectItem::Field {
                    alias,
                    field,
                    cast,
                    aggregate,
                } => {
                    if aggregate.is_some() {
                        return Err(RenderError::Unsupported("aggregates"));
                    }
                    let (mut sql, _) = self.field(field)?;
                    if let Some(cast) = cast {
                        if !CASTS.contains(&cast.as_str()) {
                            return Err(RenderError::CastNotAllowed(cast.clone()));
                        }
                        sql = format!("CAST({sql} AS {cast})");
                    }
                    let name = alias.clone().unwrap_or_else(|| default_name(field));
                    out.push(format!("{sql} AS {}", quote(&name)));
                }
                SelectItem::Count { .. } => return Err(RenderError::Unsupported("aggregates")),
                SelectItem::Embed { .. } => return Err(RenderError::Unsupported("embedding")),
            }
        }
        Ok(out.join(", "))
    }

    fn filter(&mut self, filter: &Filter) -> Result<String, RenderError> {
        let (expr, ty) = self.field(&filter.field)?;
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

    fn tree(&mut self, tree: &LogicTree) -> Result<String, RenderError> {
        match tree {
            LogicTree::Leaf { path, filter } => {
                if !path.is_empty() {
                    return Err(RenderError::Unsupported("filtering embedded resources"));
                }
                self.filter(filter)
            }
            LogicTree::Node {
                op,
                negated,
                children,
            } => {
                let joiner = if *op == LogicOp::And { " AND " } else { " OR " };
                let parts = children
                    .iter()
                    .map(|child| self.tree(child))
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

    fn order_term(&mut self, term: &OrderTerm) -> Result<String, RenderError> {
        if term.relation.is_some() {
            return Err(RenderError::Unsupported("ordering by embedded resources"));
        }
        let (expr, _) = self.field(&term.field)?;
        let mut sql = expr;
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

    fn todos() -> TableShape {
        TableShape {
            schema: "public".into(),
            name: "todos".into(),
            columns: vec![
                ("id".into(), "bigint".into()),
                ("title".into(), "text".into()),
                ("done".into(), "boolean".into()),
                ("meta".into(), "jsonb".into()),
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn render(query: &[(&str, &str)], options: ReadOptions) -> Result<Statement, RenderError> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        render_read(&todos(), &parse_query(&pairs).expect("parses"), options)
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
                count_exact: true,
            },
        )
        .expect("renders");
        expect![[r#"WITH pgrst_source AS (SELECT "public"."todos"."id" AS "id", "public"."todos"."title" AS "name", "public"."todos"."meta"->>$1 AS "kind", CAST("public"."todos"."done" AS text) AS "done" FROM "public"."todos" WHERE "public"."todos"."done" IS FALSE AND "public"."todos"."id" = ANY(CAST($2 AS bigint[])) AND "public"."todos"."title" ILIKE $3 AND ("public"."todos"."id" > CAST($4 AS bigint) OR "public"."todos"."meta"->>$5 = $6) ORDER BY "public"."todos"."id" DESC NULLS LAST LIMIT CAST($7 AS bigint) OFFSET CAST($8 AS bigint)) SELECT (SELECT pg_catalog.count(*) FROM "public"."todos" WHERE "public"."todos"."done" IS FALSE AND "public"."todos"."id" = ANY(CAST($2 AS bigint[])) AND "public"."todos"."title" ILIKE $3 AND ("public"."todos"."id" > CAST($4 AS bigint) OR "public"."todos"."meta"->>$5 = $6)) AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body FROM (SELECT * FROM pgrst_source) AS _pgrst_t"#]]
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
    fn unknown_names_disallowed_casts_and_embeds_are_refused() {
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
            render(&[("select", "id,owner(name)")], ReadOptions::default()),
            Err(RenderError::Unsupported("embedding"))
        ));
        assert!(matches!(
            render(&[("order", "\"id\\\" DESC; --\"")], ReadOptions::default()),
            Err(RenderError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn inserts_read_rows_from_one_json_parameter() {
        let statement = render_insert(
            &todos(),
            &["title".into(), "done".into()],
            r#"[{"title":"a","done":false}]"#.into(),
            None,
            true,
            &OnConflict::Error,
        )
        .expect("renders");
        expect![[r#"WITH pgrst_source AS (INSERT INTO "public"."todos" ("title", "done") SELECT "title", "done" FROM pg_catalog.json_populate_recordset(NULL::"public"."todos", CAST($1 AS json)) RETURNING "public"."todos".*) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body FROM (SELECT "pgrst_source".* FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params.len(), 1);
        assert!(matches!(
            render_insert(
                &todos(),
                &["nope".into()],
                "[]".into(),
                None,
                false,
                &OnConflict::Error
            ),
            Err(RenderError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn upserts_merge_or_ignore_on_the_key() {
        let merge = render_insert(
            &todos(),
            &["id".into(), "title".into()],
            "[]".into(),
            None,
            false,
            &OnConflict::Merge(None),
        )
        .expect("renders");
        assert!(merge.sql.contains(
            r#"ON CONFLICT ("id") DO UPDATE SET "id" = EXCLUDED."id", "title" = EXCLUDED."title""#
        ));
        let ignore = render_insert(
            &todos(),
            &["title".into()],
            "[]".into(),
            None,
            false,
            &OnConflict::Ignore(Some(vec!["title".into()])),
        )
        .expect("renders");
        assert!(ignore.sql.contains(r#"ON CONFLICT ("title") DO NOTHING"#));
        assert!(
            render_insert(
                &todos(),
                &[],
                "[]".into(),
                None,
                false,
                &OnConflict::Ignore(Some(vec!["nope".into()]))
            )
            .is_err()
        );
    }

    #[test]
    fn updates_and_deletes_need_a_filter_and_bind_their_values() {
        let query = parse_query(&[("id".into(), "eq.5".into())]).expect("parses");
        let update = Mutation::Update {
            columns: vec!["done".into()],
            body: r#"{"done":true}"#.into(),
        };
        let statement = render_mutation(&todos(), &query, &update, false).expect("renders");
        expect![[r#"WITH pgrst_source AS (UPDATE "public"."todos" SET "done" = _pgrst_body."done" FROM (SELECT * FROM pg_catalog.json_populate_record(NULL::"public"."todos", CAST($2 AS json))) AS _pgrst_body WHERE "public"."todos"."id" = CAST($1 AS bigint) RETURNING 1) SELECT NULL::bigint AS total_result_set, pg_catalog.count(_pgrst_t) AS page_total, '' AS body FROM (SELECT 1 FROM pgrst_source) AS _pgrst_t"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params, vec!["5", r#"{"done":true}"#]);
        let everything = parse_query(&[]).expect("parses");
        assert_eq!(
            render_mutation(&todos(), &everything, &Mutation::Delete, false),
            Err(RenderError::MissingFilter)
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
            ],
            returns_set: false,
            returns_rows: false,
        };
        let statement =
            render_call(&function, &["a".into()], r#"{"a":1}"#.into()).expect("renders");
        expect![[r#"SELECT NULL::bigint AS total_result_set, 1::bigint AS page_total, pg_catalog.to_json("public"."add"("a" := CAST(CAST($1 AS json)->>$2 AS integer)))::text AS body"#]]
        .assert_eq(&statement.sql);
        assert_eq!(statement.params, vec![r#"{"a":1}"#, "a"]);
        assert!(matches!(
            render_call(&function, &["b".into()], "{}".into()),
            Err(RenderError::MissingArgument { .. })
        ));
        assert!(matches!(
            render_call(&function, &["a".into(), "c".into()], "{}".into()),
            Err(RenderError::UnknownArgument { .. })
        ));
    }

    #[test]
    fn max_rows_caps_the_limit() {
        let statement = render(
            &[("limit", "5000")],
            ReadOptions {
                max_rows: Some(1000),
                count_exact: false,
            },
        )
        .expect("renders");
        assert_eq!(statement.params, vec!["1000"]);
    }
}
