//! The audit trail: every admin request that changes something, applied, dry-run,
//! refused or unauthorised, with who, what, when and from where; read back with filters
//! and pages.

use galley_testkit::spawn_app;
use serde_json::{Value, json};

#[tokio::test]
async fn admin_actions_are_recorded_and_read_back_with_filters_and_pages() {
    let app = spawn_app().await;
    let admin = app.service_key();
    let table = json!({"name": "ledger", "primary_key": "bigint", "columns": [{"name": "amount", "type": "integer"}]});
    let post = |path: &str, body: &Value, token: Option<&str>| {
        let mut request = app.http.post(app.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        post("/admin/v1/tables?dry_run=true", &table, Some(&admin))
            .await
            .expect("r")
            .status(),
        200
    );
    assert_eq!(
        post("/admin/v1/tables", &table, Some(&admin))
            .await
            .expect("r")
            .status(),
        201
    );
    assert_eq!(
        post("/admin/v1/tables", &table, Some(&admin))
            .await
            .expect("r")
            .status(),
        409
    );
    assert_eq!(
        post("/admin/v1/tables", &table, None)
            .await
            .expect("r")
            .status(),
        401
    );
    let user = app.user_token("00000000-0000-4000-8000-00000000000c");
    assert_eq!(
        post("/admin/v1/tables", &table, Some(&user))
            .await
            .expect("r")
            .status(),
        403
    );
    let created = post(
        "/auth/v1/admin/users",
        &json!({"email": "audited@example.com"}),
        Some(&admin),
    )
    .await
    .expect("r");
    assert_eq!(created.status(), 200);
    // Reads are not actions.
    app.http
        .get(app.url("/admin/v1/tables"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("r");

    let audit = |query: &str| {
        let app = &app;
        let admin = admin.clone();
        let query = query.to_owned();
        async move {
            let response = app
                .http
                .get(app.url(&format!("/admin/v1/audit{query}")))
                .bearer_auth(admin)
                .send()
                .await
                .expect("r");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let all = audit("").await;
    let entries = all["entries"].as_array().expect("entries");
    let outcomes: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("POST /auth/v1/admin/users", "applied", "service_role"),
            (
                "POST /admin/v1/tables",
                "refused",
                "00000000-0000-4000-8000-00000000000c"
            ),
            ("POST /admin/v1/tables", "refused", "anonymous"),
            ("POST /admin/v1/tables", "refused", "service_role"),
            ("POST /admin/v1/tables", "applied", "service_role"),
            ("POST /admin/v1/tables", "dry_run", "service_role"),
        ],
        "{all}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["source_ip"] == "127.0.0.1" && e["at"].is_string())
    );
    assert_eq!(entries[1]["details"]["status"], 403);

    let refused = audit("?outcome=refused").await;
    assert_eq!(refused["entries"].as_array().map(Vec::len), Some(3));
    let page = audit("?limit=2").await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    let next = page["next_before"].as_i64().expect("next page");
    let rest = audit(&format!("?limit=10&before={next}")).await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(4));
    assert!(rest["next_before"].is_null());
    let bad = app
        .http
        .get(app.url("/admin/v1/audit?nope=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("r");
    assert_eq!(bad.status(), 400);
}
