//! Arbitrary bytes as a query string: split into pairs the way the gateway will, parsed,
//! and, when it parses, rendered against a small fixed schema. Neither step may panic or
//! loop, and no filter value may appear in the SQL text (values are parameters only).
#![no_main]

use galley_query::{ForeignKeyShape, Operation, ReadOptions, TableShape};
use libfuzzer_sys::fuzz_target;

fn table(name: &str, columns: &[(&str, &str)], fks: Vec<ForeignKeyShape>) -> TableShape {
    TableShape {
        schema: "public".into(),
        name: name.into(),
        columns: columns
            .iter()
            .map(|(c, t)| ((*c).into(), (*t).into()))
            .collect(),
        primary_key: vec!["id".into()],
        unique: Vec::new(),
        foreign_keys: fks,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    let _ = galley_query::parse_select(text);
    let Ok(query) = galley_query::parse_query(&pairs) else {
        return;
    };
    let schema = vec![
        table(
            "a",
            &[("id", "bigint"), ("name", "text"), ("data", "jsonb"), ("b_id", "bigint")],
            vec![ForeignKeyShape {
                name: "a_b_id_fkey".into(),
                columns: vec!["b_id".into()],
                target_schema: "public".into(),
                target_table: "b".into(),
                target_columns: vec!["id".into()],
            }],
        ),
        table("b", &[("id", "bigint"), ("title", "text")], Vec::new()),
    ];
    let Ok(statement) = galley_query::render_read(&schema, &schema[0], &query, ReadOptions::default())
    else {
        return;
    };
    // The SQL text depends on the query's shape only: with every filter value replaced,
    // it is the same text.
    let mut blank = query.clone();
    for (_, filter) in &mut blank.filters {
        match &mut filter.operation {
            Operation::Compare { value, .. } | Operation::Fts { value, .. } => *value = "v".into(),
            Operation::In(values) => values.iter_mut().for_each(|v| *v = "v".into()),
            Operation::Is(_) => {}
        }
    }
    let blanked = galley_query::render_read(&schema, &schema[0], &blank, ReadOptions::default())
        .expect("the same shape renders");
    assert_eq!(statement.sql, blanked.sql, "a value reached the SQL text");
});
