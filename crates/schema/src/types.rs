//! The curated column types an admin can choose, parsed from their PostgreSQL spelling.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ident::Ident;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Varchar(u32),
    SmallInt,
    Integer,
    BigInt,
    Numeric {
        precision: u32,
        scale: u32,
    },
    Real,
    DoublePrecision,
    Boolean,
    Date,
    Time,
    Timestamptz,
    Interval,
    Uuid,
    Jsonb,
    Bytea,
    /// An enum type that exists in `public`.
    Enum(Ident),
    Array(Box<ColumnType>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a supported type; use text, varchar(n), smallint, integer, bigint, numeric(p,s), real, double precision, boolean, date, time, timestamptz, interval, uuid, jsonb, bytea, enum:<name>, or any of these followed by []"
)]
pub struct UnknownType(String);

impl FromStr for ColumnType {
    type Err = UnknownType;

    fn from_str(text: &str) -> Result<Self, UnknownType> {
        let unknown = || UnknownType(text.chars().take(60).collect());
        let spelled = text.trim().to_ascii_lowercase();
        if let Some(element) = spelled.strip_suffix("[]") {
            let element: ColumnType = element.parse().map_err(|_| unknown())?;
            if matches!(element, ColumnType::Array(_)) {
                return Err(unknown()); // one dimension is plenty for an API
            }
            return Ok(ColumnType::Array(Box::new(element)));
        }
        if let Some(name) = text.trim().strip_prefix("enum:") {
            return Ident::table(name)
                .map(ColumnType::Enum)
                .map_err(|_| unknown());
        }
        let simple = match spelled.as_str() {
            "text" => Some(ColumnType::Text),
            "smallint" | "int2" => Some(ColumnType::SmallInt),
            "integer" | "int" | "int4" => Some(ColumnType::Integer),
            "bigint" | "int8" => Some(ColumnType::BigInt),
            "real" | "float4" => Some(ColumnType::Real),
            "double precision" | "float8" => Some(ColumnType::DoublePrecision),
            "boolean" | "bool" => Some(ColumnType::Boolean),
            "date" => Some(ColumnType::Date),
            "time" | "time without time zone" => Some(ColumnType::Time),
            "timestamptz" | "timestamp with time zone" => Some(ColumnType::Timestamptz),
            "interval" => Some(ColumnType::Interval),
            "uuid" => Some(ColumnType::Uuid),
            "jsonb" => Some(ColumnType::Jsonb),
            "bytea" => Some(ColumnType::Bytea),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        let (name, args) = spelled
            .strip_suffix(')')
            .and_then(|rest| rest.split_once('('))
            .ok_or_else(unknown)?;
        let numbers: Vec<u32> = args
            .split(',')
            .map(|n| n.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| unknown())?;
        match (name.trim(), numbers.as_slice()) {
            ("varchar" | "character varying", [n]) if (1..=10_485_760).contains(n) => {
                Ok(ColumnType::Varchar(*n))
            }
            ("numeric" | "decimal", [p]) if (1..=1000).contains(p) => Ok(ColumnType::Numeric {
                precision: *p,
                scale: 0,
            }),
            ("numeric" | "decimal", [p, s]) if (1..=1000).contains(p) && s <= p => {
                Ok(ColumnType::Numeric {
                    precision: *p,
                    scale: *s,
                })
            }
            _ => Err(unknown()),
        }
    }
}

/// The SQL spelling, with enum names quoted.
impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Text => f.write_str("text"),
            ColumnType::Varchar(n) => write!(f, "varchar({n})"),
            ColumnType::SmallInt => f.write_str("smallint"),
            ColumnType::Integer => f.write_str("integer"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            ColumnType::Real => f.write_str("real"),
            ColumnType::DoublePrecision => f.write_str("double precision"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Time => f.write_str("time"),
            ColumnType::Timestamptz => f.write_str("timestamptz"),
            ColumnType::Interval => f.write_str("interval"),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::Jsonb => f.write_str("jsonb"),
            ColumnType::Bytea => f.write_str("bytea"),
            ColumnType::Enum(name) => write!(f, "public.{name}"),
            ColumnType::Array(element) => write!(f, "{element}[]"),
        }
    }
}

impl ColumnType {
    /// How the catalog (`format_type`) prints this type, for comparing a foreign key's
    /// column with the column it references.
    pub fn catalog_spelling(&self) -> String {
        match self {
            ColumnType::Varchar(n) => format!("character varying({n})"),
            ColumnType::Time => "time without time zone".to_owned(),
            ColumnType::Timestamptz => "timestamp with time zone".to_owned(),
            ColumnType::Enum(name) => name.as_str().to_owned(),
            ColumnType::Array(element) => format!("{}[]", element.catalog_spelling()),
            other => other.to_string(),
        }
    }
}

impl Serialize for ColumnType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ColumnType::Enum(name) => serializer.serialize_str(&format!("enum:{}", name.as_str())),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for (input, sql) in [
            ("text", "text"),
            ("VARCHAR(20)", "varchar(20)"),
            ("int", "integer"),
            ("numeric(10, 2)", "numeric(10,2)"),
            ("timestamp with time zone", "timestamptz"),
            ("uuid[]", "uuid[]"),
            ("enum:mood", "public.\"mood\""),
        ] {
            assert_eq!(
                input.parse::<ColumnType>().expect(input).to_string(),
                sql,
                "{input}"
            );
        }
    }

    #[test]
    fn unsupported_or_hostile_types_are_refused() {
        for input in [
            "serial",
            "text[][]",
            "varchar(0)",
            "numeric(2,3)",
            "integer); DROP TABLE x; --",
            "enum:Bad\"Name",
            "money",
        ] {
            assert!(input.parse::<ColumnType>().is_err(), "{input} accepted");
        }
    }

    #[test]
    fn catalog_spellings_match_format_type() {
        assert_eq!(
            ColumnType::Varchar(8).catalog_spelling(),
            "character varying(8)"
        );
        assert_eq!(
            ColumnType::Array(Box::new(ColumnType::Timestamptz)).catalog_spelling(),
            "timestamp with time zone[]"
        );
        assert_eq!(ColumnType::BigInt.catalog_spelling(), "bigint");
    }
}
