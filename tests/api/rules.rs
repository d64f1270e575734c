//! Access rules compiled to row-level security, exercised the way the REST gateway runs
//! requests: a transaction that switches role and sets `request.jwt.claims`.

use galley_testkit::{TestApp, spawn_app};
use serde_json::{Value, json};

const ALICE: &str = "00000000-0000-4000-8000-00000000000a";
const BOB: &str = "00000000-0000-4000-8000-00000000000b";

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .bearer_auth(app.service_key())
        .json(body)
        .send()
        .await
        .expect("response")
}

/// Runs `sql` as `role` with the claims of `user` (none for anon), like a request would.
async fn as_role(
    app: &TestApp,
    role: &str,
    user: Option<&str>,
    sql: &str,
) -> Result<Vec<String>, String> {
    let mut client = app.db.connect().await.expect("connect");
    let tx = client.transaction().await.expect("begin");
    let claims = match user {
        Some(sub) => json!({"role": role, "sub": sub}).to_string(),
        None => json!({"role": role}).to_string(),
    };
    tx.query(
        "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
        &[&role, &claims],
    )
    .await
    .expect("switch role");
    let result = tx.query(sql, &[]).await;
    match result {
        Ok(rows) => {
            let values = rows.iter().map(|row| row.get::<_, String>(0)).collect();
            tx.commit().await.map_err(|err| err.to_string())?;
            Ok(values)
        }
        Err(err) => Err(err
            .as_db_error()
            .map_or_else(|| err.to_string(), |db| db.message().to_owned())),
    }
}

async fn notes_table(app: &TestApp) {
    let definition = json!({
        "name": "notes",
        "columns": [
            {"name": "owner", "type": "uuid", "default": {"expression": "auth.uid()"}},
            {"name": "body", "type": "text", "nullable": false}
        ]
    });
    let response = admin(app, reqwest::Method::POST, "/admin/v1/tables", &definition).await;
    assert_eq!(response.status(), 201);
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(&format!(
            "INSERT INTO auth.users (id, email) VALUES ('{ALICE}', 'alice@example.com'), ('{BOB}', 'bob@example.com');
             INSERT INTO public.notes (owner, body) VALUES ('{ALICE}', 'alice''s'), ('{BOB}', 'bob''s');"
        ))
        .await
        .expect("seed");
}

#[tokio::test]
async fn without_rules_the_api_roles_get_nothing() {
    let app = spawn_app().await;
    notes_table(&app).await;
    for (role, user) in [("anon", None), ("authenticated", Some(ALICE))] {
        let denied = as_role(&app, role, user, "SELECT body FROM public.notes").await;
        assert!(
            denied.expect_err("denied").contains("permission denied"),
            "{role}"
        );
    }
    let all = as_role(
        &app,
        "service_role",
        None,
        "SELECT body FROM public.notes ORDER BY body",
    )
    .await;
    assert_eq!(all.expect("service_role reads"), vec!["alice's", "bob's"]);
}

#[tokio::test]
async fn owner_rules_confine_signed_in_users_to_their_rows() {
    let app = spawn_app().await;
    notes_table(&app).await;
    let rules = json!({
        "select": {"preset": "owner", "column": "owner"},
        "insert": {"preset": "owner", "column": "owner"},
        "update": {"preset": "owner", "column": "owner"},
        "delete": {"preset": "owner", "column": "owner"}
    });
    let response = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/tables/notes/rules",
        &rules,
    )
    .await;
    assert_eq!(response.status(), 200);

    let mine = as_role(
        &app,
        "authenticated",
        Some(ALICE),
        "SELECT body FROM public.notes",
    )
    .await;
    assert_eq!(mine.expect("reads own"), vec!["alice's"]);
    let forged = as_role(
        &app,
        "authenticated",
        Some(ALICE),
        &format!(
            "INSERT INTO public.notes (owner, body) VALUES ('{BOB}', 'forged') RETURNING body"
        ),
    )
    .await;
    assert!(forged.expect_err("refused").contains("row-level security"));
    let own = as_role(
        &app,
        "authenticated",
        Some(ALICE),
        "INSERT INTO public.notes (body) VALUES ('new') RETURNING body",
    )
    .await;
    assert_eq!(own.expect("inserts own"), vec!["new"]);
    let stolen = as_role(
        &app,
        "authenticated",
        Some(ALICE),
        "UPDATE public.notes SET body = 'stolen' WHERE body = 'bob''s' RETURNING body",
    )
    .await;
    assert_eq!(stolen.expect("no error, no rows"), Vec::<String>::new());
    let anon = as_role(&app, "anon", None, "SELECT body FROM public.notes").await;
    assert!(anon.expect_err("anon denied").contains("permission denied"));
}

#[tokio::test]
async fn public_read_and_signed_in_write_rules_apply_per_operation() {
    let app = spawn_app().await;
    notes_table(&app).await;
    let rules = json!({"select": {"preset": "public"}, "insert": {"preset": "signed_in"}});
    assert_eq!(
        admin(
            &app,
            reqwest::Method::PUT,
            "/admin/v1/tables/notes/rules",
            &rules
        )
        .await
        .status(),
        200
    );

    let read = as_role(
        &app,
        "anon",
        None,
        "SELECT body FROM public.notes ORDER BY body",
    )
    .await;
    assert_eq!(read.expect("anon reads"), vec!["alice's", "bob's"]);
    let anon_write = as_role(
        &app,
        "anon",
        None,
        "INSERT INTO public.notes (body) VALUES ('x') RETURNING body",
    )
    .await;
    assert!(
        anon_write
            .expect_err("anon may not write")
            .contains("permission denied")
    );
    let signed_in = as_role(
        &app,
        "authenticated",
        Some(BOB),
        "INSERT INTO public.notes (body) VALUES ('y') RETURNING body",
    )
    .await;
    assert_eq!(signed_in.expect("signed-in writes"), vec!["y"]);
    let delete = as_role(
        &app,
        "authenticated",
        Some(BOB),
        "DELETE FROM public.notes RETURNING body",
    )
    .await;
    assert!(
        delete
            .expect_err("no delete rule")
            .contains("permission denied")
    );

    // Setting rules again replaces them: back to nobody.
    assert_eq!(
        admin(
            &app,
            reqwest::Method::PUT,
            "/admin/v1/tables/notes/rules",
            &json!({})
        )
        .await
        .status(),
        200
    );
    let read = as_role(&app, "anon", None, "SELECT body FROM public.notes").await;
    assert!(
        read.expect_err("rules removed")
            .contains("permission denied")
    );
}

#[tokio::test]
async fn bad_rules_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    notes_table(&app).await;
    for (rules, status) in [
        (
            json!({"select": {"preset": "owner", "column": "body"}}),
            422,
        ),
        (
            json!({"select": {"preset": "custom", "expression": "true) WITH CHECK (true"}}),
            422,
        ),
        (
            json!({"select": {"preset": "custom", "expression": "no_such_column = 1"}}),
            422,
        ),
        (json!({"select": {"preset": "everyone"}}), 400),
    ] {
        let response = admin(
            &app,
            reqwest::Method::PUT,
            "/admin/v1/tables/notes/rules",
            &rules,
        )
        .await;
        assert_eq!(response.status().as_u16(), status, "{rules}");
    }
    let missing = admin(
        &app,
        reqwest::Method::PUT,
        "/admin/v1/tables/nope/rules",
        &json!({}),
    )
    .await;
    assert_eq!(missing.status(), 404);
    let policies: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM pg_policies WHERE tablename = 'notes'",
            &[],
        )
        .await
        .expect("policies")
        .get(0);
    assert_eq!(policies, 0);
}
