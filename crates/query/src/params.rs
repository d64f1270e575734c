//! The whole query string: reserved keys (`select`, `order`, `limit`, `offset`, `or`,
//! `and`, `columns`, `on_conflict`) and everything else as a filter, each possibly scoped
//! to an embed by a dotted prefix.

use crate::ast::{Filter, LogicTree, Operation, OrderTerm, SelectItem};
use crate::error::ParseError;
use crate::grammar::{self, Limits, shortcut};
use crate::parsec::{Reply, St};

/// What a query string asks for. Paths (`Vec<String>`) name embeds; empty is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub select: Option<Vec<SelectItem>>,
    pub filters: Vec<(Vec<String>, Filter)>,
    pub logic: Vec<(Vec<String>, LogicTree)>,
    pub order: Vec<(Vec<String>, Vec<OrderTerm>)>,
    pub limit: Vec<(Vec<String>, u64)>,
    pub offset: Vec<(Vec<String>, u64)>,
    pub columns: Option<Vec<String>>,
    pub on_conflict: Option<Vec<String>>,
    /// Parameters of a function read (`GET /rpc/f?name=value`) that carry no operator:
    /// the function's arguments, by name.
    pub arguments: Vec<(String, String)>,
}

/// How many values an `in` list may hold.
const MAX_IN_VALUES: usize = 1000;

/// How many items a `select` may list, embeds included.
const MAX_SELECT_ITEMS: usize = 100;

/// The last dot-separated word of a key, which says what the key is.
fn last_word(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Parses `text` with `rule`, which must succeed and (see [`grammar::whole`]) consume it
/// all. A failure is parsed again with messages, to say where and why.
fn run<'a, T>(
    what: &str,
    input: &str,
    text: &'a str,
    limits: &Limits,
    rule: impl Fn(St<'a>) -> Reply<'a, T>,
) -> Result<T, ParseError> {
    let reply = rule(St::new(text));
    if let Some(details) = limits.crossed.take() {
        return Err(ParseError::limit(what, input, details));
    }
    match reply.finish() {
        Ok((value, _)) => Ok(value),
        Err(_) => {
            let err = match rule(St::reporting(text)).finish() {
                Err(err) => err,
                // Messages never change the outcome; this is unreachable.
                Ok(_) => return Err(ParseError::limit(what, input, "unknown parse error")),
            };
            limits.crossed.take();
            Err(ParseError::syntax(what, input, text, &err))
        }
    }
}

/// Parses every parameter of a query string as PostgREST does, in its order: `order`s,
/// then `and`/`or` trees, `columns`, `select`, the filters, then `on_conflict`; so the
/// first error reported is the one PostgREST reports. For a function read (`rpc_read`),
/// a parameter without an operator is an argument, not an error.
///
/// `select`, `columns` and `on_conflict` given twice are refused: PostgREST reads the
/// first, which could hide a second the client meant (the security checklist's
/// duplicate parameters).
pub fn parse_query(pairs: &[(String, String)], rpc_read: bool) -> Result<QueryParams, ParseError> {
    let mut params = QueryParams::default();
    let limits = Limits::default();
    for name in ["select", "columns", "on_conflict"] {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(ParseError::limit(
                "query string",
                name,
                format!("{name} may be given only once"),
            ));
        }
    }
    let first = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);

    for (key, value) in pairs.iter().filter(|(k, _)| last_word(k) == "order") {
        let path = if key == "order" {
            Vec::new()
        } else {
            run("tree path", key, key, &limits, |st| {
                grammar::whole(st, grammar::tree_path)
            })?
            .0
        };
        let terms = match shortcut::order(value) {
            Some(terms) => terms,
            None => run("order", value, value, &limits, |st| {
                grammar::whole(st, grammar::order)
            })?,
        };
        params.order.push((path, terms));
    }

    for (key, value) in pairs
        .iter()
        .filter(|(k, _)| matches!(last_word(k), "and" | "or"))
    {
        let names = run("logic path", key, key, &limits, |st| {
            grammar::whole(st, grammar::logic_path)
        })?;
        let negated = names.iter().any(|n| n == "not");
        let (op, path) = names.split_last().unwrap_or((&names[0], &[]));
        let path: Vec<String> = path.iter().filter(|n| *n != "not").cloned().collect();
        let text = format!("{}{op}{value}", if negated { "not." } else { "" });
        let tree = match shortcut::logic(&text) {
            Some(tree) => tree,
            None => run("logic tree", value, &text, &limits, |st| {
                grammar::whole(st, |st| grammar::logic_tree(st, &limits, 0))
            })?,
        };
        params.logic.push((path, tree));
    }

    if let Some(value) = first("columns") {
        params.columns = Some(run("columns parameter", value, value, &limits, |st| {
            grammar::whole(st, grammar::columns)
        })?);
    }

    if let Some(value) = first("select") {
        params.select = Some(parse_select(value)?);
    }

    for (key, value) in pairs.iter().filter(|(k, _)| {
        !matches!(k.as_str(), "select" | "columns" | "on_conflict")
            && !matches!(last_word(k), "order" | "limit" | "offset" | "and" | "or")
    }) {
        if let (Some(field), Some(operation)) = (shortcut::plain_name(key), shortcut::filter(value))
        {
            params.filters.push((
                Vec::new(),
                Filter {
                    field,
                    negated: false,
                    operation,
                },
            ));
            continue;
        }
        let (path, field) = run("tree path", key, key, &limits, |st| {
            grammar::whole(st, grammar::tree_path)
        })?;
        let expression = run("filter", value, value, &limits, |st| {
            let reply = grammar::whole(st, |st| {
                grammar::operator_expression(st, grammar::single_value)
            })
            .map(Some);
            if rpc_read {
                reply.or(st, |st| Reply::pure(None, st))
            } else {
                reply
            }
        })?;
        match expression {
            Some((negated, operation)) => params.filters.push((
                path,
                Filter {
                    field,
                    negated,
                    operation,
                },
            )),
            None => params.arguments.push((field.name, value.clone())),
        }
    }

    if let Some(value) = first("on_conflict") {
        params.on_conflict = Some(run("on_conflict parameter", value, value, &limits, |st| {
            grammar::whole(st, grammar::columns)
        })?);
    }

    for (key, value) in pairs {
        let (path, word) = match key.rsplit_once('.') {
            Some((path, word)) => (path.split('.').map(str::to_owned).collect(), word),
            None => (Vec::new(), key.as_str()),
        };
        match word {
            "limit" => params.limit.push((path, count(value, "limit")?)),
            "offset" => params.offset.push((path, count(value, "offset")?)),
            _ => {}
        }
    }

    check_in_lists(&params)?;
    Ok(params)
}

/// Parses a `select` value. Empty means `*`.
pub fn parse_select(text: &str) -> Result<Vec<SelectItem>, ParseError> {
    let limits = Limits::default();
    let items = match shortcut::select(text) {
        Some(items) => items,
        None => run("select parameter", text, text, &limits, |st| {
            grammar::whole(st, |st| grammar::field_forest(st, &limits, 0))
        })?,
    };
    if count_items(&items) > MAX_SELECT_ITEMS {
        return Err(ParseError::limit(
            "select parameter",
            text,
            format!("a select lists at most {MAX_SELECT_ITEMS} items"),
        ));
    }
    Ok(if items.is_empty() {
        vec![SelectItem::Star]
    } else {
        items
    })
}

fn count_items(items: &[SelectItem]) -> usize {
    items
        .iter()
        .map(|item| match item {
            SelectItem::Embed { select, .. } => 1 + count_items(select),
            _ => 1,
        })
        .sum()
}

fn count(value: &str, what: &'static str) -> Result<u64, ParseError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| ParseError::limit(what, value, "expected a non-negative integer"))
}

/// Refuses an `in` list longer than [`MAX_IN_VALUES`], in a filter or a logic tree.
fn check_in_lists(params: &QueryParams) -> Result<(), ParseError> {
    fn too_long(operation: &Operation) -> bool {
        matches!(operation, Operation::In(values) if values.len() > MAX_IN_VALUES)
    }
    fn tree_too_long(tree: &LogicTree) -> bool {
        match tree {
            LogicTree::Leaf { filter } => too_long(&filter.operation),
            LogicTree::Node { children, .. } => children.iter().any(tree_too_long),
        }
    }
    let refused = params.filters.iter().any(|(_, f)| too_long(&f.operation))
        || params.logic.iter().any(|(_, tree)| tree_too_long(tree));
    if refused {
        return Err(ParseError::limit(
            "filter",
            "in",
            format!("an in list holds at most {MAX_IN_VALUES} values"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::ast::{
        Compare, Field, FtsKind, IsValue, JsonKey, JsonStep, LogicOp, Nulls, OrderDirection,
        Quantifier,
    };

    fn parse(query: &[(&str, &str)]) -> Result<QueryParams, ParseError> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_query(&pairs, false)
    }

    fn field(name: &str) -> Field {
        Field {
            name: name.to_owned(),
            json_path: Vec::new(),
        }
    }

    #[test]
    fn filters_parse_with_negation_quantifiers_and_embed_paths() {
        let params = parse(&[
            ("age", "gte.18"),
            ("name", "not.ilike.*ann*"),
            ("id", "in.(1,2,\"3,4\")"),
            ("deleted_at", "is.null"),
            ("tags", "eq(any).{a,b}"),
            ("body", "fts(english).cat & dog"),
            ("data->>kind", "eq.x"),
            ("messages.sent", "is.true"),
        ])
        .expect("parses");
        assert_eq!(params.filters.len(), 8);
        assert_eq!(
            params.filters[0],
            (
                vec![],
                Filter {
                    field: field("age"),
                    negated: false,
                    operation: Operation::Compare {
                        op: Compare::Gte,
                        quantifier: None,
                        value: "18".into()
                    }
                }
            )
        );
        assert!(params.filters[1].1.negated);
        assert_eq!(
            params.filters[2].1.operation,
            Operation::In(vec!["1".into(), "2".into(), "3,4".into()])
        );
        assert_eq!(params.filters[3].1.operation, Operation::Is(IsValue::Null));
        assert!(matches!(
            params.filters[4].1.operation,
            Operation::Compare {
                quantifier: Some(Quantifier::Any),
                ..
            }
        ));
        assert_eq!(
            params.filters[5].1.operation,
            Operation::Fts {
                kind: FtsKind::Fts,
                config: Some("english".into()),
                value: "cat & dog".into()
            }
        );
        assert_eq!(
            params.filters[6].1.field.json_path,
            vec![JsonStep::DoubleArrow(JsonKey::Key("kind".into()))]
        );
        assert_eq!(params.filters[7].0, vec!["messages".to_owned()]);
    }

    #[test]
    fn logic_trees_nest_and_scope_to_embeds() {
        let params = parse(&[
            (
                "or",
                "(age.lt.18,and(name.eq.\"a,b\",not.or(x.is.null,y.gt.2)))",
            ),
            ("messages.not.and", "(sent.is.true,body.like.*hi*)"),
        ])
        .expect("parses");
        let (path, tree) = &params.logic[0];
        assert!(path.is_empty());
        let LogicTree::Node {
            op,
            negated,
            children,
        } = tree
        else {
            panic!("a node")
        };
        assert_eq!((*op, *negated, children.len()), (LogicOp::Or, false, 2));
        let LogicTree::Node {
            children: inner, ..
        } = &children[1]
        else {
            panic!("nested and")
        };
        let LogicTree::Leaf { filter, .. } = &inner[0] else {
            panic!("a leaf")
        };
        assert_eq!(
            filter.operation,
            Operation::Compare {
                op: Compare::Eq,
                quantifier: None,
                value: "a,b".into()
            }
        );
        assert!(matches!(
            inner[1],
            LogicTree::Node {
                op: LogicOp::Or,
                negated: true,
                ..
            }
        ));
        assert_eq!(params.logic[1].0, vec!["messages".to_owned()]);
        assert!(matches!(
            params.logic[1].1,
            LogicTree::Node {
                op: LogicOp::And,
                negated: true,
                ..
            }
        ));
    }

    #[test]
    fn order_limit_offset_columns_and_on_conflict() {
        let params = parse(&[
            (
                "order",
                "created_at.desc.nullslast,author(name),data->>k.asc",
            ),
            ("messages.order", "sent_at"),
            ("limit", "20"),
            ("offset", "40"),
            ("messages.limit", "5"),
            ("columns", "\"a\",\"b\""),
            ("on_conflict", "email"),
        ])
        .expect("parses");
        let root = &params.order[0].1;
        assert_eq!(root[0].direction, Some(OrderDirection::Desc));
        assert_eq!(root[0].nulls, Some(Nulls::Last));
        assert_eq!(root[1].relation.as_deref(), Some("author"));
        assert_eq!(root[2].field.json_path.len(), 1);
        assert_eq!(params.order[1].0, vec!["messages".to_owned()]);
        assert_eq!(
            params.limit,
            vec![(vec![], 20), (vec!["messages".to_owned()], 5)]
        );
        assert_eq!(params.offset, vec![(vec![], 40)]);
        assert_eq!(params.columns, Some(vec!["a".into(), "b".into()]));
        assert_eq!(params.on_conflict, Some(vec!["email".into()]));
    }

    #[test]
    fn values_without_an_operator_are_function_arguments() {
        let pairs = [
            ("name".to_owned(), "ann".to_owned()),
            ("n".to_owned(), "5".to_owned()),
        ];
        let params = parse_query(&pairs, true).expect("parses");
        assert_eq!(
            params.arguments,
            vec![("name".into(), "ann".into()), ("n".into(), "5".into())]
        );
        assert!(params.filters.is_empty());
    }

    #[test]
    fn hostile_and_malformed_inputs_are_refused() {
        for (key, value) in [
            ("limit", "-1"),
            ("limit", "1;DROP TABLE x"),
            ("offset", "abc"),
            ("id", "in.1,2"),
            ("id", "is.maybe"),
            ("id", "eq(some).1"),
            ("id", "neq(any).1"),
            ("or", "()"),
            ("or", "(age.lt.18,name.frob.1)"),
            ("order", "name.sideways"),
            ("order", "name.asc.desc"),
            ("a\"b", "eq.1"),
            ("id", "is.null;drop"),
            ("id", "in.(1,2)or(1=1)"),
            ("or", "(id.eq.1,id.eq.2)or(true)"),
            ("select", "id::int))--"),
            ("select", "*,t!inner!inner(*)"),
            ("select", "*,t!a!b(*)"),
            ("", "eq.1"),
        ] {
            assert!(parse(&[(key, value)]).is_err(), "{key}={value} accepted");
        }
        let deep = format!("{}x.eq.1{}", "and(".repeat(40), ")".repeat(40));
        assert!(parse(&[("or", &format!("({deep})"))]).is_err());
    }

    #[test]
    fn a_rich_select_parses_into_its_parts() {
        let parsed = parse_select(
            "id,title:name,price::text,data->a->>b,total:amount.sum(),count(),author:users!author_fk!inner(id,name),...profile(bio),tags()",
        )
        .expect("parses");
        expect![[r#"
            [
                Field {
                    alias: None,
                    field: Field {
                        name: "id",
                        json_path: [],
                    },
                    cast: None,
                    aggregate: None,
                },
                Field {
                    alias: Some(
                        "title",
                    ),
                    field: Field {
                        name: "name",
                        json_path: [],
                    },
                    cast: None,
                    aggregate: None,
                },
                Field {
                    alias: None,
                    field: Field {
                        name: "price",
                        json_path: [],
                    },
                    cast: Some(
                        "text",
                    ),
                    aggregate: None,
                },
                Field {
                    alias: None,
                    field: Field {
                        name: "data",
                        json_path: [
                            Arrow(
                                Key(
                                    "a",
                                ),
                            ),
                            DoubleArrow(
                                Key(
                                    "b",
                                ),
                            ),
                        ],
                    },
                    cast: None,
                    aggregate: None,
                },
                Field {
                    alias: Some(
                        "total",
                    ),
                    field: Field {
                        name: "amount",
                        json_path: [],
                    },
                    cast: None,
                    aggregate: Some(
                        (
                            Sum,
                            None,
                        ),
                    ),
                },
                Count {
                    alias: None,
                    cast: None,
                },
                Embed {
                    alias: Some(
                        "author",
                    ),
                    relation: "users",
                    hints: [
                        Named(
                            "author_fk",
                        ),
                        Inner,
                    ],
                    spread: false,
                    select: [
                        Field {
                            alias: None,
                            field: Field {
                                name: "id",
                                json_path: [],
                            },
                            cast: None,
                            aggregate: None,
                        },
                        Field {
                            alias: None,
                            field: Field {
                                name: "name",
                                json_path: [],
                            },
                            cast: None,
                            aggregate: None,
                        },
                    ],
                },
                Embed {
                    alias: None,
                    relation: "profile",
                    hints: [],
                    spread: true,
                    select: [
                        Field {
                            alias: None,
                            field: Field {
                                name: "bio",
                                json_path: [],
                            },
                            cast: None,
                            aggregate: None,
                        },
                    ],
                },
                Embed {
                    alias: None,
                    relation: "tags",
                    hints: [],
                    spread: false,
                    select: [],
                },
            ]
        "#]]
        .assert_debug_eq(&parsed);
    }

    #[test]
    fn multibyte_whitespace_is_refused_whole() {
        // Only spaces and tabs separate; a no-break space is refused at its column.
        let err = parse_select("a:\u{a0}b").expect_err("refused");
        assert_eq!(
            err.message,
            "\"failed to parse select parameter (a:\u{a0}b)\" (line 1, column 3)"
        );
    }

    #[test]
    fn empty_select_is_star() {
        assert_eq!(parse_select("").expect("parses"), vec![SelectItem::Star]);
    }

    #[test]
    fn malformed_selects_are_refused_with_a_pgrst_style_message() {
        for bad in ["id,", "a(b", "x.median()", "a;drop", "col::", "\"open"] {
            let err = parse_select(bad).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!(
                    "\"failed to parse select parameter ({bad})\" (line 1, column "
                )),
                "{err}"
            );
        }
        assert_eq!(
            parse_select("rel!x!y(a)").expect_err("refused").details,
            "at most a hint and a join type may follow a relation"
        );
        // PostgREST would ignore what follows a complete parse; Galley refuses it.
        assert_eq!(
            parse_select("a)b").expect_err("refused").details,
            "unexpected ')' expecting letter, digit, \"-\", \"->>\", \"->\", \"::\", \".\", \",\" or end of input"
        );
        let deep = format!("{}x{}", "r(".repeat(6), ")".repeat(6));
        assert!(parse_select(&format!("{}x{}", "r(".repeat(5), ")".repeat(5))).is_ok());
        assert!(parse_select(&vec!["a"; 101].join(",")).is_err());
        assert!(parse_select(&deep).is_err());
    }
}
