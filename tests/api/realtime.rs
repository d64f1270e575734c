//! Realtime's database changes, below the WebSocket: the admin switch that makes a table
//! publish, and a second realtime core (as another instance would run it) following the
//! change log of a running Galley while transactions interleave, commit late or roll
//! back. Frames are read straight from the session's queue; `tests/sdk/realtime.test.js`
//! drives the same through supabase-js over the socket.

use std::sync::Arc;
use std::time::Duration;

use galley_auth::{JwtSecret, TokenVerifier};
use galley_realtime::changes::ChangeSources;
use galley_realtime::{Frame, Realtime, RealtimeConfig, Vsn};
use galley_schema::CatalogCache;
use galley_testkit::{TestApp, spawn_app};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::mpsc;

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .request(method, app.url(&format!("/admin/v1{path}")))
        .bearer_auth(app.service_key())
        .json(&body)
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_owned_table(app: &TestApp, name: &str) {
    let (status, body) = admin(
        app,
        reqwest::Method::POST,
        "/tables",
        json!({
            "name": name,
            "primary_key": "bigint",
            "columns": [
                {"name": "owner", "type": "uuid", "nullable": false},
                {"name": "title", "type": "text", "nullable": false}
            ]
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let owner = json!({"preset": "owner", "column": "owner"});
    let (status, body) = admin(
        app,
        reqwest::Method::PUT,
        &format!("/tables/{name}/rules"),
        json!({"select": owner, "insert": owner, "update": owner, "delete": owner}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_table_publishes_its_changes_only_when_switched_on_and_the_switch_is_recorded() {
    let app = spawn_app().await;
    create_owned_table(&app, "todos").await;
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/todos/realtime",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["sql"]
            .as_str()
            .expect("sql")
            .contains("CREATE TRIGGER galley_realtime"),
        "{body}"
    );
    let (_, table) = admin(&app, reqwest::Method::GET, "/tables/todos", Value::Null).await;
    assert_eq!(table["realtime"], true, "{table}");
    // Switching on twice changes nothing.
    let (status, again) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/todos/realtime",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!((status, again["sql"].as_str()), (200, Some("")));

    let db = app.db.connect().await.expect("db");
    db.batch_execute(
        "INSERT INTO todos (owner, title) VALUES (gen_random_uuid(), 'logged'); \
         UPDATE todos SET title = 'edited'; DELETE FROM todos",
    )
    .await
    .expect("writes");
    let logged: Vec<(String, Option<String>, Option<String>)> = db
        .query(
            "SELECT op, record->>'title', old_record->>'title' FROM galley.realtime_changes \
             WHERE table_name = 'todos' ORDER BY id",
            &[],
        )
        .await
        .expect("log")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        logged,
        vec![
            ("INSERT".to_owned(), Some("logged".to_owned()), None),
            (
                "UPDATE".to_owned(),
                Some("edited".to_owned()),
                Some("logged".to_owned())
            ),
            ("DELETE".to_owned(), None, Some("edited".to_owned())),
        ]
    );

    let (status, off) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/todos/realtime",
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    db.batch_execute("INSERT INTO todos (owner, title) VALUES (gen_random_uuid(), 'quiet')")
        .await
        .expect("insert");
    let quiet: i64 = db
        .query_one(
            "SELECT count(*) FROM galley.realtime_changes WHERE record->>'title' = 'quiet'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(quiet, 0, "a table switched off logs nothing");
    let (_, history) = admin(&app, reqwest::Method::GET, "/schema/history", Value::Null).await;
    let operations: Vec<&str> = history["changes"]
        .as_array()
        .or(history.as_array())
        .expect("history entries")
        .iter()
        .filter_map(|entry| entry["operation"].as_str())
        .filter(|op| *op == "set_realtime")
        .collect();
    assert_eq!(operations.len(), 2, "{history}");

    // Only tables with a primary key publish; a missing table is 404.
    let db_admin = app.db.connect().await.expect("db");
    db_admin
        .batch_execute("CREATE TABLE keyless (v text)")
        .await
        .expect("keyless table");
    let catalog = admin(&app, reqwest::Method::GET, "/tables/keyless", Value::Null).await;
    assert_eq!(catalog.0, 200, "adopted: {}", catalog.1);
    let (status, refused) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/keyless/realtime",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("primary key"),
        "{refused}"
    );
    let (status, _) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/missing/realtime",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 404);
}

/// A realtime core of its own on `app`'s database: what a second instance runs.
async fn second_core(app: &TestApp) -> (Arc<Realtime>, Arc<galley_metrics::Metrics>) {
    let url: tokio_postgres::Config = app.db.url().parse().expect("url");
    let targets = galley_db::ConnectTargets {
        owner: url.clone(),
        authenticator: url.clone(),
    };
    let pools = galley_db::Pools::build(&targets, 2, 1, Duration::from_secs(10));
    let catalog = CatalogCache::new(pools.owner.clone(), vec!["public".to_owned()]);
    catalog.reload().await.expect("catalog");
    let secret = app.config.auth.jwt_secret.as_ref().expect("secret");
    let secret = JwtSecret::parse(secret.expose_secret()).expect("secret parses");
    let metrics = Arc::new(galley_metrics::Metrics::new("test"));
    let core = Realtime::new(
        RealtimeConfig::default(),
        TokenVerifier::new(&secret),
        metrics.clone(),
    );
    core.start_changes(ChangeSources {
        owner: pools.owner.clone(),
        api: pools.api.clone(),
        catalog,
        listen: url,
    });
    (core, metrics)
}

/// The next frame matching `wanted`, within fifteen seconds (a bound, not a measure).
async fn next_frame(frames: &mut mpsc::Receiver<Frame>, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let frame = tokio::time::timeout_at(deadline, frames.recv())
            .await
            .expect("a frame in time")
            .expect("the session is open");
        if let Frame::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("JSON frame");
            if wanted(&value) {
                return value;
            }
        }
    }
}

fn is_change(frame: &Value) -> bool {
    frame[3] == "postgres_changes"
}

/// `(type, title)` of a change frame; `(DELETE, id)` for a delete, which carries its key only.
fn summary(frame: &Value) -> (String, Value) {
    let data = &frame[4]["data"];
    let row = if data["type"] == "DELETE" {
        &data["old_record"]
    } else {
        &data["record"]
    };
    let label = if data["type"] == "DELETE" {
        row["id"].clone()
    } else {
        row["title"].clone()
    };
    (data["type"].as_str().expect("type").to_owned(), label)
}

#[tokio::test]
async fn changes_reach_a_subscriber_once_each_in_commit_order_and_only_its_own() {
    let app = spawn_app().await;
    create_owned_table(&app, "notes").await;
    let (status, body) = admin(
        &app,
        reqwest::Method::PUT,
        "/tables/notes/realtime",
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (core, metrics) = second_core(&app).await;

    let alice = uuid::Uuid::new_v4().to_string();
    let bob = uuid::Uuid::new_v4().to_string();
    let (mut session, mut frames) = core
        .connect(Some(&app.anon_key()), Vsn::V2)
        .expect("handshake");
    let join = json!([
        "1", "1", "realtime:notes", "phx_join",
        {"config": {"postgres_changes": [{"event": "*", "schema": "public", "table": "notes"}]},
         "access_token": app.user_token(&alice)}
    ]);
    session.on_text(&join.to_string());
    let reply = next_frame(&mut frames, |f| f[3] == "phx_reply").await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    let binding = reply[4]["response"]["postgres_changes"][0]["id"].clone();
    let system = next_frame(&mut frames, |f| f[3] == "system").await;
    assert_eq!(system[4]["message"], "Subscribed to PostgreSQL", "{system}");

    let long = app.db.connect().await.expect("db");
    let other = app.db.connect().await.expect("db");
    // A transaction that starts first and commits last.
    long.batch_execute(&format!(
        "BEGIN; INSERT INTO notes (id, owner, title) VALUES (1, '{alice}', 'long')"
    ))
    .await
    .expect("long transaction");
    other
        .batch_execute(&format!(
            "INSERT INTO notes (id, owner, title) VALUES (2, '{alice}', 'quick'); \
             INSERT INTO notes (id, owner, title) VALUES (3, '{bob}', 'bob''s')"
        ))
        .await
        .expect("quick writes");
    let quick = next_frame(&mut frames, is_change).await;
    assert_eq!(summary(&quick), ("INSERT".to_owned(), json!("quick")));
    assert_eq!(quick[4]["ids"], json!([binding]), "{quick}");
    long.batch_execute("COMMIT").await.expect("commit");
    let late = next_frame(&mut frames, is_change).await;
    assert_eq!(
        summary(&late),
        ("INSERT".to_owned(), json!("long")),
        "a change committed late is still delivered"
    );

    // Rolled back: never delivered. Bob's rows: never delivered, even deleted.
    long.batch_execute(&format!(
        "BEGIN; INSERT INTO notes (id, owner, title) VALUES (4, '{alice}', 'rolled back'); ROLLBACK"
    ))
    .await
    .expect("rolled back");
    other
        .batch_execute(
            "UPDATE notes SET title = 'quick, edited' WHERE id = 2; DELETE FROM notes WHERE id = 1; \
             DELETE FROM notes WHERE id = 3",
        )
        .await
        .expect("more writes");
    other
        .batch_execute(&format!(
            "INSERT INTO notes (id, owner, title) VALUES (5, '{alice}', 'marker')"
        ))
        .await
        .expect("marker");
    let mut rest = Vec::new();
    loop {
        let frame = next_frame(&mut frames, is_change).await;
        let done = frame[4]["data"]["record"]["title"] == "marker";
        rest.push(frame);
        if done {
            break;
        }
    }
    let seen: Vec<(String, Value)> = rest.iter().map(summary).collect();
    assert_eq!(
        seen,
        vec![
            ("UPDATE".to_owned(), json!("quick, edited")),
            ("DELETE".to_owned(), json!(1)),
            ("INSERT".to_owned(), json!("marker")),
        ]
    );
    let update = &rest[0][4]["data"];
    assert_eq!(
        update["old_record"],
        json!({"id": 2}),
        "an update's old row is its key"
    );
    let delete = &rest[1][4]["data"];
    assert_eq!(
        delete["old_record"],
        json!({"id": 1}),
        "a delete is its key"
    );
    assert!(delete.get("record").is_none(), "{delete}");
    let columns: Vec<&str> = update["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["type"].as_str().expect("type"))
        .collect();
    assert_eq!(columns, ["int8", "uuid", "text"]);
    // Each delivered change is timed from its row's change, and its frames counted.
    assert_eq!(metrics.realtime_delivery_lag.get_sample_count(), 5);
    let out = metrics
        .realtime_messages
        .with_label_values(&["out", "postgres_changes"])
        .get();
    assert_eq!(out, 5);
    assert_eq!(core.change_subscriptions(), 1);
    // A connection gone takes its subscriptions with it.
    drop(session);
    assert_eq!(core.change_subscriptions(), 0);
}
