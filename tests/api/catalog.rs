//! The catalog (schema cache): what it holds, how fast it follows DDL, and who may read it.

use std::time::{Duration, Instant};

use galley_gateway::ErrorBody;
use galley_testkit::{TestApp, spawn_app, spawn_second_instance};
use serde_json::Value;

async fn catalog(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/admin/v1/catalog"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    response.json().await.expect("catalog JSON")
}

/// Polls the app's catalog until `holds` is true; returns how long that took, or None
/// after `limit`.
async fn wait_for(
    app: &TestApp,
    limit: Duration,
    holds: impl Fn(&Value) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if holds(&catalog(app).await) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

const SCHEMA: &str = "
    CREATE TABLE public.authors (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      email text NOT NULL UNIQUE,
      name varchar(80)
    );
    CREATE TABLE public.posts (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      author_id bigint NOT NULL REFERENCES public.authors (id) ON DELETE CASCADE,
      owner uuid REFERENCES auth.users (id) ON DELETE SET NULL,
      title text NOT NULL,
      tags text[] NOT NULL DEFAULT '{}',
      published_at timestamptz
    );
    CREATE VIEW public.published AS SELECT id, title FROM public.posts WHERE published_at IS NOT NULL;
    CREATE FUNCTION public.post_count(author bigint, since timestamptz DEFAULT NULL) RETURNS bigint
      LANGUAGE sql STABLE AS 'SELECT count(*) FROM public.posts WHERE author_id = author';
";

#[tokio::test]
async fn the_catalog_describes_tables_views_keys_and_functions() {
    let app = spawn_app().await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(SCHEMA)
        .await
        .expect("schema");
    let found = wait_for(&app, Duration::from_secs(5), |c| {
        c["relations"]["public.published"].is_object()
    })
    .await;
    assert!(found.is_some(), "the catalog picked up the new schema");
    let catalog = catalog(&app).await;

    let posts = &catalog["relations"]["public.posts"];
    assert_eq!(posts["kind"], "table");
    assert_eq!(posts["primary_key"], serde_json::json!(["id"]));
    let columns: Vec<(&str, &str, bool)> = posts["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["data_type"].as_str().unwrap(),
                c["nullable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        vec![
            ("id", "uuid", false),
            ("author_id", "bigint", false),
            ("owner", "uuid", true),
            ("title", "text", false),
            ("tags", "text[]", false),
            ("published_at", "timestamp with time zone", true),
        ]
    );
    assert_eq!(posts["columns"][0]["default"], "gen_random_uuid()");
    let fks = posts["foreign_keys"].as_array().expect("fks");
    assert_eq!(fks.len(), 2);
    let to_authors = fks
        .iter()
        .find(|fk| fk["target_table"] == "authors")
        .expect("fk to authors");
    assert_eq!(to_authors["columns"], serde_json::json!(["author_id"]));
    assert_eq!(to_authors["target_columns"], serde_json::json!(["id"]));
    assert_eq!(to_authors["on_delete"], "cascade");
    let to_users = fks
        .iter()
        .find(|fk| fk["target_table"] == "users")
        .expect("fk to auth.users");
    assert_eq!(to_users["target_schema"], "auth");
    assert_eq!(to_users["on_delete"], "set null");

    let authors = &catalog["relations"]["public.authors"];
    assert_eq!(authors["unique"], serde_json::json!([["email"]]));
    assert_eq!(authors["columns"][0]["identity"], true);
    assert_eq!(authors["columns"][2]["data_type"], "character varying(80)");
    assert_eq!(catalog["relations"]["public.published"]["kind"], "view");
    // Galley's own schemas are never part of it.
    assert!(
        catalog["relations"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("public."))
    );

    let function = catalog["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "post_count")
        .expect("function");
    assert_eq!(function["returns"], "bigint");
    assert_eq!(function["volatility"], "stable");
    assert_eq!(function["args"][0]["name"], "author");
    assert_eq!(function["args"][0]["has_default"], false);
    assert_eq!(function["args"][1]["data_type"], "timestamp with time zone");
    assert_eq!(function["args"][1]["has_default"], true);
}

#[tokio::test]
async fn a_column_added_with_psql_appears_without_a_restart() {
    let app = spawn_app().await;
    let db = app.db.connect().await.expect("connect");
    db.batch_execute("CREATE TABLE public.notes (id int PRIMARY KEY)")
        .await
        .expect("table");
    wait_for(&app, Duration::from_secs(5), |c| {
        c["relations"]["public.notes"].is_object()
    })
    .await
    .expect("table appears");
    db.batch_execute("ALTER TABLE public.notes ADD COLUMN body text")
        .await
        .expect("column");
    let took = wait_for(&app, Duration::from_secs(1), |c| {
        c["relations"]["public.notes"]["columns"]
            .as_array()
            .is_some_and(|cols| cols.len() == 2)
    })
    .await;
    assert!(
        took.is_some(),
        "the new column was in the catalog within a second"
    );

    db.batch_execute("DROP TABLE public.notes")
        .await
        .expect("drop");
    let gone = wait_for(&app, Duration::from_secs(1), |c| {
        c["relations"]["public.notes"].is_null()
    })
    .await;
    assert!(
        gone.is_some(),
        "the dropped table left the catalog within a second"
    );
}

#[tokio::test]
async fn a_second_instance_sees_a_change_within_a_second() {
    let first = spawn_app().await;
    let second = spawn_second_instance(&first).await;
    first
        .db
        .connect()
        .await
        .expect("connect")
        .batch_execute("CREATE TABLE public.shared (id int)")
        .await
        .expect("table");
    for app in [&first, &second] {
        let took = wait_for(app, Duration::from_secs(1), |c| {
            c["relations"]["public.shared"].is_object()
        })
        .await;
        assert!(
            took.is_some(),
            "instance {} saw the change within a second",
            app.address
        );
    }
}

#[tokio::test]
async fn the_admin_catalog_needs_the_service_role_key() {
    let app = spawn_app().await;
    let url = app.url("/admin/v1/catalog");

    let none = app.http.get(&url).send().await.expect("response");
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: ErrorBody = none.json().await.expect("error shape");
    assert_eq!(body.code, "unauthorized");

    let anon = app
        .http
        .get(&url)
        .bearer_auth(app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(anon.status(), 403);
    let body: ErrorBody = anon.json().await.expect("error shape");
    assert_eq!(body.code, "forbidden");

    let forged = format!("{}x", app.service_key());
    let forged = app
        .http
        .get(&url)
        .bearer_auth(forged)
        .send()
        .await
        .expect("response");
    assert_eq!(forged.status(), 401);

    // Supabase clients send the key as `apikey` too.
    let apikey = app
        .http
        .get(&url)
        .header("apikey", app.service_key())
        .send()
        .await
        .expect("response");
    assert_eq!(apikey.status(), 200);
}
