//! Mail through the outbox to a real SMTP server (nodemailer's `smtp-server`, started
//! by the test): an outage delays mail and loses none, and each mail arrives once.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use galley_auth::{SmtpConfig, SmtpTls};
use galley_testkit::{TestApp, spawn_app_with};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// An SMTP server on `port` that appends every message it accepts to `file`.
struct SmtpSink {
    child: tokio::process::Child,
}

impl SmtpSink {
    async fn start(port: u16, file: &Path) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/smtp-sink.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(file)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/sdk/smtp-sink.mjs (scripts/test installs its packages)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink starts")
            .expect("reads")
            .expect("a line");
        assert!(ready.starts_with("listening"), "{ready}");
        Self { child }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn received(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect()
}

async fn app_with_smtp(port: u16) -> TestApp {
    spawn_app_with(move |config| {
        config.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Galley <no-reply@galley.test>".into(),
        });
        config.auth.public_url = Some("https://galley.example".into());
        // The outage test sends fifty recoveries for one account from one address.
        config.ratelimit.email_per_ip = 100;
        config.ratelimit.per_account = 100;
    })
    .await
}

#[tokio::test]
async fn an_smtp_outage_delays_mail_and_loses_none() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mail.jsonl");
    let app = app_with_smtp(port).await;
    let created = app
        .http
        .post(app.url("/auth/v1/admin/users"))
        .bearer_auth(app.service_key())
        .json(&json!({"email": "outage@example.com", "password": "correct horse battery", "email_confirm": true}))
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 200);

    // SMTP is down: every request is still answered at once.
    let started = Instant::now();
    let app_ref = &app;
    let statuses = futures_util::future::join_all((0..50).map(|_| async move {
        app_ref
            .http
            .post(app_ref.url("/auth/v1/recover"))
            .header("host", "evil.example")
            .json(&json!({"email": "outage@example.com"}))
            .send()
            .await
            .expect("response")
            .status()
            .as_u16()
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered without waiting for SMTP: {:?}",
        started.elapsed()
    );
    let client = app.db.connect().await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FILTER (WHERE attempts > 0) FROM galley.outbox",
                &[],
            )
            .await
            .expect("outbox");
        let (pending, tried): (i64, i64) = (row.get(0), row.get(1));
        if pending == 50 && tried > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pending {pending}, tried {tried}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(received(&file).is_empty());

    // SMTP comes back: every mail arrives, once.
    let _sink = SmtpSink::start(port, &file).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while received(&file).len() < 50 {
        assert!(
            Instant::now() < deadline,
            "{} of 50 delivered",
            received(&file).len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = received(&file);
    assert_eq!(mails.len(), 50, "no mail twice");
    let mut links: Vec<String> = mails
        .iter()
        .map(|mail| {
            assert_eq!(mail["to"], json!(["outage@example.com"]));
            let text = mail["text"].as_str().expect("text");
            text.split_whitespace()
                .find(|word| word.starts_with("https://"))
                .expect("a link")
                .to_owned()
        })
        .collect();
    assert!(
        links
            .iter()
            .all(|l| l.starts_with("https://galley.example/auth/v1/verify?")),
        "never the Host header"
    );
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 50, "each mail its own link");
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FILTER (WHERE body_text <> '') FROM galley.outbox",
            &[],
        )
        .await
        .expect("outbox");
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (0, 0),
        "all sent, bodies cleared"
    );
}

#[tokio::test]
async fn with_smtp_a_signup_confirms_through_the_mailed_link() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mail.jsonl");
    let _sink = SmtpSink::start(port, &file).await;
    let app = app_with_smtp(port).await;
    let signup = |email: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/auth/v1/signup"))
                .header("x-supabase-api-version", "2024-01-01")
                .json(&json!({"email": email, "password": "correct horse battery"}))
                .send()
                .await
                .expect("response")
        }
    };
    let response = signup("new@example.com").await;
    assert_eq!(response.status(), 200);
    let user: Value = response.json().await.expect("json");
    assert!(
        user.get("access_token").is_none(),
        "no session before confirming: {user}"
    );
    assert!(user["confirmation_sent_at"].is_string());
    let login = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("x-supabase-api-version", "2024-01-01")
        .json(&json!({"email": "new@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("response");
    let error: Value = login.json().await.expect("json");
    assert_eq!(error["code"], "email_not_confirmed");

    let deadline = Instant::now() + Duration::from_secs(20);
    while received(&file).is_empty() {
        assert!(Instant::now() < deadline, "no confirmation mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = &received(&file)[0];
    assert_eq!(mail["subject"], "Confirm your signup to Galley");
    let text = mail["text"].as_str().expect("text").to_owned();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://galley.example/"))
        .expect("link")
        .to_owned();
    let path = link.strip_prefix("https://galley.example").expect("path");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let followed = no_redirect
        .get(app.url(path))
        .send()
        .await
        .expect("response");
    assert_eq!(followed.status(), 303);
    let location = followed.headers()["location"].to_str().expect("location");
    assert!(location.contains("access_token="), "{location}");

    // Signing up again with a confirmed address looks like a new signup.
    let again = signup("NEW@example.com").await;
    assert_eq!(again.status(), 200);
    let fake: Value = again.json().await.expect("json");
    assert_ne!(fake["id"], user["id"]);
    assert_eq!(fake["identities"], json!([]));
}

#[tokio::test]
async fn operator_templates_and_email_changes_confirmed_by_the_new_address() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mail.jsonl");
    let _sink = SmtpSink::start(port, &file).await;
    let app = spawn_app_with(move |config| {
        config.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Galley <no-reply@galley.test>".into(),
        });
        config.auth.project_name = "Acme".into();
        config.auth.templates.email_change = Some(galley_auth::MailTemplate {
            subject: "{project}: is this you?\r\nBcc: x@y.z".into(),
            body: "Confirm with {link} please.".into(),
        });
    })
    .await;
    app.http
        .post(app.url("/auth/v1/admin/users"))
        .bearer_auth(app.service_key())
        .json(&json!({"email": "old@example.com", "password": "correct horse battery", "email_confirm": true}))
        .send()
        .await
        .expect("response");
    let session: Value = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .json(&json!({"email": "old@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    let access = session["access_token"].as_str().expect("access");
    let changed: Value = app
        .http
        .put(app.url("/auth/v1/user"))
        .bearer_auth(access)
        .json(&json!({"email": "new@example.com"}))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(
        changed["email"], "old@example.com",
        "not before the new address confirms"
    );
    assert_eq!(changed["new_email"], "new@example.com");

    let deadline = Instant::now() + Duration::from_secs(20);
    while received(&file).is_empty() {
        assert!(Instant::now() < deadline, "no mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = &received(&file)[0];
    assert_eq!(mail["to"], json!(["new@example.com"]));
    assert_eq!(
        mail["subject"], "Acme: is this you?  Bcc: x@y.z",
        "one header line"
    );
    assert!(!mail["raw"].as_str().expect("raw").contains("\r\nBcc:"));
    let text = mail["text"].as_str().expect("text");
    assert!(text.starts_with("Confirm with http"), "{text}");
    let link = text.split_whitespace().nth(2).expect("link");
    let token = link
        .split_once("token=")
        .and_then(|(_, rest)| rest.split('&').next())
        .expect("token");
    let verified = app
        .http
        .post(app.url("/auth/v1/verify"))
        .json(&json!({"type": "email_change", "token_hash": token}))
        .send()
        .await
        .expect("response");
    assert_eq!(verified.status(), 200);
    let session: Value = verified.json().await.expect("json");
    assert_eq!(session["user"]["email"], "new@example.com");
    let login = app
        .http
        .post(app.url("/auth/v1/token?grant_type=password"))
        .json(&json!({"email": "new@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("response");
    assert_eq!(login.status(), 200);
}
