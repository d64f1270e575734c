//! The PostgREST dialect: a query string parsed into a typed [`QueryParams`], then
//! rendered against the tables of a [`SchemaView`] from the catalog into one SQL [`Statement`] with
//! bound parameters. Pure: no IO.

mod ast;
mod error;
mod grammar;
mod params;
mod parsec;
mod render;
mod shape;

pub use ast::{
    Aggregate, Compare, EmbedHint, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp,
    LogicTree, Nulls, Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
pub use error::ParseError;
pub use params::{QueryParams, parse_query, parse_select};
pub use render::{
    BodyFormat, Count, FunctionShape, InsertGroup, Mutation, OnConflict, ReadOptions, RenderError,
    Representation, Statement, render_call, render_insert, render_mutation, render_read,
    render_single_call,
};
pub use shape::{
    Cardinality, ComputedField, ComputedRelationship, ForeignKeyShape, FunctionName, Junction,
    Relationship, ResolveError, SchemaView, TableShape, related_tables, resolve,
};
