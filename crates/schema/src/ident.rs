//! Identifiers from admins: validated once into [`Ident`], the only way a user-chosen
//! name reaches SQL, always double-quoted.

use std::fmt;

use serde::{Deserialize, Serialize};

/// PostgreSQL truncates longer names silently; Galley refuses them instead.
const MAX_BYTES: usize = 63;

/// Names PostgREST's URL grammar gives a meaning to as query parameters, so a column with
/// one of them could not be filtered on.
const RESERVED_COLUMNS: &[&str] = &[
    "select",
    "order",
    "limit",
    "offset",
    "on_conflict",
    "columns",
    "or",
    "and",
    "not",
];

/// `/rest/v1/rpc/...` calls functions, so no table may be called `rpc`.
const RESERVED_TABLES: &[&str] = &["rpc"];

/// A name that passed [`Ident::table`] or [`Ident::column`]: 1–63 bytes of lowercase ASCII
/// letters, digits and `_`, not starting with a digit, not reserved.
///
/// The restriction is deliberate: every name is usable unquoted in the REST dialect's
/// URLs (where `.`, `,`, `(` and `)` are syntax) and reads the same in psql.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Ident(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("the name is empty")]
    Empty,
    #[error("`{0}` is longer than 63 bytes")]
    TooLong(String),
    #[error(
        "{0:?} may contain only lowercase letters a-z, digits and _, and must not start with a digit"
    )]
    BadCharacters(String),
    #[error("`{0}` is reserved")]
    Reserved(String),
}

impl Ident {
    pub fn table(name: &str) -> Result<Self, IdentError> {
        let ident = Self::parse(name)?;
        if RESERVED_TABLES.contains(&name) {
            return Err(IdentError::Reserved(name.to_owned()));
        }
        Ok(ident)
    }

    pub fn column(name: &str) -> Result<Self, IdentError> {
        let ident = Self::parse(name)?;
        if RESERVED_COLUMNS.contains(&name) {
            return Err(IdentError::Reserved(name.to_owned()));
        }
        Ok(ident)
    }

    fn parse(name: &str) -> Result<Self, IdentError> {
        if name.is_empty() {
            return Err(IdentError::Empty);
        }
        if name.len() > MAX_BYTES {
            // Show a prefix only: the rest may be hostile or huge.
            let shown: String = name.chars().take(20).collect();
            return Err(IdentError::TooLong(format!("{shown}…")));
        }
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !(first_ok && rest_ok) {
            return Err(IdentError::BadCharacters(name.to_owned()));
        }
        // Galley's own names, and PostgreSQL's system prefix.
        if name.starts_with("pg_") || name.starts_with("galley_") {
            return Err(IdentError::Reserved(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Renders as a double-quoted SQL identifier.
impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The character set admits no quote, but quoting stays correct regardless.
        write!(f, "\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl<'de> Deserialize<'de> for Ident {
    /// Deserialises unchecked as a column name; tables are re-checked with [`Ident::table`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ident::column(&name).map_err(serde::de::Error::custom)
    }
}

/// A SQL string literal. The value never contains NUL (refused earlier), and with
/// `standard_conforming_strings` on (set in every schema transaction) only
/// `'` needs doubling.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_and_render_quoted() {
        assert_eq!(
            Ident::table("todo_items").expect("valid").to_string(),
            "\"todo_items\""
        );
        assert_eq!(
            Ident::column("_private2").expect("valid").as_str(),
            "_private2"
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "Robert\"; DROP TABLE users; --",
            "a;b",
            "with space",
            "nul\0byte",
            "UPPER",
            "1starts_with_digit",
            "dots.in.name",
            "émoji",
        ] {
            assert!(Ident::table(name).is_err(), "{name:?} accepted");
        }
        let long = "a".repeat(64);
        assert!(matches!(Ident::table(&long), Err(IdentError::TooLong(_))));
        assert!(Ident::table(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn reserved_names_are_refused() {
        assert!(matches!(Ident::table("rpc"), Err(IdentError::Reserved(_))));
        assert!(matches!(
            Ident::column("order"),
            Err(IdentError::Reserved(_))
        ));
        assert!(matches!(
            Ident::table("pg_stats"),
            Err(IdentError::Reserved(_))
        ));
        assert!(matches!(
            Ident::table("galley_history"),
            Err(IdentError::Reserved(_))
        ));
        // Reserved as a column, fine as a table, and the other way round.
        assert!(Ident::table("order").is_ok());
        assert!(Ident::column("rpc").is_ok());
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("back\\slash"), "'back\\slash'");
    }
}
