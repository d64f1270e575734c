//! Table definitions as data: what the admin API accepts and the history records.

use serde::{Deserialize, Serialize};

use crate::ident::Ident;
use crate::types::ColumnType;

/// A whole table, as the admin describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDefinition {
    pub name: String,
    /// `"uuid"` (default: `id uuid DEFAULT gen_random_uuid()`), `"bigint"` (`id bigint`
    /// identity), or the names of columns defined below.
    #[serde(default)]
    pub primary_key: PrimaryKey,
    pub columns: Vec<ColumnDefinition>,
    /// Multi-column unique constraints; single columns can say `"unique": true`.
    #[serde(default)]
    pub unique: Vec<Vec<Ident>>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDefinition>,
    #[serde(default)]
    pub checks: Vec<CheckDefinition>,
    /// Adds `created_at` and `updated_at`, the latter kept current by a trigger.
    #[serde(default)]
    pub timestamps: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum PrimaryKey {
    #[default]
    Uuid,
    BigInt,
    Columns(Vec<Ident>),
}

/// The JSON forms of [`PrimaryKey`]: `"uuid"`, `"bigint"` or a list of column names.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PrimaryKeyJson {
    Word(String),
    Columns(Vec<Ident>),
}

impl Serialize for PrimaryKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PrimaryKey::Uuid => PrimaryKeyJson::Word("uuid".to_owned()),
            PrimaryKey::BigInt => PrimaryKeyJson::Word("bigint".to_owned()),
            PrimaryKey::Columns(columns) => PrimaryKeyJson::Columns(columns.clone()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PrimaryKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match PrimaryKeyJson::deserialize(deserializer)? {
            PrimaryKeyJson::Word(word) if word == "uuid" => Ok(PrimaryKey::Uuid),
            PrimaryKeyJson::Word(word) if word == "bigint" => Ok(PrimaryKey::BigInt),
            PrimaryKeyJson::Word(_) => Err(serde::de::Error::custom(
                "primary_key is \"uuid\", \"bigint\" or a list of column names",
            )),
            PrimaryKeyJson::Columns(columns) => Ok(PrimaryKey::Columns(columns)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDefinition {
    pub name: Ident,
    #[serde(rename = "type")]
    pub data_type: ColumnType,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub default: Option<DefaultValue>,
    #[serde(default)]
    pub unique: bool,
}

fn yes() -> bool {
    true
}

/// A column default: a literal checked against the column's type, or one of the
/// expressions that are safe and useful as defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DefaultValue {
    Value(serde_json::Value),
    Expression(DefaultExpression),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultExpression {
    #[serde(rename = "now()")]
    Now,
    #[serde(rename = "gen_random_uuid()")]
    GenRandomUuid,
    #[serde(rename = "auth.uid()")]
    AuthUid,
}

impl DefaultExpression {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            DefaultExpression::Now => "now()",
            DefaultExpression::GenRandomUuid => "gen_random_uuid()",
            DefaultExpression::AuthUid => "auth.uid()",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyDefinition {
    pub columns: Vec<Ident>,
    pub references: Reference,
    #[serde(default)]
    pub on_delete: ReferentialAction,
    #[serde(default)]
    pub on_update: ReferentialAction,
    /// Index the referencing columns (default): deletes on the referenced table and joins
    /// stay fast.
    #[serde(default = "yes")]
    pub index: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// A table in `public`, or `auth.users`.
    pub table: String,
    /// Defaults to the referenced table's primary key.
    #[serde(default)]
    pub columns: Option<Vec<Ident>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferentialAction {
    #[default]
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl ReferentialAction {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
            ReferentialAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// Structured checks on one column, e.g. `{"column": "age", "min": 0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckDefinition {
    pub column: Ident,
    #[serde(flatten)]
    pub rule: CheckRule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckRule {
    Min(serde_json::Value),
    Max(serde_json::Value),
    MinLength(u32),
    MaxLength(u32),
    /// A POSIX regular expression the whole value must match somewhere (`~`).
    Pattern(String),
    OneOf(Vec<serde_json::Value>),
    /// A SQL boolean expression over the table's columns, checked by PostgreSQL; it must
    /// stay one parenthesised expression (no `;`, comments or dollar quotes).
    Expression(String),
}
