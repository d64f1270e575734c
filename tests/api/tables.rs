//! Creating tables through `/admin/v1/tables`: the DDL that runs, what it guarantees
//! (row-level security, default deny), history, dry runs, and refusals that change nothing.

use galley_gateway::ErrorBody;
use galley_testkit::{TestApp, spawn_app, spawn_second_instance};
use serde_json::{Value, json};

async fn post_table(app: &TestApp, definition: &Value, query: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/admin/v1/tables{query}")))
        .bearer_auth(app.service_key())
        .json(definition)
        .send()
        .await
        .expect("response")
}

/// Tables in `public` and their column definitions: equal before and after a refusal
/// means nothing changed.
async fn schema_fingerprint(app: &TestApp) -> String {
    let client = app.db.connect().await.expect("connect");
    let row = client
        .query_one(
            "SELECT coalesce(string_agg(c.relname || ':' || a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY c.relname, a.attnum), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .expect("fingerprint");
    let history: i64 = client
        .query_one("SELECT count(*) FROM galley.schema_history", &[])
        .await
        .expect("history")
        .get(0);
    format!("{}|{history}", row.get::<_, String>(0))
}

fn todos() -> Value {
    json!({
        "name": "todos",
        "columns": [
            {"name": "title", "type": "text", "nullable": false},
            {"name": "done", "type": "boolean", "nullable": false, "default": {"value": false}},
            {"name": "owner", "type": "uuid", "default": {"expression": "auth.uid()"}}
        ],
        "foreign_keys": [{"columns": ["owner"], "references": {"table": "auth.users"}, "on_delete": "cascade"}],
        "checks": [{"column": "title", "min_length": 1}],
        "timestamps": true
    })
}

#[tokio::test]
async fn a_created_table_has_forced_row_level_security_and_no_access_for_api_roles() {
    let app = spawn_app().await;
    let response = post_table(&app, &todos(), "").await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["table"]["name"], "todos");
    assert_eq!(body["table"]["rls_enabled"], true);
    assert_eq!(body["table"]["rls_forced"], true);
    assert!(
        body["sql"]
            .as_str()
            .expect("sql")
            .contains("CREATE TABLE public.\"todos\"")
    );

    let client = app.db.connect().await.expect("connect");
    for role in ["anon", "authenticated"] {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            let granted: bool = client
                .query_one(
                    "SELECT has_table_privilege($1, 'public.todos', $2)",
                    &[&role, &privilege],
                )
                .await
                .expect("privilege")
                .get(0);
            assert!(!granted, "{role} has {privilege}");
        }
    }
    // The foreign key's column got an index.
    let indexed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = 'public.todos'::regclass AND a.attname = 'owner')",
            &[],
        )
        .await
        .expect("index")
        .get(0);
    assert!(indexed);
    // service_role may work with it; the defaults and the check hold.
    client
        .batch_execute(
            "BEGIN; SET LOCAL ROLE service_role;
             INSERT INTO public.todos (title) VALUES ('write tests');
             COMMIT;",
        )
        .await
        .expect("service_role inserts");
    let row = client
        .query_one(
            "SELECT done, created_at = updated_at FROM public.todos",
            &[],
        )
        .await
        .expect("row");
    assert!(!row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    let empty_title = client
        .batch_execute("INSERT INTO public.todos (title) VALUES ('')")
        .await;
    assert!(empty_title.is_err(), "the min_length check holds");
    client
        .batch_execute("SELECT pg_sleep(0.01); UPDATE public.todos SET done = true")
        .await
        .expect("update");
    let touched: bool = client
        .query_one("SELECT updated_at > created_at FROM public.todos", &[])
        .await
        .expect("row")
        .get(0);
    assert!(touched, "the trigger keeps updated_at current");

    let history: Value = app
        .http
        .get(app.url("/admin/v1/schema/history"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    let entries = history.as_array().expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["operation"], "create_table");
    assert_eq!(entries[0]["target"], "todos");
    assert_eq!(entries[0]["actor"], "service_role");
    assert_eq!(entries[0]["definition_after"]["name"], "todos");
    assert_eq!(entries[0]["sql"], body["sql"]);
}

#[tokio::test]
async fn a_dry_run_returns_the_sql_and_changes_nothing() {
    let app = spawn_app().await;
    let before = schema_fingerprint(&app).await;
    let response = post_table(&app, &todos(), "?dry_run=true").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["dry_run"], true);
    assert!(
        body["sql"]
            .as_str()
            .expect("sql")
            .contains("FORCE ROW LEVEL SECURITY")
    );
    assert_eq!(schema_fingerprint(&app).await, before);
}

#[tokio::test]
async fn invalid_definitions_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        post_table(&app, &json!({"name": "existing", "columns": []}), "")
            .await
            .status(),
        201
    );
    let before = schema_fingerprint(&app).await;
    let cases = [
        (
            json!({"name": "existing", "columns": []}),
            409,
            "already_exists",
        ),
        (
            json!({"name": "x\"; DROP TABLE existing; --", "columns": []}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "t", "columns": [{"name": "a;b", "type": "text"}]}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "t", "columns": [{"name": "a", "type": "integer); DROP TABLE existing; --"}]}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "t", "columns": [{"name": "select", "type": "text"}]}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "t", "columns": [{"name": "n", "type": "integer", "default": {"value": "abc"}}]}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "t", "columns": [{"name": "m", "type": "enum:no_such_enum"}]}),
            422,
            "invalid_definition",
        ),
        // PostgreSQL refuses a subquery in a CHECK (feature_not_supported): the admin
        // hears why, not a 500.
        (
            json!({"name": "t", "columns": [{"name": "n", "type": "integer"}],
                   "checks": [{"column": "n", "expression": "n > (SELECT 1)"}]}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "t", "columns": [], "extra": true}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": &"a".repeat(64), "columns": []}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "pg_evil", "columns": []}),
            422,
            "invalid_definition",
        ),
        // Names in reserved schemas, directly or as a reference.
        (
            json!({"name": "auth.users", "columns": []}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "users", "schema": "auth", "columns": []}),
            400,
            "invalid_body",
        ),
        (
            json!({"name": "t", "columns": [{"name": "a", "type": "bigint"}],
                   "foreign_keys": [{"columns": ["a"], "references": {"table": "galley.schema_history"}}]}),
            422,
            "invalid_definition",
        ),
        (
            json!({"name": "t", "columns": [{"name": "a\u{0}b", "type": "text"}]}),
            400,
            "invalid_body",
        ),
    ];
    for (definition, status, code) in cases {
        let response = post_table(&app, &definition, "").await;
        assert_eq!(response.status().as_u16(), status, "{definition}");
        let body: ErrorBody = response.json().await.expect("error shape");
        assert_eq!(body.code, code, "{definition}: {}", body.message);
        assert!(
            !body.message.to_lowercase().contains("create table"),
            "no SQL in errors: {}",
            body.message
        );
    }
    assert_eq!(schema_fingerprint(&app).await, before);
    // A literal that does not fit its type is refused by PostgreSQL, in words.
    let response = post_table(
        &app,
        &json!({"name": "t", "columns": [{"name": "n", "type": "integer", "default": {"value": "abc"}}]}),
        "",
    )
    .await;
    let body: ErrorBody = response.json().await.expect("error shape");
    assert!(
        body.message
            .contains("invalid input syntax for type integer"),
        "{}",
        body.message
    );
}

#[tokio::test]
async fn the_table_endpoints_need_the_service_role_key() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/admin/v1/tables"))
        .bearer_auth(app.anon_key())
        .json(&todos())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 403);
    let listed = app
        .http
        .get(app.url("/admin/v1/tables"))
        .send()
        .await
        .expect("response");
    assert_eq!(listed.status(), 401);
}

#[tokio::test]
async fn two_admins_creating_the_same_table_at_once_are_serialised() {
    let first = spawn_app().await;
    let second = spawn_second_instance(&first).await;
    let definition = todos();
    let (a, b) = tokio::join!(
        post_table(&first, &definition, ""),
        post_table(&second, &definition, "")
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let client = first.db.connect().await.expect("connect");
    let history: i64 = client
        .query_one(
            "SELECT count(*) FROM galley.schema_history WHERE target = 'todos'",
            &[],
        )
        .await
        .expect("history")
        .get(0);
    assert_eq!(history, 1);
}

#[tokio::test]
async fn tables_can_be_listed_and_read() {
    let app = spawn_app().await;
    assert_eq!(post_table(&app, &todos(), "").await.status(), 201);
    let list: Value = app
        .http
        .get(app.url("/admin/v1/tables"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().expect("list").len(), 1);
    let one = app
        .http
        .get(app.url("/admin/v1/tables/todos"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response");
    assert_eq!(one.status(), 200);
    let missing = app
        .http
        .get(app.url("/admin/v1/tables/nope"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response");
    assert_eq!(missing.status(), 404);
    let body: ErrorBody = missing.json().await.expect("error shape");
    assert_eq!(body.code, "table_not_found");
}

#[tokio::test]
async fn the_openapi_document_describes_every_admin_route() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/admin/v1/openapi.json"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|key| *key != "parameters")
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    // Every route the admin scope serves, probed: a documented route never answers 404
    // from the router, and an undocumented one would be missing from this list.
    let routes = [
        "GET /openapi.json",
        "POST /session",
        "GET /session",
        "DELETE /session",
        "POST /session/totp",
        "DELETE /session/totp",
        "POST /session/totp/confirm",
        "POST /setup",
        "GET /catalog",
        "GET /tables",
        "POST /tables",
        "GET /tables/{name}",
        "PATCH /tables/{name}",
        "DELETE /tables/{name}",
        "POST /tables/{name}/columns",
        "PATCH /tables/{name}/columns/{column}",
        "DELETE /tables/{name}/columns/{column}",
        "PUT /tables/{name}/rules",
        "PUT /tables/{name}/realtime",
        "POST /tables/{name}/constraints",
        "POST /tables/{name}/indexes",
        "DELETE /tables/{name}/constraints/{constraint}",
        "DELETE /tables/{name}/indexes/{index}",
        "GET /schema/history",
        "GET /outbox",
        "GET /users",
        "POST /users",
        "GET /users/{id}",
        "PATCH /users/{id}",
        "DELETE /users/{id}",
        "POST /users/{id}/logout",
        "POST /users/{id}/recover",
        "POST /sql",
        "GET /sql/history",
        "GET /sql/snippets",
        "POST /sql/snippets",
        "DELETE /sql/snippets/{id}",
        "GET /keys",
        "POST /keys/service_role",
        "GET /config",
        "GET /metrics",
        "POST /outbox/test",
        "GET /backups",
        "POST /backups",
        "POST /backups/{name}/verify",
        "GET /backups/{name}/files/{file}",
        "GET /audit",
        "GET /enums",
        "POST /enums",
        "GET /storage/buckets",
        "POST /storage/buckets",
        "GET /storage/buckets/{id}",
        "PUT /storage/buckets/{id}",
        "DELETE /storage/buckets/{id}",
        "GET /storage/buckets/{id}/objects",
        "DELETE /storage/buckets/{id}/objects",
        "GET /storage/buckets/{id}/objects/{key}",
        "POST /storage/buckets/{id}/objects/{key}",
        "PUT /storage/buckets/{id}/rules",
    ];
    let expected: std::collections::BTreeSet<String> =
        routes.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(documented, expected);
    for route in routes {
        let (method, path) = route.split_once(' ').expect("route");
        let path = path
            .replace("{name}", "probe")
            .replace("{column}", "probe")
            .replace("{constraint}", "probe")
            .replace("{index}", "probe")
            .replace("{id}", "probe")
            .replace("{file}", "probe")
            .replace("{key}", "probe");
        let response = app
            .http
            .request(
                method.parse().expect("method"),
                app.url(&format!("/admin/v1{path}")),
            )
            .send()
            .await
            .expect("response");
        let status = response.status().as_u16();
        assert!(status != 405, "{route} is not served ({status})");
        if status == 404 {
            let body: ErrorBody = response.json().await.expect("error shape");
            assert_ne!(body.code, "not_found", "{route} is not routed");
        }
    }
}

#[tokio::test]
async fn a_name_longer_than_63_bytes_never_collides_with_its_truncation() {
    let app = spawn_app().await;
    let column = "c".repeat(63);
    let definition = json!({"name": "wide", "columns": [{"name": column, "type": "text"}]});
    assert_eq!(post_table(&app, &definition, "").await.status(), 201);
    let before = schema_fingerprint(&app).await;
    // PostgreSQL would silently truncate this to the existing column's name.
    let longer = format!("{column}x");
    let response = app
        .http
        .post(app.url("/admin/v1/tables/wide/columns"))
        .bearer_auth(app.service_key())
        .json(&json!({"name": longer, "type": "integer"}))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 400);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert!(
        body.message.contains("longer than 63 bytes"),
        "{}",
        body.message
    );
    assert_eq!(schema_fingerprint(&app).await, before);
}

#[tokio::test]
async fn two_admins_changing_one_table_at_once_both_apply_in_history_order() {
    let first = spawn_app().await;
    let second = spawn_second_instance(&first).await;
    assert_eq!(post_table(&first, &todos(), "").await.status(), 201);
    let add = |app: &TestApp, name: &str| {
        app.http
            .post(app.url("/admin/v1/tables/todos/columns"))
            .bearer_auth(app.service_key())
            .json(&json!({"name": name, "type": "text"}))
            .send()
    };
    let (a, b) = tokio::join!(add(&first, "from_first"), add(&second, "from_second"));
    assert_eq!(a.expect("response").status(), 200);
    assert_eq!(b.expect("response").status(), 200);
    let client = first.db.connect().await.expect("connect");
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'todos' AND column_name IN ('from_first', 'from_second')",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(columns, 2);
    let history = client
        .query(
            "SELECT operation, sql FROM galley.schema_history ORDER BY id",
            &[],
        )
        .await
        .expect("history");
    assert_eq!(history.len(), 3);
    assert!(
        history[1..]
            .iter()
            .all(|row| row.get::<_, String>(0) == "add_column")
    );
    // Replaying the history in order reproduces the table: each entry saw the previous one.
    let replayed: Vec<String> = history.iter().map(|row| row.get(1)).collect();
    assert!(replayed[1].contains("from_first") ^ replayed[2].contains("from_first"));
}

#[tokio::test]
async fn enum_types_can_be_created_and_used_by_columns() {
    let app = spawn_app().await;
    let mood = json!({"name": "mood", "values": ["happy", "it's complicated"]});
    let response = app
        .http
        .post(app.url("/admin/v1/enums"))
        .bearer_auth(app.service_key())
        .json(&mood)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let table = json!({"name": "diary", "columns": [
        {"name": "feeling", "type": "enum:mood", "nullable": false, "default": {"value": "happy"}},
        {"name": "history", "type": "enum:mood[]"}]});
    assert_eq!(post_table(&app, &table, "").await.status(), 201);
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute("INSERT INTO public.diary (history) VALUES ('{\"it''s complicated\"}')")
        .await
        .expect("insert");
    let feeling: String = client
        .query_one("SELECT feeling::text FROM public.diary", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(feeling, "happy");
    assert!(
        client
            .batch_execute("INSERT INTO public.diary (feeling) VALUES ('sad')")
            .await
            .is_err()
    );

    let listed: Value = app
        .http
        .get(app.url("/admin/v1/enums"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["values"], json!(["happy", "it's complicated"]));
    let again = app
        .http
        .post(app.url("/admin/v1/enums"))
        .bearer_auth(app.service_key())
        .json(&mood)
        .send()
        .await
        .expect("response");
    assert_eq!(again.status(), 422);
}

#[tokio::test]
async fn tables_and_columns_can_be_renamed() {
    let app = spawn_app().await;
    assert_eq!(post_table(&app, &todos(), "").await.status(), 201);
    let patch = |path: &str, body: Value| {
        app.http
            .patch(app.url(path))
            .bearer_auth(app.service_key())
            .json(&body)
            .send()
    };
    let renamed = patch(
        "/admin/v1/tables/todos/columns/title",
        json!({"name": "summary"}),
    )
    .await
    .expect("response");
    assert_eq!(renamed.status(), 200);
    let clash = patch(
        "/admin/v1/tables/todos/columns/summary",
        json!({"name": "done"}),
    )
    .await
    .expect("response");
    assert_eq!(clash.status(), 422);
    let renamed = patch("/admin/v1/tables/todos", json!({"name": "tasks"}))
        .await
        .expect("response");
    assert_eq!(renamed.status(), 200);
    let client = app.db.connect().await.expect("connect");
    let columns: Vec<String> = client
        .query("SELECT column_name::text FROM information_schema.columns WHERE table_name = 'tasks' ORDER BY ordinal_position", &[])
        .await
        .expect("columns")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(columns.contains(&"summary".to_owned()), "{columns:?}");
    let forced: bool = client
        .query_one(
            "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'public.tasks'::regclass",
            &[],
        )
        .await
        .expect("flag")
        .get(0);
    assert!(forced, "row-level security stays forced after a rename");
    let bad = patch("/admin/v1/tables/tasks", json!({"name": "rpc"}))
        .await
        .expect("response");
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn tables_carry_a_row_estimate_never_a_count() {
    let app = spawn_app().await;
    let definition = json!({"name": "counted", "columns": [{"name": "n", "type": "integer"}]});
    assert_eq!(post_table(&app, &definition, "").await.status(), 201);
    let inserted = app
        .http
        .post(app.url("/rest/v1/counted"))
        .bearer_auth(app.service_key())
        .json(&json!([{"n": 1}, {"n": 2}, {"n": 3}]))
        .send()
        .await
        .expect("response");
    assert_eq!(inserted.status(), 201);
    // The statistics reach PostgreSQL's counters within seconds of the insert.
    let estimate = || async {
        let table: Value = app
            .http
            .get(app.url("/admin/v1/tables/counted"))
            .bearer_auth(app.service_key())
            .send()
            .await
            .expect("response")
            .json()
            .await
            .expect("json");
        table["row_estimate"].as_i64()
    };
    let counted = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        estimate().await == Some(3)
    })
    .await;
    assert!(counted, "row_estimate: {:?}", estimate().await);
    let listed: Value = app
        .http
        .get(app.url("/admin/v1/tables"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["row_estimate"], 3);
}
