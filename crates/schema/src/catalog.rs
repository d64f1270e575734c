//! The catalog's data: what PostgreSQL says about the exposed schemas at one moment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One consistent snapshot of the exposed schemas. Never mutated: a reload builds a new
/// one and swaps it in whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Tables and views, keyed by `schema.name`.
    pub relations: BTreeMap<String, Relation>,
    pub enums: Vec<EnumType>,
    pub functions: Vec<Function>,
    /// The schema the PostGIS extension is installed in, if it is.
    #[serde(default)]
    pub postgis_schema: Option<String>,
    /// Indexes into `functions` of the functions over each relation's row, by
    /// `schema.name`: found once per snapshot, not per request.
    #[serde(skip)]
    pub over_rows: BTreeMap<String, Vec<usize>>,
}

impl Catalog {
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(&format!("{schema}.{name}"))
    }

    /// The functions whose one input is `relation`'s row (see [`Function::over_row`]).
    pub fn functions_over<'a>(
        &'a self,
        relation: &Relation,
    ) -> impl Iterator<Item = &'a Function> + 'a {
        self.over_rows
            .get(&format!("{}.{}", relation.schema, relation.name))
            .into_iter()
            .flatten()
            .filter_map(|index| self.functions.get(*index))
    }

    /// Fills [`Catalog::over_rows`] from `functions`.
    pub fn index_functions(&mut self) {
        self.over_rows.clear();
        for (index, function) in self.functions.iter().enumerate() {
            if let Some(row) = function.over_row() {
                self.over_rows
                    .entry(format!("{}.{}", row.schema, row.name))
                    .or_default()
                    .push(index);
            }
        }
    }

    /// Foreign keys anywhere that point at `target`, as `(referencing table, key)`.
    pub fn references_to<'a>(
        &'a self,
        target: &'a Relation,
    ) -> impl Iterator<Item = (&'a Relation, &'a ForeignKey)> + 'a {
        self.relations.values().flat_map(move |other| {
            other
                .foreign_keys
                .iter()
                .filter(move |fk| {
                    fk.target_schema == target.schema && fk.target_table == target.name
                })
                .map(move |fk| (other, fk))
        })
    }
}

/// An enum type and its values in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    pub schema: String,
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Each unique constraint or unique index, as its column list.
    pub unique: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Every constraint by name, as PostgreSQL defines it.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub indexes: Vec<Index>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    /// Publishes its changes to Realtime subscribers (the `galley_realtime` trigger).
    #[serde(default)]
    pub realtime: bool,
    pub comment: Option<String>,
    /// PostgreSQL's oid for it, to trace views' columns; not part of any answer.
    #[serde(default, skip_serializing)]
    pub oid: u32,
    /// Foreign keys that views give it (see `views.rs`): a view's key when it shows a
    /// table's key columns, a table's key to a view that shows the referenced columns.
    /// The REST dialect embeds through them; they are not constraints.
    #[serde(default, skip_serializing)]
    pub view_keys: Vec<ForeignKey>,
}

impl Relation {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// The keys an embed may follow: its own foreign keys, then those views give it.
    pub fn embed_keys(&self) -> impl Iterator<Item = &ForeignKey> {
        self.foreign_keys.iter().chain(&self.view_keys)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub position: i32,
    /// As PostgreSQL prints it: `integer`, `character varying(20)`, `text[]`.
    pub data_type: String,
    pub nullable: bool,
    /// The default expression as PostgreSQL prints it.
    pub default: Option<String>,
    pub identity: bool,
    pub generated: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// `pg_get_indexdef`, e.g. `CREATE INDEX todos_owner_idx ON public.todos USING btree (owner)`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    /// `primary_key`, `unique`, `check`, `foreign_key` or `other`.
    pub kind: String,
    pub columns: Vec<String>,
    /// `pg_get_constraintdef`, e.g. `CHECK ((char_length(title) >= 1))`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub target_schema: String,
    pub target_table: String,
    pub target_columns: Vec<String>,
    /// `no action`, `restrict`, `cascade`, `set null` or `set default`.
    pub on_delete: String,
    pub on_update: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub args: Vec<FunctionArg>,
    /// The result type as PostgreSQL prints it, e.g. `SETOF todos` or `integer`.
    pub returns: String,
    pub returns_set: bool,
    /// `immutable`, `stable` or `volatile`.
    pub volatility: String,
    /// The table or view whose row type it returns, if it returns one.
    #[serde(default)]
    pub returns_relation: Option<RelationName>,
    /// The planner's estimate of the rows it returns (`ROWS`); 1 makes a set-returning
    /// function over a row a to-one computed relationship.
    #[serde(default)]
    pub rows: f64,
}

/// A table or view by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationName {
    pub schema: String,
    pub name: String,
}

impl Function {
    /// The relation whose row the function takes as its one input, when it takes one and
    /// nothing else: a computed field or relationship of that relation.
    pub fn over_row(&self) -> Option<&RelationName> {
        let mut inputs = self
            .args
            .iter()
            .filter(|a| matches!(a.mode.as_str(), "in" | "inout" | "variadic"));
        let first = inputs.next()?;
        if inputs.next().is_some() {
            return None;
        }
        first.relation.as_ref()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionArg {
    pub name: Option<String>,
    pub data_type: String,
    /// The type's own name (`int4`, `varchar`), as PostgREST names parameters in its
    /// messages.
    #[serde(default)]
    pub type_name: String,
    /// The table or view whose row type it is, if it is one.
    #[serde(default)]
    pub relation: Option<RelationName>,
    /// `in`, `out`, `inout`, `variadic` or `table`.
    pub mode: String,
    pub has_default: bool,
}
