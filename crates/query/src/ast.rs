//! The typed request: what a query string asks for, before any name is resolved.

/// A column, possibly followed by JSON navigation (`data->a->>b`, `arr->0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub json_path: Vec<JsonStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    /// `->`: the JSON value.
    Arrow(JsonKey),
    /// `->>`: the value as text.
    DoubleArrow(JsonKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonKey {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Sum,
    Avg,
    Max,
    Min,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedHint {
    Inner,
    Left,
    /// A foreign key constraint name, a foreign key column, or a junction table.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `[alias:]field[::cast][.agg()[::cast]]`
    Field {
        alias: Option<String>,
        field: Field,
        cast: Option<String>,
        aggregate: Option<(Aggregate, Option<String>)>,
    },
    /// `[alias:]count()[::cast]`
    Count {
        alias: Option<String>,
        cast: Option<String>,
    },
    /// `[alias:]rel[!hint][!inner](select)` or `...rel(select)`
    Embed {
        alias: Option<String>,
        relation: String,
        hints: Vec<EmbedHint>,
        spread: bool,
        select: Vec<SelectItem>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Match,
    Imatch,
    /// `cs`: contains (`@>`)
    Contains,
    /// `cd`: contained in (`<@`)
    ContainedIn,
    /// `ov`: overlaps (`&&`)
    Overlaps,
    /// `sl`: strictly left of (`<<`)
    StrictlyLeft,
    /// `sr`: strictly right of (`>>`)
    StrictlyRight,
    /// `nxr`: does not extend to the right of (`&<`)
    NotExtendRight,
    /// `nxl`: does not extend to the left of (`&>`)
    NotExtendLeft,
    /// `adj`: adjacent to (`-|-`)
    Adjacent,
    IsDistinct,
}

impl Compare {
    /// Whether `(any)`/`(all)` may follow the operator.
    pub fn quantifiable(self) -> bool {
        matches!(
            self,
            Compare::Eq
                | Compare::Gt
                | Compare::Gte
                | Compare::Lt
                | Compare::Lte
                | Compare::Like
                | Compare::Ilike
                | Compare::Match
                | Compare::Imatch
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    NotNull,
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsKind {
    /// `fts`: to_tsquery
    Fts,
    /// `plfts`: plainto_tsquery
    Plain,
    /// `phfts`: phraseto_tsquery
    Phrase,
    /// `wfts`: websearch_to_tsquery
    Websearch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A binary operator against one value (or, quantified, a `{a,b}` list).
    Compare {
        op: Compare,
        quantifier: Option<Quantifier>,
        value: String,
    },
    /// `in.(a,b,"c,d")`
    In(Vec<String>),
    Is(IsValue),
    Fts {
        kind: FtsKind,
        config: Option<String>,
        value: String,
    },
}

/// `[not.]op.value` on a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: Field,
    pub negated: bool,
    pub operation: Operation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
}

/// `or=(a.eq.1,and(b.gt.2,c.is.null))`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    Node {
        op: LogicOp,
        negated: bool,
        children: Vec<LogicTree>,
    },
    /// A filter inside a tree.
    Leaf { filter: Filter },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderDirection {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    First,
    Last,
}

/// One `order` term: a field, or `rel(field)` for a to-one embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    pub relation: Option<String>,
    pub field: Field,
    pub direction: Option<OrderDirection>,
    pub nulls: Option<Nulls>,
}
