//! The HTTP skeleton: health, error shape, request ids, body limit, headers, CORS.

use galley_gateway::ErrorBody;
use galley_testkit::{spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_and_readiness_answer_200_when_the_database_is_up() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app.http.get(app.url(path)).send().await.expect("response");
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn unknown_route_returns_404_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, "not_found");
    assert!(!body.message.is_empty());
    assert_eq!(body.request_id.as_deref(), Some(request_id.as_str()));
}

#[tokio::test]
async fn wrong_method_returns_405_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app
        .http
        .delete(app.url("/health/live"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 405);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, "method_not_allowed");
}

#[tokio::test]
async fn oversized_body_returns_413_in_the_error_shape() {
    let app = spawn_app_with(|config| config.http.max_body_bytes = 1024).await;
    let response = app
        .http
        .post(app.url("/health/live"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, "payload_too_large");
    assert!(body.message.contains("1024"), "{}", body.message);
}

#[tokio::test]
async fn oversized_targets_and_headers_are_refused_in_the_error_shape() {
    let app = spawn_app().await;
    let long = format!("/rest/v1/t?select={}", "a".repeat(9 * 1024));
    let many = format!(
        "/rest/v1/t?{}",
        (0..201)
            .map(|n| format!("c{n}=eq.1"))
            .collect::<Vec<_>>()
            .join("&")
    );
    for (path, status, code) in [
        (long.as_str(), 414, "uri_too_long"),
        (many.as_str(), 414, "uri_too_long"),
    ] {
        let response = app.http.get(app.url(path)).send().await.expect("response");
        assert_eq!(response.status(), status);
        let body: ErrorBody = response.json().await.expect("error shape");
        assert_eq!(body.code, code);
    }
    let response = app
        .http
        .get(app.url("/health/live"))
        .header("x-padding", "p".repeat(9 * 1024))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 431);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, "header_too_large");
}

#[tokio::test]
async fn incoming_request_id_is_kept_and_a_hostile_one_replaced() {
    let app = spawn_app().await;
    let kept = app
        .http
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("response");
    assert_eq!(kept.headers()["x-request-id"], "trace-42");

    let hostile = app
        .http
        .get(app.url("/health/live"))
        .header("x-request-id", "x\" injected=\"1")
        .send()
        .await
        .expect("response");
    let replaced = hostile.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(replaced, "x\" injected=\"1");
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");

    let generated = app
        .http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("response");
    let first = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let again = app
        .http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("response");
    assert_ne!(
        first,
        again.headers()["x-request-id"].to_str().expect("ascii")
    );
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn cors_never_allows_the_null_origin_or_unlisted_origins() {
    let app = spawn_app_with(|config| {
        config.http.cors_allowed_origins = vec!["https://app.example.com".to_owned()];
        config.http.cors_allow_credentials = true;
    })
    .await;
    let allowed = app
        .http
        .get(app.url("/health/live"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("response");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );

    for origin in ["https://evil.example.com", "null"] {
        let response = app
            .http
            .get(app.url("/health/live"))
            .header("origin", origin)
            .send()
            .await
            .expect("response");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin} was allowed"
        );
    }
}

#[tokio::test]
async fn default_cors_allows_any_origin_without_credentials() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/health/live"))
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .expect("response");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://anywhere.example"
    );
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}

#[tokio::test]
async fn shutdown_completes_and_closes_the_listener() {
    let app = spawn_app().await;
    let url = app.url("/health/ready");
    let http = app.http.clone();
    assert_eq!(http.get(&url).send().await.expect("response").status(), 200);
    app.shutdown().await.expect("clean shutdown");
    // After shutdown nothing listens any more.
    assert!(http.get(&url).send().await.is_err());
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    let db = galley_testkit::TestDatabase::migrated()
        .await
        .expect("database");
    let url = db.url();
    let galley = galley_testkit::GalleyProcess::serve(
        std::path::Path::new(env!("CARGO_BIN_EXE_galley")),
        &["--database-url", &url],
        &[
            (
                "GALLEY_AUTH_JWT_SECRET",
                "7c9e1f3a5b2d4e6f8a0c1e3b5d7f9a2c4e6b8d0f",
            ),
            ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
        ],
    )
    .expect("serves");
    let response = reqwest::Client::new()
        .get(galley.url("/health/ready"))
        .header("x-request-id", "log-probe-7")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    // The access line is written after the response; give the log reader a moment.
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = galley
            .logs()
            .into_iter()
            .filter(|line| line.contains("log-probe-7"))
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!lines.is_empty(), "no log line names the request");
    for line in &lines {
        let json: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
        assert_eq!(json["request"]["id"], "log-probe-7", "{line}");
        assert_eq!(json["request"]["path"], "/health/ready");
    }
    assert!(lines.iter().any(|line| line.contains("request served")));

    // One structured line per request: id, method, route template, status, duration,
    // role and user; control characters from the client stay escaped.
    let response = reqwest::Client::new()
        .get(galley.url("/rest/v1/no%0D%0Asuch?select=id"))
        .header("x-request-id", "log-probe-8")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 404);
    let mut served = None;
    for _ in 0..50 {
        served = galley
            .logs()
            .into_iter()
            .find(|line| line.contains("log-probe-8") && line.contains("request served"));
        if served.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = served.expect("an access line");
    assert!(!line.contains('\r') && !line.contains("\r\n"), "{line}");
    let json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(json["request"]["method"], "GET");
    assert_eq!(json["request"]["path"], "/rest/v1/no%0D%0Asuch", "{line}");
    assert_eq!(json["route"], "/rest/v1/{table}", "{line}");
    assert_eq!(json["status"], 404);
    assert_eq!(json["role"], "anon");
    assert!(json["elapsed_ms"].is_number());
    assert!(json.get("user_id").is_some());
}

/// The text format, written to a pipe: no colour codes, and the request's line names it.
#[tokio::test]
async fn text_logs_to_a_pipe_are_plain_and_name_the_request() {
    use std::io::{BufRead, BufReader};
    let db = galley_testkit::TestDatabase::migrated()
        .await
        .expect("database");
    let mut child =
        galley_testkit::GalleyProcess::command(std::path::Path::new(env!("CARGO_BIN_EXE_galley")))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text"])
            .args(["--database-url", &db.url()])
            .env(
                "GALLEY_AUTH_JWT_SECRET",
                "7c9e1f3a5b2d4e6f8a0c1e3b5d7f9a2c4e6b8d0f",
            )
            .env("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("galley");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut next = || {
        let line = received
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the line looked for is not in {seen:#?}"));
        seen.push(line.clone());
        line
    };
    let url = loop {
        let line = next();
        if let Some(at) = line.find("url=http://") {
            let rest = &line[at + "url=".len()..];
            break rest[..rest.find(' ').unwrap_or(rest.len())].to_owned();
        }
    };
    let response = reqwest::Client::new()
        .get(format!("{url}/health/live"))
        .header("x-request-id", "text-probe-1")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let served = loop {
        let line = next();
        if line.contains("request served") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        served.contains(
            r#" INFO request{id=text-probe-1 method=GET path="/health/live"}: galley_gateway::"#
        ),
        "{served}"
    );
    assert!(served.contains("status=200"), "{served}");
    assert!(
        seen.iter().all(|line| !line.contains('\u{1b}')),
        "colour codes in {seen:#?}"
    );
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_gets_413_in_the_error_shape() {
    let app = spawn_app_with(|config| config.http.max_body_bytes = 1024).await;
    // No Content-Length: the limit is enforced while the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .http
        .post(app.url("/rest/v1/anything"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: ErrorBody = response.json().await.expect("error shape");
    assert_eq!(body.code, "payload_too_large");
    assert_eq!(
        body.request_id, None,
        "PostgREST's four members on /rest/v1"
    );
}

/// Sends `request` as bytes on a fresh connection; the whole answer (the server closes
/// or the request says `Connection: close`).
async fn raw(app: &galley_testkit::TestApp, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers and closes")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn malformed_requests_get_the_error_shape_and_framing_errors_a_closed_400() {
    let app = spawn_app().await;
    let key = app.service_key();
    let auth = format!("apikey: {key}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n");
    // The request line and headers parse, the rest does not: PostgREST's error shape, the
    // request id in the header, and a reason a person can act on.
    let shaped: [(&str, Vec<u8>, &str); 4] = [
        (
            "a malformed chunk",
            [
                b"POST /rest/v1/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n".as_slice(),
                auth.as_bytes(),
                b"\r\nzz\r\n{}\r\n0\r\n\r\n",
            ]
            .concat(),
            "400",
        ),
        (
            "a body that is not the gzip it claims",
            [
                b"POST /rest/v1/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n".as_slice(),
                auth.as_bytes(),
                b"\r\nabc",
            ]
            .concat(),
            "400",
        ),
        (
            "a query that is not UTF-8 once decoded",
            [
                b"GET /rest/v1/anything?select=%FF HTTP/1.1\r\nHost: x\r\n".as_slice(),
                auth.as_bytes(),
                b"\r\n",
            ]
            .concat(),
            "400",
        ),
        (
            "an Accept header that is not text",
            [
                b"GET /rest/v1/anything HTTP/1.1\r\nHost: x\r\nAccept: \xff\r\n".as_slice(),
                auth.as_bytes(),
                b"\r\n",
            ]
            .concat(),
            "406",
        ),
    ];
    for (what, request, status) in shaped {
        let answer = raw(&app, &request).await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        // PostgREST's four members, in its order, and nothing else; the id in the header.
        let members: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body)
                .unwrap_or_else(|err| panic!("{what}: not JSON ({err}): {body}"))
                .keys()
                .cloned()
                .collect();
        assert_eq!(
            members,
            ["code", "details", "hint", "message"],
            "{what}: {body}"
        );
        let at = |member: &str| body.find(&format!("\"{member}\":")).expect(member);
        assert!(
            at("code") == 1 && at("details") < at("hint") && at("hint") < at("message"),
            "{what}: members in PostgREST's order: {body}"
        );
        let body: ErrorBody = serde_json::from_str(body)
            .unwrap_or_else(|err| panic!("{what}: not the error shape ({err}): {body}"));
        assert!(
            head.to_ascii_lowercase().contains("x-request-id: "),
            "{what}: {head}"
        );
        assert_ne!(
            body.message, "bad request",
            "{what}: a reason, not the status"
        );
    }

    // The request line or headers themselves do not parse: there is no request yet, so
    // no id; the HTTP layer answers a bare 400 and closes the connection (as PostgREST's
    // Warp and Supabase's Kong do), and the server carries on.
    let framing: [(&str, &[u8]); 3] = [
        (
            "a Content-Length that is not a number",
            b"POST /rest/v1/anything HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        ),
        (
            "two different Content-Lengths",
            b"POST /rest/v1/anything HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        (
            "a header name with a space",
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        ),
    ];
    for (what, request) in framing {
        let answer = raw(&app, request).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{what}: {answer}");
        assert!(
            !answer.contains("Exception") && !answer.contains("panicked"),
            "{what}"
        );
    }
    let live = app
        .http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("response");
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn rest_errors_are_postgrest_bodies_byte_for_byte_and_galley_apis_keep_their_shape() {
    let app = spawn_app().await;
    let key = app.service_key();
    let response = app
        .http
        .get(app.url("/rest/v1/no_such_table"))
        .header("apikey", &key)
        .bearer_auth(&key)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"code":"PGRST205","details":null,"hint":null,"message":"Could not find the table 'public.no_such_table' in the schema cache"}"#
    );
    // Galley's own APIs keep their shape, the request id in the body too.
    let response = app
        .http
        .get(app.url("/admin/v1/tables/no_such_table"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 404);
    let body: ErrorBody = response.json().await.expect("error shape");
    assert!(body.request_id.is_some());
}
