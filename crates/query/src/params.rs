//! The whole query string: reserved keys (`select`, `order`, `limit`, `offset`, `or`,
//! `and`, `columns`, `on_conflict`) and everything else as a filter, each possibly scoped
//! to an embed by a dotted prefix.

use crate::ast::{
    Compare, Filter, FtsKind, IsValue, LogicOp, LogicTree, Nulls, Operation, OrderDirection,
    OrderTerm, Quantifier, SelectItem,
};
use crate::error::ParseError;
use crate::select::parse_select;
use crate::syntax::{Cursor, split_top_level, unquote};

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
    /// Parameters that are not filters (`name=value` without an operator): function
    /// arguments for RPC GET; an error elsewhere.
    pub arguments: Vec<(String, String)>,
}

/// How deep `or`/`and` trees may nest.
const MAX_TREE_DEPTH: usize = 10;

/// How many values an `in` list may hold.
const MAX_IN_VALUES: usize = 1000;

pub fn parse_query(pairs: &[(String, String)]) -> Result<QueryParams, ParseError> {
    let mut params = QueryParams::default();
    for (key, value) in pairs {
        match key.as_str() {
            // Given twice, these would have to be merged or one ignored; either could
            // surprise, so a repeat is refused.
            "select" | "columns" | "on_conflict"
                if pairs.iter().filter(|(k, _)| k == key).count() > 1 =>
            {
                return Err(ParseError::new(
                    "query string",
                    key,
                    format!("{key} may be given only once"),
                ));
            }
            "select" => params.select = Some(parse_select(value)?),
            "columns" => params.columns = Some(name_list(value, "columns")?),
            "on_conflict" => params.on_conflict = Some(name_list(value, "on_conflict")?),
            _ => parse_key(key, value, &mut params)?,
        }
    }
    Ok(params)
}

fn parse_key(key: &str, value: &str, params: &mut QueryParams) -> Result<(), ParseError> {
    let segments: Vec<&str> = key.split('.').collect();
    let last = segments.last().copied().unwrap_or_default();
    let before_last = if segments.len() >= 2 {
        Some(segments[segments.len() - 2])
    } else {
        None
    };
    // `or`, `and`, `not.or`, `rel.not.and`.
    let logic = match (before_last, last) {
        (Some("not"), "or" | "and") => Some((true, segments.len() - 2)),
        (_, "or" | "and") => Some((false, segments.len() - 1)),
        _ => None,
    };
    if let Some((negated, path_len)) = logic {
        let op = if last == "or" {
            LogicOp::Or
        } else {
            LogicOp::And
        };
        let path = owned(&segments[..path_len]);
        let inner = value
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| ParseError::new("logic tree", value, "expected (...)"))?;
        let children = tree_children(inner, 0)
            .map_err(|details| ParseError::new("logic tree", value, details))?;
        params.logic.push((
            path,
            LogicTree::Node {
                op,
                negated,
                children,
            },
        ));
        return Ok(());
    }
    let path = owned(&segments[..segments.len() - 1]);
    match last {
        "order" => {
            let terms =
                order_terms(value).map_err(|details| ParseError::new("order", value, details))?;
            params.order.push((path, terms));
        }
        "limit" => params.limit.push((path, count(value, "limit")?)),
        "offset" => params.offset.push((path, count(value, "offset")?)),
        _ => {
            // A filter: the key is `[rel.]column[->json]`; JSON paths may contain dots
            // only inside quotes, which PostgREST does not allow either.
            let (path, column_text) = split_filter_key(key);
            let mut cursor = Cursor::new(column_text);
            let field = cursor
                .field()
                .map_err(|details| ParseError::new("filter", key, details))?
                .filter(|_| cursor.at_end())
                .ok_or_else(|| ParseError::new("filter", key, "expected a column name"))?;
            match filter_value(value) {
                Ok((negated, operation)) => params.filters.push((
                    path,
                    Filter {
                        field,
                        negated,
                        operation,
                    },
                )),
                Err(NotAFilter::NoOperator) => {
                    params.arguments.push((key.to_owned(), value.to_owned()))
                }
                Err(NotAFilter::Bad(details)) => {
                    return Err(ParseError::new("filter", value, details));
                }
            }
        }
    }
    Ok(())
}

fn owned(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// `rel.sub.col->x` → (["rel", "sub"], "col->x")
fn split_filter_key(key: &str) -> (Vec<String>, &str) {
    let json_start = key.find("->").unwrap_or(key.len());
    match key[..json_start].rfind('.') {
        Some(dot) => (
            owned(&key[..dot].split('.').collect::<Vec<_>>()),
            &key[dot + 1..],
        ),
        None => (Vec::new(), key),
    }
}

fn count(value: &str, what: &'static str) -> Result<u64, ParseError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| ParseError::new(what, value, "expected a non-negative integer"))
}

fn name_list(value: &str, what: &'static str) -> Result<Vec<String>, ParseError> {
    let parts = split_top_level(value).map_err(|details| ParseError::new(what, value, details))?;
    parts
        .into_iter()
        .map(|part| {
            let name = unquote(part);
            if name.is_empty() {
                Err(ParseError::new(what, value, "empty name"))
            } else {
                Ok(name)
            }
        })
        .collect()
}

enum NotAFilter {
    /// The value has no operator: maybe a function argument.
    NoOperator,
    Bad(String),
}

/// `[not.]op[(any|all)][(config)].value`
fn filter_value(value: &str) -> Result<(bool, Operation), NotAFilter> {
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let Some((head, operand)) = rest.split_once('.') else {
        return Err(NotAFilter::NoOperator);
    };
    let (name, modifier) = match head.split_once('(') {
        Some((name, modifier)) => {
            let modifier = modifier
                .strip_suffix(')')
                .ok_or_else(|| NotAFilter::Bad(format!("unclosed ( in {head}")))?;
            (name, Some(modifier))
        }
        None => (head, None),
    };
    let compare = match name {
        "eq" => Some(Compare::Eq),
        "neq" => Some(Compare::Neq),
        "gt" => Some(Compare::Gt),
        "gte" => Some(Compare::Gte),
        "lt" => Some(Compare::Lt),
        "lte" => Some(Compare::Lte),
        "like" => Some(Compare::Like),
        "ilike" => Some(Compare::Ilike),
        "match" => Some(Compare::Match),
        "imatch" => Some(Compare::Imatch),
        "cs" => Some(Compare::Contains),
        "cd" => Some(Compare::ContainedIn),
        "ov" => Some(Compare::Overlaps),
        "sl" => Some(Compare::StrictlyLeft),
        "sr" => Some(Compare::StrictlyRight),
        "nxr" => Some(Compare::NotExtendRight),
        "nxl" => Some(Compare::NotExtendLeft),
        "adj" => Some(Compare::Adjacent),
        "isdistinct" => Some(Compare::IsDistinct),
        _ => None,
    };
    if let Some(op) = compare {
        let quantifier = match modifier {
            None => None,
            Some("any") if op.quantifiable() => Some(Quantifier::Any),
            Some("all") if op.quantifiable() => Some(Quantifier::All),
            Some(other) => return Err(NotAFilter::Bad(format!("{name} does not take ({other})"))),
        };
        return Ok((
            negated,
            Operation::Compare {
                op,
                quantifier,
                value: operand.to_owned(),
            },
        ));
    }
    let fts = match name {
        "fts" => Some(FtsKind::Fts),
        "plfts" => Some(FtsKind::Plain),
        "phfts" => Some(FtsKind::Phrase),
        "wfts" => Some(FtsKind::Websearch),
        _ => None,
    };
    if let Some(kind) = fts {
        let config = match modifier {
            Some(config)
                if !config.is_empty()
                    && config
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Some(config.to_owned())
            }
            Some(config) => {
                return Err(NotAFilter::Bad(format!(
                    "invalid text search configuration {config:?}"
                )));
            }
            None => None,
        };
        return Ok((
            negated,
            Operation::Fts {
                kind,
                config,
                value: operand.to_owned(),
            },
        ));
    }
    if modifier.is_some() {
        return Err(NotAFilter::Bad(format!("{name} takes no modifier")));
    }
    match name {
        "in" => {
            let inner = operand
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| NotAFilter::Bad("in expects (a,b,...)".to_owned()))?;
            if inner.trim().is_empty() {
                return Ok((negated, Operation::In(Vec::new())));
            }
            let items = split_top_level(inner).map_err(NotAFilter::Bad)?;
            if items.len() > MAX_IN_VALUES {
                return Err(NotAFilter::Bad(format!(
                    "an in list holds at most {MAX_IN_VALUES} values"
                )));
            }
            Ok((
                negated,
                Operation::In(items.into_iter().map(unquote).collect()),
            ))
        }
        "is" => {
            let value = match operand.to_ascii_lowercase().as_str() {
                "null" => IsValue::Null,
                "not_null" => IsValue::NotNull,
                "true" => IsValue::True,
                "false" => IsValue::False,
                "unknown" => IsValue::Unknown,
                _ => {
                    return Err(NotAFilter::Bad(
                        "is expects null, not_null, true, false or unknown".to_owned(),
                    ));
                }
            };
            Ok((negated, Operation::Is(value)))
        }
        _ => Err(NotAFilter::NoOperator),
    }
}

/// The children of an `or=(...)` / `and=(...)`: filters `[rel.]col.op.value`, or
/// nested `[not.]and(...)` / `[not.]or(...)`.
fn tree_children(text: &str, depth: usize) -> Result<Vec<LogicTree>, String> {
    if depth > MAX_TREE_DEPTH {
        return Err(format!(
            "logic trees nest deeper than {MAX_TREE_DEPTH} levels"
        ));
    }
    let parts = split_top_level(text)?;
    let mut children = Vec::new();
    for part in parts {
        let part = part.trim();
        let (negated, rest) = match part.strip_prefix("not.") {
            Some(rest) if rest.starts_with("and(") || rest.starts_with("or(") => (true, rest),
            _ => (false, part),
        };
        let nested = rest
            .strip_prefix("and(")
            .map(|inner| (LogicOp::And, inner))
            .or_else(|| rest.strip_prefix("or(").map(|inner| (LogicOp::Or, inner)));
        if let Some((op, inner)) = nested {
            let inner = inner
                .strip_suffix(')')
                .ok_or("unclosed ( in a logic tree")?;
            children.push(LogicTree::Node {
                op,
                negated,
                children: tree_children(inner, depth + 1)?,
            });
            continue;
        }
        children.push(tree_leaf(part)?);
    }
    if children.is_empty() {
        return Err("an empty logic tree".to_owned());
    }
    Ok(children)
}

/// `[rel.]col[->json].[not.]op.value`, the value possibly `"quoted"`.
fn tree_leaf(text: &str) -> Result<LogicTree, String> {
    let mut path = Vec::new();
    let mut cursor = Cursor::new(text);
    let field = loop {
        let field = cursor
            .field()?
            .ok_or_else(|| format!("expected a filter in {text:?}"))?;
        if !cursor.eat(".") {
            return Err(format!("expected .operator after {:?}", field.name));
        }
        // `rel.col...`: the name was an embed if what follows is another name, not an
        // operator.
        let rest = cursor.rest();
        let next = rest.split(['.', '(']).next().unwrap_or_default();
        let is_operator = matches!(
            next,
            "not"
                | "eq"
                | "neq"
                | "gt"
                | "gte"
                | "lt"
                | "lte"
                | "like"
                | "ilike"
                | "match"
                | "imatch"
                | "cs"
                | "cd"
                | "ov"
                | "sl"
                | "sr"
                | "nxr"
                | "nxl"
                | "adj"
                | "isdistinct"
                | "fts"
                | "plfts"
                | "phfts"
                | "wfts"
                | "in"
                | "is"
        );
        if is_operator || !field.json_path.is_empty() {
            break field;
        }
        path.push(field.name);
    };
    let value = cursor.rest();
    let (op_part, operand) = match value.strip_prefix("not.") {
        Some(rest) => ("not.", rest),
        None => ("", value),
    };
    // Values in trees may be quoted to carry `,` `(` `)`; `in.(...)` keeps its own quotes.
    let operand = match operand.split_once('.') {
        Some((op, operand)) if !operand.starts_with('(') => format!("{op}.{}", unquote(operand)),
        _ => operand.to_owned(),
    };
    match filter_value(&format!("{op_part}{operand}")) {
        Ok((negated, operation)) => Ok(LogicTree::Leaf {
            path,
            filter: Filter {
                field,
                negated,
                operation,
            },
        }),
        Err(NotAFilter::NoOperator) => Err(format!("unknown operator in {text:?}")),
        Err(NotAFilter::Bad(details)) => Err(details),
    }
}

/// `col[->json][.asc|.desc][.nullsfirst|.nullslast]` or `rel(col)...`, comma-separated.
fn order_terms(value: &str) -> Result<Vec<OrderTerm>, String> {
    split_top_level(value)?
        .into_iter()
        .map(|part| {
            let mut cursor = Cursor::new(part.trim());
            let first = cursor.field()?.ok_or("expected a column")?;
            let (relation, field) = if first.json_path.is_empty() && cursor.eat("(") {
                let field = cursor.field()?.ok_or("expected a column inside ()")?;
                if !cursor.eat(")") {
                    return Err("expected )".to_owned());
                }
                (Some(first.name), field)
            } else {
                (None, first)
            };
            let mut direction = None;
            let mut nulls = None;
            while cursor.eat(".") {
                match cursor.name()?.as_deref() {
                    Some("asc") if direction.is_none() => direction = Some(OrderDirection::Asc),
                    Some("desc") if direction.is_none() => direction = Some(OrderDirection::Desc),
                    Some("nullsfirst") if nulls.is_none() => nulls = Some(Nulls::First),
                    Some("nullslast") if nulls.is_none() => nulls = Some(Nulls::Last),
                    other => return Err(format!("unexpected {other:?} in order")),
                }
            }
            if !cursor.at_end() {
                return Err(format!("unexpected {:?}", cursor.rest()));
            }
            Ok(OrderTerm {
                relation,
                field,
                direction,
                nulls,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Field, JsonKey, JsonStep};

    fn parse(query: &[(&str, &str)]) -> Result<QueryParams, ParseError> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_query(&pairs)
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
        let params = parse(&[("name", "ann"), ("n", "5")]).expect("parses");
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
            ("body", "fts(eng lish).x"),
            ("or", "age.lt.18"),
            ("or", "()"),
            ("or", "(age.lt.18,name.frob.1)"),
            ("order", "name.sideways"),
            ("order", "name.asc.desc"),
            ("a\"b", "eq.1"),
            ("", "eq.1"),
        ] {
            assert!(parse(&[(key, value)]).is_err(), "{key}={value} accepted");
        }
        let deep = format!("{}x.eq.1{}", "and(".repeat(40), ")".repeat(40));
        assert!(parse(&[("or", &format!("({deep})"))]).is_err());
    }
}
