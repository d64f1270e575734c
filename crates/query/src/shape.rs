//! What rendering may name: the tables of the exposed schema and the foreign keys that
//! relate them, as the catalog describes them, and how an embed in `select` resolves to
//! one relationship among them.

/// A table or view as the catalog describes it.
#[derive(Debug, Clone, Default)]
pub struct TableShape {
    pub schema: String,
    pub name: String,
    /// Column names with their types as PostgreSQL prints them (`format_type`).
    pub columns: Vec<(String, String)>,
    /// The primary key's columns: the default conflict target of an upsert.
    pub primary_key: Vec<String>,
    /// Each unique constraint or unique index, as its column list.
    pub unique: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKeyShape>,
    /// Functions over this table's row that return a scalar: selected, filtered and
    /// ordered by name as if they were columns, never part of `*`.
    pub computed_fields: Vec<ComputedField>,
    /// Functions over this table's row that return rows of a table: embedded by name.
    pub computed_relationships: Vec<ComputedRelationship>,
    /// A view: PostgREST names its relationships by table name only.
    pub view: bool,
    /// Column defaults as PostgreSQL prints them, for `missing=default`.
    pub defaults: Vec<(String, String)>,
}

/// A function of one argument, this table's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionName {
    pub schema: String,
    pub name: String,
}

/// A scalar function over a row, read like a column.
#[derive(Debug, Clone)]
pub struct ComputedField {
    pub function: FunctionName,
    /// The type it returns, as PostgreSQL prints it.
    pub data_type: String,
}

/// A function over a row returning rows of `target`: `SETOF t` is to-many, `t` (or a set
/// of `ROWS 1`) to-one.
#[derive(Debug, Clone)]
pub struct ComputedRelationship {
    pub function: FunctionName,
    pub target_schema: String,
    pub target_table: String,
    pub to_one: bool,
}

impl TableShape {
    /// A column's type; computed fields are not columns.
    pub fn column_type(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, ty)| ty.as_str())
    }

    /// A column's default expression, if it has one.
    pub fn column_default(&self, name: &str) -> Option<&str> {
        self.defaults
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, expression)| expression.as_str())
    }

    /// A computed field by name, when no column has that name.
    pub fn computed_field(&self, name: &str) -> Option<&ComputedField> {
        if self.column_type(name).is_some() {
            return None;
        }
        self.computed_fields
            .iter()
            .find(|f| f.function.name == name)
    }

    /// The type of what `name` reads: a column, else a computed field.
    pub fn field_type(&self, name: &str) -> Option<&str> {
        self.column_type(name).or_else(|| {
            self.computed_field(name)
                .map(|field| field.data_type.as_str())
        })
    }

    /// Whether `columns` hold at most one row: they contain the primary key or a unique key.
    fn is_unique(&self, columns: &[String]) -> bool {
        std::iter::once(&self.primary_key)
            .chain(&self.unique)
            .any(|key| !key.is_empty() && key.iter().all(|c| columns.contains(c)))
    }

    /// Whether one key (primary or unique) covers every column in `columns`.
    fn key_covers(&self, columns: &[&String]) -> bool {
        std::iter::once(&self.primary_key)
            .chain(&self.unique)
            .any(|key| columns.iter().all(|c| key.contains(c)))
    }

    fn is(&self, schema: &str, name: &str) -> bool {
        self.schema == schema && self.name == name
    }
}

#[derive(Debug, Clone)]
pub struct ForeignKeyShape {
    pub name: String,
    pub columns: Vec<String>,
    pub target_schema: String,
    pub target_table: String,
    pub target_columns: Vec<String>,
}

impl ForeignKeyShape {
    fn targets(&self, table: &TableShape) -> bool {
        table.is(&self.target_schema, &self.target_table)
    }
}

/// The exposed tables, as one request sees them.
pub trait SchemaView {
    /// A table or view of the exposed schema by name; `None` for anything else.
    fn table(&self, name: &str) -> Option<TableShape>;
    /// The exposed tables with a foreign key to `schema.name`.
    fn referencing(&self, schema: &str, name: &str) -> Vec<TableShape>;
}

/// A fixed list of tables, all exposed: for tests and tools.
impl SchemaView for Vec<TableShape> {
    fn table(&self, name: &str) -> Option<TableShape> {
        self.iter().find(|t| t.name == name).cloned()
    }

    fn referencing(&self, schema: &str, name: &str) -> Vec<TableShape> {
        self.iter()
            .filter(|t| {
                t.foreign_keys
                    .iter()
                    .any(|fk| fk.target_schema == schema && fk.target_table == name)
            })
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    ManyToOne,
    OneToOne,
    OneToMany,
    ManyToMany,
}

impl Cardinality {
    pub fn to_one(self) -> bool {
        matches!(self, Cardinality::ManyToOne | Cardinality::OneToOne)
    }

    fn label(self) -> &'static str {
        match self {
            Cardinality::ManyToOne => "many-to-one",
            Cardinality::OneToOne => "one-to-one",
            Cardinality::OneToMany => "one-to-many",
            Cardinality::ManyToMany => "many-to-many",
        }
    }
}

/// How an embedded table joins its parent.
#[derive(Debug, Clone)]
pub struct Relationship {
    pub target: TableShape,
    pub cardinality: Cardinality,
    /// Direct: `(parent column, target column)` pairs that are equal.
    pub join: Vec<(String, String)>,
    pub junction: Option<Junction>,
    /// A computed relationship: the target's rows are this function's result for the
    /// parent's row, with no join.
    pub function: Option<FunctionName>,
    /// The foreign key's constraint (direct relationships).
    constraint: Option<String>,
    /// The foreign key is the parent's own (many-to-one, or one-to-one from the side
    /// that holds the key).
    forward: bool,
    /// The foreign key relates a table to itself.
    is_self: bool,
}

/// A many-to-many relationship's middle table.
#[derive(Debug, Clone)]
pub struct Junction {
    pub table: TableShape,
    /// `(junction column, parent column)` pairs.
    pub to_parent: Vec<(String, String)>,
    /// `(junction column, target column)` pairs.
    pub to_target: Vec<(String, String)>,
    /// The junction's foreign keys to the parent and to the target.
    pub constraints: (String, String),
}

impl Relationship {
    /// The one column of each side, when the key has one column.
    fn single_columns(&self) -> Option<(&str, &str)> {
        match self.join.as_slice() {
            [(parent, target)] if self.junction.is_none() => Some((parent, target)),
            _ => None,
        }
    }

    /// How PostgREST describes it when a choice is ambiguous:
    /// `books_author_id_fkey using books(author_id) and authors(id)`, or for a junction
    /// `book_genres using book_genres_book_id_fkey(book_id) and book_genres_genre_id_fkey(genre_id)`.
    fn description(&self, parent: &TableShape) -> String {
        let list = |columns: Vec<&String>| {
            columns
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.junction {
            Some(junction) => format!(
                "{} using {}({}) and {}({})",
                junction.table.name,
                junction.constraints.0,
                list(junction.to_parent.iter().map(|(j, _)| j).collect()),
                junction.constraints.1,
                list(junction.to_target.iter().map(|(j, _)| j).collect()),
            ),
            None => format!(
                "{} using {}({}) and {}({})",
                self.constraint.as_deref().unwrap_or_default(),
                parent.name,
                list(self.join.iter().map(|(p, _)| p).collect()),
                self.target.name,
                list(self.join.iter().map(|(_, t)| t).collect()),
            ),
        }
    }

    /// The name a `!hint` uses for it in PostgREST's list of spellings: the constraint,
    /// or the junction table.
    fn hint_name(&self) -> &str {
        match &self.junction {
            Some(junction) => &junction.table.name,
            None => self.constraint.as_deref().unwrap_or_default(),
        }
    }

    /// Whether an embed of `relation` (`!hint`) names this relationship, by PostgREST's
    /// rules. In a self-relationship the one foreign key is two relationships: the
    /// table's name is the children (one-to-many), the key's column the parent
    /// (many-to-one), and a hint picks children by the key's column. Otherwise the
    /// target's name, or (on tables) the constraint or the parent's column, names it; a
    /// hint narrows by constraint, either side's column or the junction table.
    fn named_by(&self, relation: &str, hint: Option<&str>) -> bool {
        let columns = self.single_columns();
        let by_table = self.target.name == relation;
        if self.is_self {
            return match hint {
                None => {
                    (by_table && !self.forward)
                        || (self.forward && columns.is_some_and(|(parent, _)| parent == relation))
                }
                Some(hint) => {
                    by_table && !self.forward && columns.is_some_and(|(_, target)| target == hint)
                }
            };
        }
        match hint {
            None => {
                by_table
                    || (!self.target.view
                        && (self.constraint.as_deref() == Some(relation)
                            || columns.is_some_and(|(parent, _)| parent == relation)))
            }
            Some(hint) => {
                by_table
                    && (self.constraint.as_deref() == Some(hint)
                        || columns.is_some_and(|(parent, target)| parent == hint || target == hint)
                        || self
                            .junction
                            .as_ref()
                            .is_some_and(|junction| junction.table.name == hint))
            }
        }
    }
}

/// Why an embed names no single relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// PGRST200.
    None,
    /// PGRST201: each candidate as `(cardinality, embedding, relationship)`, and the hint
    /// listing the spellings that would pick one.
    Ambiguous {
        candidates: Vec<(String, String, String)>,
        hint: String,
    },
}

/// Every relationship `parent` has through foreign keys: its own keys (many-to-one or
/// one-to-one), other tables' keys to it (one-to-many or one-to-one), and junctions
/// whose key covers a key to it and a key to another table (many-to-many).
fn relationships(schema: &dyn SchemaView, parent: &TableShape) -> Vec<Relationship> {
    let mut found = Vec::new();
    for fk in &parent.foreign_keys {
        if let Some(target) = schema.table(&fk.target_table)
            && fk.targets(&target)
        {
            found.push(many_to_one(parent, fk, &target));
        }
    }
    let referencing = schema.referencing(&parent.schema, &parent.name);
    for other in &referencing {
        for fk in other.foreign_keys.iter().filter(|fk| fk.targets(parent)) {
            found.push(one_to_many(parent, fk, other));
        }
    }
    for junction in &referencing {
        for left in junction.foreign_keys.iter().filter(|fk| fk.targets(parent)) {
            for right in junction
                .foreign_keys
                .iter()
                .filter(|fk| fk.name != left.name)
            {
                let columns: Vec<&String> = left.columns.iter().chain(&right.columns).collect();
                if !junction.key_covers(&columns) {
                    continue;
                }
                if let Some(target) = schema.table(&right.target_table)
                    && right.targets(&target)
                {
                    found.push(many_to_many(parent, junction, left, right, &target));
                }
            }
        }
    }
    found
}

/// The names of the tables `parent` has a relationship with (foreign keys either way,
/// junctions, functions over its row), for PostgREST's hint when an embed names none.
pub fn related_tables(schema: &dyn SchemaView, parent: &TableShape) -> Vec<String> {
    let mut names: Vec<String> = relationships(schema, parent)
        .into_iter()
        .map(|r| r.target.name)
        .collect();
    names.extend(
        parent
            .computed_relationships
            .iter()
            .map(|c| c.target_table.clone()),
    );
    names
}

/// The relationship `relation` (a table, a foreign key name or a foreign key column)
/// names from `parent`, narrowed by `hint` when there is one.
pub fn resolve(
    schema: &dyn SchemaView,
    parent: &TableShape,
    relation: &str,
    hint: Option<&str>,
) -> Result<Relationship, ResolveError> {
    // A function over the parent's row of this name is the relationship, before any
    // foreign key: PostgREST lets one override a detected relationship.
    if let Some(computed) = parent
        .computed_relationships
        .iter()
        .find(|c| c.function.name == relation)
        && let Some(target) = schema.table(&computed.target_table)
        && target.is(&computed.target_schema, &computed.target_table)
    {
        return Ok(Relationship {
            target,
            cardinality: if computed.to_one {
                Cardinality::ManyToOne
            } else {
                Cardinality::OneToMany
            },
            join: Vec::new(),
            junction: None,
            function: Some(computed.function.clone()),
            constraint: None,
            forward: computed.to_one,
            is_self: false,
        });
    }
    let mut found: Vec<Relationship> = relationships(schema, parent)
        .into_iter()
        .filter(|r| r.named_by(relation, hint))
        .collect();
    match found.len() {
        0 => Err(ResolveError::None),
        1 => Ok(found.remove(0)),
        _ => Err(ResolveError::Ambiguous {
            hint: format!(
                "Try changing '{relation}' to one of the following: {}. Find the desired relationship in the 'details' key.",
                found
                    .iter()
                    .map(|r| format!("'{}!{}'", r.target.name, r.hint_name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            candidates: found
                .iter()
                .map(|r| {
                    (
                        r.cardinality.label().to_owned(),
                        format!("{} with {}", parent.name, r.target.name),
                        r.description(parent),
                    )
                })
                .collect(),
        }),
    }
}

fn many_to_one(parent: &TableShape, fk: &ForeignKeyShape, target: &TableShape) -> Relationship {
    Relationship {
        target: target.clone(),
        cardinality: if parent.is_unique(&fk.columns) {
            Cardinality::OneToOne
        } else {
            Cardinality::ManyToOne
        },
        join: fk
            .columns
            .iter()
            .cloned()
            .zip(fk.target_columns.iter().cloned())
            .collect(),
        junction: None,
        function: None,
        constraint: Some(fk.name.clone()),
        forward: true,
        is_self: parent.is(&target.schema, &target.name),
    }
}

fn one_to_many(parent: &TableShape, fk: &ForeignKeyShape, target: &TableShape) -> Relationship {
    Relationship {
        target: target.clone(),
        cardinality: if target.is_unique(&fk.columns) {
            Cardinality::OneToOne
        } else {
            Cardinality::OneToMany
        },
        join: fk
            .target_columns
            .iter()
            .cloned()
            .zip(fk.columns.iter().cloned())
            .collect(),
        junction: None,
        function: None,
        constraint: Some(fk.name.clone()),
        forward: false,
        is_self: parent.is(&target.schema, &target.name),
    }
}

fn many_to_many(
    parent: &TableShape,
    junction: &TableShape,
    left: &ForeignKeyShape,
    right: &ForeignKeyShape,
    target: &TableShape,
) -> Relationship {
    let pairs = |fk: &ForeignKeyShape| -> Vec<(String, String)> {
        fk.columns
            .iter()
            .cloned()
            .zip(fk.target_columns.iter().cloned())
            .collect()
    };
    Relationship {
        target: target.clone(),
        cardinality: Cardinality::ManyToMany,
        join: Vec::new(),
        junction: Some(Junction {
            table: junction.clone(),
            to_parent: pairs(left),
            to_target: pairs(right),
            constraints: (left.name.clone(), right.name.clone()),
        }),
        function: None,
        constraint: None,
        forward: false,
        is_self: parent.is(&target.schema, &target.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(name: &str, columns: &[&str], target: &str, target_columns: &[&str]) -> ForeignKeyShape {
        ForeignKeyShape {
            name: name.into(),
            columns: columns.iter().map(|c| (*c).into()).collect(),
            target_schema: "public".into(),
            target_table: target.into(),
            target_columns: target_columns.iter().map(|c| (*c).into()).collect(),
        }
    }

    fn table(name: &str, pk: &[&str], fks: Vec<ForeignKeyShape>) -> TableShape {
        TableShape {
            schema: "public".into(),
            name: name.into(),
            columns: Vec::new(),
            primary_key: pk.iter().map(|c| (*c).into()).collect(),
            unique: Vec::new(),
            foreign_keys: fks,
            ..TableShape::default()
        }
    }

    fn schema() -> Vec<TableShape> {
        vec![
            table("users", &["id"], vec![]),
            table(
                "posts",
                &["id"],
                vec![
                    fk("posts_author_fkey", &["author"], "users", &["id"]),
                    fk("posts_editor_fkey", &["editor"], "users", &["id"]),
                ],
            ),
            table(
                "profiles",
                &["user_id"],
                vec![fk("profiles_user_id_fkey", &["user_id"], "users", &["id"])],
            ),
            table("tags", &["id"], vec![]),
            table(
                "post_tags",
                &["post_id", "tag_id"],
                vec![
                    fk("post_tags_post_id_fkey", &["post_id"], "posts", &["id"]),
                    fk("post_tags_tag_id_fkey", &["tag_id"], "tags", &["id"]),
                ],
            ),
        ]
    }

    fn resolve_in(
        parent: &str,
        relation: &str,
        hint: Option<&str>,
    ) -> Result<Relationship, ResolveError> {
        let tables = schema();
        let parent = tables.table(parent).expect("parent");
        resolve(&tables, &parent, relation, hint)
    }

    #[test]
    fn foreign_keys_resolve_in_both_directions_and_through_junctions() {
        let author = resolve_in("posts", "author", None).expect("by column");
        assert_eq!(author.cardinality, Cardinality::ManyToOne);
        assert_eq!(author.join, vec![("author".to_owned(), "id".to_owned())]);
        let posts = resolve_in("users", "posts", Some("posts_author_fkey")).expect("hinted");
        assert_eq!(posts.cardinality, Cardinality::OneToMany);
        assert_eq!(posts.join, vec![("id".to_owned(), "author".to_owned())]);
        let profile = resolve_in("users", "profiles", None).expect("one to one");
        assert_eq!(profile.cardinality, Cardinality::OneToOne);
        let tags = resolve_in("posts", "tags", None).expect("many to many");
        assert_eq!(tags.cardinality, Cardinality::ManyToMany);
        assert_eq!(tags.junction.expect("junction").table.name, "post_tags");
    }

    #[test]
    fn two_keys_to_one_table_are_ambiguous_until_hinted() {
        let Err(ResolveError::Ambiguous { candidates, hint }) = resolve_in("posts", "users", None)
        else {
            panic!("expected ambiguity");
        };
        assert_eq!(candidates.len(), 2);
        assert!(hint.contains("'users!posts_author_fkey'"), "{hint}");
        assert!(resolve_in("posts", "users", Some("editor")).is_ok());
        assert_eq!(
            resolve_in("posts", "users", Some("nope")).err(),
            Some(ResolveError::None)
        );
        assert_eq!(
            resolve_in("tags", "users", None).err(),
            Some(ResolveError::None)
        );
    }

    fn employees() -> Vec<TableShape> {
        vec![table(
            "employees",
            &["id"],
            vec![fk(
                "employees_manager_id_fkey",
                &["manager_id"],
                "employees",
                &["id"],
            )],
        )]
    }

    #[test]
    fn a_self_reference_is_children_by_table_and_parent_by_column() {
        let tables = employees();
        let parent = tables.table("employees").expect("table");
        let children = resolve(&tables, &parent, "employees", None).expect("children");
        assert_eq!(children.cardinality, Cardinality::OneToMany);
        assert_eq!(
            children.join,
            vec![("id".to_owned(), "manager_id".to_owned())]
        );
        let manager = resolve(&tables, &parent, "manager_id", None).expect("parent");
        assert_eq!(manager.cardinality, Cardinality::ManyToOne);
        assert_eq!(
            manager.join,
            vec![("manager_id".to_owned(), "id".to_owned())]
        );
        // A hint by the key's column picks the children; nothing else does.
        let hinted = resolve(&tables, &parent, "employees", Some("manager_id")).expect("hinted");
        assert_eq!(hinted.cardinality, Cardinality::OneToMany);
        for (relation, hint) in [
            ("employees", Some("id")),
            ("employees_manager_id_fkey", None),
            ("manager_id", Some("manager_id")),
        ] {
            assert_eq!(
                resolve(&tables, &parent, relation, hint).err(),
                Some(ResolveError::None),
                "{relation} {hint:?}"
            );
        }
    }

    #[test]
    fn ambiguity_is_described_as_postgrest_describes_it() {
        let Err(ResolveError::Ambiguous { candidates, hint }) = resolve_in("posts", "users", None)
        else {
            panic!("expected ambiguity");
        };
        assert_eq!(
            candidates,
            vec![
                (
                    "many-to-one".to_owned(),
                    "posts with users".to_owned(),
                    "posts_author_fkey using posts(author) and users(id)".to_owned()
                ),
                (
                    "many-to-one".to_owned(),
                    "posts with users".to_owned(),
                    "posts_editor_fkey using posts(editor) and users(id)".to_owned()
                ),
            ]
        );
        assert_eq!(
            hint,
            "Try changing 'users' to one of the following: 'users!posts_author_fkey', 'users!posts_editor_fkey'. Find the desired relationship in the 'details' key."
        );
        // Either side's column is a hint; the junction table is a many-to-many's.
        assert!(resolve_in("users", "posts", Some("author")).is_ok());
        assert!(resolve_in("posts", "tags", Some("post_tags")).is_ok());
        assert_eq!(
            resolve_in("posts", "tags", Some("post_tags_tag_id_fkey")).err(),
            Some(ResolveError::None)
        );
        let tables = schema();
        let posts = tables.table("posts").expect("posts");
        let tags = resolve(&tables, &posts, "tags", None).expect("tags");
        assert_eq!(
            tags.description(&posts),
            "post_tags using post_tags_post_id_fkey(post_id) and post_tags_tag_id_fkey(tag_id)"
        );
    }
}
