//! Column changes checked against the existing rows: refusals name the count, show
//! samples and suggest the fix, and leave data and definition exactly as they were.

use galley_gateway::ErrorBody;
use galley_testkit::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(app.service_key());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("response")
}

/// A checksum of the table's rows and of its definition (columns, types, nullability,
/// defaults, constraints).
async fn checksum(app: &TestApp, table: &str) -> String {
    let client = app.db.connect().await.expect("connect");
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM public.{table} t),
                        (SELECT string_agg(a.attname || format_type(a.atttypid, a.atttypmod) || a.attnotnull::text
                                           || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ',' ORDER BY a.attnum)
                         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                         WHERE a.attrelid = 'public.{table}'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
                        (SELECT coalesce(string_agg(pg_get_constraintdef(oid), ',' ORDER BY conname), '')
                         FROM pg_constraint WHERE conrelid = 'public.{table}'::regclass)"
            ),
            &[],
        )
        .await
        .expect("checksum");
    format!(
        "{}|{}|{}",
        row.get::<_, String>(0),
        row.get::<_, String>(1),
        row.get::<_, String>(2)
    )
}

/// `people` with 12 rows: 3 without an email, 2 sharing one, ages as text with one
/// that is not a number.
async fn people(app: &TestApp) {
    let definition = json!({
        "name": "people",
        "primary_key": "bigint",
        "columns": [{"name": "email", "type": "text"}, {"name": "age", "type": "text"}]
    });
    assert_eq!(
        admin(app, Method::POST, "/admin/v1/tables", Some(definition))
            .await
            .status(),
        201
    );
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "INSERT INTO public.people (email, age)
             SELECT CASE WHEN n <= 3 THEN NULL WHEN n <= 5 THEN 'twin@example.com' ELSE 'p' || n || '@example.com' END,
                    CASE WHEN n = 7 THEN 'seven' ELSE (20 + n)::text END
             FROM generate_series(1, 12) n",
        )
        .await
        .expect("seed");
}

async fn refused(response: reqwest::Response, code: &str) -> ErrorBody {
    assert_eq!(response.status(), 409);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, code, "{}", body.message);
    body
}

#[tokio::test]
async fn not_null_over_nulls_is_refused_until_a_backfill_is_given() {
    let app = spawn_app().await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/email",
        Some(json!({"nullable": false})),
    )
    .await;
    let body = refused(response, "would_violate").await;
    assert!(body.message.contains("3 rows"), "{}", body.message);
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 3);
    let samples = details["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 3);
    assert!(
        samples
            .iter()
            .all(|s| s["key"]["id"].is_i64() && s["value"].is_null()),
        "{samples:?}"
    );
    assert_eq!(
        body.hint.as_deref(),
        Some("provide a backfill value to fill 3 rows")
    );
    assert_eq!(checksum(&app, "people").await, before, "nothing changed");

    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/email",
        Some(json!({"nullable": false, "backfill": "unknown@example.com"})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let nulls: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM public.people WHERE email IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(nulls, 0);
}

#[tokio::test]
async fn unique_over_duplicates_is_refused() {
    let app = spawn_app().await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/email",
        Some(json!({"unique": true})),
    )
    .await;
    let body = refused(response, "would_violate").await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 2);
    assert_eq!(details["samples"][0]["value"], "twin@example.com");
    assert_eq!(checksum(&app, "people").await, before);
}

#[tokio::test]
async fn a_type_change_whose_cast_fails_is_refused() {
    let app = spawn_app().await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/age",
        Some(json!({"type": "integer"})),
    )
    .await;
    let body = refused(response, "would_violate").await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 1);
    assert_eq!(details["samples"][0]["value"], "seven");
    assert_eq!(checksum(&app, "people").await, before);

    let too_long = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/email",
        Some(json!({"type": "varchar(5)"})),
    )
    .await;
    refused(too_long, "would_violate").await;
    assert_eq!(checksum(&app, "people").await, before);

    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute("UPDATE public.people SET age = '27' WHERE age = 'seven'")
        .await
        .expect("fix");
    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/people/columns/age",
        Some(json!({"type": "integer"})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let sum: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT sum(age)::bigint FROM public.people", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, (1..=12).map(|n| 20 + n).sum::<i64>());
}

#[tokio::test]
async fn a_required_column_needs_a_value_for_existing_rows() {
    let app = spawn_app().await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    let column = json!({"name": "country", "type": "text", "nullable": false});
    let body = refused(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/columns",
            Some(column),
        )
        .await,
        "would_violate",
    )
    .await;
    assert!(body.message.contains("12 rows"), "{}", body.message);
    assert!(body.hint.expect("hint").contains("backfill"));
    assert_eq!(checksum(&app, "people").await, before);

    let column = json!({"name": "country", "type": "text", "nullable": false, "backfill": "NL"});
    assert_eq!(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/columns",
            Some(column)
        )
        .await
        .status(),
        200
    );
    let client = app.db.connect().await.expect("connect");
    let filled: i64 = client
        .query_one(
            "SELECT count(*) FROM public.people WHERE country = 'NL'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(filled, 12);
    let default: Option<String> = client
        .query_one(
            "SELECT column_default::text FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'country'",
            &[],
        )
        .await
        .expect("default")
        .get(0);
    assert_eq!(
        default, None,
        "the backfill is not left behind as a default"
    );
}

#[tokio::test]
async fn drops_need_a_confirmation_that_names_what_is_dropped() {
    let app = spawn_app().await;
    people(&app).await;
    let pets = json!({
        "name": "pets",
        "columns": [{"name": "person", "type": "bigint"}],
        "foreign_keys": [{"columns": ["person"], "references": {"table": "people"}}]
    });
    assert_eq!(
        admin(&app, Method::POST, "/admin/v1/tables", Some(pets))
            .await
            .status(),
        201
    );
    let before = checksum(&app, "people").await;

    let body = refused(
        admin(
            &app,
            Method::DELETE,
            "/admin/v1/tables/people/columns/email",
            None,
        )
        .await,
        "confirmation_required",
    )
    .await;
    assert_eq!(body.details.as_ref().expect("details")["rows"], 9);
    let wrong = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/people/columns/email?confirm=age",
        None,
    )
    .await;
    refused(wrong, "confirmation_required").await;
    let body = refused(
        admin(&app, Method::DELETE, "/admin/v1/tables/people", None).await,
        "confirmation_required",
    )
    .await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 12);
    assert_eq!(
        details["dependent_foreign_keys"]
            .as_array()
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        checksum(&app, "people").await,
        before,
        "nothing dropped without confirmation"
    );

    let dropped = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/people/columns/email?confirm=email",
        None,
    )
    .await;
    assert_eq!(dropped.status(), 200);
    let dropped = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/people?confirm=people",
        None,
    )
    .await;
    assert_eq!(dropped.status(), 200);
    let exists: bool = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT to_regclass('public.people') IS NOT NULL", &[])
        .await
        .expect("exists")
        .get(0);
    assert!(!exists);
    let history: Value = admin(&app, Method::GET, "/admin/v1/schema/history", None)
        .await
        .json()
        .await
        .expect("json");
    let operations: Vec<&str> = history
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        ["create_table", "create_table", "drop_column", "drop_table"]
    );
}

#[tokio::test]
async fn a_change_blocked_by_a_lock_times_out_and_applies_nothing() {
    let app = galley_testkit::spawn_app_with(|config| config.schema.lock_timeout_ms = 200).await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    // A long transaction reading the table: ALTER TABLE must wait for it.
    let mut blocker = app.db.connect().await.expect("connect");
    let tx = blocker.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE public.people IN ACCESS SHARE MODE")
        .await
        .expect("lock");

    let response = admin(
        &app,
        Method::POST,
        "/admin/v1/tables/people/columns",
        Some(json!({"name": "note", "type": "text"})),
    )
    .await;
    let body = refused(response, "lock_timeout").await;
    assert!(
        body.message.contains("nothing was changed"),
        "{}",
        body.message
    );
    tx.rollback().await.expect("release");
    assert_eq!(checksum(&app, "people").await, before);
}

#[tokio::test]
async fn constraints_the_rows_break_are_refused_with_samples() {
    let app = spawn_app().await;
    people(&app).await;
    let before = checksum(&app, "people").await;
    // Ages are text; a check on the length holds for all but "seven".
    let check = json!({"check": {"column": "age", "max_length": 2}});
    let body = refused(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/constraints",
            Some(check),
        )
        .await,
        "would_violate",
    )
    .await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 1);
    assert_eq!(details["samples"][0]["value"], "seven");

    let unique = json!({"unique": ["email"]});
    let body = refused(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/constraints",
            Some(unique),
        )
        .await,
        "would_violate",
    )
    .await;
    assert_eq!(body.details.expect("details")["rows"], 2);

    let orphan_owner = json!({"name": "owner", "type": "uuid", "backfill": "00000000-0000-4000-8000-000000000099", "nullable": false});
    assert_eq!(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/columns",
            Some(orphan_owner)
        )
        .await
        .status(),
        200
    );
    let before_fk = checksum(&app, "people").await;
    let fk = json!({"foreign_key": {"columns": ["owner"], "references": {"table": "auth.users"}}});
    let body = refused(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/constraints",
            Some(fk),
        )
        .await,
        "would_violate",
    )
    .await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 12);
    assert_eq!(
        details["samples"][0]["value"][0],
        "00000000-0000-4000-8000-000000000099"
    );
    assert_eq!(checksum(&app, "people").await, before_fk);
    assert_ne!(before, before_fk);

    // Once the data fits, the same constraints apply.
    let check = json!({"check": {"column": "age", "max_length": 5}});
    assert_eq!(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/constraints",
            Some(check)
        )
        .await
        .status(),
        200
    );
    let index = json!({"columns": ["age", "email"]});
    assert_eq!(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/indexes",
            Some(index)
        )
        .await
        .status(),
        200
    );
    let client = app.db.connect().await.expect("connect");
    let too_long = client
        .batch_execute("UPDATE public.people SET age = 'seventy' WHERE age = 'seven'")
        .await;
    assert!(too_long.is_err(), "the check holds");
    let indexes: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 'people' AND indexdef LIKE '%(age, email)%'", &[])
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(indexes, 1);
}

#[tokio::test]
async fn narrowing_a_type_needs_a_confirmation_but_widening_does_not() {
    let app = spawn_app().await;
    let definition = json!({"name": "prices", "columns": [
        {"name": "amount", "type": "numeric(10,2)"}, {"name": "quantity", "type": "integer"}]});
    assert_eq!(
        admin(&app, Method::POST, "/admin/v1/tables", Some(definition))
            .await
            .status(),
        201
    );
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute("INSERT INTO public.prices (amount, quantity) VALUES (1.25, 3), (2.00, 4)")
        .await
        .expect("seed");
    let before = checksum(&app, "prices").await;

    let narrow = json!({"type": "numeric(10,1)"});
    let response = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/prices/columns/amount",
        Some(narrow.clone()),
    )
    .await;
    let body = refused(response, "confirmation_required").await;
    let details = body.details.expect("details");
    assert_eq!(details["rows"], 1);
    assert_eq!(details["samples"][0]["value"], 1.25);
    assert_eq!(checksum(&app, "prices").await, before, "nothing changed");

    let confirmed = admin(
        &app,
        Method::PATCH,
        "/admin/v1/tables/prices/columns/amount?confirm=amount",
        Some(narrow),
    )
    .await;
    assert_eq!(confirmed.status(), 200);

    // Every integer fits numeric(8,2) unchanged: no confirmation needed.
    let widen = json!({"type": "numeric(8,2)"});
    assert_eq!(
        admin(
            &app,
            Method::PATCH,
            "/admin/v1/tables/prices/columns/quantity",
            Some(widen)
        )
        .await
        .status(),
        200
    );
    let amounts: String = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT string_agg(amount::text || '/' || quantity::text, ',' ORDER BY amount) FROM public.prices", &[])
        .await
        .expect("values")
        .get(0);
    assert_eq!(amounts, "1.3/3.00,2.0/4.00");
}

#[tokio::test]
async fn dropping_a_key_that_foreign_keys_rely_on_needs_a_confirmation() {
    let app = spawn_app().await;
    people(&app).await;
    let pets = json!({
        "name": "pets",
        "columns": [{"name": "person", "type": "bigint"}, {"name": "name", "type": "text"}],
        "foreign_keys": [{"columns": ["person"], "references": {"table": "people"}}],
        "checks": [{"column": "name", "min_length": 1}]
    });
    assert_eq!(
        admin(&app, Method::POST, "/admin/v1/tables", Some(pets))
            .await
            .status(),
        201
    );
    let before = checksum(&app, "pets").await;

    let body = refused(
        admin(
            &app,
            Method::DELETE,
            "/admin/v1/tables/people/constraints/people_pkey",
            None,
        )
        .await,
        "confirmation_required",
    )
    .await;
    assert!(
        body.message.contains("pets.pets_person_fkey"),
        "{}",
        body.message
    );
    assert_eq!(checksum(&app, "pets").await, before);

    let confirmed = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/people/constraints/people_pkey?confirm=people_pkey",
        None,
    )
    .await;
    assert_eq!(confirmed.status(), 200);
    assert_ne!(
        checksum(&app, "pets").await,
        before,
        "the dependent foreign key went with it"
    );

    // A check nothing depends on drops without ceremony.
    let pets: Value = admin(&app, Method::GET, "/admin/v1/tables/pets", None)
        .await
        .json()
        .await
        .expect("json");
    let check = pets["constraints"]
        .as_array()
        .expect("constraints")
        .iter()
        .find(|c| c["kind"] == "check")
        .expect("check")["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let dropped = admin(
        &app,
        Method::DELETE,
        &format!("/admin/v1/tables/pets/constraints/{check}"),
        None,
    )
    .await;
    assert_eq!(dropped.status(), 200);
    let unknown = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/pets/constraints/nope",
        None,
    )
    .await;
    assert_eq!(unknown.status(), 422);
}

#[tokio::test]
async fn custom_check_expressions_and_index_drops_work_through_the_api() {
    let app = spawn_app().await;
    people(&app).await;
    // "seven" is the one age that is not all digits.
    let check =
        json!({"check": {"column": "age", "expression": "age ~ '^[0-9]+$' OR age = 'unknown'"}});
    let body = refused(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/constraints",
            Some(check),
        )
        .await,
        "would_violate",
    )
    .await;
    assert_eq!(body.details.expect("details")["rows"], 1);
    let smuggled =
        json!({"check": {"column": "age", "expression": "true); DROP TABLE people; --"}});
    let response = admin(
        &app,
        Method::POST,
        "/admin/v1/tables/people/constraints",
        Some(smuggled),
    )
    .await;
    assert_eq!(response.status(), 422);

    let index = json!({"columns": ["email"]});
    assert_eq!(
        admin(
            &app,
            Method::POST,
            "/admin/v1/tables/people/indexes",
            Some(index)
        )
        .await
        .status(),
        200
    );
    let table: Value = admin(&app, Method::GET, "/admin/v1/tables/people", None)
        .await
        .json()
        .await
        .expect("json");
    let indexes = table["indexes"].as_array().expect("indexes");
    let email_index = indexes
        .iter()
        .find(|i| {
            i["definition"]
                .as_str()
                .is_some_and(|d| d.ends_with("(email)"))
        })
        .expect("email index")["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let backing = admin(
        &app,
        Method::DELETE,
        "/admin/v1/tables/people/indexes/people_pkey",
        None,
    )
    .await;
    assert_eq!(
        backing.status(),
        422,
        "the primary key's index goes with the constraint only"
    );
    let dropped = admin(
        &app,
        Method::DELETE,
        &format!("/admin/v1/tables/people/indexes/{email_index}"),
        None,
    )
    .await;
    assert_eq!(dropped.status(), 200);
    let remaining: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'people'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(remaining, 1);
}
