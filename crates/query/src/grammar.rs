//! The grammar of each query parameter, rule for rule as PostgREST parses it, so that what
//! it accepts, what it ignores after a complete parse, and where and why it refuses the
//! rest all match. Built on [`crate::parsec`]; each rule returns the typed request of
//! [`crate::ast`].
//!
//! Galley departs from PostgREST in two ways, both for the security checklist:
//!
//! - a parameter must be consumed whole ([`whole`]): PostgREST ignores what follows a
//!   complete parse (`id=is.null;drop` reads as `is.null`), Galley refuses it, with the
//!   place and the expectations an `eof` at the end of the rule gives;
//! - limits of its own: how deep embeds and logic trees nest, and at most one hint and
//!   one join type on an embed. Crossing one stops the parse (recorded in [`Limits`])
//!   rather than recursing further or picking one of two.

use std::borrow::Cow;
use std::cell::Cell;

use crate::ast::{
    Aggregate, Compare, EmbedHint, Field, Filter, FtsKind, IsValue, JsonKey, JsonStep, LogicOp,
    LogicTree, Nulls, Operation, OrderDirection, OrderTerm, Quantifier, SelectItem,
};
use crate::parsec::{
    Expect, Reply, St, char_, eof, look_ahead, many, many1, not_followed_by_char,
    not_followed_by_none_of, optional, satisfy, sep_by1, span, string,
};

type R<'a, T> = Reply<'a, T>;

/// How deep embeds may nest below the root's `select`.
pub(crate) const MAX_SELECT_DEPTH: usize = 5;

/// How deep `and(...)`/`or(...)` may nest inside a logic tree.
pub(crate) const MAX_TREE_DEPTH: usize = 10;

/// Which of Galley's limits a parse crossed, if any, as what to tell the client.
#[derive(Default)]
pub(crate) struct Limits {
    pub(crate) crossed: Cell<Option<&'static str>>,
}

impl Limits {
    fn cross<'a, T>(&self, st: St<'a>, details: &'static str) -> R<'a, T> {
        self.crossed.set(Some(details));
        Reply::abort(st)
    }
}

/// `rule <* eof`: the rule, then nothing more.
pub(crate) fn whole<'a, T>(st: St<'a>, rule: impl FnOnce(St<'a>) -> R<'a, T>) -> R<'a, T> {
    rule(st).left(eof)
}

const FIELD_NAME: Expect = Expect::Label("field name (* or [a..z0..9_$])");

fn collect(chars: Vec<char>) -> String {
    chars.into_iter().collect()
}

/// `many (oneOf " \t")`
fn ws(st: St<'_>) -> R<'_, ()> {
    span(st, false, |c| c == ' ' || c == '\t', &[]).map(|_| ())
}

/// `ws *> p <* ws`
fn lexeme<'a, T>(st: St<'a>, p: impl FnOnce(St<'a>) -> R<'a, T>) -> R<'a, T> {
    ws(st).right(p).left(ws)
}

fn digit(st: St<'_>) -> R<'_, char> {
    satisfy(st, |c| c.is_ascii_digit()).label(Expect::Label("digit"))
}

fn any_char(st: St<'_>) -> R<'_, char> {
    satisfy(st, |_| true)
}

fn none_of<'a>(st: St<'a>, cs: &'static str) -> R<'a, char> {
    satisfy(st, |c| !cs.contains(c))
}

/// `char '.' <?> "delimiter (.)"`
fn delimiter(st: St<'_>) -> R<'_, char> {
    char_(st, '.').label(Expect::Label("delimiter (.)"))
}

/// `"..."` with `\` escaping any character.
fn quoted_value(st: St<'_>) -> R<'_, String> {
    char_(st, '"')
        .right(|st| {
            many(st, |st| {
                none_of(st, "\\\"").or(st, |st| char_(st, '\\').right(any_char))
            })
        })
        .left(|st| char_(st, '"'))
        .map(collect)
}

/// A `-` that does not start `->`.
fn dash(st: St<'_>) -> R<'_, ()> {
    char_(st, '-')
        .right(|st| not_followed_by_char(st, '>'))
        .attempt()
}

/// Pieces joined by dashes that do not start an arrow: `first-name`. Borrowed from the
/// text when there is one piece, as there nearly always is: names are read again on
/// every alternative the grammar backtracks from.
fn sep_by_dash<'a>(st: St<'a>, piece: fn(St<'a>) -> R<'a, &'a str>) -> R<'a, Cow<'a, str>> {
    piece(st).then(|first, st| {
        many(st, |st| dash(st).right(piece)).map(move |rest| {
            if rest.is_empty() {
                Cow::Borrowed(first)
            } else {
                Cow::Owned(
                    std::iter::once(first)
                        .chain(rest)
                        .collect::<Vec<_>>()
                        .join("-"),
                )
            }
        })
    })
}

/// Letters, digits, `_`, spaces and `$`, trimmed.
fn identifier(st: St<'_>) -> R<'_, &str> {
    // `many1 (letter <|> digit <|> oneOf "_ $")`
    span(
        st,
        true,
        |c| c.is_alphabetic() || c.is_ascii_digit() || c == '_' || c == ' ' || c == '$',
        &[Expect::Label("letter"), Expect::Label("digit")],
    )
    .map(str::trim)
}

/// A column, relation or alias: quoted, or identifiers joined by dashes.
fn name(st: St<'_>) -> R<'_, Cow<'_, str>> {
    quoted_value(st)
        .map(Cow::Owned)
        .or(st, |st| sep_by_dash(st, identifier))
        .label(FIELD_NAME)
}

/// [`name`], owned.
pub(crate) fn field_name(st: St<'_>) -> R<'_, String> {
    name(st).map(Cow::into_owned)
}

fn json_key_identifier(st: St<'_>) -> R<'_, &str> {
    span(st, true, |c| !"(-:.,>)".contains(c), &[]).map(str::trim)
}

fn json_key_name(st: St<'_>) -> R<'_, String> {
    quoted_value(st)
        .map(Cow::Owned)
        .or(st, |st| sep_by_dash(st, json_key_identifier))
        .map(Cow::into_owned)
        .label(Expect::Label(
            "any non reserved character different from: .,>()",
        ))
}

/// What may follow an array index: another arrow, a cast, a `.`, a `,` or the end.
fn json_index_end(st: St<'_>) -> R<'_, ()> {
    look_ahead(st, |st| string(st, "->"))
        .attempt()
        .map(|_| ())
        .or(st, |st| {
            look_ahead(st, |st| string(st, "::")).attempt().map(|_| ())
        })
        .or(st, |st| {
            look_ahead(st, |st| string(st, ".")).attempt().map(|_| ())
        })
        .or(st, |st| {
            look_ahead(st, |st| string(st, ",")).attempt().map(|_| ())
        })
        .or(st, |st| eof(st).attempt())
}

fn json_index(st: St<'_>) -> R<'_, JsonKey> {
    char_(st, '-')
        .or(st, |st| Reply::pure('+', st))
        .then(|sign, st| {
            many1(st, digit).map(move |digits| {
                let text: String = std::iter::once(sign).chain(digits).collect();
                match text.parse::<i64>() {
                    Ok(index) => JsonKey::Index(index),
                    // Too long for an index: PostgreSQL would refuse it as one anyway.
                    Err(_) => JsonKey::Key(text),
                }
            })
        })
        .left(json_index_end)
}

fn json_operation(st: St<'_>) -> R<'_, JsonStep> {
    string(st, "->>")
        .attempt()
        .or(st, |st| string(st, "->").attempt())
        .then(|arrow, st| {
            json_index(st)
                .attempt()
                .or(st, |st| json_key_name(st).map(JsonKey::Key).attempt())
                .map(|key| {
                    if arrow == "->>" {
                        JsonStep::DoubleArrow(key)
                    } else {
                        JsonStep::Arrow(key)
                    }
                })
        })
}

/// A name and its JSON path, between optional spaces.
fn field(st: St<'_>) -> R<'_, Field> {
    lexeme(st, |st| {
        name(st).then(|name, st| {
            many(st, json_operation).map(|json_path| Field {
                name: name.into_owned(),
                json_path,
            })
        })
    })
}

/// `alias:` (a single colon).
fn alias(st: St<'_>) -> R<'_, Option<Cow<'_, str>>> {
    optional(st, |st| {
        name(st)
            .left(|st| char_(st, ':').right(|st| not_followed_by_char(st, ':')))
            .attempt()
    })
}

fn cast_suffix(st: St<'_>) -> R<'_, Option<String>> {
    optional(st, |st| {
        string(st, "::")
            .right(identifier)
            .map(|cast| cast.to_ascii_lowercase())
    })
}

/// `select=`: items separated by commas.
pub(crate) fn field_forest<'a>(
    st: St<'a>,
    limits: &Limits,
    depth: usize,
) -> R<'a, Vec<SelectItem>> {
    sep_by1(
        st,
        |st| field_tree(st, limits, depth),
        |st| lexeme(st, |st| char_(st, ',')),
    )
    .or(st, |st| Reply::pure(Vec::new(), st))
}

/// What comes before an embed's parentheses.
struct EmbedHead {
    alias: Option<String>,
    relation: String,
    hints: Vec<EmbedHint>,
    spread: bool,
}

fn field_tree<'a>(st: St<'a>, limits: &Limits, depth: usize) -> R<'a, SelectItem> {
    let embedded = |head: EmbedHead, st: St<'a>| {
        char_(st, '(')
            .then(|_, st| {
                if depth >= MAX_SELECT_DEPTH {
                    limits.cross(st, "embedding nests deeper than 5 levels")
                } else {
                    field_forest(st, limits, depth + 1)
                }
            })
            .left(|st| char_(st, ')'))
            .map(|select| SelectItem::Embed {
                alias: head.alias,
                relation: head.relation,
                hints: head.hints,
                spread: head.spread,
                select,
            })
    };
    spread_relation(st, limits)
        .attempt()
        .then(embedded)
        .or(st, |st| {
            relation_select(st, limits).attempt().then(embedded)
        })
        .or(st, field_select)
}

/// `!hint`, `!inner`, `!left`: a hint and a join type at most, in either order.
fn embed_params<'a>(st: St<'a>, limits: &Limits) -> R<'a, Vec<EmbedHint>> {
    fn param(st: St<'_>) -> R<'_, EmbedHint> {
        char_(st, '!').right(|st| {
            string(st, "left")
                .attempt()
                .map(|_| EmbedHint::Left)
                .or(st, |st| {
                    string(st, "inner").attempt().map(|_| EmbedHint::Inner)
                })
                .or(st, |st| field_name(st).attempt().map(EmbedHint::Named))
        })
    }
    optional(st, param).then(|first, st| {
        optional(st, param).then(|second, st| {
            let hints: Vec<EmbedHint> = first.into_iter().chain(second).collect();
            let named = hints
                .iter()
                .filter(|h| matches!(h, EmbedHint::Named(_)))
                .count();
            if named > 1 || hints.len() - named > 1 {
                // PostgREST keeps the first of two; which was meant is not known.
                return limits.cross(st, "at most a hint and a join type may follow a relation");
            }
            Reply::pure(hints, st)
        })
    })
}

fn before_parenthesis(st: St<'_>) -> R<'_, ()> {
    look_ahead(st, |st| string(st, "(")).attempt().map(|_| ())
}

fn relation_select<'a>(st: St<'a>, limits: &Limits) -> R<'a, EmbedHead> {
    lexeme(st, |st| {
        alias(st).then(|alias, st| {
            name(st).then(|relation, st| {
                if relation == "count" {
                    return Reply::zero(st);
                }
                embed_params(st, limits)
                    .left(before_parenthesis)
                    .map(|hints| EmbedHead {
                        alias: alias.map(Cow::into_owned),
                        relation: relation.into_owned(),
                        hints,
                        spread: false,
                    })
            })
        })
    })
}

fn spread_relation<'a>(st: St<'a>, limits: &Limits) -> R<'a, EmbedHead> {
    lexeme(st, |st| {
        string(st, "...").right(field_name).then(|relation, st| {
            embed_params(st, limits)
                .left(before_parenthesis)
                .map(|hints| EmbedHead {
                    alias: None,
                    relation,
                    hints,
                    spread: true,
                })
        })
    })
}

/// What may follow a select item: `)`, `,` or the end.
fn select_end(st: St<'_>) -> R<'_, ()> {
    look_ahead(st, |st| string(st, ")"))
        .attempt()
        .map(|_| ())
        .or(st, |st| {
            look_ahead(st, |st| string(st, ",")).attempt().map(|_| ())
        })
        .or(st, |st| eof(st).attempt())
}

fn aggregation(st: St<'_>) -> R<'_, Aggregate> {
    string(st, "sum")
        .map(|_| Aggregate::Sum)
        .or(st, |st| string(st, "avg").map(|_| Aggregate::Avg))
        .or(st, |st| string(st, "count").map(|_| Aggregate::Count))
        .or(st, |st| string(st, "max").attempt().map(|_| Aggregate::Max))
        .or(st, |st| string(st, "min").attempt().map(|_| Aggregate::Min))
}

fn field_select(st: St<'_>) -> R<'_, SelectItem> {
    lexeme(st, |st| {
        string(st, "*")
            .left(select_end)
            .attempt()
            .map(|_| SelectItem::Star)
            .or(st, |st| {
                alias(st)
                    .then(|alias, st| {
                        string(st, "count()")
                            .right(cast_suffix)
                            .left(select_end)
                            .map(|cast| SelectItem::Count {
                                alias: alias.map(Cow::into_owned),
                                cast,
                            })
                    })
                    .attempt()
            })
            .or(st, |st| {
                alias(st).then(|alias, st| {
                    field(st).then(|field, st| {
                        cast_suffix(st).then(|cast, st| {
                            optional(st, |st| {
                                char_(st, '.')
                                    .right(aggregation)
                                    .left(|st| string(st, "()"))
                                    .attempt()
                            })
                            .then(|aggregate, st| {
                                cast_suffix(st).left(select_end).map(|aggregate_cast| {
                                    SelectItem::Field {
                                        alias: alias.map(Cow::into_owned),
                                        field,
                                        cast,
                                        aggregate: aggregate.map(|a| (a, aggregate_cast)),
                                    }
                                })
                            })
                        })
                    })
                })
            })
    })
}

/// A filter's value: the rest of the text.
pub(crate) fn single_value(st: St<'_>) -> R<'_, String> {
    span(st, false, |_| true, &[]).map(str::to_owned)
}

/// A value inside a logic tree: quoted, an array literal `{...}`, or up to `,` or `)`.
fn logic_value(st: St<'_>) -> R<'_, String> {
    quoted_value(st)
        .left(|st| not_followed_by_none_of(st, ",)"))
        .attempt()
        .or(st, |st| {
            string(st, "{")
                .right(|st| span(st, false, |c| c != '{' && c != '}', &[]))
                .left(|st| string(st, "}"))
                .map(|inner| format!("{{{inner}}}"))
                .attempt()
        })
        .or(st, |st| {
            span(st, false, |c| c != ',' && c != ')', &[]).map(str::to_owned)
        })
}

/// `(a,b,"c,d")`
fn list_value(st: St<'_>) -> R<'_, Vec<String>> {
    lexeme(st, |st| char_(st, '('))
        .right(|st| {
            sep_by1(
                st,
                |st| {
                    quoted_value(st)
                        .left(|st| not_followed_by_none_of(st, ",)"))
                        .attempt()
                        .or(st, |st| {
                            span(st, false, |c| c != ',' && c != ')', &[]).map(str::to_owned)
                        })
                },
                |st| char_(st, ','),
            )
        })
        .left(|st| lexeme(st, |st| char_(st, ')')))
}

fn keyword<'a>(st: St<'a>, word: &'static str) -> R<'a, ()> {
    string(st, word).right(delimiter).attempt().map(|_| ())
}

fn case_insensitive<'a>(st: St<'a>, word: &'static str) -> R<'a, ()> {
    let mut reply = Reply::pure((), st);
    for c in word.chars() {
        reply = reply.then(move |(), st| {
            char_(st, c)
                .or(st, |st| char_(st, c.to_ascii_uppercase()))
                .map(|_| ())
        });
    }
    reply
}

fn is_value(st: St<'_>) -> R<'_, IsValue> {
    let word = |word: &'static str, value: IsValue| {
        move |st| case_insensitive(st, word).attempt().map(move |()| value)
    };
    word("null", IsValue::Null)(st)
        .or(st, word("not_null", IsValue::NotNull))
        .or(st, word("true", IsValue::True))
        .or(st, word("false", IsValue::False))
        .or(st, word("unknown", IsValue::Unknown))
        .label(Expect::Label(
            "isVal: (null, not_null, true, false, unknown)",
        ))
}

fn choose<'a, T: Copy>(st: St<'a>, words: &[(&'static str, T)]) -> R<'a, T> {
    let mut reply = Reply::zero(st);
    for &(word, value) in words {
        reply = reply.or(st, |st| string(st, word).attempt().map(move |_| value));
    }
    reply
}

fn simple_operator(st: St<'_>) -> R<'_, Compare> {
    choose(
        st,
        &[
            ("neq", Compare::Neq),
            ("cs", Compare::Contains),
            ("cd", Compare::ContainedIn),
            ("ov", Compare::Overlaps),
            ("sl", Compare::StrictlyLeft),
            ("sr", Compare::StrictlyRight),
            ("nxr", Compare::NotExtendRight),
            ("nxl", Compare::NotExtendLeft),
            ("adj", Compare::Adjacent),
        ],
    )
    .label(Expect::Label("unknown single value operator"))
}

fn quantifiable_operator(st: St<'_>) -> R<'_, Compare> {
    choose(
        st,
        &[
            ("eq", Compare::Eq),
            ("gte", Compare::Gte),
            ("gt", Compare::Gt),
            ("lte", Compare::Lte),
            ("lt", Compare::Lt),
            ("like", Compare::Like),
            ("ilike", Compare::Ilike),
            ("match", Compare::Match),
            ("imatch", Compare::Imatch),
        ],
    )
    .label(Expect::Label("unknown single value operator"))
}

type ValueRule = for<'a> fn(St<'a>) -> R<'a, String>;

fn operation(st: St<'_>, value: ValueRule) -> R<'_, Operation> {
    keyword(st, "in")
        .right(list_value)
        .map(|list| {
            // `in.()` reads as one empty value, which means no value at all.
            if list.len() == 1 && list[0].is_empty() {
                Operation::In(Vec::new())
            } else {
                Operation::In(list)
            }
        })
        .or(st, |st| {
            keyword(st, "is").right(is_value).map(Operation::Is)
        })
        .or(st, |st| {
            keyword(st, "isdistinct")
                .right(value)
                .map(|value| Operation::Compare {
                    op: Compare::IsDistinct,
                    quantifier: None,
                    value,
                })
        })
        .or(st, |st| {
            choose(
                st,
                &[
                    ("fts", FtsKind::Fts),
                    ("plfts", FtsKind::Plain),
                    ("phfts", FtsKind::Phrase),
                    ("wfts", FtsKind::Websearch),
                ],
            )
            .then(|kind, st| {
                optional(st, |st| {
                    char_(st, '(')
                        .right(identifier)
                        .left(|st| char_(st, ')'))
                        .attempt()
                })
                .then(|config, st| {
                    delimiter(st).right(value).map(|value| Operation::Fts {
                        kind,
                        config: config.map(str::to_owned),
                        value,
                    })
                })
            })
            .attempt()
        })
        .or(st, |st| {
            simple_operator(st)
                .then(|op, st| {
                    delimiter(st).right(value).map(|value| Operation::Compare {
                        op,
                        quantifier: None,
                        value,
                    })
                })
                .attempt()
        })
        .or(st, |st| {
            quantifiable_operator(st)
                .then(|op, st| {
                    optional(st, |st| {
                        char_(st, '(')
                            .right(|st| {
                                string(st, "any")
                                    .attempt()
                                    .map(|_| Quantifier::Any)
                                    .or(st, |st| string(st, "all").map(|_| Quantifier::All))
                            })
                            .left(|st| char_(st, ')'))
                            .attempt()
                    })
                    .then(|quantifier, st| {
                        delimiter(st).right(value).map(|value| Operation::Compare {
                            op,
                            quantifier,
                            value,
                        })
                    })
                })
                .attempt()
        })
        .label(Expect::Label("operator (eq, gt, ...)"))
}

/// `[not.]operator.value`: whether it is negated, and the operation.
pub(crate) fn operator_expression(st: St<'_>, value: ValueRule) -> R<'_, (bool, Operation)> {
    keyword(st, "not")
        .map(|()| true)
        .or(st, |st| Reply::pure(false, st))
        .then(|negated, st| operation(st, value).map(|operation| (negated, operation)))
}

/// `order=`: terms separated by commas.
pub(crate) fn order(st: St<'_>) -> R<'_, Vec<OrderTerm>> {
    fn end(st: St<'_>) -> R<'_, ()> {
        look_ahead(st, |st| char_(st, ','))
            .attempt()
            .map(|_| ())
            .or(st, |st| eof(st).attempt())
    }
    fn after_dot<'a, T: Copy>(st: St<'a>, words: [(&'static str, T); 2]) -> R<'a, T> {
        let [(first, a), (second, b)] = words;
        delimiter(st)
            .right(|st| string(st, first))
            .attempt()
            .map(move |_| a)
            .or(st, |st| {
                delimiter(st)
                    .right(|st| string(st, second))
                    .attempt()
                    .map(move |_| b)
            })
    }
    fn finish<'a>(st: St<'a>, relation: Option<String>, field: Field) -> R<'a, OrderTerm> {
        optional(st, |st| {
            after_dot(
                st,
                [("asc", OrderDirection::Asc), ("desc", OrderDirection::Desc)],
            )
        })
        .then(|direction, st| {
            optional(st, |st| {
                after_dot(
                    st,
                    [("nullsfirst", Nulls::First), ("nullslast", Nulls::Last)],
                )
            })
            .left(end)
            .or(st, |st| end(st).map(|()| None))
            .map(|nulls| OrderTerm {
                relation,
                field,
                direction,
                nulls,
            })
        })
    }
    fn relation_term(st: St<'_>) -> R<'_, OrderTerm> {
        field_name(st).then(|relation, st| {
            char_(st, '(')
                .right(field)
                .left(|st| char_(st, ')'))
                .then(|field, st| finish(st, Some(relation), field))
        })
    }
    fn term(st: St<'_>) -> R<'_, OrderTerm> {
        field(st).then(|field, st| finish(st, None, field))
    }
    sep_by1(
        st,
        |st| lexeme(st, |st| relation_term(st).attempt().or(st, term)),
        |st| char_(st, ','),
    )
}

/// `and(...)`, `not.or(...)` or a filter, as the value of `and=`/`or=` prefixed by its
/// operator.
pub(crate) fn logic_tree<'a>(st: St<'a>, limits: &Limits, depth: usize) -> R<'a, LogicTree> {
    field(st)
        .left(delimiter)
        .then(|field, st| {
            operator_expression(st, logic_value).map(|(negated, operation)| LogicTree::Leaf {
                filter: Filter {
                    field,
                    negated,
                    operation,
                },
            })
        })
        .attempt()
        .or(st, |st| {
            keyword(st, "not")
                .map(|()| true)
                .or(st, |st| Reply::pure(false, st))
                .label(Expect::Label("negation operator (not)"))
                .then(|negated, st| {
                    string(st, "and")
                        .attempt()
                        .map(|_| LogicOp::And)
                        .or(st, |st| string(st, "or").map(|_| LogicOp::Or))
                        .label(Expect::Label("logic operator (and, or)"))
                        .then(|op, st| {
                            lexeme(st, |st| char_(st, '('))
                                .then(|_, st| {
                                    if depth >= MAX_TREE_DEPTH {
                                        return limits
                                            .cross(st, "logic trees nest deeper than 10 levels");
                                    }
                                    sep_by1(
                                        st,
                                        |st| logic_tree(st, limits, depth + 1),
                                        |st| lexeme(st, |st| char_(st, ',')),
                                    )
                                })
                                .left(|st| lexeme(st, |st| char_(st, ')')))
                                .map(|children| LogicTree::Node {
                                    op,
                                    negated,
                                    children,
                                })
                        })
                })
        })
}

/// A filter's key: embed names and the column, separated by dots, then a JSON path.
pub(crate) fn tree_path(st: St<'_>) -> R<'_, (Vec<String>, Field)> {
    sep_by1(st, field_name, delimiter).then(|mut names, st| {
        many(st, json_operation).map(|json_path| {
            let name = names.pop().unwrap_or_default();
            (names, Field { name, json_path })
        })
    })
}

/// An `and`/`or` key: names separated by dots.
pub(crate) fn logic_path(st: St<'_>) -> R<'_, Vec<String>> {
    sep_by1(st, field_name, delimiter)
}

/// `columns=`, `on_conflict=`: names separated by commas.
pub(crate) fn columns(st: St<'_>) -> R<'_, Vec<String>> {
    sep_by1(st, field_name, |st| lexeme(st, |st| char_(st, ',')))
}

/// The shapes nearly every request uses, read without the combinators: plain names,
/// `*`, `op.value` with a plain operator, `name[.asc|.desc][.nullsfirst|.nullslast]`.
/// Each answers only for text the grammar reads the same way (a test holds them to it)
/// and leaves everything else, errors included, to the grammar; they exist because the
/// grammar's backtracking reads a name several times, which costs more than the rest of
/// the parse.
pub(crate) mod shortcut {
    use crate::ast::{
        Compare, EmbedHint, Field, Filter, JsonKey, JsonStep, LogicOp, LogicTree, Nulls, Operation,
        OrderDirection, OrderTerm, SelectItem,
    };

    /// `[A-Za-z0-9_]+`: a name every rule reads whole and as is.
    pub(crate) fn plain_name(text: &str) -> Option<Field> {
        let plain =
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        plain.then(|| Field {
            name: text.to_owned(),
            json_path: Vec::new(),
        })
    }

    /// `select=` as `*`, `[alias:]name[->key...]` and `[alias:]rel[!hint][!inner](...)`
    /// with plain names and keys, separated by bare commas.
    pub(crate) fn select(text: &str) -> Option<Vec<SelectItem>> {
        if text.is_empty() {
            return None;
        }
        forest(text, 0)
    }

    fn forest(text: &str, depth: usize) -> Option<Vec<SelectItem>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        let mut items = Vec::new();
        let (mut open, mut start) = (0usize, 0usize);
        for (at, b) in text.bytes().enumerate() {
            match b {
                b'(' => open += 1,
                b')' => open = open.checked_sub(1)?,
                b',' if open == 0 => {
                    items.push(item(&text[start..at], depth)?);
                    start = at + 1;
                }
                _ => {}
            }
        }
        if open != 0 {
            return None;
        }
        items.push(item(&text[start..], depth)?);
        Some(items)
    }

    /// `alias:rest`, the alias plain and the rest free of colons.
    fn alias(text: &str) -> Option<(Option<String>, &str)> {
        match text.split_once(':') {
            None => Some((None, text)),
            Some((alias, rest)) if !rest.contains(':') => {
                Some((Some(plain_name(alias)?.name), rest))
            }
            Some(_) => None,
        }
    }

    fn item(text: &str, depth: usize) -> Option<SelectItem> {
        if text == "*" {
            return Some(SelectItem::Star);
        }
        if let Some(open) = text.find('(') {
            let inner = text.strip_suffix(')')?.get(open + 1..)?;
            let (alias, head) = alias(&text[..open])?;
            let mut words = head.split('!');
            let relation = plain_name(words.next()?)?.name;
            if relation == "count" || depth >= super::MAX_SELECT_DEPTH {
                return None;
            }
            let mut hints = Vec::new();
            for word in words {
                hints.push(match word {
                    "inner" => EmbedHint::Inner,
                    "left" => EmbedHint::Left,
                    // The grammar reads `!leftover` as `!left` and stops at `over`.
                    _ if word.starts_with("left") || word.starts_with("inner") => return None,
                    _ => EmbedHint::Named(plain_name(word)?.name),
                });
            }
            let named = hints
                .iter()
                .filter(|h| matches!(h, EmbedHint::Named(_)))
                .count();
            if named > 1 || hints.len() - named > 1 {
                return None;
            }
            return Some(SelectItem::Embed {
                alias,
                relation,
                hints,
                spread: false,
                select: forest(inner, depth + 1)?,
            });
        }
        let (alias, rest) = alias(text)?;
        Some(SelectItem::Field {
            alias,
            field: field(rest)?,
            cast: None,
            aggregate: None,
        })
    }

    /// `name`, then `->key` and `->>key` steps whose keys start with a letter or `_`.
    fn field(text: &str) -> Option<Field> {
        let mut steps = text.split("->");
        let mut field = plain_name(steps.next()?)?;
        for step in steps {
            let (text, key) = match step.strip_prefix('>') {
                Some(key) => (true, key),
                None => (false, step),
            };
            let key = plain_name(key)?.name;
            if key.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            field.json_path.push(if text {
                JsonStep::DoubleArrow(JsonKey::Key(key))
            } else {
                JsonStep::Arrow(JsonKey::Key(key))
            });
        }
        Some(field)
    }

    /// A filter's value `op.value` for an operator that takes the rest as its value.
    pub(crate) fn filter(value: &str) -> Option<Operation> {
        let (op, value) = value.split_once('.')?;
        let op = match op {
            "eq" => Compare::Eq,
            "neq" => Compare::Neq,
            "gt" => Compare::Gt,
            "gte" => Compare::Gte,
            "lt" => Compare::Lt,
            "lte" => Compare::Lte,
            "like" => Compare::Like,
            "ilike" => Compare::Ilike,
            "match" => Compare::Match,
            "imatch" => Compare::Imatch,
            "cs" => Compare::Contains,
            "cd" => Compare::ContainedIn,
            "ov" => Compare::Overlaps,
            "sl" => Compare::StrictlyLeft,
            "sr" => Compare::StrictlyRight,
            "nxr" => Compare::NotExtendRight,
            "nxl" => Compare::NotExtendLeft,
            "adj" => Compare::Adjacent,
            "isdistinct" => Compare::IsDistinct,
            _ => return None,
        };
        Some(Operation::Compare {
            op,
            quantifier: None,
            value: value.to_owned(),
        })
    }

    /// A logic tree's text (`or(...)`, `not.and(...)`) whose children are filters
    /// `name.op.value` with a plain name and operator, and a value that is free of
    /// `,()"{}` or is one `{...}` array free of the others.
    pub(crate) fn logic(text: &str) -> Option<LogicTree> {
        let (negated, text) = match text.strip_prefix("not.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (op, inner) = if let Some(rest) = text.strip_prefix("or(") {
            (LogicOp::Or, rest)
        } else {
            (LogicOp::And, text.strip_prefix("and(")?)
        };
        let inner = inner.strip_suffix(')')?;
        let mut children = Vec::new();
        let (mut braces, mut start) = (false, 0usize);
        for (at, b) in inner.bytes().enumerate() {
            match b {
                b'{' if !braces => braces = true,
                b'}' if braces => braces = false,
                b',' if !braces => {
                    children.push(leaf(&inner[start..at])?);
                    start = at + 1;
                }
                _ => {}
            }
        }
        children.push(leaf(&inner[start..])?);
        Some(LogicTree::Node {
            op,
            negated,
            children,
        })
    }

    fn leaf(text: &str) -> Option<LogicTree> {
        let (name, expression) = text.split_once('.')?;
        let field = plain_name(name)?;
        let operation = filter(expression)?;
        let Operation::Compare { value, .. } = &operation else {
            return None;
        };
        let plain = |v: &str| !v.contains(['(', ')', '"', '{', '}', ',']);
        let array = value
            .strip_prefix('{')
            .and_then(|v| v.strip_suffix('}'))
            .is_some_and(|v| plain(v.replace(',', "").as_str()));
        if !(plain(value) || array) {
            return None;
        }
        Some(LogicTree::Leaf {
            filter: Filter {
                field,
                negated: false,
                operation,
            },
        })
    }

    /// `order=` as plain names, each with an optional direction and nulls placement.
    pub(crate) fn order(text: &str) -> Option<Vec<OrderTerm>> {
        text.split(',')
            .map(|term| {
                let mut words = term.split('.');
                let field = plain_name(words.next()?)?;
                let mut next = words.next();
                let direction = match next {
                    Some("asc") => Some(OrderDirection::Asc),
                    Some("desc") => Some(OrderDirection::Desc),
                    _ => None,
                };
                if direction.is_some() {
                    next = words.next();
                }
                let nulls = match next {
                    None => None,
                    Some("nullsfirst") => Some(Nulls::First),
                    Some("nullslast") => Some(Nulls::Last),
                    Some(_) => return None,
                };
                if nulls.is_some() && words.next().is_some() {
                    return None;
                }
                Some(OrderTerm {
                    relation: None,
                    field,
                    direction,
                    nulls,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where and why `rule` refuses `text`, as `(line L, column C) details`.
    fn refusal<'a, T>(text: &'a str, rule: impl FnOnce(St<'a>) -> R<'a, T>) -> String {
        match rule(St::reporting(text)).finish() {
            Ok(_) => panic!("{text:?} parsed"),
            Err(err) => format!("{} {}", err.position(text), err.describe()),
        }
    }

    fn forest(st: St<'_>) -> R<'_, Vec<SelectItem>> {
        field_forest(st, &Limits::default(), 0)
    }

    fn tree(st: St<'_>) -> R<'_, LogicTree> {
        logic_tree(st, &Limits::default(), 0)
    }

    fn filter_value(st: St<'_>) -> R<'_, (bool, Operation)> {
        operator_expression(st, single_value)
    }

    /// PostgREST's own examples of its parser's refusals, word for word.
    #[test]
    fn refusals_read_as_postgrest_words_them() {
        let cases: Vec<(String, &str)> = vec![
            (
                refusal("noop.0", filter_value),
                "(line 1, column 1) unexpected \"o\" expecting \"not\" or operator (eq, gt, ...)",
            ),
            (
                refusal("val", filter_value),
                "(line 1, column 1) unexpected \"v\" expecting \"not\" or operator (eq, gt, ...)",
            ),
            (
                refusal("fts().value", filter_value),
                "(line 1, column 5) unexpected \")\" expecting operator (eq, gt, ...)",
            ),
            (
                refusal("eq().value", filter_value),
                "(line 1, column 4) unexpected \")\" expecting operator (eq, gt, ...)",
            ),
            (
                refusal("is().value", filter_value),
                "(line 1, column 3) unexpected \"(\" expecting operator (eq, gt, ...)",
            ),
            (
                refusal("in().value", filter_value),
                "(line 1, column 3) unexpected \"(\" expecting operator (eq, gt, ...)",
            ),
            (
                refusal("id,clients(name[])", forest),
                "(line 1, column 16) unexpected '[' expecting letter, digit, \"-\", \"->>\", \"->\", \"::\", \".\", \")\", \",\" or end of input",
            ),
            (
                refusal("data->>-78xy", forest),
                "(line 1, column 11) unexpected 'x' expecting digit, \"->\", \"::\", \".\", \",\" or end of input",
            ),
            (
                refusal(":", field_name),
                "(line 1, column 1) unexpected \":\" expecting field name (* or [a..z0..9_$])",
            ),
            (
                refusal("->>-78xy", |st| many(st, json_operation).left(eof)),
                "(line 1, column 7) unexpected 'x' expecting digit, \"->\", \"::\", \".\", \",\" or end of input",
            ),
            (
                refusal("->>--34", |st| many(st, json_operation)),
                "(line 1, column 5) unexpected \"-\" expecting digit",
            ),
            (
                refusal("->>-xy-4", |st| many(st, json_operation)),
                "(line 1, column 5) unexpected \"x\" expecting digit",
            ),
            (
                refusal("rel->jsonpath(*)", |st| {
                    relation_select(st, &Limits::default())
                }),
                "(line 1, column 6) unexpected '>'",
            ),
            (
                refusal("rel->jsonpath!hint(*)", |st| {
                    relation_select(st, &Limits::default())
                }),
                "(line 1, column 6) unexpected '>'",
            ),
            (
                refusal("name!hint", field_select),
                "(line 1, column 5) unexpected '!' expecting letter, digit, \"-\", \"->>\", \"->\", \"::\", \".\", \")\", \",\" or end of input",
            ),
            (
                refusal("*!hint", field_select),
                "(line 1, column 2) unexpected '!' expecting \")\", \",\" or end of input",
            ),
            (
                refusal("name::", field_select),
                "(line 1, column 7) unexpected end of input expecting letter or digit",
            ),
            (
                refusal("rel(*)", |st| spread_relation(st, &Limits::default())),
                "(line 1, column 1) unexpected \"r\" expecting \"...\"",
            ),
            (
                refusal("alias:...rel(*)", |st| {
                    spread_relation(st, &Limits::default())
                }),
                "(line 1, column 1) unexpected \"a\" expecting \"...\"",
            ),
            (
                refusal("...rel->jsonpath(*)", |st| {
                    spread_relation(st, &Limits::default())
                }),
                "(line 1, column 9) unexpected '>'",
            ),
            (
                refusal("clients(name,id)", order),
                "(line 1, column 8) unexpected '(' expecting letter, digit, \"-\", \"->>\", \"->\", delimiter (.), \",\" or end of input",
            ),
            (
                refusal("id.ac", order),
                "(line 1, column 4) unexpected \"c\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"",
            ),
            (
                refusal("id.descc", order),
                "(line 1, column 8) unexpected 'c' expecting delimiter (.), \",\" or end of input",
            ),
            (
                refusal("id.nulsfist", order),
                "(line 1, column 4) unexpected \"n\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"",
            ),
            (
                refusal("id.nullslasttt", order),
                "(line 1, column 13) unexpected 't' expecting \",\" or end of input",
            ),
            (
                refusal("id.smth34", order),
                "(line 1, column 4) unexpected \"s\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"",
            ),
            (
                refusal("id.asc.nlsfst", order),
                "(line 1, column 8) unexpected \"l\" expecting \"nullsfirst\" or \"nullslast\"",
            ),
            (
                refusal("id.asc.nullslasttt", order),
                "(line 1, column 17) unexpected 't' expecting \",\" or end of input",
            ),
            (
                refusal("id.asc.smth34", order),
                "(line 1, column 8) unexpected \"s\" expecting \"nullsfirst\" or \"nullslast\"",
            ),
            (
                refusal("or()", tree),
                "(line 1, column 4) unexpected \")\" expecting field name (* or [a..z0..9_$]), negation operator (not) or logic operator (and, or)",
            ),
            (
                refusal("or(id.in.1,2,id.eq.3)", tree),
                "(line 1, column 10) unexpected \"1\" expecting \"(\"",
            ),
            (
                refusal("or)(", tree),
                "(line 1, column 3) unexpected \")\" expecting \"(\"",
            ),
            (
                refusal("and(ord(id.eq.1,id.eq.1),id.eq.2)", tree),
                "(line 1, column 7) unexpected \"d\" expecting \"(\"",
            ),
            (
                refusal("or(id.eq.1,not.xor(id.eq.2,id.eq.3))", tree),
                "(line 1, column 16) unexpected \"x\" expecting logic operator (and, or)",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(got, want)| got != want)
            .map(|(got, want)| format!("got  {got}\nwant {want}"))
            .collect();
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// PostgREST's own examples of what its parser accepts.
    #[test]
    fn accepted_forms_parse_into_their_parts() {
        let select = |text| forest(St::new(text)).finish().map(|(v, _)| v);
        let items = select("alias:rel!inner!hint(*)").expect("parses");
        assert!(
            matches!(&items[0], SelectItem::Embed { alias: Some(a), relation, hints, .. }
            if a == "alias" && relation == "rel"
                && hints == &[EmbedHint::Inner, EmbedHint::Named("hint".into())])
        );
        let items = select("alias:name->!@#$%^&*_a::cast").expect("parses");
        assert!(
            matches!(&items[0], SelectItem::Field { alias: Some(a), field, cast: Some(c), .. }
            if a == "alias" && c == "cast"
                && field.json_path == [JsonStep::Arrow(JsonKey::Key("!@#$%^&*_a".into()))])
        );
        let items = select("*,...client(*),other(*)").expect("parses");
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], SelectItem::Embed { spread: true, .. }));
        let name = |text| field_name(St::new(text)).finish().map(|(v, _)| v).ok();
        assert_eq!(
            name("identifier with spaces").as_deref(),
            Some("identifier with spaces")
        );
        assert_eq!(
            name("identifier-with-dashes").as_deref(),
            Some("identifier-with-dashes")
        );
        assert_eq!(name("\":\"").as_deref(), Some(":"));
        assert_eq!(
            name(" no leading or trailing spaces ").as_deref(),
            Some("no leading or trailing spaces")
        );
        assert_eq!(
            name("\" leading and trailing spaces \"").as_deref(),
            Some(" leading and trailing spaces ")
        );
        let path = |text| {
            many(St::new(text), json_operation)
                .finish()
                .map(|(v, _)| v)
                .ok()
        };
        assert_eq!(
            path("->0,other"),
            Some(vec![JsonStep::Arrow(JsonKey::Index(0))])
        );
        assert_eq!(
            path("->>-1"),
            Some(vec![JsonStep::DoubleArrow(JsonKey::Index(-1))])
        );
        let terms = order(St::new("clients(json_col->key).desc.nullsfirst"))
            .finish()
            .expect("parses")
            .0;
        assert_eq!(terms[0].relation.as_deref(), Some("clients"));
        assert_eq!(terms[0].direction, Some(OrderDirection::Desc));
        assert_eq!(terms[0].nulls, Some(Nulls::First));
        let (negated, operation) = filter_value(St::new("not.eq(all).value"))
            .finish()
            .expect("parses")
            .0;
        assert!(negated);
        assert_eq!(
            operation,
            Operation::Compare {
                op: Compare::Eq,
                quantifier: Some(Quantifier::All),
                value: "value".into()
            }
        );
    }

    /// The shortcuts answer exactly as the grammar does wherever they answer.
    #[test]
    fn shortcuts_read_as_the_grammar_reads() {
        const PIECES: &[&str] = &[
            "a",
            "id",
            "_",
            "9",
            "É",
            ",",
            ".",
            "*",
            "(",
            ")",
            "-",
            ":",
            "\"",
            " ",
            "eq",
            "gte",
            "gt",
            "neq",
            "is",
            "in",
            "not",
            "asc",
            "desc",
            "nullsfirst",
            "nullslast",
            "count",
            "isdistinct",
            "cs",
            "{1}",
            "->",
            "->>",
            "!",
            "inner",
            "left",
            "leftx",
            "count()",
            "a(",
            "b(id)",
            ")",
            "x:",
            "!inner(",
            "!fk(",
            "a.eq.",
            "id.gte.3",
            "tags.cs.{x,y}",
            "x y",
            "{",
            "}",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut answered = [0usize; 6];
        for _ in 0..200_000 {
            let len = (next() % 8) as usize;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Some(items) = shortcut::select(&text) {
                answered[0] += 1;
                let shown = format!("{items:?}");
                answered[3] += usize::from(shown.contains("Embed"));
                answered[4] += usize::from(shown.contains("Arrow"));
                let parsed = whole(St::new(&text), |st| field_forest(st, &Limits::default(), 0))
                    .finish()
                    .map(|(v, _)| v);
                assert_eq!(parsed.ok(), Some(items), "select {text:?}");
            }
            if let Some(operation) = shortcut::filter(&text) {
                answered[1] += 1;
                let parsed = whole(St::new(&text), |st| operator_expression(st, single_value))
                    .finish()
                    .map(|(v, _)| v);
                assert_eq!(parsed.ok(), Some((false, operation)), "filter {text:?}");
            }
            for prefix in ["or(", "not.and("] {
                let tree_text = format!("{prefix}{text})");
                if let Some(tree) = shortcut::logic(&tree_text) {
                    answered[5] += 1;
                    let parsed = whole(St::new(&tree_text), |st| {
                        logic_tree(st, &Limits::default(), 0)
                    })
                    .finish()
                    .map(|(v, _)| v);
                    assert_eq!(parsed.ok(), Some(tree), "logic {tree_text:?}");
                }
            }
            if let Some(terms) = shortcut::order(&text) {
                answered[2] += 1;
                let parsed = whole(St::new(&text), order).finish().map(|(v, _)| v);
                assert_eq!(parsed.ok(), Some(terms), "order {text:?}");
            }
        }
        assert!(answered.iter().all(|n| *n > 100), "{answered:?}");
    }
}
