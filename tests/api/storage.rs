//! Storage's guarantees that a client cannot see through storage-js: what a failed upload
//! leaves behind (nothing), what the sweep removes (bytes no row names, and nothing
//! else), and the counts it reports. The protocol itself is tested through the real
//! supabase-js in `tests/sdk/storage.test.js`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use galley_testkit::{TestApp, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn storage_root(app: &TestApp) -> PathBuf {
    app.config.data_dir.join("storage")
}

async fn make_bucket(app: &TestApp, body: serde_json::Value) {
    let response = app
        .http
        .post(app.url("/storage/v1/bucket"))
        .bearer_auth(app.service_key())
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn object_rows(app: &TestApp) -> i64 {
    let client = app.db.connect().await.expect("connect");
    client
        .query_one("SELECT count(*) FROM storage.objects", &[])
        .await
        .expect("count")
        .get(0)
}

async fn storage_app() -> TestApp {
    spawn_app_with(|config| {
        config.storage.file_size_limit = 1024 * 1024;
    })
    .await
}

#[tokio::test]
async fn a_failed_upload_leaves_neither_bytes_nor_a_row() {
    let app = storage_app().await;
    make_bucket(
        &app,
        serde_json::json!({ "name": "docs", "file_size_limit": 4096 }),
    )
    .await;

    // A body that breaks off: 100,000 bytes announced, 10,000 sent, the connection closed.
    let mut socket = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    let head = format!(
        "POST /storage/v1/object/docs/cut.bin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n",
        app.service_key()
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket
        .write_all(&[7u8; 10_000])
        .await
        .expect("some of the body");
    socket.shutdown().await.expect("shutdown");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    drop(socket);

    // Past the bucket's limit without a declared length: refused while it streams.
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![1u8; 1000])));
    let response = app
        .http
        .post(app.url("/storage/v1/object/docs/big.bin"))
        .bearer_auth(app.service_key())
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["statusCode"], "413");
    assert_eq!(body["code"], "EntityTooLarge");

    // Refused by row-level security before a byte is read.
    let response = app
        .http
        .post(app.url("/storage/v1/object/docs/anon.bin"))
        .bearer_auth(app.anon_key())
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 100])
        .send()
        .await
        .expect("request");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "AccessDenied", "{body}");

    // Give a broken-off upload's clean-up its moment, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(object_rows(&app).await, 0);
    assert_eq!(files(&storage_root(&app)), Vec::<PathBuf>::new());

    // A good upload afterwards stores exactly one file and one row.
    let response = app
        .http
        .post(app.url("/storage/v1/object/docs/ok.bin"))
        .bearer_auth(app.service_key())
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 100])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(object_rows(&app).await, 1);
    assert_eq!(files(&storage_root(&app)).len(), 1);
}

#[tokio::test]
async fn the_sweep_removes_only_bytes_no_row_names() {
    let app = storage_app().await;
    make_bucket(&app, serde_json::json!({ "name": "docs" })).await;
    let response = app
        .http
        .post(app.url("/storage/v1/object/docs/kept.txt"))
        .bearer_auth(app.service_key())
        .header("content-type", "text/plain")
        .body("kept")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let root = storage_root(&app);
    let kept = files(&root);
    assert_eq!(kept.len(), 1);

    // What a crash leaves: bytes stored whose row was never written, a staged file the
    // local backend never renamed, the part of an upload nobody remembers.
    let orphan = uuid::Uuid::new_v4().to_string();
    let orphan_path = root.join("objects").join(&orphan[..2]).join(&orphan);
    std::fs::create_dir_all(orphan_path.parent().expect("parent")).expect("dir");
    std::fs::write(&orphan_path, b"orphan").expect("orphan");
    let staged = root
        .join("objects")
        .join("ff")
        .join(format!("{}#1", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(staged.parent().expect("parent")).expect("dir");
    std::fs::write(&staged, b"half").expect("staged");
    let part = root
        .join("uploads")
        .join(uuid::Uuid::new_v4().to_string())
        .join("000000-abc");
    std::fs::create_dir_all(part.parent().expect("parent")).expect("dir");
    std::fs::write(&part, b"part").expect("part");

    let store = galley_storage::Store::local(&root).expect("store");
    let url: tokio_postgres::Config = app.db.url().parse().expect("url");
    let targets = galley_db::ConnectTargets {
        owner: url.clone(),
        authenticator: url,
    };
    let pools = galley_db::Pools::build(&targets, 1, 1, Duration::from_secs(10));

    // Within the grace period nothing is touched.
    let swept = galley_storage::sweep::sweep(&store, &pools.owner, Duration::from_secs(600))
        .await
        .expect("sweep");
    assert_eq!(swept, galley_storage::sweep::Swept::default());
    assert_eq!(files(&root).len(), 4);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let swept = galley_storage::sweep::sweep(&store, &pools.owner, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(
        swept,
        galley_storage::sweep::Swept {
            objects: 1,
            uploads: 1,
            staged_files: 1,
        }
    );
    assert_eq!(files(&root), kept);
    let response = app
        .http
        .get(app.url("/storage/v1/object/docs/kept.txt"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("request");
    assert_eq!(response.text().await.expect("body"), "kept");
}

#[tokio::test]
async fn storage_counts_bytes_and_objects_and_refuses_routes_it_lacks_in_its_shape() {
    let app = storage_app().await;
    make_bucket(&app, serde_json::json!({ "name": "docs" })).await;
    for (method, path) in [
        (reqwest::Method::POST, "/storage/v1/object/docs/a.txt"),
        (reqwest::Method::GET, "/storage/v1/object/docs/a.txt"),
    ] {
        let response = app
            .http
            .request(method, app.url(path))
            .bearer_auth(app.service_key())
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    let metrics = app
        .http
        .get(app.metrics_url())
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "galley_storage_bytes_total{direction=\"in\"} 5",
        "galley_storage_bytes_total{direction=\"out\"} 5",
        "galley_storage_objects_total{event=\"stored\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    let response = app
        .http
        .patch(app.url("/storage/v1/bucket"))
        .bearer_auth(app.service_key())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"statusCode":"404","error":"Not Found","message":"Route PATCH:/bucket not found","code":"InvalidRequest"}"#
    );
    // No token where one is required: Supabase's validation answer.
    let response = app
        .http
        .get(app.url("/storage/v1/bucket"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"statusCode":"400","error":"Error","message":"headers must have required property 'authorization'","code":"InvalidRequest"}"#
    );
}

#[tokio::test]
async fn admins_manage_buckets_and_set_their_rules_from_presets() {
    let app = storage_app().await;
    let admin = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, app.url(&format!("/admin/v1/storage{path}")))
            .bearer_auth(app.service_key())
    };
    let made = admin(reqwest::Method::POST, "/buckets")
        .json(&serde_json::json!({ "name": "avatars", "file_size_limit": "100KB", "allowed_mime_types": ["image/*"] }))
        .send()
        .await
        .expect("request");
    assert_eq!(made.status(), 201);
    let invalid = admin(reqwest::Method::POST, "/buckets")
        .json(&serde_json::json!({ "name": "bad/name" }))
        .send()
        .await
        .expect("request");
    assert_eq!(invalid.status(), 422);

    // Users may write under their own folder and read everything in the bucket.
    let rules = admin(reqwest::Method::PUT, "/buckets/avatars/rules")
        .json(&serde_json::json!({ "read": "authenticated", "write": "owner_folder" }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        rules.status(),
        200,
        "{}",
        rules.text().await.unwrap_or_default()
    );
    let public_write = admin(reqwest::Method::PUT, "/buckets/avatars/rules")
        .json(&serde_json::json!({ "read": "public", "write": "public" }))
        .send()
        .await
        .expect("request");
    assert_eq!(public_write.status(), 422);

    let alice = uuid::Uuid::new_v4().to_string();
    let upload = |token: String, key: String| {
        app.http
            .post(app.url(&format!("/storage/v1/object/avatars/{key}")))
            .bearer_auth(token)
            .header("content-type", "image/png")
            .body(vec![1u8; 10])
            .send()
    };
    let own = upload(app.user_token(&alice), format!("{alice}/me.png"))
        .await
        .expect("request");
    assert_eq!(
        own.status(),
        200,
        "{}",
        own.text().await.unwrap_or_default()
    );
    let other = upload(
        app.user_token(&uuid::Uuid::new_v4().to_string()),
        format!("{alice}/x.png"),
    )
    .await
    .expect("request");
    let body: serde_json::Value = other.json().await.expect("json");
    assert_eq!(body["statusCode"], "403");
    let anon = upload(app.anon_key(), format!("{alice}/y.png"))
        .await
        .expect("request");
    let body: serde_json::Value = anon.json().await.expect("json");
    assert_eq!(body["statusCode"], "403");

    let bucket: serde_json::Value = admin(reqwest::Method::GET, "/buckets/avatars")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        bucket["rules"],
        serde_json::json!({ "read": "authenticated", "write": "owner_folder" })
    );
    assert_eq!(bucket["file_size_limit"], 100_000);
    let listed: serde_json::Value = admin(reqwest::Method::GET, "/buckets")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["objects"], 1);
    assert_eq!(listed[0]["bytes"], 10);
    let objects: serde_json::Value = admin(
        reqwest::Method::GET,
        &format!("/buckets/avatars/objects?prefix={alice}"),
    )
    .send()
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    assert_eq!(objects[0]["name"], "me.png");

    // The rules are in the schema history, as the policies they are.
    let client = app.db.connect().await.expect("connect");
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM galley.schema_history WHERE operation = 'set_bucket_rules'",
            &[],
        )
        .await
        .expect("history")
        .get(0);
    assert_eq!(recorded, 1);

    let refused = admin(reqwest::Method::DELETE, "/buckets/avatars")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 409);
    let deleted = admin(reqwest::Method::DELETE, "/buckets/avatars?empty=true")
        .send()
        .await
        .expect("request");
    assert_eq!(deleted.status(), 200);
    assert_eq!(object_rows(&app).await, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(files(&storage_root(&app)), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn uploads_are_rate_limited_per_user_and_told_when_to_retry() {
    let app = spawn_app_with(|config| {
        config.storage.uploads_per_minute_per_user = 1;
    })
    .await;
    make_bucket(&app, serde_json::json!({ "name": "docs" })).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let response = app
            .http
            .post(app.url(&format!("/storage/v1/object/docs/{n}.txt")))
            .bearer_auth(app.service_key())
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            // One upload a minute: the next is allowed within a minute, and says when.
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((50..=60).contains(&wait), "retry-after {wait}");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["code"], "SlowDown");
        }
    }
    // A burst of five minutes' worth, then refused.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn admins_upload_download_and_remove_objects_past_the_request_body_limit() {
    let app = spawn_app_with(|config| {
        config.storage.file_size_limit = 8 * 1024 * 1024;
        config.http.max_body_bytes = 64 * 1024;
    })
    .await;
    make_bucket(
        &app,
        serde_json::json!({ "name": "docs", "allowed_mime_types": ["text/*", "application/octet-stream"] }),
    )
    .await;
    let object = |method: reqwest::Method, key: &str| {
        app.http
            .request(
                method,
                app.url(&format!("/admin/v1/storage/buckets/docs/objects/{key}")),
            )
            .bearer_auth(app.service_key())
    };
    // Two MiB: well past http.max_body_bytes, within the object limit.
    let big: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let stored = object(reqwest::Method::POST, "reports/2026/big.bin")
        .header("content-type", "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(stored.status(), 201);
    let stored: serde_json::Value = stored.json().await.expect("json");
    assert_eq!(stored["name"], "reports/2026/big.bin");
    assert_eq!(stored["bucket_id"], "docs");
    // The same key again is a conflict unless replacing is asked for.
    let again = object(reqwest::Method::POST, "reports/2026/big.bin")
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 409);
    let replaced = object(reqwest::Method::POST, "reports/2026/big.bin?upsert=true")
        .header("content-type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .expect("request");
    assert_eq!(replaced.status(), 201);
    // Served to the admin as an attachment, never as a page of the admin origin.
    let served = object(reqwest::Method::GET, "reports/2026/big.bin")
        .send()
        .await
        .expect("request");
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-disposition"],
        "attachment; filename=big.bin; filename*=UTF-8''big.bin"
    );
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        served.text().await.expect("body"),
        "<script>alert(1)</script>"
    );
    // The bucket's type limit holds for admins too, in the admin API's shape.
    let refused = object(reqwest::Method::POST, "report.pdf")
        .header("content-type", "application/pdf")
        .body("%PDF-1.4")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "invalid_definition");
    assert_eq!(
        body["message"],
        "mime type application/pdf is not supported"
    );
    // Past a bucket's limit while it streams: 413, and nothing kept.
    make_bucket(
        &app,
        serde_json::json!({ "name": "small", "file_size_limit": 4096 }),
    )
    .await;
    let chunks =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![1u8; 1000])));
    let huge = app
        .http
        .post(app.url("/admin/v1/storage/buckets/small/objects/huge.bin"))
        .bearer_auth(app.service_key())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    assert_eq!(huge.status(), 413);
    assert_eq!(object_rows(&app).await, 1);

    let removed = app
        .http
        .delete(app.url("/admin/v1/storage/buckets/docs/objects"))
        .bearer_auth(app.service_key())
        .json(&serde_json::json!({ "paths": ["reports/2026/big.bin"] }))
        .send()
        .await
        .expect("request");
    assert_eq!(removed.status(), 200);
    let removed: serde_json::Value = removed.json().await.expect("json");
    assert_eq!(removed[0]["name"], "reports/2026/big.bin");
    assert_eq!(object_rows(&app).await, 0);
    let gone = object(reqwest::Method::GET, "reports/2026/big.bin")
        .send()
        .await
        .expect("request");
    assert_eq!(gone.status(), 404);
}
