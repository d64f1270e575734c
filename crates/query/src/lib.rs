//! The PostgREST dialect: a query string parsed into a typed [`QueryParams`], then
//! rendered against a [`TableShape`] from the catalog into one SQL [`Statement`] with
//! bound parameters. Pure: no IO.

mod ast;
mod error;
mod params;
mod render;
mod select;
mod syntax;

pub use ast::{
    Aggregate, Compare, EmbedHint, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp,
    LogicTree, Nulls, Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
pub use error::ParseError;
pub use params::{QueryParams, parse_query};
pub use render::{
    FunctionShape, Mutation, OnConflict, ReadOptions, RenderError, Statement, TableShape,
    render_call, render_insert, render_mutation, render_read,
};
pub use select::parse_select;
