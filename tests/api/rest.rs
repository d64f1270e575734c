//! `GET /rest/v1/{table}` over HTTP: rows as JSON, filters and paging, counts, the
//! request's role and claims enforced by row-level security, and PostgREST-shaped errors.

use galley_gateway::ErrorBody;
use galley_testkit::{TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};

const ALICE: &str = "00000000-0000-4000-8000-0000000000a1";
const BOB: &str = "00000000-0000-4000-8000-0000000000b2";

async fn notes(app: &TestApp, rules: Value) {
    let definition = json!({
        "name": "notes",
        "primary_key": "bigint",
        "columns": [
            {"name": "owner", "type": "uuid", "default": {"expression": "auth.uid()"}},
            {"name": "body", "type": "text", "nullable": false},
            {"name": "stars", "type": "integer", "nullable": false, "default": {"value": 0}}
        ]
    });
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/admin/v1/tables".to_owned(),
            definition,
        ),
        (
            reqwest::Method::PUT,
            "/admin/v1/tables/notes/rules".to_owned(),
            rules,
        ),
    ] {
        let response = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(app.service_key())
            .json(&body)
            .send()
            .await
            .expect("response");
        assert!(response.status().is_success(), "{path}");
    }
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(&format!(
            "INSERT INTO auth.users (id, email) VALUES ('{ALICE}', 'alice@example.com'), ('{BOB}', 'bob@example.com');
             INSERT INTO public.notes (owner, body, stars) VALUES
               ('{ALICE}', 'alice one', 5), ('{ALICE}', 'alice two', 1), ('{BOB}', 'bob one', 3);"
        ))
        .await
        .expect("seed");
}

async fn get(app: &TestApp, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url(&format!("/rest/v1/notes{query}")));
    request = request.header("apikey", app.anon_key());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("response")
}

#[tokio::test]
async fn anon_reads_public_rows_with_select_filters_order_and_paging() {
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}})).await;

    let response = get(
        &app,
        "?select=body,stars&stars=gte.2&order=stars.desc",
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-range"], "0-1/*");
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!([{"body": "alice one", "stars": 5}, {"body": "bob one", "stars": 3}])
    );

    let response = get(
        &app,
        "?select=body&order=body&limit=1&offset=1",
        Some(&app.anon_key()),
    )
    .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!([{"body": "alice two"}]));

    let response = app
        .http
        .get(app.url("/rest/v1/notes?select=body&or=(stars.eq.1,body.like.bob*)&order=body"))
        .header("apikey", app.anon_key())
        .header("prefer", "count=exact")
        .query(&[("limit", "1")])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "0-0/2");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!([{"body": "alice two"}]));
}

#[tokio::test]
async fn owner_rules_show_each_user_only_their_rows() {
    let app = spawn_app().await;
    notes(
        &app,
        json!({"select": {"preset": "owner", "column": "owner"}}),
    )
    .await;

    let alice = get(
        &app,
        "?select=body&order=body",
        Some(&app.user_token(ALICE)),
    )
    .await;
    assert_eq!(alice.status(), 200);
    assert_eq!(
        alice.json::<Value>().await.expect("json"),
        json!([{"body": "alice one"}, {"body": "alice two"}])
    );
    let bob = get(&app, "?select=body", Some(&app.user_token(BOB))).await;
    assert_eq!(
        bob.json::<Value>().await.expect("json"),
        json!([{"body": "bob one"}])
    );
    // Asking for someone else's rows by filter changes nothing.
    let sneaky = get(
        &app,
        &format!("?owner=eq.{ALICE}"),
        Some(&app.user_token(BOB)),
    )
    .await;
    assert_eq!(sneaky.json::<Value>().await.expect("json"), json!([]));

    let anon = get(&app, "", None).await;
    assert_eq!(anon.status(), 401);
    let body: ErrorBody = anon.json().await.expect("error shape");
    assert_eq!(body.code, "42501");
    // service_role bypasses row-level security.
    let all = get(&app, "?select=body", Some(&app.service_key())).await;
    assert_eq!(
        all.json::<Value>()
            .await
            .expect("json")
            .as_array()
            .expect("rows")
            .len(),
        3
    );
}

#[tokio::test]
async fn errors_come_in_postgrest_shape_and_change_nothing() {
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}})).await;
    let cases = [
        ("/rest/v1/nope", 404, "PGRST205"),
        ("/rest/v1/notes?nope=eq.1", 400, "42703"),
        ("/rest/v1/notes?stars=eq.abc", 400, "22P02"),
        ("/rest/v1/notes?stars=frob.1", 400, "PGRST100"),
        ("/rest/v1/notes?select=body,owner(id)", 400, "PGRST200"),
        ("/rest/v1/notes?select=body::regclass", 400, "PGRST100"),
        ("/rest/v1/notes?limit=-1", 400, "PGRST100"),
        (
            "/rest/v1/notes?order=body;DROP%20TABLE%20notes",
            400,
            "PGRST100",
        ),
        (
            "/rest/v1/notes?body=eq.x%27;DROP%20TABLE%20public.notes;--",
            200,
            "",
        ),
        (
            "/rest/v1/notes?select=%22body%22%20FROM%20auth.users--",
            400,
            "PGRST100",
        ),
        (
            "/rest/v1/notes?select=%22body%20FROM%20auth.users--%22",
            400,
            "42703",
        ),
        ("/rest/v1/pg_catalog.pg_authid", 404, "PGRST205"),
    ];
    for (path, status, code) in cases {
        let response = app
            .http
            .get(app.url(path))
            .header("apikey", app.anon_key())
            .send()
            .await
            .expect("response");
        assert_eq!(response.status().as_u16(), status, "{path}");
        if status != 200 {
            let body: ErrorBody = response.json().await.expect("error shape");
            assert_eq!(body.code, code, "{path}: {}", body.message);
            assert!(
                !body.message.contains("SELECT"),
                "no SQL in {path}: {}",
                body.message
            );
        }
    }
    let forged = get(&app, "", Some("not.a.jwt")).await;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.json::<ErrorBody>().await.expect("error shape").code,
        "PGRST301"
    );
    let rows: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM public.notes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 3);
}

async fn note_count(app: &TestApp) -> i64 {
    app.db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM public.notes", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn plans_are_refused_unless_enabled_and_never_keep_a_write() {
    let accept =
        "application/vnd.pgrst.plan+json; for=\"application/json\"; options=analyze|verbose;";
    let off = spawn_app().await;
    notes(&off, json!({"select": {"preset": "public"}})).await;
    let refused = off
        .http
        .get(off.url("/rest/v1/notes?select=body"))
        .header("apikey", off.anon_key())
        .header("accept", accept)
        .send()
        .await
        .expect("response");
    assert_eq!(refused.status(), 406);
    assert_eq!(
        refused.text().await.expect("body"),
        r#"{"code":"PGRST107","details":null,"hint":null,"message":"None of these media types are available: application/vnd.pgrst.plan+json; for=\"application/json\"; options=analyze|verbose"}"#
    );
    off.shutdown().await.expect("shutdown");

    let on = spawn_app_with(|config| config.rest.plan_enabled = true).await;
    notes(
        &on,
        json!({"select": {"preset": "public"}, "insert": {"preset": "public"}}),
    )
    .await;
    let before = note_count(&on).await;
    let planned = on
        .http
        .post(on.url("/rest/v1/notes"))
        .header("apikey", on.anon_key())
        .bearer_auth(on.user_token(ALICE))
        .header("accept", accept)
        .json(&json!({"body": "planned", "stars": 1}))
        .send()
        .await
        .expect("response");
    assert_eq!(planned.status(), 200);
    assert_eq!(
        planned.headers()["content-type"],
        "application/vnd.pgrst.plan+json; for=\"application/json\"; options=analyze|verbose; charset=utf-8"
    );
    let plan: Value = planned.json().await.expect("json");
    assert!(plan[0]["Plan"]["Actual Rows"].is_number(), "{plan}");
    assert_eq!(
        note_count(&on).await,
        before,
        "an analyzed insert is rolled back"
    );
}

#[tokio::test]
async fn a_table_created_with_psql_is_served_without_a_restart() {
    let app = spawn_app().await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE TABLE public.later (id int PRIMARY KEY); INSERT INTO public.later VALUES (1);
             GRANT SELECT ON public.later TO anon;",
        )
        .await
        .expect("psql DDL");
    let mut status = 0;
    for _ in 0..50 {
        let response = app
            .http
            .get(app.url("/rest/v1/later"))
            .header("apikey", app.anon_key())
            .send()
            .await
            .expect("response");
        status = response.status().as_u16();
        if status == 200 {
            assert_eq!(
                response.json::<Value>().await.expect("json"),
                json!([{"id": 1}])
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn head_range_and_single_object_responses() {
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}})).await;
    let request = |path: &str| app.http.get(app.url(path)).header("apikey", app.anon_key());

    let head = app
        .http
        .head(app.url("/rest/v1/notes"))
        .header("apikey", app.anon_key())
        .header("prefer", "count=exact")
        .send()
        .await
        .expect("response");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-range"], "0-2/3");
    assert!(head.bytes().await.expect("body").is_empty());

    let ranged = request("/rest/v1/notes?select=body&order=body")
        .header("range", "1-1")
        .send()
        .await
        .expect("response");
    assert_eq!(ranged.headers()["content-range"], "1-1/*");
    assert_eq!(
        ranged.json::<Value>().await.expect("json"),
        json!([{"body": "alice two"}])
    );
    let backwards = request("/rest/v1/notes")
        .header("range", "5-2")
        .send()
        .await
        .expect("response");
    assert_eq!(backwards.status(), 416);
    assert_eq!(
        backwards
            .json::<ErrorBody>()
            .await
            .expect("error shape")
            .code,
        "PGRST103"
    );

    let single = request("/rest/v1/notes?select=body&stars=eq.5")
        .header("accept", "application/vnd.pgrst.object+json")
        .send()
        .await
        .expect("response");
    assert_eq!(single.status(), 200);
    assert_eq!(
        single.json::<Value>().await.expect("json"),
        json!({"body": "alice one"})
    );
    let many = request("/rest/v1/notes")
        .header("accept", "application/vnd.pgrst.object+json")
        .send()
        .await
        .expect("response");
    assert_eq!(many.status(), 406);
    let body: ErrorBody = many.json().await.expect("error shape");
    assert_eq!(body.code, "PGRST116");
    assert_eq!(body.details, Some(json!("The result contains 3 rows")));
    let xml = request("/rest/v1/notes")
        .header("accept", "text/xml")
        .send()
        .await
        .expect("response");
    assert_eq!(xml.status(), 406);
    assert_eq!(
        xml.json::<ErrorBody>().await.expect("error shape").code,
        "PGRST107"
    );
}

async fn post(
    app: &TestApp,
    query: &str,
    token: Option<&str>,
    body: &str,
    prefer: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url(&format!("/rest/v1/notes{query}")))
        .header("apikey", app.anon_key())
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    request.send().await.expect("response")
}

#[tokio::test]
async fn inserts_respect_owner_rules_and_return_what_was_asked() {
    let app = spawn_app().await;
    notes(
        &app,
        json!({
            "select": {"preset": "owner", "column": "owner"},
            "insert": {"preset": "owner", "column": "owner"}
        }),
    )
    .await;
    let alice = app.user_token(ALICE);

    let created = post(
        &app,
        "?select=body,stars",
        Some(&alice),
        r#"{"body": "fresh"}"#,
        Some("return=representation, count=exact"),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["content-range"], "*/1");
    assert_eq!(
        created.json::<Value>().await.expect("json"),
        json!([{"body": "fresh", "stars": 0}])
    );

    let bulk = post(
        &app,
        "",
        Some(&alice),
        r#"[{"body": "one"}, {"body": "two"}]"#,
        None,
    )
    .await;
    assert_eq!(bulk.status(), 201);
    assert!(
        bulk.bytes().await.expect("body").is_empty(),
        "return=minimal sends no body"
    );

    let forged = post(
        &app,
        "",
        Some(&alice),
        &format!(r#"{{"body": "x", "owner": "{BOB}"}}"#),
        None,
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        forged.json::<ErrorBody>().await.expect("error shape").code,
        "42501"
    );
    let anon = post(&app, "", None, r#"{"body": "x"}"#, None).await;
    assert_eq!(anon.status(), 401);

    let mine = get(&app, "?select=body&order=body", Some(&alice)).await;
    assert_eq!(
        mine.json::<Value>().await.expect("json"),
        json!([{"body": "alice one"}, {"body": "alice two"}, {"body": "fresh"}, {"body": "one"}, {"body": "two"}])
    );
}

#[tokio::test]
async fn malformed_inserts_are_refused_and_insert_nothing() {
    let app = spawn_app().await;
    notes(
        &app,
        json!({"insert": {"preset": "public"}, "select": {"preset": "public"}}),
    )
    .await;
    let cases = [
        ("", "not json", 400, "PGRST102"),
        ("", "42", 400, "PGRST102"),
        ("", r#"[{"body": "a"}, {"stars": 1}]"#, 400, "PGRST102"),
        ("", r#"{"nope": 1}"#, 400, "PGRST204"),
        ("", r#"{"stars": 1}"#, 400, "23502"),
        ("", r#"{"body": "x", "stars": "many"}"#, 400, "22P02"),
        (
            "",
            r#"{"body": "x\"); DROP TABLE public.notes; --"}"#,
            201,
            "",
        ),
    ];
    for (query, body, status, code) in cases {
        let response = post(&app, query, None, body, None).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        if !code.is_empty() {
            let error: ErrorBody = response.json().await.expect("error shape");
            assert_eq!(error.code, code, "{body}: {}", error.message);
        }
    }
    // `columns=` reads only the named keys, so objects may differ.
    let picked = post(
        &app,
        "?columns=body",
        None,
        r#"[{"body": "c1", "extra": 1}, {"body": "c2"}]"#,
        None,
    )
    .await;
    assert_eq!(picked.status(), 201);
    let rows: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM public.notes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        rows,
        3 + 1 + 2,
        "the seed, the hostile-but-valid body, and the two picked rows"
    );
}

#[tokio::test]
async fn an_insert_only_rule_accepts_writes_it_cannot_read_back() {
    let app = spawn_app().await;
    notes(&app, json!({"insert": {"preset": "public"}})).await;
    let response = post(&app, "", None, r#"{"body": "drop box"}"#, None).await;
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

async fn write(
    app: &TestApp,
    method: reqwest::Method,
    query: &str,
    token: &str,
    body: Option<&str>,
    prefer: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(&format!("/rest/v1/notes{query}")))
        .header("apikey", app.anon_key())
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    request.send().await.expect("response")
}

#[tokio::test]
async fn updates_and_deletes_touch_only_the_callers_matching_rows() {
    let app = spawn_app().await;
    notes(
        &app,
        json!({
            "select": {"preset": "owner", "column": "owner"},
            "update": {"preset": "owner", "column": "owner"},
            "delete": {"preset": "owner", "column": "owner"}
        }),
    )
    .await;
    let alice = app.user_token(ALICE);
    let bob = app.user_token(BOB);

    let updated = write(
        &app,
        reqwest::Method::PATCH,
        "?stars=gte.0&select=body,stars",
        &alice,
        Some(r#"{"stars": 9}"#),
        Some("return=representation, count=exact"),
    )
    .await;
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.headers()["content-range"], "0-1/2");
    let rows = updated.json::<Value>().await.expect("json");
    assert_eq!(
        rows.as_array().expect("rows").len(),
        2,
        "only alice's rows: {rows}"
    );

    let not_hers = write(
        &app,
        reqwest::Method::PATCH,
        "?body=eq.bob%20one",
        &alice,
        Some(r#"{"body": "hacked"}"#),
        Some("count=exact"),
    )
    .await;
    assert_eq!(not_hers.status(), 204);
    assert_eq!(not_hers.headers()["content-range"], "*/0");
    let stolen = write(
        &app,
        reqwest::Method::PATCH,
        "?body=eq.alice%20one",
        &alice,
        Some(&format!(r#"{{"owner": "{BOB}"}}"#)),
        None,
    )
    .await;
    assert_eq!(
        stolen.status(),
        403,
        "a row may not be handed to someone else"
    );

    let everything = write(&app, reqwest::Method::DELETE, "", &bob, None, None).await;
    assert_eq!(everything.status(), 400);
    // In the words of the safeupdate extension Supabase runs.
    assert_eq!(
        everything.text().await.expect("body"),
        r#"{"code":"21000","details":null,"hint":null,"message":"DELETE requires a WHERE clause"}"#
    );
    let deleted = write(
        &app,
        reqwest::Method::DELETE,
        "?id=gt.0",
        &bob,
        None,
        Some("count=exact"),
    )
    .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.headers()["content-range"], "0-0/1");

    let client = app.db.connect().await.expect("connect");
    let rows: Vec<(String, i32)> = client
        .query("SELECT body, stars FROM public.notes ORDER BY body", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![("alice one".to_owned(), 9), ("alice two".to_owned(), 9)]
    );
}

#[tokio::test]
async fn upserts_merge_or_ignore_duplicates() {
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}, "insert": {"preset": "public"}, "update": {"preset": "public"}})).await;
    let service = app.service_key();
    let merged = write(
        &app,
        reqwest::Method::POST,
        "?select=id,body&order=id",
        &service,
        Some(r#"[{"id": 1, "body": "merged"}, {"id": 100, "body": "new"}]"#),
        Some("resolution=merge-duplicates,return=representation"),
    )
    .await;
    assert_eq!(merged.status(), 201);
    assert_eq!(
        merged.json::<Value>().await.expect("json"),
        json!([{"id": 1, "body": "merged"}, {"id": 100, "body": "new"}])
    );
    let ignored = write(
        &app,
        reqwest::Method::POST,
        "",
        &service,
        Some(r#"{"id": 2, "body": "ignored"}"#),
        Some("resolution=ignore-duplicates, count=exact"),
    )
    .await;
    assert_eq!(ignored.status(), 201);
    assert_eq!(ignored.headers()["content-range"], "*/0");
    let duplicate = write(
        &app,
        reqwest::Method::POST,
        "",
        &service,
        Some(r#"{"id": 2, "body": "dup"}"#),
        None,
    )
    .await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(
        duplicate
            .json::<ErrorBody>()
            .await
            .expect("error shape")
            .code,
        "23505"
    );
    let bodies: Vec<String> = app
        .db
        .connect()
        .await
        .expect("connect")
        .query("SELECT body FROM public.notes ORDER BY id", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(bodies, vec!["merged", "alice two", "bob one", "new"]);
}

#[tokio::test]
async fn functions_are_called_with_named_arguments() {
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}})).await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE FUNCTION public.add(a integer, b integer DEFAULT 10) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
             CREATE FUNCTION public.starred(min integer) RETURNS SETOF public.notes LANGUAGE sql STABLE
               AS 'SELECT * FROM public.notes WHERE stars >= min ORDER BY stars DESC';
             CREATE FUNCTION public.secret() RETURNS text LANGUAGE sql AS 'SELECT ''hidden''';
             REVOKE EXECUTE ON FUNCTION public.secret() FROM PUBLIC;
             CREATE FUNCTION public.bump() RETURNS bigint LANGUAGE sql
               AS 'UPDATE public.notes SET stars = stars + 1; SELECT count(*) FROM public.notes';
             GRANT UPDATE ON public.notes TO anon;
             CREATE FUNCTION public.ambig(a integer) RETURNS text LANGUAGE sql AS 'SELECT ''int''';
             CREATE FUNCTION public.ambig(a text) RETURNS text LANGUAGE sql AS 'SELECT ''text''';
             CREATE FUNCTION public.ambig(a text, b boolean) RETURNS text LANGUAGE sql AS 'SELECT ''two''';
             CREATE FUNCTION public.echo_json(json) RETURNS json LANGUAGE sql AS 'SELECT $1';
             CREATE FUNCTION public.shout(text) RETURNS text LANGUAGE sql AS 'SELECT upper($1)';
             CREATE FUNCTION public.size_of(bytea) RETURNS integer LANGUAGE sql AS 'SELECT length($1)';
             CREATE FUNCTION public.root_of(xml) RETURNS text LANGUAGE sql
               AS 'SELECT (xpath(''/a/text()'', $1))[1]::text';
             CREATE TYPE public.point2 AS (x integer, y integer);
             CREATE FUNCTION public.norm1(p public.point2) RETURNS integer LANGUAGE sql
               AS 'SELECT abs((p).x) + abs((p).y)';
             CREATE FUNCTION public.total(xs integer[]) RETURNS integer LANGUAGE sql
               AS 'SELECT sum(x)::int FROM unnest(xs) AS x';",
        )
        .await
        .expect("functions");
    let call = |function: &str, body: &str| {
        app.http
            .post(app.url(&format!("/rest/v1/rpc/{function}")))
            .header("apikey", app.anon_key())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    // The catalog follows the new functions through the event trigger.
    let mut sum = Value::Null;
    for _ in 0..50 {
        let response = call("add", r#"{"a": 2, "b": 3}"#).await.expect("response");
        if response.status() == 200 {
            sum = response.json().await.expect("json");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sum, json!(5));
    let defaulted = call("add", r#"{"a": 2}"#).await.expect("response");
    assert_eq!(defaulted.json::<Value>().await.expect("json"), json!(12));
    let rows = call("starred", r#"{"min": 3}"#).await.expect("response");
    let rows: Value = rows.json().await.expect("json");
    assert_eq!(rows.as_array().expect("rows").len(), 2);
    assert_eq!(rows[0]["body"], "alice one");

    // PostgREST's words, whole bodies (the argument names sorted).
    let unknown = call("add", r#"{"c": 1, "a": 2}"#).await.expect("response");
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.text().await.expect("body"),
        r#"{"code":"PGRST202","details":"Searched for the function public.add with parameters a, c or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.","hint":"Perhaps you meant to call the function public.add(a, b)","message":"Could not find the function public.add(a, c) in the schema cache"}"#
    );
    let none = call("no_such_function", "{}").await.expect("response");
    assert_eq!(
        none.text().await.expect("body"),
        r#"{"code":"PGRST202","details":"Searched for the function public.no_such_function without parameters or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.","hint":null,"message":"Could not find the function public.no_such_function without parameters in the schema cache"}"#
    );
    // Two overloads take exactly {a}: ambiguous, in PostgREST's words (type names as
    // PostgreSQL's catalog has them); naming b as well picks the third.
    let ambiguous = call("ambig", r#"{"a": 1}"#).await.expect("response");
    assert_eq!(ambiguous.status(), 300);
    assert_eq!(
        ambiguous.text().await.expect("body"),
        r#"{"code":"PGRST203","details":null,"hint":"Try renaming the parameters or the function itself in the database so function overloading can be resolved","message":"Could not choose the best candidate function between: public.ambig(a => int4), public.ambig(a => text)"}"#
    );
    let picked = call("ambig", r#"{"a": "x", "b": true}"#)
        .await
        .expect("response");
    assert_eq!(picked.json::<Value>().await.expect("json"), json!("two"));
    // Arguments are converted as json_to_record converts them: an object to a composite,
    // an array to an array; from a query string, through the type's own input.
    let norm = call("norm1", r#"{"p": {"x": 3, "y": -4}}"#)
        .await
        .expect("response");
    assert_eq!(norm.json::<Value>().await.expect("json"), json!(7));
    let total = call("total", r#"{"xs": [1, 2, 3]}"#)
        .await
        .expect("response");
    assert_eq!(total.json::<Value>().await.expect("json"), json!(6));
    let by_query = app
        .http
        .get(app.url("/rest/v1/rpc/total?xs=%7B4,5%7D"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(by_query.json::<Value>().await.expect("json"), json!(9));
    // A single unnamed parameter takes the whole body, as PostgREST passes it: JSON of
    // any shape, text, XML and bytes by their content types.
    let raw = |function: &str, content_type: &str, body: Vec<u8>| {
        app.http
            .post(app.url(&format!("/rest/v1/rpc/{function}")))
            .header("apikey", app.anon_key())
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    for body in [r#"[1, 2, {"a": 3}]"#, r#"{"x": 1}"#] {
        let echoed = raw("echo_json", "application/json", body.into())
            .await
            .expect("response");
        assert_eq!(echoed.status(), 200);
        assert_eq!(
            echoed.json::<Value>().await.expect("json"),
            serde_json::from_str::<Value>(body).expect("json")
        );
    }
    let shouted = raw("shout", "text/plain", b"hello".to_vec())
        .await
        .expect("response");
    assert_eq!(shouted.json::<Value>().await.expect("json"), json!("HELLO"));
    let sized = raw("size_of", "application/octet-stream", vec![0, 255, 1])
        .await
        .expect("response");
    assert_eq!(sized.json::<Value>().await.expect("json"), json!(3));
    let rooted = raw("root_of", "text/xml", b"<a>hi</a>".to_vec())
        .await
        .expect("response");
    assert_eq!(rooted.json::<Value>().await.expect("json"), json!("hi"));
    let untaken = raw("add", "text/plain", b"2".to_vec())
        .await
        .expect("response");
    assert_eq!(untaken.status(), 404);
    assert_eq!(
        untaken.text().await.expect("body"),
        r#"{"code":"PGRST202","details":"Searched for the function public.add with a single unnamed text parameter, but no matches were found in the schema cache.","hint":null,"message":"Could not find the function public.add in the schema cache"}"#
    );
    // A GET call looks for no single-parameter form.
    let by_get = app
        .http
        .get(app.url("/rest/v1/rpc/add?c=1"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(by_get.status(), 404);
    assert_eq!(
        by_get.text().await.expect("body"),
        r#"{"code":"PGRST202","details":"Searched for the function public.add with parameter c, but no matches were found in the schema cache.","hint":null,"message":"Could not find the function public.add(c) in the schema cache"}"#
    );
    let bad = call("add", r#"{"a": "two"}"#).await.expect("response");
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<ErrorBody>().await.expect("error shape").code,
        "22P02"
    );
    let denied = call("secret", "{}").await.expect("response");
    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.json::<ErrorBody>().await.expect("error shape").code,
        "42501"
    );
    let outside = call("pg_sleep", r#"{"seconds": 1}"#)
        .await
        .expect("response");
    assert_eq!(
        outside.status(),
        404,
        "only functions in public are callable"
    );

    // GET passes arguments in the query string and runs read-only.
    let by_get = app
        .http
        .get(app.url("/rest/v1/rpc/add?a=2&b=40"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(by_get.json::<Value>().await.expect("json"), json!(42));
    let writes = app
        .http
        .get(app.url("/rest/v1/rpc/bump"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(
        writes.status(),
        405,
        "a function that writes cannot be called by GET"
    );
    assert_eq!(
        writes.json::<ErrorBody>().await.expect("error shape").code,
        "25006"
    );
}

#[tokio::test]
async fn geojson_is_a_feature_collection_once_postgis_is_installed() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE public.places (id int PRIMARY KEY, name text, location geometry(Point, 4326));
             GRANT SELECT ON public.places TO anon;
             CREATE POLICY open ON public.places FOR SELECT USING (true);",
        )
        .await
        .expect_err("no geometry type before PostGIS");
    let geo = |app: &TestApp, path: &str| {
        app.http
            .get(app.url(path))
            .header("apikey", app.anon_key())
            .header("accept", "application/geo+json")
            .send()
    };
    // Without PostGIS the media type is not produced.
    let refused = geo(&app, "/rest/v1/places").await.expect("response");
    assert_eq!(refused.status(), 406);
    assert_eq!(
        refused.text().await.expect("body"),
        r#"{"code":"PGRST107","details":null,"hint":null,"message":"None of these media types are available: application/geo+json"}"#
    );
    client
        .batch_execute(
            "CREATE EXTENSION postgis;
             CREATE TABLE public.places (id int PRIMARY KEY, name text, location geometry(Point, 4326));
             INSERT INTO public.places VALUES (1, 'harbour', 'SRID=4326;POINT(4.9 52.37)'), (2, 'nowhere', NULL);
             GRANT SELECT ON public.places TO anon;
             CREATE POLICY open ON public.places FOR SELECT USING (true);",
        )
        .await
        .expect("postgis");
    let mut body = String::new();
    for _ in 0..100 {
        let response = geo(&app, "/rest/v1/places?select=id,name,location&order=id")
            .await
            .expect("response");
        if response.status() == 200 {
            assert_eq!(
                response.headers()["content-type"],
                "application/geo+json; charset=utf-8"
            );
            body = response.text().await.expect("body");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let parsed: Value = serde_json::from_str(&body).expect("geojson");
    assert_eq!(
        parsed,
        json!({
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [4.9, 52.37]}, "properties": {"id": 1, "name": "harbour"}},
                {"type": "Feature", "geometry": {"type": null}, "properties": {"id": 2, "name": "nowhere"}}
            ]
        })
    );
    // Rows with no geometry column are a 400, not a failure of the server.
    let plain = geo(&app, "/rest/v1/places?select=id,name")
        .await
        .expect("response");
    assert_eq!(plain.status(), 400);
    let error: ErrorBody = plain.json().await.expect("error shape");
    assert_eq!(error.code, "22023");
}

#[tokio::test]
async fn refusals_are_worded_as_postgrest_words_them() {
    let app = spawn_app().await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE TABLE public.authors (id int PRIMARY KEY, name text);
             CREATE TABLE public.books (id int PRIMARY KEY, title text, author_id int REFERENCES public.authors (id));
             GRANT SELECT, INSERT ON public.authors, public.books TO anon;
             CREATE POLICY open ON public.authors FOR ALL USING (true) WITH CHECK (true);
             CREATE POLICY open ON public.books FOR ALL USING (true) WITH CHECK (true);",
        )
        .await
        .expect("tables");
    let request = |method: reqwest::Method, path: &str, body: Option<&str>| {
        let mut request = app
            .http
            .request(method, app.url(path))
            .header("apikey", app.anon_key());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        request.send()
    };
    for _ in 0..100 {
        let ready = request(
            reqwest::Method::GET,
            "/rest/v1/books?select=title,authors(name)",
            None,
        )
        .await
        .expect("response");
        if ready.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    use reqwest::Method as M;
    let cases: [(M, &str, Option<&str>, u16, &str); 17] = [
        (
            M::GET,
            "/rest/v1/books?title=",
            None,
            400,
            r#"{"code":"PGRST100","details":"unexpected end of input expecting \"not\" or operator (eq, gt, ...)","hint":null,"message":"\"failed to parse filter ()\" (line 1, column 1)"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=id,authors(name[])",
            None,
            400,
            r#"{"code":"PGRST100","details":"unexpected '[' expecting letter, digit, \"-\", \"->>\", \"->\", \"::\", \".\", \")\", \",\" or end of input","hint":null,"message":"\"failed to parse select parameter (id,authors(name[]))\" (line 1, column 16)"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?id=val",
            None,
            400,
            r#"{"code":"PGRST100","details":"unexpected \"v\" expecting \"not\" or operator (eq, gt, ...)","hint":null,"message":"\"failed to parse filter (val)\" (line 1, column 1)"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?order=id.ac",
            None,
            400,
            r#"{"code":"PGRST100","details":"unexpected \"c\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"","hint":null,"message":"\"failed to parse order (id.ac)\" (line 1, column 4)"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?or=(id.in.1,2,id.eq.3)",
            None,
            400,
            r#"{"code":"PGRST100","details":"unexpected \"1\" expecting \"(\"","hint":null,"message":"\"failed to parse logic tree ((id.in.1,2,id.eq.3))\" (line 1, column 10)"}"#,
        ),
        (
            M::GET,
            "/rest/v1/book",
            None,
            404,
            r#"{"code":"PGRST205","details":null,"hint":"Perhaps you meant the table 'public.books'","message":"Could not find the table 'public.book' in the schema cache"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=title,author(name)",
            None,
            400,
            r#"{"code":"PGRST200","details":"Searched for a foreign key relationship between 'books' and 'author' in the schema 'public', but no matches were found.","hint":"Perhaps you meant 'authors' instead of 'author'.","message":"Could not find a relationship between 'books' and 'author' in the schema cache"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=title&authors.name=eq.x",
            None,
            400,
            r#"{"code":"PGRST108","details":null,"hint":"Verify that 'authors' is included in the 'select' query parameter.","message":"'authors' is not an embedded resource in this request"}"#,
        ),
        (
            M::GET,
            "/rest/v1/authors?select=name,books(title)&order=books(title)",
            None,
            400,
            r#"{"code":"PGRST118","details":"'authors' and 'books' do not form a many-to-one or one-to-one relationship","hint":null,"message":"A related order on 'books' is not possible"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=title,authors(name)&authors=eq.1",
            None,
            400,
            r#"{"code":"PGRST120","details":"Only is null or not is null filters are allowed on embedded resources","hint":null,"message":"Bad operator on the 'authors' embedded resource"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=zzz",
            None,
            400,
            r#"{"code":"42703","details":null,"hint":null,"message":"column books.zzz does not exist"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books?select=title,authors(zzz)",
            None,
            400,
            r#"{"code":"42703","details":null,"hint":null,"message":"column authors_1.zzz does not exist"}"#,
        ),
        (
            M::POST,
            "/rest/v1/books",
            Some("not json"),
            400,
            r#"{"code":"PGRST102","details":null,"hint":null,"message":"Empty or invalid json"}"#,
        ),
        (
            M::POST,
            "/rest/v1/books",
            Some(r#"[{"id": 1}, {"title": "x"}]"#),
            400,
            r#"{"code":"PGRST102","details":null,"hint":null,"message":"All object keys must match"}"#,
        ),
        (
            M::POST,
            "/rest/v1/books",
            Some(r#"{"zzz": 1}"#),
            400,
            r#"{"code":"PGRST204","details":null,"hint":null,"message":"Could not find the 'zzz' column of 'books' in the schema cache"}"#,
        ),
        (
            M::GET,
            "/rest/v1/books/1",
            None,
            404,
            r#"{"code":"PGRST125","details":null,"hint":null,"message":"Invalid path specified in request URL"}"#,
        ),
        (
            M::GET,
            "/rest/v1/rpc/nothing_here?a=1",
            None,
            404,
            r#"{"code":"PGRST202","details":"Searched for the function public.nothing_here with parameter a, but no matches were found in the schema cache.","hint":null,"message":"Could not find the function public.nothing_here(a) in the schema cache"}"#,
        ),
    ];
    for (method, path, body, status, expected) in cases {
        let response = request(method.clone(), path, body).await.expect("response");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.text().await.expect("body"),
            expected,
            "{method} {path}"
        );
    }
    // A key without `=` is no parameter at all, as in PostgREST.
    let bare = request(M::GET, "/rest/v1/books?title&select=id", None)
        .await
        .expect("response");
    assert_eq!(bare.status().as_u16(), 200);
}

#[tokio::test]
async fn csv_and_form_bodies_insert_as_postgrest_reads_them() {
    let app = spawn_app().await;
    notes(
        &app,
        json!({"select": {"preset": "public"}, "insert": {"preset": "public"}}),
    )
    .await;
    let before = note_count(&app).await;
    let post = |content_type: &str, body: &str| {
        app.http
            .post(app.url("/rest/v1/notes?select=body,stars"))
            .header("apikey", app.anon_key())
            .bearer_auth(app.user_token(ALICE))
            .header("content-type", content_type.to_owned())
            .header("prefer", "return=representation")
            .body(body.to_owned())
            .send()
    };
    let csv = post("text/csv", "body,stars\n\"a, quoted\",4\nplain,NULL\n")
        .await
        .expect("response");
    assert_eq!(csv.status(), 400, "NULL for a NOT NULL column");
    let csv = post("text/csv", "body,stars\n\"a, quoted\",4\nplain,2\n")
        .await
        .expect("response");
    assert_eq!(csv.status(), 201);
    assert_eq!(
        csv.json::<Value>().await.expect("json"),
        json!([{"body": "a, quoted", "stars": 4}, {"body": "plain", "stars": 2}])
    );
    let form = post(
        "application/x-www-form-urlencoded",
        "body=from+a+form&stars=3",
    )
    .await
    .expect("response");
    assert_eq!(form.status(), 201);
    assert_eq!(
        form.json::<Value>().await.expect("json"),
        json!([{"body": "from a form", "stars": 3}])
    );
    let ragged = post("text/csv", "body,stars\nonly one field\n")
        .await
        .expect("response");
    assert_eq!(
        ragged.text().await.expect("body"),
        r#"{"code":"PGRST102","details":null,"hint":null,"message":"All lines must have same number of fields"}"#
    );
    let other = post("application/xml", "<notes/>").await.expect("response");
    assert_eq!(
        other.text().await.expect("body"),
        r#"{"code":"PGRST102","details":null,"hint":null,"message":"Content-Type not acceptable: application/xml"}"#
    );
    assert_eq!(note_count(&app).await, before + 3);
}

#[tokio::test]
async fn tokens_are_refused_in_postgrest_words() {
    use secrecy::ExposeSecret;
    let app = spawn_app().await;
    notes(&app, json!({"select": {"preset": "public"}})).await;
    let secret = app
        .config
        .auth
        .jwt_secret
        .as_ref()
        .expect("secret")
        .expose_secret()
        .to_owned();
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    };
    let now = chrono::Utc::now().timestamp();
    let cases = [
        (
            format!(
                "Bearer {}",
                sign(json!({"role": "authenticated", "exp": now - 3600}))
            ),
            "PGRST303",
            "JWT expired",
        ),
        (
            format!(
                "Bearer {}",
                sign(json!({"role": "authenticated", "exp": now + 7200, "nbf": now + 3600}))
            ),
            "PGRST303",
            "JWT not yet valid",
        ),
        (
            format!(
                "Bearer {}",
                sign(json!({"role": "authenticated", "exp": now + 3600, "aud": "elsewhere"}))
            ),
            "PGRST303",
            "JWT not in audience",
        ),
        (
            "Bearer a.b.c".to_owned(),
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "Bearer only.two".to_owned(),
            "PGRST301",
            "Expected 3 parts in JWT; got 2",
        ),
        (
            "Bearer ".to_owned(),
            "PGRST301",
            "Empty JWT is sent in Authorization header",
        ),
    ];
    for (authorization, code, message) in cases {
        let response = app
            .http
            .get(app.url("/rest/v1/notes?select=body"))
            .header("apikey", app.anon_key())
            .header("authorization", authorization.clone())
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 401, "{authorization}");
        assert_eq!(
            response.headers()["www-authenticate"],
            format!("Bearer error=\"invalid_token\", error_description=\"{message}\"").as_str()
        );
        assert_eq!(
            response.text().await.expect("body"),
            format!(r#"{{"code":"{code}","details":null,"hint":null,"message":"{message}"}}"#)
        );
    }
    // A signed token without a role is the anonymous role's, as in PostgREST.
    let roleless = app
        .http
        .get(app.url("/rest/v1/notes?select=body"))
        .header("apikey", app.anon_key())
        .bearer_auth(sign(json!({"sub": "someone", "exp": now + 3600})))
        .send()
        .await
        .expect("response");
    assert_eq!(roleless.status(), 200);
}
