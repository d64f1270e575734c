//! Every hostile input of SECURITY.md §3.3 against `/rest/v1`: a 4xx in the error shape
//! (or the documented literal match), never a 5xx, no SQL or internal names in the body,
//! and the data exactly as it was. Column privileges are enforced wherever a column can
//! appear: select, filters, JSON paths, order, `columns`, `on_conflict` and embeds.

use galley_gateway::ErrorBody;
use galley_testkit::{TestApp, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::Value;

const ALICE: &str = "00000000-0000-4000-8000-0000000000a1";
const BOB: &str = "00000000-0000-4000-8000-0000000000b2";
/// 63 bytes: the longest name PostgreSQL keeps whole.
const LONG: &str = "abcdefghij_abcdefghij_abcdefghij_abcdefghij_abcdefghij_abcdefgh";

async fn seed(app: &TestApp) {
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute(&format!(
            "INSERT INTO auth.users (id, email) VALUES ('{ALICE}', 'a@example.com'), ('{BOB}', 'b@example.com');
             CREATE TABLE public.accounts (
               id bigint PRIMARY KEY, name text NOT NULL, secret text, data jsonb,
               role text NOT NULL DEFAULT 'member', owner uuid DEFAULT auth.uid(), n bigint,
               tsv tsvector, {LONG} int);
             CREATE TABLE public.posts (id bigint PRIMARY KEY, account_id bigint REFERENCES public.accounts (id),
               author uuid REFERENCES auth.users (id), title text);
             GRANT SELECT (id, name, data, role, owner, n, tsv, {LONG}) ON public.accounts TO anon, authenticated;
             GRANT INSERT (id, name, data, owner, n) ON public.accounts TO authenticated;
             GRANT UPDATE (name, data, n) ON public.accounts TO authenticated;
             GRANT DELETE ON public.accounts TO authenticated;
             GRANT SELECT ON public.posts TO anon, authenticated;
             ALTER TABLE public.accounts ENABLE ROW LEVEL SECURITY;
             CREATE POLICY read ON public.accounts FOR SELECT USING (true);
             CREATE POLICY write ON public.accounts FOR INSERT WITH CHECK (owner = auth.uid());
             CREATE POLICY change ON public.accounts FOR UPDATE USING (owner = auth.uid());
             CREATE POLICY remove ON public.accounts FOR DELETE USING (owner = auth.uid());
             INSERT INTO public.accounts (id, name, secret, data, owner, n, tsv) VALUES
               (1, 'alice', 'alice-secret', '{{\"k\": \"v\", \"a\": 1}}', '{ALICE}', 1, to_tsvector('english', 'alpha beta')),
               (2, 'bob', 'bob-secret', '{{\"k\": \"w\"}}', '{BOB}', 2, to_tsvector('english', 'gamma')),
               (3, 'a b', NULL, NULL, '{BOB}', 3, NULL);
             INSERT INTO public.posts VALUES (1, 1, '{ALICE}', 'hello');
             CREATE FUNCTION public.slow() RETURNS int LANGUAGE sql AS 'SELECT 1 FROM pg_sleep(2)';"
        ))
        .await
        .expect("seed");
    // Served once the catalog has reloaded.
    for _ in 0..200 {
        let response = app
            .http
            .get(app.url("/rest/v1/posts?select=id"))
            .header("apikey", app.anon_key())
            .send()
            .await
            .expect("response");
        if response.status() == 200 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the tables were not served");
}

/// Everything the tables hold, as one string: unchanged means no side effect.
async fn checksum(app: &TestApp) -> String {
    let client = app.db.connect().await.expect("connect");
    let row = client
        .query_one(
            "SELECT coalesce((SELECT string_agg(a::text, '|' ORDER BY id) FROM public.accounts a), '') \
             || '#' || coalesce((SELECT string_agg(p::text, '|' ORDER BY id) FROM public.posts p), '')",
            &[],
        )
        .await
        .expect("checksum");
    row.get(0)
}

struct Probe<'a> {
    method: Method,
    /// Path and query, raw (already percent-encoded where it matters).
    target: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: Option<&'a str>,
    /// The statuses the table allows for this input.
    expect: &'a [u16],
}

fn get<'a>(target: &'a str, expect: &'a [u16]) -> Probe<'a> {
    Probe {
        method: Method::GET,
        target,
        headers: Vec::new(),
        body: None,
        expect,
    }
}

fn post<'a>(target: &'a str, body: &'a str, expect: &'a [u16]) -> Probe<'a> {
    Probe {
        method: Method::POST,
        target,
        headers: Vec::new(),
        body: Some(body),
        expect,
    }
}

/// Sends the probe as Alice; checks the status, the error shape and that nothing
/// internal leaks. Returns the body of a success.
async fn probe(app: &TestApp, token: &str, probe: Probe<'_>) -> Value {
    let url = format!("{}{}", app.url(""), probe.target);
    let mut request = app
        .http
        .request(probe.method.clone(), &url)
        .header("apikey", app.anon_key())
        .bearer_auth(token);
    for (name, value) in &probe.headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = probe.body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert!(
        probe.expect.contains(&status),
        "{} {} {:?}: {status} (expected one of {:?}): {text}",
        probe.method,
        probe.target,
        probe.body,
        probe.expect
    );
    assert!(status < 500 || probe.expect.contains(&status), "{status}");
    for leak in [
        "SELECT ",
        "pg_catalog",
        "pgrst_",
        "galley.",
        "secret\"",
        "alice-secret",
        ".rs:",
        "panicked",
    ] {
        // The client's own input may be quoted back; nothing else may show.
        let echoed = probe.target.contains(leak.trim())
            || probe.body.is_some_and(|body| body.contains(leak.trim()))
            || probe
                .headers
                .iter()
                .any(|(_, value)| value.contains(leak.trim()));
        assert!(
            echoed || !text.contains(leak),
            "{} {}: the body shows {leak:?}: {text}",
            probe.method,
            probe.target
        );
    }
    if status >= 400 {
        let error: ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{}: not the error shape ({err}): {text}", probe.target));
        assert!(!error.code.is_empty());
        Value::Null
    } else if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

#[tokio::test]
async fn hostile_inputs_get_a_clean_4xx_and_change_nothing() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = checksum(&app).await;
    let alice = app.user_token(ALICE);
    let t = alice.as_str();
    let none: Value = serde_json::json!([]);
    let deep_and = format!(
        "/rest/v1/accounts?and=({}id.eq.1{})",
        "and(".repeat(1000),
        ")".repeat(1000)
    );
    let long_select = format!("/rest/v1/accounts?select={LONG}x");
    let long_filter = format!("/rest/v1/accounts?{LONG}x=eq.1");
    let in_list = format!(
        "/rest/v1/accounts?id=in.({})",
        (0..1001)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );

    // 1-4, 7: values are bound, so these match nothing.
    for target in [
        "/rest/v1/accounts?select=id&name=eq.%27%20OR%20%271%27=%271",
        "/rest/v1/accounts?select=id&name=eq.x%27;DROP%20TABLE%20accounts;--",
        "/rest/v1/accounts?select=id&name=eq.%5C%27;select%20pg_sleep(5)--",
        "/rest/v1/accounts?select=id&name=eq.$$%7C%7C(select%20version())%7C%7C$$",
        "/rest/v1/accounts?select=id&name=eq.%EF%BC%87%20OR%201=1",
        "/rest/v1/accounts?select=id&name=eq.%CA%BC%20OR%201=1",
        // 42: decoded once; `%2527` is the text `%27`.
        "/rest/v1/accounts?select=id&name=eq.%2527",
        // 40: repeated filters are ANDed.
        "/rest/v1/accounts?select=id&id=eq.1&id=eq.2",
        // 8: quotes in an in list stay literal.
        "/rest/v1/accounts?select=id&name=in.(%22a%5C%22),b%22)",
        "/rest/v1/accounts?select=id&name=in.(a,%22b%5C%5C%22)",
    ] {
        assert_eq!(probe(&app, t, get(target, &[200])).await, none, "{target}");
    }
    // 42: `+` and `%20` both mean a space; `%2C` splits an in list like `,`.
    for target in [
        "/rest/v1/accounts?select=id&name=eq.a+b",
        "/rest/v1/accounts?select=id&name=eq.a%20b",
        "/rest/v1/accounts?select=id&name=in.(zzz%2Ca%20b)",
    ] {
        assert_eq!(
            probe(&app, t, get(target, &[200])).await,
            serde_json::json!([{"id": 3}]),
            "{target}"
        );
    }

    // Refused outright.
    let bad_request = [400];
    for target in [
        "/rest/v1/accounts?name=eq.%00abc",               // 5
        "/rest/v1/accounts?name=eq.%C0%27",               // 6
        "/rest/v1/accounts?name=eq.%FF%27",               // 6
        "/rest/v1/accounts?id=in.(1,2)or(1=1)",           // 8
        "/rest/v1/accounts?id=is.null;drop",              // 9
        "/rest/v1/accounts?id=is.notnull%27",             // 9
        "/rest/v1/accounts?name=evil.x",                  // 10
        "/rest/v1/accounts?name=eq)or(1=1.x",             // 10
        "/rest/v1/accounts?or=(id.eq.1,id.eq.2)or(true)", // 11
        deep_and.as_str(),                                // 12
        "/rest/v1/accounts?select=id,(select%20password%20from%20users)", // 13
        "/rest/v1/accounts?select=%22a%22%22b%22",        // 14
        "/rest/v1/accounts?select=%22x%22%22;%20drop%20table%20t;--%22", // 14
        long_select.as_str(),                             // 16
        long_filter.as_str(),                             // 16
        "/rest/v1/accounts?select=id::text;drop%20table%20t", // 18
        "/rest/v1/accounts?select=id::int))--",           // 19
        "/rest/v1/accounts?select=id::regclass",          // 19
        "/rest/v1/accounts?select=id::pg_catalog.text",   // 19
        "/rest/v1/accounts?select=data->a,b",             // 20: b is no column
        "/rest/v1/accounts?order=id.asc;drop",            // 22
        "/rest/v1/accounts?order=id.desc%20nulls%20first,(select%201)", // 22
        "/rest/v1/accounts?order=random()",               // 22
        "/rest/v1/accounts?limit=-1",                     // 24
        "/rest/v1/accounts?limit=1e9",                    // 24
        "/rest/v1/accounts?limit=1;select",               // 24
        "/rest/v1/accounts?offset=99999999999999999999",  // 24
        "/rest/v1/accounts?select=*,auth_users(*)",       // 27
        "/rest/v1/accounts?select=*,internal.secrets(*)", // 27
        "/rest/v1/posts?select=*,users(*)",               // 27: auth.users is not exposed
        "/rest/v1/accounts?select=*,posts!fk%22;drop(*)", // 28
        "/rest/v1/accounts?select=*,posts!inner!inner(*)", // 28
        "/rest/v1/accounts?tsv=fts(english%27;drop).x",   // 37
        "/rest/v1/accounts?tsv=wfts(xx).a",               // 37
        "/rest/v1/accounts?select=id&select=secret",      // 40
        in_list.as_str(),                                 // limits
    ] {
        probe(&app, t, get(target, &bad_request)).await;
    }
    // 17, 20: an alias is quoted, a JSON key is a bound value; either works or is refused.
    for target in [
        "/rest/v1/accounts?select=x:id,%22y%22--%22:id",
        "/rest/v1/accounts?select=data->>%27a%27%27;drop",
        "/rest/v1/accounts?select=data->>-1",
        "/rest/v1/accounts?select=data->99999999999999999999",
    ] {
        probe(&app, t, get(target, &[200, 400])).await;
    }

    // 15, 21, 23 and C10: a column Alice may not read is refused wherever it appears.
    for target in [
        "/rest/v1/accounts?select=secret",
        "/rest/v1/accounts?select=*",
        "/rest/v1/accounts?select=id&secret=like.a*",
        "/rest/v1/accounts?select=id&secret->>k=eq.x",
        "/rest/v1/accounts?select=id&order=secret.asc",
        "/rest/v1/accounts?select=id&or=(secret.eq.x,id.eq.1)",
        "/rest/v1/posts?select=id,accounts(secret)",
        "/rest/v1/posts?select=id,accounts(id)&accounts.secret=eq.x",
    ] {
        probe(&app, t, get(target, &[403])).await;
    }
    let anon_denied = probe(
        &app,
        &app.anon_key(),
        get("/rest/v1/accounts?select=id&secret=eq.x", &[401]),
    )
    .await;
    assert_eq!(anon_denied, Value::Null);

    // 29-31: paths and schemas that are not exposed.
    for target in [
        "/rest/v1/users;drop",
        "/rest/v1/pg_catalog.pg_authid",
        "/rest/v1/%22auth%22.%22users%22",
        "/rest/v1/%2e%2e/x",
        "/rest/v1/accounts/1",
        "/rest/v1/rpc/pg_sleep",
        "/rest/v1/rpc/set_config",
        "/rest/v1/rpc/pg_read_file",
        "/rest/v1/rpc/dblink",
    ] {
        probe(&app, t, get(target, &[404])).await;
    }
    probe(&app, t, get("/rest/v1/users%00", &[400, 404])).await;
    let mut profile = get("/rest/v1/accounts?select=id", &[406]);
    profile.headers.push(("accept-profile", "pg_catalog"));
    probe(&app, t, profile).await;
    let mut profile = post("/rest/v1/accounts", r#"{"id": 9, "name": "x"}"#, &[406]);
    profile.headers.push(("content-profile", "auth"));
    probe(&app, t, profile).await;
    for name in ["pg_sleep", "set_config", "pg_read_file", "dblink"] {
        let target = format!("/rest/v1/rpc/{name}");
        probe(&app, t, post(&target, "{}", &[404])).await;
    }

    // 25, 26, 32-34: writes that must not happen.
    let alice_row = format!(r#"{{"id": 9, "name": "x", "owner": "{ALICE}"}}"#);
    let mass = format!(
        r#"{{"id": 1, "name": "x", "owner": "{BOB}", "role": "service_role", "secret": "s"}}"#
    );
    for (target, body, expect) in [
        (
            "/rest/v1/accounts?on_conflict=id)%20do%20update%20set%20role=%27admin%27--",
            alice_row.as_str(),
            &[400][..],
        ),
        (
            "/rest/v1/accounts?on_conflict=nope",
            alice_row.as_str(),
            &[400],
        ),
        (
            "/rest/v1/accounts?columns=id,role",
            r#"{"id": 9, "role": "admin"}"#,
            &[403],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id\"; drop table t;--": 1}"#,
            &[400],
        ),
        ("/rest/v1/accounts", r#"{"__proto__": {}}"#, &[400]),
        ("/rest/v1/accounts", r#"{"constructor": 1}"#, &[400]),
        ("/rest/v1/accounts", mass.as_str(), &[403]),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "x", "n": 1e400}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "x", "n": NaN}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "\ud800"}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "nul\u0000"}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "x", "n": 9223372036854775808}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"{"id": 9, "name": "x", "owner": "not-a-uuid"}"#,
            &[400],
        ),
        (
            "/rest/v1/accounts",
            r#"[{"id": 9, "name": "x"}, {"id": 10}]"#,
            &[400],
        ),
        ("/rest/v1/accounts", r#"{"a":"#, &[400]),
    ] {
        let mut request = post(target, body, expect);
        let prefer = if target.contains("on_conflict") {
            "return=representation, resolution=merge-duplicates"
        } else {
            "return=minimal"
        };
        request.headers.push(("prefer", prefer));
        probe(&app, t, request).await;
    }
    // 33 by PATCH: Bob's row is out of Alice's reach; her own `role` is not hers to set.
    let patch = |target, body, expect| Probe {
        method: Method::PATCH,
        target,
        headers: vec![("prefer", "return=representation")],
        body: Some(body),
        expect,
    };
    assert_eq!(
        probe(
            &app,
            t,
            patch(
                "/rest/v1/accounts?id=eq.2&select=id,name",
                r#"{"name": "taken"}"#,
                &[200]
            )
        )
        .await,
        none
    );
    probe(
        &app,
        t,
        patch("/rest/v1/accounts?id=eq.1", r#"{"role": "admin"}"#, &[403]),
    )
    .await;
    probe(
        &app,
        t,
        patch("/rest/v1/accounts", r#"{"name": "all"}"#, &[400]),
    )
    .await;
    let delete = Probe {
        method: Method::DELETE,
        target: "/rest/v1/accounts?owner=eq.00000000-0000-4000-8000-0000000000b2&select=id,name",
        headers: vec![("prefer", "return=representation")],
        body: None,
        expect: &[200],
    };
    assert_eq!(probe(&app, t, delete).await, none);

    // 38, 39: preferences and ranges are bounded, not trusted.
    let mut timezone = get("/rest/v1/accounts?select=id&id=eq.1", &[200]);
    timezone
        .headers
        .push(("prefer", "timezone=';drop, tx=commit"));
    probe(&app, t, timezone).await;
    let mut strict = get("/rest/v1/accounts?select=id", &[400]);
    strict
        .headers
        .push(("prefer", "handling=strict, timezone=';drop"));
    probe(&app, t, strict).await;
    let mut range = get("/rest/v1/accounts?select=id", &[200]);
    range.headers.push(("range", "0-999999999"));
    probe(&app, t, range).await;
    for bad in ["-5-", "a-b", "5-1"] {
        let mut range = get("/rest/v1/accounts?select=id", &[416]);
        range.headers.push(("range", bad));
        probe(&app, t, range).await;
    }
    // 36: patterns that match everything are bounded by max_rows.
    let all = probe(
        &app,
        t,
        get("/rest/v1/accounts?select=id&name=like.*", &[200]),
    )
    .await;
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    probe(
        &app,
        t,
        get("/rest/v1/accounts?select=id&name=ilike.%25_%25", &[200]),
    )
    .await;

    assert_eq!(checksum(&app).await, before, "the data changed");
}

#[tokio::test]
async fn a_statement_over_its_time_answers_504_and_the_server_carries_on() {
    let app = spawn_app_with(|config| config.rest.statement_timeout_ms = 200).await;
    seed(&app).await;
    let alice = app.user_token(ALICE);
    let response = app
        .http
        .post(app.url("/rest/v1/rpc/slow"))
        .header("apikey", app.anon_key())
        .bearer_auth(&alice)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 504);
    let error: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(error.code, "57014");
    let after = probe(
        &app,
        &alice,
        get("/rest/v1/accounts?select=id&id=eq.1", &[200]),
    )
    .await;
    assert_eq!(after, serde_json::json!([{"id": 1}]));
}

#[tokio::test]
async fn returned_rows_are_only_rows_the_caller_may_read() {
    let app = spawn_app().await;
    seed(&app).await;
    let client = app.db.connect().await.expect("connect");
    // Anyone may update a box; only its owner may see it.
    client
        .batch_execute(&format!(
            "CREATE TABLE public.boxes (id bigint PRIMARY KEY, owner uuid, label text);
             GRANT SELECT, UPDATE ON public.boxes TO authenticated;
             ALTER TABLE public.boxes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON public.boxes FOR SELECT USING (owner = auth.uid());
             CREATE POLICY anyone ON public.boxes FOR UPDATE USING (true);
             INSERT INTO public.boxes VALUES (1, '{ALICE}', 'alice box'), (2, '{BOB}', 'bob box');"
        ))
        .await
        .expect("boxes");
    let bob = app.user_token(BOB);
    let mut updated = Value::Null;
    for _ in 0..200 {
        let response = app
            .http
            .patch(app.url("/rest/v1/boxes?id=gt.0"))
            .header("apikey", app.anon_key())
            .header("prefer", "return=representation")
            .bearer_auth(&bob)
            .json(&serde_json::json!({"label": "relabelled"}))
            .send()
            .await
            .expect("response");
        if response.status() == 404 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(response.status(), 200);
        updated = response.json().await.expect("json");
        break;
    }
    let rows = updated.as_array().expect("rows");
    assert!(
        rows.iter().all(|row| row["owner"] == BOB),
        "only Bob's own box comes back: {updated}"
    );
}

#[tokio::test]
async fn one_pooled_connection_carries_nothing_from_one_request_to_the_next() {
    let app = spawn_app_with(|config| config.database.pool_size = 1).await;
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE FUNCTION public.whoami() RETURNS json LANGUAGE sql STABLE AS
               $$ SELECT json_build_object('role', current_user::text,
                    'claims', current_setting('request.jwt.claims', true)) $$;
             GRANT EXECUTE ON FUNCTION public.whoami() TO anon, authenticated, service_role;
             CREATE FUNCTION public.boom() RETURNS int LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'boom'; END $$;",
        )
        .await
        .expect("function");
    let call = |token: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/rest/v1/rpc/whoami"))
                .header("apikey", app.anon_key())
                .bearer_auth(token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("response")
        }
    };
    let mut served = false;
    for _ in 0..200 {
        if call(app.service_key()).await.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "whoami was not served");
    // A failing request as service_role, then requests as others, on the one connection.
    let failed = app
        .http
        .post(app.url("/rest/v1/rpc/boom"))
        .header("apikey", app.anon_key())
        .bearer_auth(app.service_key())
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("response");
    assert_eq!(failed.status(), 400);
    assert_eq!(
        failed.json::<ErrorBody>().await.expect("error").code,
        "P0001"
    );
    let anon: Value = call(app.anon_key()).await.json().await.expect("json");
    assert_eq!(anon["role"], "anon");
    assert!(
        !anon["claims"]
            .as_str()
            .unwrap_or_default()
            .contains("service_role"),
        "{anon}"
    );
    let alice: Value = call(app.user_token(ALICE))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(alice["role"], "authenticated");
    assert!(alice["claims"].as_str().unwrap_or_default().contains(ALICE));
    // Outside a request's transaction the connection is the authenticator's again.
    let next: Value = call(app.anon_key()).await.json().await.expect("json");
    assert_eq!(next["role"], "anon");
}

#[tokio::test]
async fn a_body_of_another_type_is_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = checksum(&app).await;
    let alice = app.user_token(ALICE);
    let service = app.service_key();
    let send = |path: &str, key: &str, content_type: &str, body: &str| {
        app.http
            .post(app.url(path))
            .header("apikey", app.anon_key())
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/csv",
    ] {
        // `/rest/v1` reads CSV and forms as PostgREST does (here: no such columns) and
        // refuses any other type, always with a 4xx that changes nothing.
        let response = send(
            "/rest/v1/accounts",
            &alice,
            content_type,
            r#"{"id": 9, "name": "mallory", "owner": "00000000-0000-4000-8000-0000000000a1"}"#,
        )
        .await
        .expect("response");
        if content_type == "text/csv" {
            // A header line and no rows: nothing to insert.
            assert_eq!(response.status(), 201, "{content_type}");
            assert_eq!(response.headers()["content-range"], "*/0");
        } else {
            assert_eq!(response.status(), 400, "{content_type}");
            let error: ErrorBody = response.json().await.expect("error shape");
            if content_type == "text/plain" {
                assert_eq!(error.code, "PGRST102");
                assert_eq!(error.message, "Content-Type not acceptable: text/plain");
            } else {
                assert_eq!(error.code, "PGRST204", "{content_type}: {}", error.message);
            }
        }

        let response = send("/rest/v1/rpc/slow", &alice, content_type, "{}")
            .await
            .expect("response");
        // text/plain is a raw body for a single unnamed text parameter, which `slow`
        // does not have (PostgREST's 404); a form names an argument `{}` it has not, and
        // CSV's rows are no named arguments.
        assert!(
            matches!(response.status().as_u16(), 400 | 404),
            "rpc, {content_type}: {}",
            response.status()
        );

        let response = send(
            "/admin/v1/tables",
            &service,
            content_type,
            r#"{"name": "smuggled", "columns": [{"name": "x", "type": "text"}]}"#,
        )
        .await
        .expect("response");
        assert_eq!(response.status(), 415, "admin, {content_type}");
        let error: ErrorBody = response.json().await.expect("error shape");
        assert_eq!(error.code, "unsupported_media_type");
        assert!(error.request_id.is_some());

        let response = app
            .http
            .post(app.url("/auth/v1/signup"))
            .header("apikey", app.anon_key())
            .header("content-type", content_type)
            .body(r#"{"email": "form@example.com", "password": "correct horse battery"}"#)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 415, "auth, {content_type}");
    }
    // JSON by any of its names, or by no name at all, is read.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.pgrst.object+json",
    ] {
        let response = send("/rest/v1/rpc/slow", &alice, content_type, "{}")
            .await
            .expect("response");
        assert_eq!(response.status(), 200, "{content_type}");
    }
    assert_eq!(checksum(&app).await, before, "nothing changed");
    let client = app.db.connect().await.expect("connect");
    let smuggled = client
        .query_opt("SELECT 1 FROM pg_tables WHERE tablename = 'smuggled'", &[])
        .await
        .expect("query");
    assert!(smuggled.is_none());
    let users = client
        .query_one(
            "SELECT count(*) FROM auth.users WHERE email = 'form@example.com'",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(users.get::<_, i64>(0), 0);
}

#[tokio::test]
async fn an_authorization_header_that_is_not_a_bearer_token_is_401_never_anon() {
    let app = spawn_app().await;
    seed(&app).await;
    let anon_reads = app
        .http
        .get(app.url("/rest/v1/accounts?select=id"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(anon_reads.status(), 200, "anon may read accounts");
    for authorization in [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer ",
        "Token abc",
        "eyJhbGciOiJIUzI1NiJ9",
    ] {
        let response = app
            .http
            .get(app.url("/rest/v1/accounts?select=id"))
            .header("apikey", app.anon_key())
            .header("authorization", authorization)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 401, "{authorization:?}");
        let error: ErrorBody = response.json().await.expect("error shape");
        assert_eq!(error.code, "PGRST301");
    }
}

#[tokio::test]
async fn auth_answers_are_not_cached_and_preflights_offer_only_served_methods() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/auth/v1/signup"))
        .header("apikey", app.anon_key())
        .json(
            &serde_json::json!({"email": "fresh@example.com", "password": "correct horse battery"}),
        )
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");

    let preflight = |method: &'static str| {
        app.http
            .request(Method::OPTIONS, app.url("/rest/v1/accounts"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", method)
            .send()
    };
    let allowed = preflight("PATCH").await.expect("response");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(methods.contains("PATCH"), "{methods}");
    for unserved in ["TRACE", "CONNECT"] {
        assert!(!methods.contains(unserved), "{methods}");
        let refused = preflight(unserved).await.expect("response");
        assert!(
            refused
                .headers()
                .get("access-control-allow-methods")
                .is_none_or(|v| !v.to_str().unwrap_or_default().contains(unserved)),
            "{unserved} is not offered"
        );
    }
}

#[tokio::test]
async fn request_settings_with_quotes_backslashes_and_nuls_arrive_as_written() {
    // Whatever a header or a claim holds, the SQL sees exactly that value in the request's
    // settings, and nothing of it runs.
    let app = spawn_app_with(|config| config.database.pool_size = 1).await;
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE TABLE public.sentinel (id int);
             CREATE FUNCTION public.echo() RETURNS json LANGUAGE sql STABLE AS
               $$ SELECT json_build_object(
                    'probe', current_setting('request.headers', true)::json->>'x-probe',
                    'sub', current_setting('request.jwt.claims', true)::json->'sub',
                    'method', current_setting('request.method', true),
                    'path', current_setting('request.path', true)) $$;
             GRANT EXECUTE ON FUNCTION public.echo() TO anon, authenticated, service_role;",
        )
        .await
        .expect("function");
    let probe = r#"it's '' \' \\'); DROP TABLE public.sentinel; -- "quoted" \x00 E'\n'"#;
    let sub = "o'brien \\ \u{7} '); DROP TABLE public.sentinel; --";
    let mut answer = serde_json::Value::Null;
    for _ in 0..200 {
        let response = app
            .http
            .post(app.url("/rest/v1/rpc/echo"))
            .header("apikey", app.anon_key())
            .header("x-probe", probe)
            .bearer_auth(app.user_token(sub))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("response");
        if response.status() == 200 {
            answer = response.json().await.expect("json");
            break;
        }
        answer = serde_json::json!({"status": response.status().as_u16(),
                                    "body": response.text().await.unwrap_or_default()});
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        answer,
        serde_json::json!({"probe": probe, "sub": sub, "method": "POST", "path": "/rest/v1/rpc/echo"})
    );
    // A role with a NUL in it: refused as a client error, and the one connection serves on.
    let secret = app.config.auth.jwt_secret.as_ref().expect("secret");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "x", "role": "authen\u{0}ticated", "aud": "authenticated",
                            "exp": chrono::Utc::now().timestamp() + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(
            secrecy::ExposeSecret::expose_secret(secret).as_bytes(),
        ),
    )
    .expect("token");
    let refused = app
        .http
        .post(app.url("/rest/v1/rpc/echo"))
        .header("apikey", app.anon_key())
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("response");
    assert!(
        refused.status().is_client_error(),
        "{}: {}",
        refused.status(),
        refused.text().await.unwrap_or_default()
    );
    let again = app
        .http
        .post(app.url("/rest/v1/rpc/echo"))
        .header("apikey", app.anon_key())
        .bearer_auth(app.user_token("after"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("response");
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<serde_json::Value>().await.expect("json")["sub"],
        "after"
    );
    let sentinel: i64 = client
        .query_one("SELECT count(*) FROM public.sentinel", &[])
        .await
        .expect("the sentinel table is still there")
        .get(0);
    assert_eq!(sentinel, 0);
}

#[tokio::test]
async fn raw_bodies_and_ill_shaped_arguments_for_functions_are_4xx_and_change_nothing() {
    let app = spawn_app().await;
    seed(&app).await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE TYPE public.pair AS (x integer, y integer);
             CREATE FUNCTION public.takes_pair(p public.pair) RETURNS integer LANGUAGE sql AS 'SELECT (p).x';
             CREATE FUNCTION public.takes_list(xs integer[]) RETURNS integer LANGUAGE sql AS 'SELECT cardinality(xs)';
             CREATE FUNCTION public.takes_text(text) RETURNS integer LANGUAGE sql AS 'SELECT length($1)';
             CREATE FUNCTION public.takes_xml(xml) RETURNS text LANGUAGE sql AS 'SELECT $1::text';",
        )
        .await
        .expect("functions");
    let before = checksum(&app).await;
    let alice = app.user_token(ALICE);
    let send = |function: &str, content_type: &str, body: Vec<u8>| {
        app.http
            .post(app.url(&format!("/rest/v1/rpc/{function}")))
            .header("apikey", app.anon_key())
            .bearer_auth(&alice)
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    // The catalog reloads on DDL: wait until the functions are there.
    for _ in 0..200 {
        let ready = send("takes_list", "application/json", br#"{"xs": [1]}"#.to_vec())
            .await
            .expect("response");
        if ready.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hostile: [(&str, &str, Vec<u8>); 10] = [
        (
            "takes_pair",
            "application/json",
            br#"{"p": [1, 2]}"#.to_vec(),
        ),
        (
            "takes_pair",
            "application/json",
            br#"{"p": {"x": "one"}}"#.to_vec(),
        ),
        (
            "takes_pair",
            "application/json",
            br#"{"p": "(1,2"}"#.to_vec(),
        ),
        (
            "takes_list",
            "application/json",
            br#"{"xs": {"a": 1}}"#.to_vec(),
        ),
        (
            "takes_list",
            "application/json",
            br#"{"xs": [[1], 2]}"#.to_vec(),
        ),
        (
            "takes_list",
            "application/json",
            br#"{"xs": "not an array"}"#.to_vec(),
        ),
        ("takes_text", "text/plain", vec![0xff, 0xfe, b'a']),
        ("takes_text", "text/plain", b"with a \0 NUL".to_vec()),
        ("takes_xml", "text/xml", b"<unclosed>".to_vec()),
        (
            "takes_xml",
            "text/xml",
            b"<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>".to_vec(),
        ),
    ];
    for (function, content_type, body) in hostile {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let response = send(function, content_type, body).await.expect("response");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        // An external entity is never fetched: PostgreSQL keeps the document as text
        // (200, the entity unexpanded), and nothing of the file appears.
        let entity = shown.contains("<!ENTITY");
        assert!(
            (400..500).contains(&status) || (entity && status == 200),
            "{function} {content_type} {shown:?}: {status} {text}"
        );
        assert!(
            !text.contains("root:") && !text.contains("SELECT"),
            "{function}: {text}"
        );
    }
    assert_eq!(checksum(&app).await, before);
}

#[tokio::test]
async fn hostile_schema_headers_are_406_and_change_nothing() {
    let app = spawn_app_with(|config| {
        config.rest.schemas = vec!["public".to_owned(), "api".to_owned()];
    })
    .await;
    seed(&app).await;
    app.db
        .connect()
        .await
        .expect("connect")
        .batch_execute(
            "CREATE SCHEMA api;
             GRANT USAGE ON SCHEMA api TO anon, authenticated;
             CREATE TABLE api.notes (id bigint PRIMARY KEY, body text);
             GRANT SELECT, INSERT, DELETE ON api.notes TO authenticated;",
        )
        .await
        .expect("schema");
    let alice = app.user_token(ALICE);
    let before = checksum(&app).await;
    // Every name but the listed ones, however spelled, is refused before any SQL runs:
    // Galley's own schemas, PostgreSQL's, case variants, lists, padding, quoting, bytes
    // that are not UTF-8, and a name long past PostgreSQL's 63.
    let long = "a".repeat(500);
    let names: Vec<Vec<u8>> = vec![
        b"auth".to_vec(),
        b"storage".to_vec(),
        b"galley".to_vec(),
        b"pg_catalog".to_vec(),
        b"information_schema".to_vec(),
        b"PUBLIC".to_vec(),
        b"public, api".to_vec(),
        b"\"public\"".to_vec(),
        b"public;drop table accounts".to_vec(),
        b"".to_vec(),
        vec![0xff, 0xfe],
        long.clone().into_bytes(),
    ];
    for name in names {
        let shown = String::from_utf8_lossy(&name).into_owned();
        let header = reqwest::header::HeaderValue::from_bytes(&name).expect("header value");
        for (method, profile) in [
            (Method::GET, "accept-profile"),
            (Method::POST, "content-profile"),
            (Method::DELETE, "content-profile"),
        ] {
            let response = app
                .http
                .request(
                    method.clone(),
                    app.url("/rest/v1/accounts?id=eq.1&select=id,secret"),
                )
                .header("apikey", app.anon_key())
                .bearer_auth(&alice)
                .header(profile, header.clone())
                .header("content-type", "application/json")
                .body(r#"{"id": 9, "name": "x"}"#)
                .send()
                .await
                .expect("response");
            assert_eq!(response.status(), 406, "{method} {shown:?}");
            let body: serde_json::Value = response.json().await.expect("json");
            let expected: String = shown.chars().take(63).collect();
            assert_eq!(
                body,
                serde_json::json!({
                    "code": "PGRST106",
                    "details": null,
                    "hint": "Only the following schemas are exposed: public, api",
                    "message": format!("Invalid schema: {expected}"),
                }),
                "{method} {shown:?}"
            );
        }
    }
    // A listed schema serves only its own tables: `accounts` is public's.
    let other = app
        .http
        .get(app.url("/rest/v1/accounts"))
        .header("apikey", app.anon_key())
        .header("accept-profile", "api")
        .send()
        .await
        .expect("response");
    assert_eq!(other.status(), 404);
    assert_eq!(checksum(&app).await, before);
}
