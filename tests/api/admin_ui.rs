//! The admin UI's files at `/admin/`: embedded, with a strict Content-Security-Policy, an
//! ETag that makes an unchanged file a 304, and gzip; `/` leads there; nothing under
//! `/admin/v1` is ever the UI.

use galley_testkit::spawn_app;

#[tokio::test]
async fn the_ui_is_served_with_a_strict_policy_revalidated_and_compressed() {
    let app = spawn_app().await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/", "/admin"] {
        let moved = plain.get(app.url(path)).send().await.expect("response");
        assert_eq!(moved.status(), 302, "{path}");
        assert_eq!(moved.headers()["location"], "/admin/", "{path}");
    }

    let page = plain
        .get(app.url("/admin/"))
        .send()
        .await
        .expect("response");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let policy = headers["content-security-policy"].to_str().expect("csp");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-cache");
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's script");
    assert!(script.starts_with("/admin/assets/"), "{script}");

    // The script: JavaScript, gzip when asked, and a 304 for a browser that has it.
    let js = plain
        .get(app.url(script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("response");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("type")
            .contains("javascript")
    );
    assert_eq!(js.headers()["content-encoding"], "gzip");
    let etag = js.headers()["etag"].to_str().expect("etag").to_owned();
    let again = plain
        .get(app.url(script))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("response");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());

    // What is not a file of the UI is a 404 in the error shape, never the page.
    for path in [
        "/admin/assets/nope.js",
        "/admin/v1/nope",
        "/admin/v1",
        "/admin/../Cargo.toml",
    ] {
        let missing = plain.get(app.url(path)).send().await.expect("response");
        assert!(
            missing.status() == 404 || missing.status() == 401,
            "{path}: {}",
            missing.status()
        );
        let body = missing.text().await.expect("body");
        assert!(!body.contains("<html"), "{path}: {body}");
    }
    let unsigned = plain
        .get(app.url("/admin/v1/tables"))
        .send()
        .await
        .expect("response");
    assert_eq!(
        unsigned.status(),
        401,
        "the API never falls through to the UI"
    );
}
