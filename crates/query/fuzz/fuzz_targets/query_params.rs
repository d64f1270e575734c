//! Arbitrary bytes as a query string: split into pairs the way the gateway will, parsed,
//! and, when it parses, rendered against a small fixed schema, as a read and as a call
//! of a function (named arguments, and a whole body for a single unnamed parameter).
//! Neither step may panic or loop, and no filter or argument value may appear in the
//! SQL text (values are parameters only).
#![no_main]

use galley_query::{
    ComputedField, ComputedRelationship, ForeignKeyShape, FunctionName, Operation, ReadOptions,
    TableShape,
};
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
        // A computed field `label` and a computed relationship `siblings` on every table.
        computed_fields: vec![ComputedField {
            function: FunctionName {
                schema: "public".into(),
                name: "label".into(),
            },
            data_type: "text".into(),
        }],
        computed_relationships: vec![ComputedRelationship {
            function: FunctionName {
                schema: "public".into(),
                name: "siblings".into(),
            },
            target_schema: "public".into(),
            target_table: name.into(),
            to_one: false,
        }],
        ..TableShape::default()
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
    let rpc_read = data.first().is_some_and(|b| b % 2 == 0);
    let Ok(query) = galley_query::parse_query(&pairs, rpc_read) else {
        return;
    };
    let schema = vec![
        table(
            "a",
            &[
                ("id", "bigint"),
                ("name", "text"),
                ("data", "jsonb"),
                ("b_id", "bigint"),
            ],
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
    // A function call with the query's arguments (GET /rpc): named ones from a JSON
    // object, and a whole body for a single unnamed parameter. Values never reach the
    // SQL text: the same names with other values render the same SQL.
    let function = galley_query::FunctionShape {
        schema: "public".into(),
        name: "f".into(),
        args: vec![
            ("a".into(), "integer".into(), true),
            ("p".into(), "public.pair".into(), true),
            ("xs".into(), "integer[]".into(), true),
        ],
        composite_args: vec!["p".into()],
        returns_set: true,
        returns: Some(schema[0].clone()),
        returns_void: false,
    };
    let mut names: Vec<String> = query
        .arguments
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    let body = |value: &str| {
        serde_json::Value::Object(
            names
                .iter()
                .map(|name| (name.clone(), serde_json::Value::String(value.to_owned())))
                .collect(),
        )
        .to_string()
    };
    let options = ReadOptions::default();
    if let Ok(call) = galley_query::render_call(
        &schema,
        &function,
        &names,
        body(text),
        &query,
        options.clone(),
    ) {
        let other = galley_query::render_call(
            &schema,
            &function,
            &names,
            body("v"),
            &query,
            options.clone(),
        )
        .expect("the same names render");
        assert_eq!(
            call.sql, other.sql,
            "an argument's value reached the SQL text"
        );
    }
    if let Ok(single) = galley_query::render_single_call(
        &schema,
        &function,
        text.to_owned(),
        &query,
        options.clone(),
    ) {
        let other = galley_query::render_single_call(
            &schema,
            &function,
            "v".into(),
            &query,
            options.clone(),
        )
        .expect("the same call renders");
        assert_eq!(single.sql, other.sql, "a body reached the SQL text");
    }
    let Ok(statement) =
        galley_query::render_read(&schema, &schema[0], &query, ReadOptions::default())
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
