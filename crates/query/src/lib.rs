//! The PostgREST dialect, as far as the URL goes: a query string parsed into a typed
//! [`QueryParams`]. Pure: no IO, no SQL. Names are not checked here; the gateway checks
//! every name against the catalog before anything reaches SQL.

mod ast;
mod error;
mod params;
mod select;
mod syntax;

pub use ast::{
    Aggregate, Compare, EmbedHint, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp,
    LogicTree, Nulls, Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
pub use error::ParseError;
pub use params::{QueryParams, parse_query};
pub use select::parse_select;
