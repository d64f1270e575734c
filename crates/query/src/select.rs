//! `select=`: columns, aliases, casts, JSON paths, aggregates and embedded relations.

use crate::ast::{Aggregate, EmbedHint, SelectItem};
use crate::error::ParseError;
use crate::syntax::{Cursor, split_top_level};

/// Parses a `select` value. Empty means `*`.
pub fn parse_select(text: &str) -> Result<Vec<SelectItem>, ParseError> {
    items(text).map_err(|details| ParseError::new("select", text, details))
}

/// How deep embeds may nest: deeper is refused, not recursed into.
const MAX_DEPTH: usize = 5;

/// How many items a `select` may list, embeds included.
const MAX_ITEMS: usize = 100;

fn items(text: &str) -> Result<Vec<SelectItem>, String> {
    let items = items_at(text, 0)?;
    if count(&items) > MAX_ITEMS {
        return Err(format!("a select lists at most {MAX_ITEMS} items"));
    }
    Ok(items)
}

fn count(items: &[SelectItem]) -> usize {
    items
        .iter()
        .map(|item| match item {
            SelectItem::Embed { select, .. } => 1 + count(select),
            _ => 1,
        })
        .sum()
}

fn items_at(text: &str, depth: usize) -> Result<Vec<SelectItem>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("embedding nests deeper than {MAX_DEPTH} levels"));
    }
    if text.trim().is_empty() {
        return Ok(vec![SelectItem::Star]);
    }
    split_top_level(text)?
        .into_iter()
        .map(|part| item(part.trim(), depth))
        .collect()
}

fn item(text: &str, depth: usize) -> Result<SelectItem, String> {
    if text.is_empty() {
        return Err("empty select item".to_owned());
    }
    if text == "*" {
        return Ok(SelectItem::Star);
    }
    if let Some(rest) = text.strip_prefix("...") {
        let mut cursor = Cursor::new(rest);
        let relation = cursor.name()?.ok_or("expected a relation after ...")?;
        return embed(cursor, None, relation, true, depth);
    }
    let mut cursor = Cursor::new(text);
    let first = cursor
        .field()?
        .ok_or_else(|| format!("unexpected {text:?}"))?;
    // `alias:` (but not `::`) renames what follows.
    let (alias, field) = if cursor.rest().starts_with(':') && !cursor.rest().starts_with("::") {
        if !first.json_path.is_empty() {
            return Err("an alias cannot have a JSON path".to_owned());
        }
        cursor.pos += 1;
        cursor.skip_spaces();
        let field = cursor.field()?.ok_or("expected a column after the alias")?;
        (Some(first.name), field)
    } else {
        (None, first)
    };
    if field.json_path.is_empty() && field.name == "count" && cursor.eat("()") {
        let cast = cursor.cast()?;
        return finish(&cursor, SelectItem::Count { alias, cast });
    }
    if field.json_path.is_empty() && matches!(cursor.peek(), Some('!' | '(')) {
        return embed(cursor, alias, field.name, false, depth);
    }
    let cast = cursor.cast()?;
    let aggregate = if cursor.eat(".") {
        let name = cursor.name()?.ok_or("expected an aggregate after .")?;
        let aggregate = match name.as_str() {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "avg" => Aggregate::Avg,
            "max" => Aggregate::Max,
            "min" => Aggregate::Min,
            other => return Err(format!("unknown aggregate {other}")),
        };
        if !cursor.eat("()") {
            return Err("expected () after the aggregate".to_owned());
        }
        Some((aggregate, cursor.cast()?))
    } else {
        None
    };
    finish(
        &cursor,
        SelectItem::Field {
            alias,
            field,
            cast,
            aggregate,
        },
    )
}

fn embed(
    mut cursor: Cursor<'_>,
    alias: Option<String>,
    relation: String,
    spread: bool,
    depth: usize,
) -> Result<SelectItem, String> {
    let mut hints = Vec::new();
    while cursor.eat("!") {
        let hint = cursor.name()?.ok_or("expected a hint after !")?;
        hints.push(match hint.as_str() {
            "inner" => EmbedHint::Inner,
            "left" => EmbedHint::Left,
            _ => EmbedHint::Named(hint),
        });
    }
    let joins = hints
        .iter()
        .filter(|h| matches!(h, EmbedHint::Inner | EmbedHint::Left))
        .count();
    if hints.len() > 2 || joins > 1 || hints.len() - joins > 1 {
        return Err("at most a hint and a join type may follow a relation".to_owned());
    }
    let rest = cursor.rest();
    let inner = rest
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| format!("expected (columns) after {relation}"))?;
    let select = if inner.trim().is_empty() {
        Vec::new()
    } else {
        items_at(inner, depth + 1)?
    };
    Ok(SelectItem::Embed {
        alias,
        relation,
        hints,
        spread,
        select,
    })
}

fn finish(cursor: &Cursor<'_>, item: SelectItem) -> Result<SelectItem, String> {
    if cursor.at_end() {
        Ok(item)
    } else {
        Err(format!("unexpected {:?}", cursor.rest()))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

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
    fn multibyte_whitespace_after_an_alias_is_skipped_whole() {
        let parsed = parse_select("a:\u{a0}b").expect("parses");
        assert!(matches!(&parsed[0], SelectItem::Field { alias: Some(alias), .. } if alias == "a"));
    }

    #[test]
    fn empty_select_is_star() {
        assert_eq!(parse_select("").expect("parses"), vec![SelectItem::Star]);
    }

    #[test]
    fn malformed_selects_are_refused_with_a_pgrst_style_message() {
        for bad in [
            "id,",
            "a(b",
            "rel!x!y!z(a)",
            "x.median()",
            "a;drop",
            "col::",
            "\"open",
            "a)b",
        ] {
            let err = parse_select(bad).expect_err(bad);
            assert!(
                err.to_string().starts_with("failed to parse select ("),
                "{err}"
            );
        }
        let deep = format!("{}x{}", "r(".repeat(6), ")".repeat(6));
        assert!(parse_select(&format!("{}x{}", "r(".repeat(5), ")".repeat(5))).is_ok());
        assert!(parse_select(&vec!["a"; 101].join(",")).is_err());
        assert!(parse_select(&deep).is_err());
    }
}
