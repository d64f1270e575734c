//! `/metrics`: exact counts after a known sequence of requests, series bounded whatever
//! the paths, and never public by accident (its own listener, or a token on the main
//! address).

use galley_testkit::{TestApp, spawn_app, spawn_app_with};
use serde_json::json;

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.metrics_url())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

/// The value of the sample named exactly `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn counters_and_histograms_match_a_known_sequence() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.http
            .get(app.url("/health/live"))
            .send()
            .await
            .expect("response");
    }
    for _ in 0..2 {
        let response = app
            .http
            .get(app.url("/rest/v1/nowhere"))
            .header("apikey", app.anon_key())
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 404);
    }
    let signup = app
        .http
        .post(app.url("/auth/v1/signup"))
        .json(&json!({"email": "m@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("response");
    assert_eq!(signup.status(), 200);
    for password in [
        "wrong horse battery",
        "wrong again, horse",
        "correct horse battery",
    ] {
        app.http
            .post(app.url("/auth/v1/token?grant_type=password"))
            .json(&json!({"email": "m@example.com", "password": password}))
            .send()
            .await
            .expect("response");
    }
    let text = scrape(&app).await;
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    expect(
        r#"galley_http_requests_total{method="GET",route="/health/live",status="2xx"}"#,
        3.0,
    );
    expect(
        r#"galley_http_request_duration_seconds_count{method="GET",route="/health/live",status="2xx"}"#,
        3.0,
    );
    expect(
        r#"galley_http_requests_total{method="GET",route="/rest/v1/{table}",status="4xx"}"#,
        2.0,
    );
    expect(r#"galley_errors_total{code="PGRST205"}"#, 2.0);
    expect(
        r#"galley_http_requests_total{method="POST",route="/auth/v1/token",status="4xx"}"#,
        2.0,
    );
    expect(
        r#"galley_http_requests_total{method="POST",route="/auth/v1/token",status="2xx"}"#,
        1.0,
    );
    expect(r#"galley_errors_total{code="invalid_credentials"}"#, 2.0);
    expect(r#"galley_auth_events_total{event="signup"}"#, 1.0);
    expect(r#"galley_auth_events_total{event="login_failure"}"#, 2.0);
    expect(r#"galley_auth_events_total{event="login_success"}"#, 1.0);
    expect(r#"galley_http_requests_in_flight"#, 0.0);
    assert!(
        sample(
            &text,
            r#"galley_db_pool_connections{pool="api",state="size"}"#
        )
        .is_some()
    );
    assert!(sample(&text, r#"galley_mail_outbox_pending"#).is_some());
    assert!(text.contains("galley_build_info{version=\""));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
    assert!(sample(&text, "process_open_fds").is_some_and(|fds| fds > 0.0));
}

/// A request counts as in flight until the server has finished it, even after its client
/// gave up waiting (the server still runs it to the end), and then no longer.
#[tokio::test]
async fn a_request_is_in_flight_until_it_ends_even_when_its_client_gives_up() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    client
        .batch_execute(
            "CREATE FUNCTION public.slow() RETURNS int LANGUAGE sql AS 'SELECT 1 FROM pg_sleep(3)'",
        )
        .await
        .expect("function");
    let in_flight = |text: &str| sample(text, "galley_http_requests_in_flight");
    // Served once the catalog has reloaded; the call itself outlasts the client's patience.
    let call = || {
        app.http
            .post(app.url("/rest/v1/rpc/slow"))
            .header("apikey", app.anon_key())
            .json(&json!({}))
            .timeout(std::time::Duration::from_millis(300))
            .send()
    };
    let mut abandoned = false;
    for _ in 0..100 {
        match call().await {
            Err(err) if err.is_timeout() => {
                abandoned = true;
                break;
            }
            Ok(response) => assert_eq!(response.status(), 404),
            Err(err) => panic!("{err}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(abandoned, "the function was never served");
    assert_eq!(in_flight(&scrape(&app).await), Some(1.0));
    let mut settled = None;
    for _ in 0..100 {
        settled = in_flight(&scrape(&app).await);
        if settled == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(settled, Some(0.0), "the request never left flight");
}

#[tokio::test]
async fn a_thousand_ids_and_a_thousand_unknown_paths_add_no_series() {
    let app = spawn_app().await;
    let before = series_count(&scrape(&app).await);
    let app_ref = &app;
    for chunk in (0..1000).collect::<Vec<_>>().chunks(100) {
        futures_util::future::join_all(chunk.iter().map(|n| async move {
            app_ref
                .http
                .get(app_ref.url(&format!("/rest/v1/items?id=eq.{n}")))
                .send()
                .await
                .expect("response");
            app_ref
                .http
                .get(app_ref.url(&format!("/no/such/path/{n}")))
                .send()
                .await
                .expect("response");
        }))
        .await;
    }
    let text = scrape(&app).await;
    let after = series_count(&text);
    assert!(
        after - before <= 2,
        "{before} series before, {after} after:\n{}",
        text.lines()
            .filter(|l| l.starts_with("galley_http_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        sample(
            &text,
            r#"galley_http_requests_total{method="GET",route="unmatched",status="4xx"}"#
        ),
        Some(1000.0)
    );
}

/// Distinct request series: one per method, route template and status class.
fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|line| line.starts_with("galley_http_requests_total{"))
        .count()
}

#[tokio::test]
async fn metrics_are_never_public_by_accident() {
    // Default: a listener of its own; the main address does not serve them.
    let app = spawn_app().await;
    let main = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("response");
    assert_eq!(main.status(), 404);
    assert!(scrape(&app).await.contains("galley_build_info"));

    // With a token: on the main address too, but only with it.
    let token = "a-metrics-token-of-some-length-0123456789";
    let app = spawn_app_with(|config| {
        config.metrics.bearer_token = Some(token.to_owned().into());
        config.metrics.enabled = false;
    })
    .await;
    assert!(app.metrics_address.is_none(), "no listener of its own");
    let bare = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("response");
    assert_eq!(bare.status(), 401);
    let wrong = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("response");
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .expect("text")
            .contains("galley_build_info")
    );
}

/// Every metric the dashboard and the alert rules query is one Galley serves (a renamed
/// family would otherwise leave a panel empty and an alert silent forever).
#[tokio::test]
async fn the_dashboard_and_alerts_use_only_metrics_galley_serves() {
    let app = spawn_app().await;
    // Series that only appear once something happened: a request, an error.
    app.http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("r");
    app.http.get(app.url("/nowhere")).send().await.expect("r");
    let text = scrape(&app).await;
    let served: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|line| line.starts_with("# TYPE "))
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for file in ["grafana/galley.json", "prometheus/alerts.yml"] {
        let content = std::fs::read_to_string(root.join(file)).expect("deploy file");
        let mut used: Vec<String> = Vec::new();
        let mut rest = content.as_str();
        while let Some(start) = rest.find("galley_").or_else(|| rest.find("process_")) {
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[start + name.len()..];
            // The backup gauge is set by backups, which are not part of Galley yet.
            if name == "galley_"
                || name.starts_with("galley_overview")
                || name == "galley_backup_age_seconds"
            {
                continue;
            }
            used.push(name);
        }
        assert!(!used.is_empty(), "{file} queries no metric");
        for name in used {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                served.contains(family) || served.contains(&name),
                "{file} uses {name}, which Galley does not serve"
            );
        }
    }
}

/// Reads of the REST API go to the database in batches, and the metrics count them;
/// writes do not batch.
#[tokio::test]
async fn reads_are_counted_in_batches_and_writes_are_not_batched() {
    let app = spawn_app().await;
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/admin/v1/tables",
            json!({"name": "tallies", "primary_key": "bigint",
                   "columns": [{"name": "n", "type": "integer", "nullable": false}]}),
        ),
        (
            reqwest::Method::PUT,
            "/admin/v1/tables/tallies/rules",
            json!({"select": {"preset": "public"}, "insert": {"preset": "public"}}),
        ),
    ] {
        let response = app
            .http
            .request(method, app.url(path))
            .bearer_auth(app.service_key())
            .json(&body)
            .send()
            .await
            .expect("response");
        assert!(response.status().is_success(), "{path}");
    }
    let inserted = app
        .http
        .post(app.url("/rest/v1/tallies"))
        .header("apikey", app.anon_key())
        .json(&json!({"n": 1}))
        .send()
        .await
        .expect("response");
    assert_eq!(inserted.status(), 201);
    let reads = (0..3).map(|_| {
        app.http
            .get(app.url("/rest/v1/tallies?select=n"))
            .header("apikey", app.anon_key())
            .send()
    });
    for response in futures_util::future::join_all(reads).await {
        let response = response.expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), r#"[{"n":1}]"#);
    }
    let text = scrape(&app).await;
    let requests = sample(&text, r#"galley_db_batches_total{count="requests"}"#);
    let batches = sample(&text, r#"galley_db_batches_total{count="batches"}"#);
    assert_eq!(
        requests,
        Some(3.0),
        "the three reads, not the insert:\n{text}"
    );
    assert!(
        batches.is_some_and(|b| (1.0..=3.0).contains(&b)),
        "{batches:?}"
    );
}
