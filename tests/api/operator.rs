//! What an operator meets in the first hour: commands run in the wrong directory, secrets
//! from files, ports already taken, two instances on one machine, the start-up banner,
//! the container health check, a drain before shutdown, and database errors that say
//! what went wrong.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use galley_testkit::{GalleyProcess, TestDatabase};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use nix::sys::signal::Signal;

use crate::support::{data_dir, galley_bin, status_of};

/// A fixed secret for instances on an operator-owned (test) database.
const SECRET: &str = "7c4a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520";

use crate::support::run_galley as galley;

fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn keys_where_no_data_directory_exists_creates_nothing_and_says_where_it_looked() {
    let dir = data_dir();
    let output = galley(&["keys"], &[], dir.path());
    assert!(!output.status.success());
    let line = last_line(&output);
    let looked = dir.path().join("galley-data").join("jwt_secret");
    assert!(
        line.contains(&format!("{} does not exist", looked.display())),
        "{line}"
    );
    assert!(line.contains("--data-dir"), "{line}");
    assert!(line.contains("GALLEY_AUTH_JWT_SECRET_FILE"), "{line}");
    assert!(
        !dir.path().join("galley-data").exists(),
        "nothing may be created"
    );
    assert!(output.stdout.is_empty(), "no keys are printed");
}

#[test]
fn a_variable_without_its_section_is_named_as_the_operator_wrote_it() {
    let dir = data_dir();
    let output = galley(&["keys"], &[("GALLEY_JWT_SECRET", SECRET)], dir.path());
    assert!(!output.status.success());
    let line = last_line(&output);
    assert!(line.contains("unknown key `jwt_secret`"), "{line}");
    assert!(line.contains("(from GALLEY_JWT_SECRET)"), "{line}");
    assert!(
        line.contains("did you mean GALLEY_AUTH_JWT_SECRET?"),
        "{line}"
    );
    assert!(!line.contains("jwt_secret.jwt_secret"), "{line}");

    let output = galley(&["keys"], &[("GALLEY_HTTP_WORKERS", "many")], dir.path());
    let line = last_line(&output);
    assert!(
        line.contains("`http.workers`") && line.contains("(from GALLEY_HTTP_WORKERS)"),
        "{line}"
    );
}

#[test]
fn a_secret_comes_from_the_file_a_file_variable_names() {
    let dir = data_dir();
    let file = dir.path().join("jwt_secret");
    // As Docker and Kubernetes mount secrets: the value and a final newline.
    std::fs::write(&file, format!("{SECRET}\n")).expect("write");
    let file = file.to_str().expect("utf-8");
    let output = galley(
        &["keys"],
        &[("GALLEY_AUTH_JWT_SECRET_FILE", file)],
        dir.path(),
    );
    assert!(output.status.success(), "{}", last_line(&output));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let anon = stdout
        .lines()
        .find_map(|line| line.strip_prefix("anon: "))
        .expect("anon key");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(
        anon,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("the key is signed with the file's secret, without its newline");

    let both = galley(
        &["keys"],
        &[
            ("GALLEY_AUTH_JWT_SECRET_FILE", file),
            ("GALLEY_AUTH_JWT_SECRET", SECRET),
        ],
        dir.path(),
    );
    assert!(!both.status.success());
    assert!(
        last_line(&both).contains("keep one"),
        "{}",
        last_line(&both)
    );

    let missing = galley(
        &["keys"],
        &[("GALLEY_AUTH_JWT_SECRET_FILE", "/nonexistent/secret")],
        dir.path(),
    );
    assert!(!missing.status.success());
    let line = last_line(&missing);
    assert!(
        line.contains("GALLEY_AUTH_JWT_SECRET_FILE") && line.contains("/nonexistent/secret"),
        "{line}"
    );
}

#[test]
fn a_taken_address_stops_serve_before_anything_is_created() {
    let dir = data_dir();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");

    let output = galley(
        &["serve", "--listen", &address, "--data-dir", data],
        &[],
        dir.path(),
    );
    assert!(!output.status.success());
    let line = last_line(&output);
    assert!(
        line.contains(&format!("cannot listen on {address}")) && line.contains("--listen"),
        "{line}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "no data directory, no cluster"
    );

    let output = galley(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &address,
            "--data-dir",
            data,
        ],
        &[],
        dir.path(),
    );
    assert!(!output.status.success());
    let line = last_line(&output);
    assert!(
        line.contains(&format!("cannot serve /metrics on {address}"))
            && line.contains("--metrics-listen"),
        "{line}"
    );
    assert!(!dir.path().join("data").exists());
}

/// The address of the "metrics are served" log line.
fn metrics_url(galley: &GalleyProcess) -> String {
    let logs = galley.logs();
    let line = logs
        .iter()
        .find(|line| line.contains("metrics are served"))
        .expect("the metrics line");
    let start = line.find("http://").expect("a URL");
    let rest = &line[start..];
    rest[..rest.find('"').expect("end of URL")].to_owned()
}

#[tokio::test]
async fn two_instances_on_one_machine_need_only_their_own_listen_and_data_dir() {
    let (a, b) = (data_dir(), data_dir());
    let serve = |dir: &std::path::Path| {
        // No metrics setting at all: the default address, which only one can have.
        let mut command = GalleyProcess::command(galley_bin());
        command.env_remove("GALLEY_METRICS_LISTEN").args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            dir.to_str().expect("utf-8"),
        ]);
        GalleyProcess::spawn(command).expect("galley serves")
    };
    let first = serve(a.path());
    let second = serve(b.path());
    for galley in [&first, &second] {
        assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
        let metrics = reqwest::get(metrics_url(galley)).await.expect("metrics");
        assert_eq!(metrics.status(), 200);
    }
    assert_ne!(metrics_url(&first), metrics_url(&second));
    let moved = [&first, &second].iter().any(|galley| {
        galley
            .logs()
            .iter()
            .any(|line| line.contains("the default metrics address is taken"))
    });
    assert!(
        moved,
        "at most one instance has the default address; the other says where it went"
    );
}

/// Runs `galley serve` on a test database and returns its standard output up to and
/// including the banner's last line, then stops it.
fn banner(under_terminal: bool) -> String {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime
        .block_on(TestDatabase::migrated())
        .expect("database");
    let galley_args = format!(
        "{} serve --listen 127.0.0.1:0 --database-url {}",
        galley_bin().display(),
        db.url()
    );
    let mut command = if under_terminal {
        // `script` gives the command a pseudo-terminal, as an operator's shell would.
        let mut command = Command::new("script");
        command.args(["-qefc", &galley_args, "/dev/null"]);
        command
    } else {
        let mut parts = galley_args.split(' ');
        let mut command = Command::new(parts.next().expect("binary"));
        command.args(parts);
        command
    };
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GALLEY_METRICS_LISTEN", "127.0.0.1:0")
        .env("GALLEY_AUTH_JWT_SECRET", SECRET)
        .env("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true")
        .env("GALLEY_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("key") {
                let _ = tx.send(seen.clone());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        if let Ok(seen) = rx.recv_timeout(Duration::from_millis(200))
            // The banner itself: under a terminal the log lines share the output, and
            // one of them mentions the keys too.
            && seen.contains("Galley is ready.")
            && (seen.contains("service_role key") || seen.contains("`galley keys` prints them"))
        {
            text = seen;
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
    let _ = child.wait();
    text
}

#[test]
fn serve_prints_where_everything_is_and_the_keys_only_on_a_terminal() {
    let text = banner(true);
    assert!(text.contains("Galley is ready."), "{text}");
    assert!(text.contains("API URL: http://127.0.0.1:"), "{text}");
    assert!(text.contains("/rest/v1"), "{text}");
    assert!(text.contains("Metrics URL: http://127.0.0.1:"), "{text}");
    let key = |role: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{role} key: ")))
            .map(|key| key.trim().to_owned())
            .unwrap_or_else(|| panic!("{role} key in:\n{text}"))
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    for role in ["anon", "service_role"] {
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &key(role),
            &DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .expect("a key signed with the secret")
        .claims;
        assert_eq!(claims["role"], role);
    }

    let text = banner(false);
    assert!(text.contains("Galley is ready."), "{text}");
    assert!(text.contains("`galley keys` prints them"), "{text}");
    assert!(
        !text.contains("eyJ"),
        "no key where output is collected:\n{text}"
    );
}

#[tokio::test]
async fn the_health_command_answers_for_a_ready_instance_only() {
    let db = TestDatabase::migrated().await.expect("database");
    let url = db.url();
    let mut server = GalleyProcess::serve(
        galley_bin(),
        &["--database-url", &url],
        &[
            ("GALLEY_AUTH_JWT_SECRET", SECRET),
            ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
        ],
    )
    .expect("galley serves");
    let dir = data_dir();
    let ready = galley(
        &["health", "--url", &server.url("/health/ready")],
        &[],
        dir.path(),
    );
    assert!(ready.status.success(), "{}", last_line(&ready));
    // Through the configured listen address, as the image's HEALTHCHECK asks.
    let listen = server.address.to_string();
    let ready = galley(
        &["health"],
        &[("GALLEY_HTTP_LISTEN", listen.as_str())],
        dir.path(),
    );
    assert!(ready.status.success(), "{}", last_line(&ready));
    server.signal_and_wait(Signal::SIGTERM).expect("exits");
    let gone = galley(
        &["health"],
        &[("GALLEY_HTTP_LISTEN", listen.as_str())],
        dir.path(),
    );
    assert!(!gone.status.success());
}

#[tokio::test]
async fn during_the_drain_delay_readiness_fails_while_requests_are_still_served() {
    let db = TestDatabase::migrated().await.expect("database");
    let url = db.url();
    let mut galley = GalleyProcess::serve(
        galley_bin(),
        &["--database-url", &url],
        &[
            ("GALLEY_AUTH_JWT_SECRET", SECRET),
            ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
            ("GALLEY_HTTP_DRAIN_DELAY_SECS", "3"),
        ],
    )
    .expect("galley serves");
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(galley.child.id()).expect("pid"));
    let signalled = Instant::now();
    nix::sys::signal::kill(pid, Signal::SIGTERM).expect("signal");
    let not_ready = crate::support::eventually(Duration::from_secs(2), || async {
        status_of(&galley.url("/health/ready")).await == 503
    })
    .await;
    assert!(not_ready, "readiness fails at once");
    assert_eq!(
        status_of(&galley.url("/rest/v1/")).await,
        200,
        "still serving"
    );
    assert!(signalled.elapsed() < Duration::from_secs(3));
    let status = galley.signal_and_wait(Signal::SIGTERM).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "served for the whole delay"
    );
}

#[tokio::test]
async fn a_database_error_is_reported_with_its_sqlstate_message_and_detail() {
    let db = TestDatabase::migrated().await.expect("database");
    let client = db.connect().await.expect("connect");
    client
        .batch_execute("CREATE TABLE dupes (id int PRIMARY KEY); INSERT INTO dupes VALUES (1)")
        .await
        .expect("setup");
    let err = client
        .execute("INSERT INTO dupes VALUES (1)", &[])
        .await
        .expect_err("duplicate key");
    assert_eq!(
        err.to_string(),
        "db error",
        "the driver's own text says nothing"
    );
    let report = galley_db::report(&err).to_string();
    assert!(report.contains("23505"), "{report}");
    assert!(
        report.contains("duplicate key value violates unique constraint \"dupes_pkey\""),
        "{report}"
    );
    assert!(
        report.contains("(detail: Key (id)=(1) already exists.)"),
        "{report}"
    );
    let wrapped = galley_db::DbError::Query(err);
    let report = galley_db::report(&wrapped).to_string();
    assert!(
        report.starts_with("database error") && report.contains("23505"),
        "{report}"
    );
}
