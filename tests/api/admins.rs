//! Admin accounts and sessions: `galley admin` manages them; `/admin/v1/session` signs in
//! with a server-side session in an HttpOnly, SameSite=Strict cookie; `/admin/v1` takes
//! that session or the `service_role` key, refuses cross-origin changes, and the audit log
//! names the admin; the first admin is created through the setup link `galley serve`
//! prints while there is none.

use crate::support::totp_code;
use galley_testkit::{GalleyProcess, TestApp, spawn_app_with};
use serde_json::{Value, json};

use crate::support::{data_dir, galley_bin, run_galley};

const PASSWORD: &str = "a long admin passphrase";

/// Sends a request and reads its JSON answer.
trait JsonOf {
    async fn json_of(self) -> Value;
}

impl JsonOf for reqwest::RequestBuilder {
    async fn json_of(self) -> Value {
        self.send()
            .await
            .expect("response")
            .json()
            .await
            .expect("json")
    }
}

/// `galley admin <args>` against the app's database, with `stdin` piped in.
fn admin_cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let url = app.db.url();
    let mut child = GalleyProcess::command(galley_bin())
        .arg("admin")
        .args(args)
        .args(["--database-url", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("galley runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("password");
    child.wait_with_output().expect("galley exits")
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn origin(app: &TestApp) -> String {
    format!("http://{}", app.address)
}

/// Signs in; the response, and the `name=value` of the session cookie it set.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let response = app
        .http
        .post(app.url("/admin/v1/session"))
        .header("origin", origin(app))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(cookie) = &cookie {
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "plain http: not Secure ({cookie})"
        );
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body,
        cookie.and_then(|c| c.split(';').next().map(str::to_owned)),
    )
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> u16 {
    app.http
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("response")
        .status()
        .as_u16()
}

#[tokio::test]
async fn admins_are_managed_by_the_cli_and_sign_in_with_a_session_cookie() {
    let app = spawn_app_with(|_| {}).await;
    // Weak passwords are refused before anything is written.
    let weak = admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12"));
    ok(&admin_cli(
        &app,
        &["create", "Ops@Example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let twice = admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already exists"));
    let listed = ok(&admin_cli(&app, &["list"], ""));
    assert!(listed.starts_with("ops@example.com\t"), "{listed}");
    assert!(listed.contains("last sign-in never"), "{listed}");

    // Admins are not app users, and app users are not admins.
    let (status, body, cookie) = sign_in(&app, "ops@example.com", "a wrong password!").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_credentials"))
    );
    assert!(cookie.is_none());
    let (status, body, cookie) = sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_credentials"))
    );
    assert!(cookie.is_none());
    let (status, body, cookie) = sign_in(&app, "OPS@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["admin"]["email"], "ops@example.com");
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("galley_admin="));

    // The session opens /admin/v1 and says who it is.
    assert_eq!(get_with(&app, "/admin/v1/tables", &cookie).await, 200);
    let me: Value = app
        .http
        .get(app.url("/admin/v1/session"))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(me["admin"]["email"], "ops@example.com");
    // Not the app's API, though: the cookie is for /admin only, and is no token.
    assert_eq!(get_with(&app, "/auth/v1/admin/users", &cookie).await, 401);
    assert_eq!(
        get_with(&app, "/admin/v1/tables", "galley_admin=forged").await,
        401
    );
    // Another site's page cannot read through the admin's browser either.
    let cross_read = app
        .http
        .get(app.url("/admin/v1/tables"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("response");
    assert_eq!(cross_read.status(), 403);
    assert_eq!(
        app.http
            .get(app.url("/admin/v1/tables"))
            .send()
            .await
            .expect("response")
            .status(),
        401
    );

    // A change from the admin UI's origin is made, and audited under the admin's name.
    let created = app
        .http
        .post(app.url("/admin/v1/tables"))
        .header("cookie", &cookie)
        .header("origin", origin(&app))
        .json(&json!({"name": "notes", "columns": [{"name": "body", "type": "text"}]}))
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 201);
    // From another origin, or with no origin at all, it is refused.
    for from in [Some("http://evil.example"), None] {
        let mut request = app
            .http
            .post(app.url("/admin/v1/tables"))
            .header("cookie", &cookie)
            .json(&json!({"name": "forged", "columns": [{"name": "body", "type": "text"}]}));
        if let Some(from) = from {
            request = request.header("origin", from);
        }
        let refused = request.send().await.expect("response");
        assert_eq!(refused.status(), 403, "{from:?}");
    }
    let client = app.db.connect().await.expect("connect");
    let actors: Vec<(String, String)> = client
        .query(
            "SELECT actor, outcome FROM galley.audit_log WHERE action = 'POST /admin/v1/tables' ORDER BY id",
            &[],
        )
        .await
        .expect("audit")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        actors,
        [
            ("admin:ops@example.com".to_owned(), "applied".to_owned()),
            ("admin:ops@example.com".to_owned(), "refused".to_owned()),
            ("admin:ops@example.com".to_owned(), "refused".to_owned()),
        ]
    );
    let stored: Vec<Vec<u8>> = client
        .query("SELECT token_hash FROM galley.admin_sessions", &[])
        .await
        .expect("sessions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let token = cookie.trim_start_matches("galley_admin=");
    assert!(
        stored
            .iter()
            .all(|hash| hash.len() == 32 && hash != token.as_bytes()),
        "only the token's digest is stored"
    );

    // Sign-out ends the session on the server, not only in the browser.
    let out = app
        .http
        .delete(app.url("/admin/v1/session"))
        .header("cookie", &cookie)
        .header("origin", origin(&app))
        .send()
        .await
        .expect("response");
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
    assert_eq!(get_with(&app, "/admin/v1/tables", &cookie).await, 401);

    // A new password ends every session; so does deleting the admin.
    let (_, _, first) = sign_in(&app, "ops@example.com", PASSWORD).await;
    let first = first.expect("cookie");
    ok(&admin_cli(
        &app,
        &["reset-password", "ops@example.com", "--password-stdin"],
        "another long passphrase\n",
    ));
    assert_eq!(get_with(&app, "/admin/v1/tables", &first).await, 401);
    let (status, _, second) = sign_in(&app, "ops@example.com", "another long passphrase").await;
    assert_eq!(status, 200);
    let listed = ok(&admin_cli(&app, &["list"], ""));
    assert!(!listed.contains("last sign-in never"), "{listed}");
    ok(&admin_cli(&app, &["delete", "ops@example.com"], ""));
    assert_eq!(
        get_with(&app, "/admin/v1/tables", &second.expect("cookie")).await,
        401
    );
    let gone = admin_cli(&app, &["delete", "ops@example.com"], "");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no admin"));
}

#[tokio::test]
async fn sessions_end_when_idle_or_past_their_lifetime() {
    let app = spawn_app_with(|config| {
        config.admin.session_idle_secs = 2;
        config.admin.session_max_secs = 5;
    })
    .await;
    ok(&admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let (_, _, idle) = sign_in(&app, "ops@example.com", PASSWORD).await;
    let idle = idle.expect("cookie");
    let (_, _, busy) = sign_in(&app, "ops@example.com", PASSWORD).await;
    let busy = busy.expect("cookie");
    // `busy` is used every second; `idle` is left alone.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(get_with(&app, "/admin/v1/session", &busy).await, 200);
    }
    assert_eq!(
        get_with(&app, "/admin/v1/session", &idle).await,
        401,
        "idle"
    );
    // Used or not, a session ends at its absolute lifetime.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(
        get_with(&app, "/admin/v1/session", &busy).await,
        401,
        "too old"
    );
}

#[tokio::test]
async fn a_guesser_cannot_lock_an_admin_out() {
    let app = spawn_app_with(|config| {
        config.ratelimit.per_account = 3;
        config.ratelimit.per_account_all_clients = 5;
        config.ratelimit.token_per_ip = 1_000;
        config.ratelimit.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    ok(&admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let attempt = |client: &'static str, password: &'static str| {
        let request = app
            .http
            .post(app.url("/admin/v1/session"))
            .header("origin", origin(&app))
            .header("x-forwarded-for", client)
            .json(&json!({"email": "ops@example.com", "password": password}));
        async move { request.send().await.expect("response").status().as_u16() }
    };
    let mut guesses = Vec::new();
    for _ in 0..4 {
        guesses.push(attempt("203.0.113.66", "a guessed password").await);
    }
    assert_eq!(guesses, [400, 400, 400, 429], "the guesser is stopped");
    assert_eq!(
        attempt("198.51.100.1", PASSWORD).await,
        200,
        "the admin, from their own address, is not locked out"
    );
}

#[tokio::test]
async fn the_first_admin_is_created_through_the_link_serve_prints() {
    let data = data_dir();
    let dir = data.path().to_str().expect("utf-8");
    let galley =
        GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &[]).expect("galley serves");
    let link = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        galley.stdout().iter().any(|line| line.contains("#setup="))
    })
    .await;
    assert!(link, "{:?}", galley.stdout());
    let link = galley
        .stdout()
        .iter()
        .find_map(|line| {
            line.trim()
                .strip_prefix(&format!("http://{}", galley.address))
                .map(str::to_owned)
        })
        .filter(|path| path.starts_with("/admin/#setup="))
        .unwrap_or_else(|| panic!("a link to this instance: {:?}", galley.stdout()));
    let token = link.trim_start_matches("/admin/#setup=").to_owned();
    // The token is not in the log.
    assert!(galley.logs().iter().all(|line| !line.contains(&token)));

    let http = reqwest::Client::new();
    let origin = format!("http://{}", galley.address);
    let set_up = |token: String, email: &'static str| {
        http.post(galley.url("/admin/v1/setup"))
            .header("origin", &origin)
            .json(&json!({"token": token, "email": email, "password": PASSWORD}))
            .send()
    };
    let wrong = set_up("not-the-token".to_owned(), "first@example.com")
        .await
        .expect("response");
    assert_eq!(wrong.status(), 403);
    let first = set_up(token.clone(), "first@example.com")
        .await
        .expect("response");
    assert_eq!(first.status(), 200);
    let cookie = first.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let tables = http
        .get(galley.url("/admin/v1/tables"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("response");
    assert_eq!(tables.status(), 200, "signed in by the setup");
    // One-time: the link cannot make a second admin.
    let again = set_up(token, "second@example.com").await.expect("response");
    assert_eq!(again.status(), 403);
    let listed = run_galley(&["admin", "list", "--data-dir", dir], &[], data.path());
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("first@example.com\t"), "{listed}");
}

#[tokio::test]
async fn an_admin_browses_data_as_any_role_and_sees_what_row_level_security_shows_it() {
    let app = spawn_app_with(|_| {}).await;
    ok(&admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let (_, _, cookie) = sign_in(&app, "ops@example.com", PASSWORD).await;
    let cookie = cookie.expect("cookie");
    let service = app.service_key();
    let created = app
        .http
        .post(app.url("/admin/v1/tables"))
        .bearer_auth(&service)
        .json(&json!({"name": "notes", "columns": [
            {"name": "body", "type": "text"},
            {"name": "owner", "type": "uuid", "default": {"expression": "auth.uid()"}}]}))
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 201);
    let rules = app
        .http
        .put(app.url("/admin/v1/tables/notes/rules"))
        .bearer_auth(&service)
        .json(&json!({"select": {"preset": "owner", "column": "owner"},
                      "insert": {"preset": "owner", "column": "owner"}}))
        .send()
        .await
        .expect("response");
    assert_eq!(rules.status(), 200);
    // The table's page shows the policies PostgreSQL holds and the rules as last set.
    let detail: Value = app
        .http
        .get(app.url("/admin/v1/tables/notes"))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(
        detail["rules"]["select"],
        json!({"preset": "owner", "column": "owner"})
    );
    assert_eq!(detail["rules"]["update"]["preset"], "nobody");
    let commands: Vec<&str> = detail["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .filter_map(|policy| policy["command"].as_str())
        .collect();
    assert_eq!(commands, ["INSERT", "SELECT"]);
    let (ann, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let client = app.db.connect().await.expect("connect");
    for (id, email) in [(ann, "ann@example.com"), (bob, "bob@example.com")] {
        client
            .execute(
                "INSERT INTO auth.users (id, email, aud, role) VALUES ($1, $2, 'authenticated', 'authenticated')",
                &[&id, &email],
            )
            .await
            .expect("user");
    }
    client
        .execute(
            "INSERT INTO public.notes (body, owner) VALUES ('ann''s', $1), ('bob''s', $2), ('nobody''s', NULL)",
            &[&ann, &bob],
        )
        .await
        .expect("rows");

    let read = |view_as: Option<String>| {
        let mut request = app
            .http
            .get(app.url("/admin/v1/rest/notes?select=body&order=body"))
            .header("cookie", &cookie);
        if let Some(view_as) = view_as {
            request = request.header("x-galley-view-as", view_as);
        }
        async move {
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, all) = read(None).await;
    assert_eq!(status, 200);
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(3),
        "service_role sees every row: {all}"
    );
    let (_, as_ann) = read(Some(format!("user:{ann}"))).await;
    assert_eq!(as_ann, json!([{"body": "ann's"}]));
    let (_, as_bob) = read(Some(format!("user:{bob}"))).await;
    assert_eq!(as_bob, json!([{"body": "bob's"}]));
    let (status, _) = read(Some("anon".to_owned())).await;
    assert_eq!(status, 401, "anon may not read notes at all");
    // The view-as picker finds users by email or id.
    let found: Value = app
        .http
        .get(app.url("/admin/v1/users?q=ANN@"))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], ann.to_string());
    let by_id: Value = app
        .http
        .get(app.url(&format!("/admin/v1/users?q={bob}")))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(by_id[0]["email"], "bob@example.com");
    let literal: Value = app
        .http
        .get(app.url("/admin/v1/users?q=%25"))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(literal, json!([]), "% is a character, not a wildcard");
    let (status, body) = read(Some(format!("user:{}", uuid::Uuid::new_v4()))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_view_as"))
    );

    // Without an admin, nothing; a change needs the admin UI's origin, and is audited.
    let stranger = app
        .http
        .get(app.url("/admin/v1/rest/notes"))
        .send()
        .await
        .expect("response");
    assert_eq!(stranger.status(), 401);
    let forged = app
        .http
        .post(app.url("/admin/v1/rest/notes"))
        .header("cookie", &cookie)
        .json(&json!({"body": "forged"}))
        .send()
        .await
        .expect("response");
    assert_eq!(forged.status(), 403);
    let written = app
        .http
        .post(app.url("/admin/v1/rest/notes"))
        .header("cookie", &cookie)
        .header("origin", origin(&app))
        .header("x-galley-view-as", format!("user:{ann}"))
        .header("prefer", "return=representation")
        .json(&json!({"body": "written as ann"}))
        .send()
        .await
        .expect("response");
    assert_eq!(written.status(), 201);
    let row: Value = written.json().await.expect("json");
    assert_eq!(row[0]["owner"], ann.to_string(), "auth.uid() is ann's");
    let actor: String = client
        .query_one(
            "SELECT actor FROM galley.audit_log WHERE action = 'POST /admin/v1/rest/{table}' AND outcome = 'applied'",
            &[],
        )
        .await
        .expect("audited")
        .get(0);
    assert_eq!(actor, "admin:ops@example.com");
}

#[tokio::test]
async fn admins_manage_app_users_and_see_what_a_deletion_takes_along() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service_key();
    let admin = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, app.url(&format!("/admin/v1{path}")))
            .bearer_auth(&service)
    };
    let created = admin(reqwest::Method::POST, "/users")
        .json(&json!({"email": "Carol@Example.com", "password": "carol's own password", "email_confirm": true}))
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 201);
    let carol: Value = created.json().await.expect("json");
    let id = carol["id"].as_str().expect("id").to_owned();
    let pending = admin(reqwest::Method::POST, "/users")
        .json(&json!({"email": "dan@example.com"}))
        .send()
        .await
        .expect("response");
    assert_eq!(pending.status(), 201);

    let listed = |filter: &str| {
        let request = admin(reqwest::Method::GET, &format!("/users?filter={filter}"));
        async move {
            let users: Value = request.json_of().await;
            users
                .as_array()
                .expect("users")
                .iter()
                .filter_map(|user| user["email"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("confirmed").await, ["carol@example.com"]);
    assert_eq!(listed("unconfirmed").await, ["dan@example.com"]);
    assert!(listed("banned").await.is_empty());

    // Carol signs in; her session shows; sign-out everywhere ends it.
    let session: Value = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("apikey", app.anon_key())
        .json(&json!({"email": "carol@example.com", "password": "carol's own password"}))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("session");
    let detail: Value = admin(reqwest::Method::GET, &format!("/users/{id}"))
        .json_of()
        .await;
    assert_eq!(detail["sessions"].as_array().map(Vec::len), Some(1));
    let ended: Value = admin(reqwest::Method::POST, &format!("/users/{id}/logout"))
        .json_of()
        .await;
    assert_eq!(ended["sessions_ended"], 1);
    let refreshed = app
        .http
        .post(app.url("/auth/v1/token?grant_type=refresh_token"))
        .header("apikey", app.anon_key())
        .json(&json!({"refresh_token": session["refresh_token"]}))
        .send()
        .await
        .expect("response");
    assert_eq!(
        refreshed.status(),
        400,
        "the refresh token died with the session"
    );

    // Banned, she cannot sign in; unbanned, she can.
    let sign_in = || {
        app.http
            .post(app.url("/auth/v1/token?grant_type=password"))
            .header("apikey", app.anon_key())
            .json(&json!({"email": "carol@example.com", "password": "carol's own password"}))
            .send()
    };
    let banned = admin(reqwest::Method::PATCH, &format!("/users/{id}"))
        .json(&json!({"ban_duration": "24h"}))
        .send()
        .await
        .expect("response");
    assert_eq!(banned.status(), 200);
    assert_eq!(listed("banned").await, ["carol@example.com"]);
    assert_eq!(sign_in().await.expect("response").status(), 400);
    admin(reqwest::Method::PATCH, &format!("/users/{id}"))
        .json(&json!({"ban_duration": "none"}))
        .send()
        .await
        .expect("response");
    assert_eq!(sign_in().await.expect("response").status(), 200);

    // A recovery link goes to the outbox.
    let recovery = admin(reqwest::Method::POST, &format!("/users/{id}/recover"))
        .send()
        .await
        .expect("response");
    assert_eq!(recovery.status(), 202);
    let queued = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        let outbox: Value = admin(reqwest::Method::GET, "/outbox").json_of().await;
        outbox.as_array().is_some_and(|mails| {
            mails
                .iter()
                .any(|m| m["kind"] == "recovery" && m["recipient"] == "carol@example.com")
        })
    })
    .await;
    assert!(queued, "a recovery mail is queued");

    // Deleting her first says what goes with her, then needs her email typed back.
    let created = admin(reqwest::Method::POST, "/tables")
        .json(&json!({"name": "profiles", "columns": [{"name": "bio", "type": "text"}],
                      "foreign_keys": [{"columns": ["id"], "references": {"table": "auth.users"}, "on_delete": "cascade"}]}))
        .send()
        .await
        .expect("response");
    assert_eq!(
        created.status(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    app.db
        .connect()
        .await
        .expect("connect")
        .execute(
            "INSERT INTO public.profiles (id, bio) VALUES ($1::text::uuid, 'hi')",
            &[&id],
        )
        .await
        .expect("profile");
    let refused = admin(reqwest::Method::DELETE, &format!("/users/{id}"))
        .send()
        .await
        .expect("response");
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "confirmation_required");
    assert_eq!(
        body["details"]["references"],
        json!([{"table": "profiles", "column": "id", "rows": 1, "on_delete": "cascade"}])
    );
    let deleted = admin(
        reqwest::Method::DELETE,
        &format!("/users/{id}?confirm=carol@example.com"),
    )
    .send()
    .await
    .expect("response");
    assert_eq!(deleted.status(), 204);
    let left: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM public.profiles", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "the profile went with her");
}

#[tokio::test]
async fn the_sql_console_runs_as_any_role_rolls_back_unless_told_and_adopts_new_tables() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service_key();
    let sql = |body: Value| {
        app.http
            .post(app.url("/admin/v1/sql"))
            .bearer_auth(&service)
            .json(&body)
            .send()
    };
    let answer: Value = sql(json!({"sql": "select 1 as one, 'x' as two, null as three"}))
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["columns"], json!(["one", "two", "three"]));
    assert_eq!(answer["rows"], json!([["1", "x", null]]));
    assert_eq!(answer["committed"], false);

    // Rolled back by default: the table is gone afterwards.
    let create = "create table made_here (id int primary key, v text); insert into made_here values (1, 'a'), (2, 'b')";
    let tried: Value = sql(json!({"sql": create}))
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(tried["schema_changed"], true);
    assert_eq!(tried["adopted"], json!(["made_here"]));
    assert_eq!(tried["row_count"], 2);
    let client = app.db.connect().await.expect("connect");
    assert!(!made_here_exists(&client).await, "rolled back");

    // Committed: the table is first-class at once.
    let made = sql(json!({"sql": create, "commit": true}))
        .await
        .expect("response");
    assert_eq!(made.status(), 200);
    assert!(made_here_exists(&client).await);
    let (rls, forced): (bool, bool) = {
        let row = client
            .query_one(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.made_here'::regclass",
                &[],
            )
            .await
            .expect("rls");
        (row.get(0), row.get(1))
    };
    assert!(rls && forced, "row-level security enabled and forced");
    let served = app
        .http
        .get(app.url("/rest/v1/made_here?select=v&order=id"))
        .bearer_auth(&service)
        .send()
        .await
        .expect("response");
    assert_eq!(served.status(), 200, "service_role reaches it at once");
    assert_eq!(
        served.json::<Value>().await.expect("json"),
        json!([{"v": "a"}, {"v": "b"}])
    );
    let anon = app
        .http
        .get(app.url("/rest/v1/made_here"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(anon.status(), 401, "others only through rules");
    let recorded: String = client
        .query_one(
            "SELECT sql FROM galley.schema_history WHERE operation = 'sql' AND target = 'made_here'",
            &[],
        )
        .await
        .expect("history")
        .get(0);
    assert_eq!(recorded, create);

    // Session settings die with the console's connection: the pool stays clean.
    let characteristics =
        sql(json!({"sql": "set session characteristics as transaction read only", "commit": true}))
            .await
            .expect("response");
    assert_eq!(characteristics.status(), 200);
    for _ in 0..4 {
        let created = app
            .http
            .post(app.url("/admin/v1/tables"))
            .bearer_auth(&service)
            .json(&json!({"name": format!("after_{}", uuid::Uuid::new_v4().simple()), "columns": [{"name": "a", "type": "text"}]}))
            .send()
            .await
            .expect("response");
        assert_eq!(created.status(), 201, "the owner pool still writes");
    }
    // Turning row-level security off is a schema change, recorded.
    let off: Value =
        sql(json!({"sql": "alter table made_here disable row level security", "commit": true}))
            .await
            .expect("response")
            .json()
            .await
            .expect("json");
    assert_eq!(off["schema_changed"], true);
    assert!(off["history_id"].as_i64().is_some());
    sql(json!({"sql": "alter table made_here enable row level security", "commit": true}))
        .await
        .expect("response");

    // As anon, row-level security and grants apply.
    let refused = sql(json!({"sql": "select * from made_here", "run_as": "anon"}))
        .await
        .expect("response");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "42501");

    // Transaction control is refused before anything runs; errors say where.
    let sneaky = sql(json!({"sql": "drop table made_here; commit"}))
        .await
        .expect("response");
    assert_eq!(sneaky.status(), 400);
    assert_eq!(
        sneaky.json::<Value>().await.expect("json")["code"],
        "transaction_control"
    );
    assert!(made_here_exists(&client).await, "nothing ran");
    let typo: Value = sql(json!({"sql": "selec 1"}))
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(typo["code"], "42601");
    assert_eq!(typo["details"]["position"], 1);

    // History and snippets live on the server.
    let history: Value = app
        .http
        .get(app.url("/admin/v1/sql/history?limit=10"))
        .bearer_auth(&service)
        .json_of()
        .await;
    let entries = history.as_array().expect("entries");
    assert_eq!(entries.len(), 8, "every run but the refused one: {history}");
    assert_eq!(entries[0]["sql"], "selec 1");
    assert!(entries[0]["error"].as_str().is_some());
    let saved: Value = app
        .http
        .post(app.url("/admin/v1/sql/snippets"))
        .bearer_auth(&service)
        .json(&json!({"name": "count", "sql": "select count(*) from made_here"}))
        .json_of()
        .await;
    let listed: Value = app
        .http
        .get(app.url("/admin/v1/sql/snippets"))
        .bearer_auth(&service)
        .json_of()
        .await;
    assert_eq!(listed[0]["name"], "count");
    let gone = app
        .http
        .delete(app.url(&format!("/admin/v1/sql/snippets/{}", saved["id"])))
        .bearer_auth(&service)
        .send()
        .await
        .expect("response");
    assert_eq!(gone.status(), 204);
}

async fn made_here_exists(client: &tokio_postgres::Client) -> bool {
    client
        .query_one("SELECT to_regclass('public.made_here') IS NOT NULL", &[])
        .await
        .expect("query")
        .get(0)
}

#[tokio::test]
async fn the_operations_pages_read_keys_redacted_configuration_metrics_and_send_a_test_mail() {
    let app = spawn_app_with(|config| {
        config.auth.project_name = "Ledger".to_owned();
    })
    .await;
    let service = app.service_key();
    let get = |path: &str| {
        app.http
            .get(app.url(&format!("/admin/v1{path}")))
            .bearer_auth(&service)
            .send()
    };
    let keys: Value = get("/keys")
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert!(keys["service_role"].is_null(), "not without asking");
    let anon = keys["anon"].as_str().expect("anon key").to_owned();
    let listed = app
        .http
        .get(app.url("/rest/v1/"))
        .header("apikey", &anon)
        .send()
        .await
        .expect("response");
    assert_eq!(listed.status(), 200, "the anon key shown works");
    let revealed: Value = app
        .http
        .post(app.url("/admin/v1/keys/service_role"))
        .bearer_auth(&service)
        .json_of()
        .await;
    let key = revealed["service_role"].as_str().expect("key").to_owned();
    let as_service = app
        .http
        .get(app.url("/admin/v1/tables"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("response");
    assert_eq!(
        as_service.status(),
        200,
        "the revealed key is a service_role key"
    );
    let audited: i64 = app
        .db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM galley.audit_log WHERE action = 'POST /admin/v1/keys/service_role'",
            &[],
        )
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 1, "revealing the key is audited");

    let config: Value = get("/config")
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(config["auth"]["project_name"], "Ledger");
    let text = config.to_string();
    assert!(!text.contains(&key) && !text.contains(&anon));
    let metrics = get("/metrics")
        .await
        .expect("response")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("galley_http_requests_total"),
        "{}",
        &metrics[..200.min(metrics.len())]
    );

    let queued = app
        .http
        .post(app.url("/admin/v1/outbox/test"))
        .bearer_auth(&service)
        .json(&json!({"to": "Ops@Example.com"}))
        .send()
        .await
        .expect("response");
    assert_eq!(queued.status(), 202);
    let outbox: Value = get("/outbox")
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(outbox[0]["kind"], "test");
    assert_eq!(outbox[0]["recipient"], "ops@example.com");
    assert_eq!(outbox[0]["subject"], "Ledger: a test mail");
    let bad = app
        .http
        .post(app.url("/admin/v1/outbox/test"))
        .bearer_auth(&service)
        .json(&json!({"to": "not an address"}))
        .send()
        .await
        .expect("response");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn an_admin_may_add_a_second_factor_whose_codes_work_once() {
    let app = spawn_app_with(|_| {}).await;
    ok(&admin_cli(
        &app,
        &["create", "ops@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
    let (_, _, cookie) = sign_in(&app, "ops@example.com", PASSWORD).await;
    let cookie = cookie.expect("cookie");
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(&format!("/admin/v1{path}")))
            .header("cookie", &cookie)
            .header("origin", origin(&app))
            .json(&body)
            .send()
    };
    let enrolment: Value = post("/session/totp", json!({}))
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    assert!(
        enrolment["otpauth_url"].as_str().is_some_and(
            |url| url.starts_with("otpauth://totp/") && url.contains("ops%40example.com")
        ),
        "{enrolment}"
    );
    let step = chrono::Utc::now().timestamp() / 30;
    let wrong = post("/session/totp/confirm", json!({"code": "000000"}))
        .await
        .expect("response");
    assert_eq!(wrong.status(), 400);
    let confirmed = post(
        "/session/totp/confirm",
        json!({"code": totp_code(&secret, step)}),
    )
    .await
    .expect("response");
    assert_eq!(confirmed.status(), 200);
    let me: Value = app
        .http
        .get(app.url("/admin/v1/session"))
        .header("cookie", &cookie)
        .json_of()
        .await;
    assert_eq!(me["totp"], true);

    // A stolen session alone cannot swap the authenticator.
    let swap = post("/session/totp", json!({})).await.expect("response");
    assert_eq!(swap.status(), 400);
    assert_eq!(
        swap.json::<Value>().await.expect("json")["code"],
        "totp_required"
    );
    // From now on the password alone opens nothing.
    let (status, body, none) = sign_in(&app, "ops@example.com", PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("totp_required"))
    );
    assert!(none.is_none());
    let with_code = |code: String| {
        app.http
            .post(app.url("/admin/v1/session"))
            .header("origin", origin(&app))
            .json(&json!({"email": "ops@example.com", "password": PASSWORD, "code": code}))
            .send()
    };
    // The code the enrolment used is spent; the next step's works, once.
    let replayed = with_code(totp_code(&secret, step)).await.expect("response");
    assert_eq!(replayed.status(), 400);
    let next = totp_code(&secret, step + 1);
    assert_eq!(
        with_code(next.clone()).await.expect("response").status(),
        200
    );
    let again = with_code(next).await.expect("response");
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.expect("json")["code"],
        "invalid_totp"
    );

    // An operator turns it off for an admin who lost their authenticator.
    ok(&admin_cli(&app, &["disable-totp", "ops@example.com"], ""));
    let (status, _, cookie) = sign_in(&app, "ops@example.com", PASSWORD).await;
    assert_eq!(status, 200);
    assert!(cookie.is_some());
}

#[tokio::test]
async fn an_app_users_token_is_never_an_admin_key_whatever_its_role() {
    let app = spawn_app_with(|_| {}).await;
    let service = app.service_key();
    let created: Value = app
        .http
        .post(app.url("/admin/v1/users"))
        .bearer_auth(&service)
        .json(&json!({"email": "power@example.com", "password": "power user password", "email_confirm": true}))
        .json_of()
        .await;
    let id: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    app.db
        .connect()
        .await
        .expect("connect")
        .execute(
            "UPDATE auth.users SET role = 'service_role' WHERE id = $1",
            &[&id],
        )
        .await
        .expect("role");
    let session: Value = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("apikey", app.anon_key())
        .json(&json!({"email": "power@example.com", "password": "power user password"}))
        .json_of()
        .await;
    let token = session["access_token"].as_str().expect("token").to_owned();
    let console = app
        .http
        .post(app.url("/admin/v1/sql"))
        .bearer_auth(&token)
        .json(&json!({"sql": "select 1"}))
        .send()
        .await
        .expect("response");
    assert_eq!(
        console.status(),
        403,
        "no SQL console for an app user's session"
    );
    let gotrue = app
        .http
        .get(app.url("/auth/v1/admin/users"))
        .bearer_auth(&token)
        .header("apikey", app.anon_key())
        .send()
        .await
        .expect("response");
    assert_eq!(
        gotrue.status(),
        200,
        "Supabase Auth's admin API keeps its rule: the role decides"
    );
}
