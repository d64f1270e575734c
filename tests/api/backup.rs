//! `galley backup`: a backup taken while Galley serves restores every row, user, policy
//! and grant, on the same data directory after a wipe and on a fresh one; keys, access
//! tokens and refresh tokens from before the backup keep working; a damaged backup is
//! refused; nothing is replaced without confirmation. Stored objects (local storage) are
//! in the backup and come back with their rows.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use galley_testkit::GalleyProcess;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::support::{data_dir, galley_bin, run_galley, status_of};

fn serve(data: &Path) -> GalleyProcess {
    let dir = data.to_str().expect("utf-8 path");
    GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &[]).expect("galley serves")
}

fn backup(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = data.to_str().expect("utf-8 path");
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    all.extend(["--data-dir", dir]);
    run_galley(&all, env, data)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn key(data: &Path, role: &str) -> String {
    let keys = stdout(&run_galley(
        &["keys", "--data-dir", data.to_str().expect("utf-8")],
        &[],
        data,
    ));
    keys.lines()
        .find_map(|line| line.strip_prefix(&format!("{role}: ")))
        .expect("key")
        .to_owned()
}

/// The bytes of the stored object every seeded instance holds.
const STORED: &str = "stored bytes to keep across a restore";

/// The stored object's bytes, as `service_role` downloads them (`None`: not there).
async fn stored_object(galley: &GalleyProcess, service: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .get(galley.url("/storage/v1/object/kept/greeting.txt"))
        .bearer_auth(service)
        .send()
        .await
        .expect("response");
    if response.status() != 200 {
        return None;
    }
    Some(response.text().await.expect("body"))
}

struct Before {
    service: String,
    anon: String,
    access: String,
    refresh: String,
}

async fn seed(galley: &GalleyProcess, data: &Path) -> Before {
    let http = reqwest::Client::new();
    let service = key(data, "service_role");
    let anon = key(data, "anon");
    let created = http
        .post(galley.url("/admin/v1/tables"))
        .bearer_auth(&service)
        .json(&json!({"name": "notes", "columns": [
            {"name": "body", "type": "text", "nullable": false},
            {"name": "owner", "type": "uuid", "default": {"expression": "auth.uid()"}}]}))
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 201);
    let rules = http
        .put(galley.url("/admin/v1/tables/notes/rules"))
        .bearer_auth(&service)
        .json(&json!({"select": {"preset": "owner", "column": "owner"},
                      "insert": {"preset": "owner", "column": "owner"}}))
        .send()
        .await
        .expect("response");
    assert_eq!(rules.status(), 200);
    let session: Value = http
        .post(galley.url("/auth/v1/signup"))
        .header("apikey", &anon)
        .json(&json!({"email": "kept@example.com", "password": "a password to keep"}))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("session");
    let access = session["access_token"].as_str().expect("access").to_owned();
    let refresh = session["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let inserted = http
        .post(galley.url("/rest/v1/notes"))
        .header("apikey", &anon)
        .bearer_auth(&access)
        .json(&json!({"body": "remember me"}))
        .send()
        .await
        .expect("response");
    assert_eq!(inserted.status(), 201);
    let bucket = http
        .post(galley.url("/storage/v1/bucket"))
        .bearer_auth(&service)
        .json(&json!({"name": "kept"}))
        .send()
        .await
        .expect("response");
    assert_eq!(bucket.status(), 200);
    let stored = http
        .post(galley.url("/storage/v1/object/kept/greeting.txt"))
        .bearer_auth(&service)
        .header("content-type", "text/plain")
        .body(STORED)
        .send()
        .await
        .expect("response");
    assert_eq!(stored.status(), 200);
    Before {
        service,
        anon,
        access,
        refresh,
    }
}

/// What the user from before the backup sees of their notes, and whether their refresh
/// token still works.
async fn check_restored(galley: &GalleyProcess, before: &Before, refresh: bool) {
    let http = reqwest::Client::new();
    // The restore announces itself; the instance reloads its catalog.
    let served = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        status_of(&galley.url("/rest/v1/notes")).await != 404
    })
    .await;
    assert!(served, "the restored table is served");
    let notes: Value = http
        .get(galley.url("/rest/v1/notes?select=body"))
        .header("apikey", &before.anon)
        .bearer_auth(&before.access)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(
        notes,
        json!([{"body": "remember me"}]),
        "the user's row is back"
    );
    let anonymous = http
        .get(galley.url("/rest/v1/notes?select=body"))
        .header("apikey", &before.anon)
        .send()
        .await
        .expect("response");
    assert_eq!(
        anonymous.status(),
        401,
        "the grants are back too: anon may not read"
    );
    let users = http
        .get(galley.url("/auth/v1/admin/users"))
        .header("apikey", &before.service)
        .bearer_auth(&before.service)
        .send()
        .await
        .expect("response");
    assert_eq!(
        users.status(),
        200,
        "the service_role key from before works"
    );
    assert_eq!(
        stored_object(galley, &before.service).await.as_deref(),
        Some(STORED),
        "the stored object is back, row and bytes"
    );
    if !refresh {
        return;
    }
    let refreshed = http
        .post(galley.url("/auth/v1/token?grant_type=refresh_token"))
        .header("apikey", &before.anon)
        .json(&json!({"refresh_token": before.refresh}))
        .send()
        .await
        .expect("response");
    assert_eq!(
        refreshed.status(),
        200,
        "the refresh token from before works"
    );
    let signed_in = http
        .post(galley.url("/auth/v1/token?grant_type=password"))
        .header("apikey", &before.anon)
        .json(&json!({"email": "kept@example.com", "password": "a password to keep"}))
        .send()
        .await
        .expect("response");
    assert_eq!(signed_in.status(), 200, "the password from before works");
}

#[tokio::test]
async fn a_backup_restores_after_a_wipe_and_on_a_fresh_data_directory() {
    let data = data_dir();
    let galley = serve(data.path());
    let before = seed(&galley, data.path()).await;

    let dir = stdout(&backup(data.path(), &["create"], &[]));
    let dir = Path::new(dir.trim());
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("name")
        .to_owned();
    let mode = |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700);
    for file in [
        "database.dump",
        "secrets.json",
        "objects.tar",
        "manifest.json",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["row_counts"]["public.notes"], 1);
    assert_eq!(manifest["row_counts"]["auth.users"], 1);
    assert_eq!(manifest["row_counts"]["storage.objects"], 1);
    assert_eq!(
        manifest["objects"],
        json!({"backend": "local", "count": 1, "bytes": STORED.len()})
    );
    assert!(
        manifest["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("public.notes."))),
        "{manifest}"
    );
    assert_eq!(
        manifest["parts"]["database.dump"]["sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    let listed = stdout(&backup(data.path(), &["list"], &[]));
    assert!(listed.starts_with(&name), "{listed}");
    let verified = stdout(&backup(data.path(), &["verify"], &[]));
    assert!(verified.contains("verified"), "{verified}");

    // Wipe: the table and the user go.
    let http = reqwest::Client::new();
    let dropped = http
        .delete(galley.url("/admin/v1/tables/notes?confirm=notes"))
        .bearer_auth(&before.service)
        .send()
        .await
        .expect("response");
    assert!(dropped.status().is_success(), "{}", dropped.status());
    let removed = http
        .delete(galley.url("/storage/v1/object/kept"))
        .bearer_auth(&before.service)
        .json(&json!({"prefixes": ["greeting.txt"]}))
        .send()
        .await
        .expect("response");
    assert_eq!(removed.status(), 200);
    assert_eq!(stored_object(&galley, &before.service).await, None);
    // Without confirmation nothing is replaced.
    let refused = backup(data.path(), &["restore", &name], &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(
        status_of(&galley.url("/rest/v1/notes")).await,
        404,
        "still wiped"
    );
    stdout(&backup(data.path(), &["restore", &name, "--yes"], &[]));
    check_restored(&galley, &before, true).await;

    // On a fresh data directory: its own new cluster and secret, then the backup.
    let fresh = data_dir();
    let mut second = serve(fresh.path());
    let backups = data.path().join("backups");
    let backups = backups.to_str().expect("utf-8");
    stdout(&backup(
        fresh.path(),
        &["restore", &name, "--yes"],
        &[("GALLEY_BACKUP_DIR", backups)],
    ));
    // Restarted, it reads the restored secret.
    second.signal_and_wait(Signal::SIGTERM).expect("exits");
    let second = serve(fresh.path());
    check_restored(&second, &before, true).await;

    // A damaged backup is refused, by verify and by restore.
    let dump = dir.join("database.dump");
    let mut bytes = std::fs::read(&dump).expect("dump");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&dump, bytes).expect("tamper");
    for args in [vec!["verify"], vec!["restore", name.as_str(), "--yes"]] {
        let output = backup(data.path(), &args, &[]);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("damaged"),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The refresh token was rotated above: only the rows are checked again.
    check_restored(&galley, &before, false).await;
}

/// The value of one series on the instance's metrics listener, if it is there.
async fn metric(app: &galley_testkit::TestApp, series: &str) -> Option<f64> {
    let text = reqwest::get(app.metrics_url())
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn the_age_of_the_newest_backup_is_a_metric_the_alert_can_watch() {
    let backups = data_dir();
    let taken = chrono::Utc::now() - chrono::Duration::hours(2);
    for (name, created_at) in [
        ("galley-older", taken - chrono::Duration::days(1)),
        ("galley-newest", taken),
    ] {
        let dir = backups.path().join(name);
        std::fs::create_dir(&dir).expect("dir");
        let manifest = json!({
            "name": name, "created_at": created_at, "galley_version": "0", "server_version": "15",
            "tools_version": "pg_dump (PostgreSQL) 15", "parts": {}, "row_counts": {},
            "policies": [], "grants": []
        });
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
    }
    let dir = backups.path().to_owned();
    let app = galley_testkit::spawn_app_with(move |config| config.backup.dir = Some(dir)).await;
    let mut age = None;
    for _ in 0..50 {
        age = metric(&app, "galley_backup_age_seconds{target=\"local\"}").await;
        if age.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let age = age.expect("the series is set");
    assert!((7_190.0..7_300.0).contains(&age), "{age}");
}

/// `galley_backup_runs_total{outcome="succeeded"}` of one instance.
async fn runs_succeeded(app: &galley_testkit::TestApp) -> u64 {
    metric(app, "galley_backup_runs_total{outcome=\"succeeded\"}")
        .await
        .expect("the counter") as u64
}

#[tokio::test]
async fn each_scheduled_backup_runs_on_exactly_one_of_three_instances_and_retention_prunes() {
    use chrono::Timelike;
    let backups = data_dir();
    let dir = backups.path().to_owned();
    // Three moments, 2 s apart, starting 8 s from now (after the instances are up), and
    // not again within the minute the test lasts.
    let first_second = (chrono::Utc::now().second() + 8) % 60;
    let moments: Vec<String> = (0..3)
        .map(|n| ((first_second + 2 * n) % 60).to_string())
        .collect();
    let schedule = format!("{} * * * * *", moments.join(","));
    let settings = move |config: &mut galley_server::Config| {
        config.backup.schedule = Some(schedule.clone());
        config.backup.dir = Some(dir.clone());
        // Only the newest backup of today (and of this week) is kept.
        config.backup.keep_daily = 1;
        config.backup.keep_weekly = 1;
    };
    let started = std::time::Instant::now();
    let first = galley_testkit::spawn_app_with(settings.clone()).await;
    let second = galley_testkit::spawn_second_instance_with(&first, settings.clone()).await;
    let third = galley_testkit::spawn_second_instance_with(&first, settings).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "the instances were up before the first moment"
    );
    // The last moment is 12 s away at most; give its backup time to finish.
    tokio::time::sleep(std::time::Duration::from_secs(16).saturating_sub(started.elapsed())).await;

    let client = first.db.connect().await.expect("connect");
    let rows = client
        .query(
            "SELECT outcome, name FROM galley.backup_runs ORDER BY slot",
            &[],
        )
        .await
        .expect("runs");
    assert_eq!(rows.len(), 3, "one row per moment");
    assert!(
        rows.iter()
            .all(|row| row.get::<_, String>(0) == "succeeded"),
        "every run finished and succeeded"
    );
    // Each moment ran on one instance only: the three instances ran three backups in all.
    let mut counted = 0;
    for app in [&first, &second, &third] {
        counted += runs_succeeded(app).await;
    }
    assert_eq!(counted, 3, "runs counted by the instances");
    // Retention: only the newest backup is left.
    let left: Vec<String> = std::fs::read_dir(backups.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let newest: String = rows[2].get(1);
    assert_eq!(left, [newest], "pruned down to the newest");
}

#[tokio::test]
async fn encrypted_backups_hold_no_plaintext_and_need_their_key_to_verify_or_restore() {
    let data = data_dir();
    let galley = serve(data.path());
    seed(&galley, data.path()).await;
    let passphrase_file = data.path().join("backup-passphrase");
    std::fs::write(&passphrase_file, "correct horse battery staple\n").expect("passphrase");
    let passphrase = passphrase_file.to_str().expect("utf-8").to_owned();
    let with_passphrase = [("GALLEY_BACKUP_PASSPHRASE_FILE", passphrase.as_str())];

    let dir = stdout(&backup(data.path(), &["create"], &with_passphrase));
    let dir = Path::new(dir.trim()).to_owned();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    for file in ["database.dump.age", "secrets.json.age", "objects.tar.age"] {
        let bytes = std::fs::read(dir.join(file)).expect(file);
        assert!(
            bytes.starts_with(b"age-encryption.org/v1"),
            "{file} is an age file"
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("PGDMP") && !text.contains("jwt_secret") && !text.contains(STORED),
            "{file}"
        );
    }
    assert!(
        !dir.join("database.dump").exists(),
        "no plaintext dump is left"
    );
    let stdout_of_verify = stdout(&backup(data.path(), &["verify"], &with_passphrase));
    assert!(stdout_of_verify.contains("verified"));
    let no_key = backup(data.path(), &["verify"], &[]);
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("backup.passphrase"));
    std::fs::write(&passphrase_file, "the wrong passphrase\n").expect("passphrase");
    let wrong = backup(data.path(), &["restore", &name, "--yes"], &with_passphrase);
    assert!(
        !wrong.status.success(),
        "a wrong passphrase restores nothing"
    );
    std::fs::write(&passphrase_file, "correct horse battery staple\n").expect("passphrase");
    stdout(&backup(
        data.path(),
        &["restore", &name, "--yes"],
        &with_passphrase,
    ));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "decrypted copies are removed: {leftovers:?}"
    );

    // To an age recipient: only its identity reads the backup.
    let identity = age::x25519::Identity::generate();
    let identity_file = data.path().join("backup-identity.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity_file, identity.to_string().expose_secret()).expect("identity");
    }
    let recipient = identity.to_public().to_string();
    let identity_path = identity_file.to_str().expect("utf-8").to_owned();
    let to_recipient = [
        ("GALLEY_BACKUP_AGE_RECIPIENT", recipient.as_str()),
        ("GALLEY_BACKUP_AGE_IDENTITY_FILE", identity_path.as_str()),
    ];
    stdout(&backup(data.path(), &["create"], &to_recipient));
    let verified = stdout(&backup(data.path(), &["verify"], &to_recipient));
    assert!(verified.contains("verified"), "{verified}");
    let without_identity = backup(
        data.path(),
        &["verify"],
        &[("GALLEY_BACKUP_AGE_RECIPIENT", recipient.as_str())],
    );
    assert!(!without_identity.status.success());
    assert!(String::from_utf8_lossy(&without_identity.stderr).contains("backup.age_identity"));
}

#[tokio::test]
async fn a_failed_scheduled_backup_is_counted_and_recorded() {
    use chrono::Timelike;
    // backup.dir names a file: no backup can be written there.
    let scratch = data_dir();
    let not_a_dir = scratch.path().join("a-file");
    std::fs::write(&not_a_dir, "in the way").expect("file");
    let first_second = (chrono::Utc::now().second() + 4) % 60;
    let schedule = format!("{first_second} * * * * *");
    let app = galley_testkit::spawn_app_with(move |config| {
        config.backup.schedule = Some(schedule);
        config.backup.dir = Some(not_a_dir);
    })
    .await;
    let client = app.db.connect().await.expect("connect");
    let mut outcome = None;
    for _ in 0..100 {
        outcome = client
            .query_opt(
                "SELECT outcome, error FROM galley.backup_runs WHERE finished_at IS NOT NULL",
                &[],
            )
            .await
            .expect("runs")
            .map(|row| (row.get::<_, String>(0), row.get::<_, Option<String>>(1)));
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (outcome, error) = outcome.expect("the scheduled moment ran");
    assert_eq!(outcome, "failed");
    assert!(
        error.is_some_and(|e| e.contains("a-file")),
        "the error names the path"
    );
    assert_eq!(
        metric(&app, "galley_backup_runs_total{outcome=\"failed\"}").await,
        Some(1.0),
        "counted"
    );
}

/// A local S3 server (moto's `moto_server`, which scripts/test installs), stopped on drop.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server() -> S3Server {
    let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("{program} runs (scripts/test installs moto; or set MOTO_SERVER): {err}")
        });
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let up = crate::support::eventually(std::time::Duration::from_secs(30), || async {
        reqwest::get(&server.endpoint).await.is_ok()
    })
    .await;
    assert!(up, "moto_server answers");
    server
}

impl S3Server {
    /// A client of `bucket`, to look at what Galley put there behind its back.
    fn bucket(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("galley-test")
            .with_secret_access_key("galley-test-secret")
            .build()
            .expect("an S3 client")
    }
}

/// The keys under `prefix` in `bucket`, and their sizes.
async fn s3_keys(bucket: &object_store::aws::AmazonS3, prefix: &str) -> Vec<(String, u64)> {
    use futures_util::TryStreamExt;
    let prefix = object_store::path::Path::from(prefix);
    object_store::ObjectStore::list(bucket, Some(&prefix))
        .map_ok(|object| (object.location.to_string(), object.size))
        .try_collect()
        .await
        .expect("listing")
}

#[tokio::test]
async fn backups_go_to_an_s3_bucket_and_come_back_from_it() {
    let server = s3_server().await;
    let http = reqwest::Client::new();
    let made = http
        .put(format!("{}/galley-backups", server.endpoint))
        .send()
        .await
        .expect("bucket");
    assert!(made.status().is_success(), "{}", made.status());
    let s3 = [
        ("GALLEY_BACKUP_S3_URL", "s3://galley-backups/nightly"),
        ("GALLEY_BACKUP_S3_ENDPOINT", server.endpoint.as_str()),
        ("GALLEY_BACKUP_S3_REGION", "us-east-1"),
        ("GALLEY_BACKUP_S3_ACCESS_KEY_ID", "galley-test"),
        ("GALLEY_BACKUP_S3_SECRET_ACCESS_KEY", "galley-test-secret"),
    ];
    let data = data_dir();
    let dir = data.path().to_str().expect("utf-8");
    let mut galley =
        GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &s3).expect("galley serves");
    let before = seed(&galley, data.path()).await;
    // A dump larger than one upload buffer (10 MiB), so it goes up as a multipart upload.
    crate::support::connect(&crate::support::db_url(data.path()))
        .await
        .batch_execute(
            "CREATE TABLE public.noise AS SELECT n, md5(random()::text) || md5(random()::text) || \
             md5(random()::text) AS hex FROM generate_series(1, 300000) AS n",
        )
        .await
        .expect("a large table");

    let older = stdout(&backup(data.path(), &["create"], &s3));
    let newer = stdout(&backup(data.path(), &["create"], &s3));
    let name = |location: &str| {
        location
            .trim()
            .strip_prefix("s3://galley-backups/nightly/")
            .unwrap_or_else(|| panic!("an address in the bucket: {location}"))
            .to_owned()
    };
    let (older, newer) = (name(&older), name(&newer));
    let bucket = server.bucket("galley-backups");
    let keys = s3_keys(&bucket, "nightly").await;
    for backup_name in [&older, &newer] {
        for file in [
            "database.dump",
            "secrets.json",
            "objects.tar",
            "manifest.json",
        ] {
            let key = format!("nightly/{backup_name}/{file}");
            assert!(keys.iter().any(|(k, _)| *k == key), "{key} in {keys:?}");
        }
    }
    let dump = keys
        .iter()
        .find(|(key, _)| key.ends_with("/database.dump"))
        .map(|(_, size)| *size)
        .expect("a dump");
    assert!(
        dump > 10 << 20,
        "the dump ({dump} bytes) took a multipart upload"
    );
    // Nothing is left behind locally: the working copies are gone.
    let local = data.path().join("backups");
    let nothing_left = || {
        let left: Vec<_> = std::fs::read_dir(&local)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    };
    nothing_left();

    let listed = stdout(&backup(data.path(), &["list"], &s3));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split('\t').next())
        .collect();
    assert_eq!(names, [newer.as_str(), older.as_str()], "newest first");
    let verified = stdout(&backup(data.path(), &["verify"], &s3));
    assert!(
        verified.starts_with(&format!("{newer} verified")),
        "{verified}"
    );

    // Wipe, then restore from the bucket.
    let dropped = http
        .delete(galley.url("/admin/v1/tables/notes?confirm=notes"))
        .bearer_auth(&before.service)
        .send()
        .await
        .expect("response");
    assert!(dropped.status().is_success(), "{}", dropped.status());
    stdout(&backup(data.path(), &["restore", &older, "--yes"], &s3));
    check_restored(&galley, &before, true).await;

    // Restarted, the instance reports the bucket's newest backup's age.
    galley.signal_and_wait(Signal::SIGTERM).expect("exits");
    let galley =
        GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &s3).expect("galley serves");
    let metrics_address = || {
        galley.logs().iter().find_map(|line| {
            let line: Value = serde_json::from_str(line).ok()?;
            line["url"]
                .as_str()
                .filter(|url| url.ends_with("/metrics"))
                .map(str::to_owned)
        })
    };
    let logged = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        metrics_address().is_some()
    })
    .await;
    assert!(logged, "{:?}", galley.logs());
    let metrics = metrics_address().expect("the metrics address in the log");
    let mut age = None;
    for _ in 0..100 {
        let text = reqwest::get(&metrics)
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        age = text.lines().find_map(|line| {
            line.strip_prefix("galley_backup_age_seconds{target=\"s3\"} ")
                .and_then(|value| value.trim().parse::<f64>().ok())
        });
        if age.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let age = age.expect("the series is set");
    assert!((0.0..600.0).contains(&age), "{age}");

    // Retention: one backup a day is kept, so the older one of today goes, all its
    // objects with it.
    let pruned = stdout(&backup(
        data.path(),
        &["prune"],
        &[
            s3.as_slice(),
            &[
                ("GALLEY_BACKUP_KEEP_DAILY", "1"),
                ("GALLEY_BACKUP_KEEP_WEEKLY", "1"),
            ],
        ]
        .concat(),
    ));
    assert_eq!(pruned.trim(), format!("removed {older}"));
    let keys = s3_keys(&bucket, "nightly").await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.iter()
            .all(|(key, _)| key.starts_with(&format!("nightly/{newer}/"))),
        "{keys:?}"
    );

    // A damaged object in the bucket is refused.
    object_store::ObjectStore::put(
        &bucket,
        &object_store::path::Path::from(format!("nightly/{newer}/database.dump")),
        "not a dump".into(),
    )
    .await
    .expect("tamper");
    for args in [vec!["verify"], vec!["restore", newer.as_str(), "--yes"]] {
        let output = backup(data.path(), &args, &s3);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("damaged"),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // A refused download leaves no working copy behind either.
    nothing_left();
    check_restored(&galley, &before, false).await;
}

#[tokio::test]
async fn the_admin_api_lists_takes_verifies_and_hands_out_backups() {
    let backups = data_dir();
    let dir = backups.path().to_owned();
    let app = galley_testkit::spawn_app_with(move |config| {
        config.backup.dir = Some(dir);
    })
    .await;
    let service = app.service_key();
    let call = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, app.url(&format!("/admin/v1{path}")))
            .bearer_auth(&service)
            .send()
    };
    let empty: Value = call(reqwest::Method::GET, "/backups")
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(empty, json!([]));
    let created = call(reqwest::Method::POST, "/backups")
        .await
        .expect("response");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let name = created["name"].as_str().expect("name").to_owned();
    let listed: Value = call(reqwest::Method::GET, "/backups")
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["name"], name.as_str());
    // The signing secret stays with the CLI: never a download.
    assert_eq!(
        listed[0]["files"],
        json!(["database.dump", "objects.tar", "manifest.json"])
    );
    let verified = call(reqwest::Method::POST, &format!("/backups/{name}/verify"))
        .await
        .expect("response");
    assert_eq!(verified.status(), 200);
    let manifest: Value = call(
        reqwest::Method::GET,
        &format!("/backups/{name}/files/manifest.json"),
    )
    .await
    .expect("response")
    .json()
    .await
    .expect("json");
    assert_eq!(manifest["name"], name.as_str());
    // The dump comes whole (streamed), as long as the manifest says, with its checksum.
    let dump = call(
        reqwest::Method::GET,
        &format!("/backups/{name}/files/database.dump"),
    )
    .await
    .expect("response")
    .bytes()
    .await
    .expect("bytes");
    assert_eq!(
        dump.len() as u64,
        manifest["parts"]["database.dump"]["bytes"]
            .as_u64()
            .expect("bytes")
    );
    {
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&dump)),
            manifest["parts"]["database.dump"]["sha256"]
                .as_str()
                .expect("sha256")
        );
    }
    // Only the files a backup's manifest names.
    for path in [
        format!("/backups/{name}/files/..%2F..%2Fjwt_secret"),
        format!("/backups/{name}/files/other.txt"),
        format!("/backups/{name}/files/secrets.json"),
        "/backups/galley-nope/files/manifest.json".to_owned(),
    ] {
        let status = call(reqwest::Method::GET, &path)
            .await
            .expect("response")
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let refused = call(reqwest::Method::POST, "/backups/galley-nope/verify")
        .await
        .expect("response");
    assert_eq!(refused.status(), 400);
    assert!(
        refused.json::<Value>().await.expect("json")["message"]
            .as_str()
            .is_some_and(|m| m.contains("no backup named galley-nope"))
    );
}
