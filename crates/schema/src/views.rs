//! Relationships through views. A view's columns are traced to the table columns they
//! show, read from the view's stored query (`pg_rewrite.ev_action`: each output column's
//! `resorigtbl`/`resorigcol`, which PostgreSQL fills in for a plain column reference), and
//! every foreign key whose columns a view shows becomes a key of the view too: from a view
//! to a table, from a table to a view, and between views, as PostgREST finds them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::catalog::{ForeignKey, Relation};

/// One output column of a view and the table column it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) column: String,
    pub(crate) relation: u32,
    pub(crate) attnum: i16,
}

/// A node-tree token: a bracket, or a word with its backslash escapes removed.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            }
            '(' | '{' => {
                flush(&mut word, &mut out);
                out.push(Token::Open);
            }
            ')' | '}' => {
                flush(&mut word, &mut out);
                out.push(Token::Close);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The origins of a view's columns, from its `_RETURN` rule's query tree: the entries of
/// the outermost query's target list that name a table column (`resorigtbl` not 0).
/// Subqueries, whose target lists come earlier in the text, are skipped by depth.
pub(crate) fn origins(rule: &str) -> Vec<Origin> {
    let tokens = tokens(rule);
    // `({QUERY …})`: the outermost query's own fields are at depth 2.
    let mut depth = 0usize;
    let mut start = None;
    for (index, token) in tokens.iter().enumerate() {
        match token {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            Token::Word(word) if depth == 2 && word == ":targetList" => {
                start = Some(index + 1);
                break;
            }
            Token::Word(_) => {}
        }
    }
    let Some(start) = start.filter(|start| tokens.get(*start) == Some(&Token::Open)) else {
        return Vec::new();
    };
    // The list `( {TARGETENTRY …} … )`: each entry's fields at depth 2 from the list.
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut field: Option<&str> = None;
    let mut entry: (Option<String>, u32, i16, bool) = (None, 0, 0, false);
    for token in &tokens[start..] {
        match token {
            Token::Open => {
                depth += 1;
                if depth == 2 {
                    entry = (None, 0, 0, false);
                }
                field = None;
            }
            Token::Close => {
                if depth == 2
                    && let (Some(column), relation, attnum, false) = &entry
                    && *relation != 0
                    && *attnum > 0
                {
                    out.push(Origin {
                        column: column.clone(),
                        relation: *relation,
                        attnum: *attnum,
                    });
                }
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
                field = None;
            }
            Token::Word(word) if depth == 2 => match (field, word.as_str()) {
                (_, name) if name.starts_with(':') => field = Some(name),
                (Some(":resname"), value) => {
                    entry.0 = (value != "<>").then(|| value.to_owned());
                    field = None;
                }
                (Some(":resorigtbl"), value) => {
                    entry.1 = value.parse().unwrap_or(0);
                    field = None;
                }
                (Some(":resorigcol"), value) => {
                    entry.2 = value.parse().unwrap_or(0);
                    field = None;
                }
                (Some(":resjunk"), value) => {
                    entry.3 = value == "true";
                    field = None;
                }
                _ => field = None,
            },
            Token::Word(_) => {}
        }
    }
    out
}

/// A foreign key touching a table some view shows, with both ends by oid and attnum.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BaseKey {
    pub(crate) name: String,
    pub(crate) relation: u32,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) attnums: Vec<i16>,
    pub(crate) columns: Vec<String>,
    pub(crate) target: u32,
    pub(crate) target_schema: String,
    pub(crate) target_table: String,
    pub(crate) target_attnums: Vec<i16>,
    pub(crate) target_columns: Vec<String>,
    pub(crate) on_delete: String,
    pub(crate) on_update: String,
}

/// One end of a key: a relation and its columns, in the key's order.
struct End {
    key: String,
    columns: Vec<String>,
}

/// The ends a key's side can be seen from: the table itself when the catalog has it,
/// and every view that shows all of its columns (views of views followed through).
fn ends(
    relations: &BTreeMap<String, Relation>,
    shown: &HashMap<String, HashMap<(u32, i16), Vec<String>>>,
    oid: u32,
    schema: &str,
    table: &str,
    attnums: &[i16],
    columns: &[String],
) -> Vec<(End, bool)> {
    let mut out = Vec::new();
    let key = format!("{schema}.{table}");
    if relations.contains_key(&key) {
        out.push((
            End {
                key,
                columns: columns.to_vec(),
            },
            false,
        ));
    }
    for (view, map) in shown {
        // Each way the view shows the key's columns (a column shown twice, as in a
        // self-join, gives two), up to a few.
        let mut choices: Vec<Vec<String>> = vec![Vec::new()];
        for attnum in attnums {
            let Some(names) = map.get(&(oid, *attnum)) else {
                choices.clear();
                break;
            };
            choices = choices
                .into_iter()
                .flat_map(|chosen| {
                    names.iter().map(move |name| {
                        let mut next = chosen.clone();
                        next.push(name.clone());
                        next
                    })
                })
                .take(8)
                .collect();
        }
        for columns in choices {
            out.push((
                End {
                    key: view.clone(),
                    columns,
                },
                true,
            ));
        }
    }
    out
}

/// Adds to each relation the keys views give it (`Relation::view_keys`): for every base
/// key and every pair of its ends where one is a view, a key from the referencing end to
/// the referenced one, under the base key's name.
pub(crate) fn add_view_keys(
    relations: &mut BTreeMap<String, Relation>,
    rules: &BTreeMap<String, String>,
    base_keys: &[BaseKey],
) {
    let by_oid: HashMap<u32, String> = relations
        .iter()
        .map(|(key, relation)| (relation.oid, key.clone()))
        .collect();
    // Each view's columns by the table column they show, views of views resolved to the
    // tables underneath (a few rounds: a chain deeper than that is not followed).
    let mut direct: HashMap<String, Vec<Origin>> = rules
        .iter()
        .map(|(view, rule)| (view.clone(), origins(rule)))
        .collect();
    for _ in 0..4 {
        let snapshot = direct.clone();
        for origins in direct.values_mut() {
            for origin in origins.iter_mut() {
                let Some(inner) = by_oid
                    .get(&origin.relation)
                    .and_then(|key| snapshot.get(key))
                else {
                    continue;
                };
                let Some(name) = relations
                    .get(
                        by_oid
                            .get(&origin.relation)
                            .map(String::as_str)
                            .unwrap_or_default(),
                    )
                    .and_then(|r| {
                        r.columns
                            .iter()
                            .find(|c| c.position == i32::from(origin.attnum))
                    })
                    .map(|c| c.name.clone())
                else {
                    continue;
                };
                if let Some(through) = inner.iter().find(|o| o.column == name) {
                    origin.relation = through.relation;
                    origin.attnum = through.attnum;
                }
            }
        }
    }
    let shown: HashMap<String, HashMap<(u32, i16), Vec<String>>> = direct
        .into_iter()
        .map(|(view, origins)| {
            let mut map: HashMap<(u32, i16), Vec<String>> = HashMap::new();
            for origin in origins {
                map.entry((origin.relation, origin.attnum))
                    .or_default()
                    .push(origin.column);
            }
            (view, map)
        })
        .collect();
    let mut added: Vec<(String, ForeignKey)> = Vec::new();
    for key in base_keys {
        let from = ends(
            relations,
            &shown,
            key.relation,
            &key.schema,
            &key.table,
            &key.attnums,
            &key.columns,
        );
        let to = ends(
            relations,
            &shown,
            key.target,
            &key.target_schema,
            &key.target_table,
            &key.target_attnums,
            &key.target_columns,
        );
        for (source, source_view) in &from {
            for (target, target_view) in &to {
                if !source_view && !target_view {
                    continue;
                }
                let Some((target_schema, target_table)) = target.key.split_once('.') else {
                    continue;
                };
                added.push((
                    source.key.clone(),
                    ForeignKey {
                        name: key.name.clone(),
                        columns: source.columns.clone(),
                        target_schema: target_schema.to_owned(),
                        target_table: target_table.to_owned(),
                        target_columns: target.columns.clone(),
                        on_delete: key.on_delete.clone(),
                        on_update: key.on_update.clone(),
                    },
                ));
            }
        }
    }
    for (relation, key) in added {
        if let Some(relation) = relations.get_mut(&relation)
            && !relation.view_keys.contains(&key)
        {
            relation.view_keys.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of PostgreSQL 15's `_RETURN` rule for
    /// `SELECT b.id AS book_id, b.title, b.author_id AS writer FROM books b JOIN authors a
    /// ON a.id = b.author_id WHERE b.id > (SELECT min(id) FROM books)`, trimmed: the
    /// subquery's target list comes first in the text and must not be taken.
    const RULE: &str = r#"({QUERY :commandType 1 :rtable ({RANGETBLENTRY :alias {ALIAS :aliasname b :colnames <>} :eref {ALIAS :aliasname b :colnames ("id" "title" "author_id")} :rtekind 0 :relid 17462}) :jointree {FROMEXPR :fromlist <> :quals {OPEXPR :args ({VAR :varno 3} {SUBLINK :subselect {QUERY :commandType 1 :targetList ({TARGETENTRY :expr {AGGREF :args ({TARGETENTRY :expr {VAR :varno 1 :varattno 1} :resno 1 :resname <> :resorigtbl 0 :resorigcol 0 :resjunk false})} :resno 1 :resname min :resorigtbl 0 :resorigcol 0 :resjunk false}) :location 138}})}} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1} :resno 1 :resname book_id :ressortgroupref 0 :resorigtbl 17462 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 2} :resno 2 :resname title :resorigtbl 17462 :resorigcol 2 :resjunk false} {TARGETENTRY :expr {OPEXPR :args ({VAR :varno 3 :varattno 3})} :resno 3 :resname upper\ case :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 3} :resno 4 :resname writer\(s\) :resorigtbl 17462 :resorigcol 3 :resjunk false}) :override 0})"#;

    #[test]
    fn the_outer_target_list_gives_each_column_its_table_column() {
        assert_eq!(
            origins(RULE),
            vec![
                Origin {
                    column: "book_id".into(),
                    relation: 17462,
                    attnum: 1
                },
                Origin {
                    column: "title".into(),
                    relation: 17462,
                    attnum: 2
                },
                Origin {
                    column: "writer(s)".into(),
                    relation: 17462,
                    attnum: 3
                },
            ]
        );
        assert_eq!(origins(""), Vec::new());
        assert_eq!(origins("({QUERY :targetList"), Vec::new());
    }
}
