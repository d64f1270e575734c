//! Shared pieces of the black-box tests.

use std::path::Path;
use std::time::{Duration, Instant};

use galley_db::{Cluster, ClusterOptions, PgBinaries};

/// The `galley` binary Cargo built for these tests.
pub(crate) fn galley_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_galley"))
}

/// Runs `galley <args>` to completion in `cwd` with a clean environment plus `env`.
pub(crate) fn run_galley(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> std::process::Output {
    galley_testkit::GalleyProcess::command(galley_bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("galley runs")
}

/// A data directory for one embedded Galley, removed afterwards.
pub(crate) fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("galley-data-")
        .tempdir()
        .expect("a temporary data directory")
}

/// The embedded cluster in `data_dir`, to act on it behind Galley's back.
pub(crate) fn embedded_cluster(data_dir: &Path) -> Cluster {
    let bins = PgBinaries::locate(None).expect("PostgreSQL binaries");
    Cluster::new(data_dir, bins, ClusterOptions::default()).expect("cluster handle")
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The HTTP status of GET `url`, or 0 when nothing answers.
pub(crate) async fn status_of(url: &str) -> u16 {
    match reqwest::get(url).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Pids of running processes whose command line mentions `needle`.
pub(crate) fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
        })
        .collect()
}

/// `galley db url` for the embedded cluster in `data`.
pub(crate) fn db_url(data: &std::path::Path) -> String {
    let output = galley_testkit::GalleyProcess::command(galley_bin())
        .args(["db", "url", "--data-dir"])
        .arg(data)
        .output()
        .expect("galley db url runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A connection to PostgreSQL at `url`, driven in the background.
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects via db url");
    tokio::spawn(connection);
    client
}

/// The code an authenticator shows for `secret` (base32) at time step `step`.
pub(crate) fn totp_code(secret: &str, step: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .expect("base32");
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        None,
        String::new(),
    )
    .generate(u64::try_from(step * 30).expect("time"))
}
