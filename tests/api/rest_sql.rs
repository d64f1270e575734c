//! The REST dialect's rendered SQL run against a real PostgreSQL, its parameters bound as
//! text the way the gateway will bind them.

use galley_query::{ReadOptions, TableShape, parse_query, render_read};
use galley_testkit::TestDatabase;
use tokio_postgres::types::Type;

async fn read(
    db: &tokio_postgres::Client,
    query: &[(&str, &str)],
    options: ReadOptions,
) -> (Option<i64>, i64, serde_json::Value) {
    let table = TableShape {
        schema: "public".into(),
        name: "todos".into(),
        columns: vec![
            ("id".into(), "bigint".into()),
            ("title".into(), "text".into()),
            ("done".into(), "boolean".into()),
            ("meta".into(), "jsonb".into()),
            ("tags".into(), "text[]".into()),
        ],
        primary_key: vec!["id".into()],
        ..TableShape::default()
    };
    let pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let statement = render_read(
        &vec![table.clone()],
        &table,
        &parse_query(&pairs, false).expect("parses"),
        options,
    )
    .expect("renders");
    let types = vec![Type::TEXT; statement.params.len()];
    let prepared = db
        .prepare_typed(&statement.sql, &types)
        .await
        .expect("prepares");
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = statement
        .params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let row = db.query_one(&prepared, &params).await.expect("runs");
    let body: String = row.get(2);
    (
        row.get(0),
        row.get(1),
        serde_json::from_str(&body).expect("JSON body"),
    )
}

#[tokio::test]
async fn rendered_reads_return_what_postgrest_would() {
    let db = TestDatabase::migrated().await.expect("database");
    let client = db.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE public.todos (id bigint PRIMARY KEY, title text, done boolean, meta jsonb, tags text[]);
             INSERT INTO public.todos SELECT n, 'task ' || n, n % 2 = 0, jsonb_build_object('kind', CASE WHEN n % 3 = 0 THEN 'home' ELSE 'work' END),
                    ARRAY['t' || (n % 4)] FROM generate_series(1, 30) n;
             UPDATE public.todos SET title = 'buy milk, eggs' WHERE id = 7;",
        )
        .await
        .expect("seed");

    let (total, page, body) = read(
        &client,
        &[
            ("select", "id,name:title,meta->>kind"),
            ("done", "is.false"),
            ("or", "(id.lt.10,meta->>kind.eq.home)"),
            ("order", "id.desc"),
            ("limit", "3"),
            ("offset", "1"),
        ],
        ReadOptions {
            max_rows: None,
            count: galley_query::Count::Exact,
            ..ReadOptions::default()
        },
    )
    .await;
    // Odd ids below 10 (1,3,5,7,9) or odd multiples of 3 (15, 21, 27): 8 rows.
    assert_eq!(total, Some(8));
    assert_eq!(page, 3);
    assert_eq!(body[0]["id"], 21);
    assert_eq!(body[0]["kind"], "home");
    assert!(body[0]["name"].is_string());

    let (_, _, body) = read(
        &client,
        &[("title", "like.*milk,*"), ("select", "id")],
        ReadOptions::default(),
    )
    .await;
    assert_eq!(body, serde_json::json!([{"id": 7}]));
    let (_, _, body) = read(
        &client,
        &[("id", "in.(2,4,99)"), ("select", "id"), ("order", "id")],
        ReadOptions::default(),
    )
    .await;
    assert_eq!(body, serde_json::json!([{"id": 2}, {"id": 4}]));
    let (_, _, body) = read(
        &client,
        &[
            ("tags", "cs.{t1}"),
            ("id", "lte.5"),
            ("select", "id"),
            ("order", "id"),
        ],
        ReadOptions::default(),
    )
    .await;
    assert_eq!(body, serde_json::json!([{"id": 1}, {"id": 5}]));
    let (_, _, body) = read(
        &client,
        &[("id", "eq(any).{3,4}"), ("select", "id"), ("order", "id")],
        ReadOptions::default(),
    )
    .await;
    assert_eq!(body, serde_json::json!([{"id": 3}, {"id": 4}]));
    let (_, page, _) = read(
        &client,
        &[],
        ReadOptions {
            max_rows: Some(10),
            ..ReadOptions::default()
        },
    )
    .await;
    assert_eq!(page, 10);
    // A hostile value is just a value that matches nothing.
    let (_, page, _) = read(
        &client,
        &[("title", "eq.x'; DROP TABLE public.todos; --")],
        ReadOptions::default(),
    )
    .await;
    assert_eq!(page, 0);
    let still_there: i64 = client
        .query_one("SELECT count(*) FROM public.todos", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(still_there, 30);
}
