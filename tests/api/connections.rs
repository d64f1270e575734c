//! Connections that cannot starve the server: 1,100 uploads that send their headers and a
//! few bytes of body, then stall, started against a Galley whose open-file limit begins
//! at the common 1,024. Galley raises the limit, keeps answering everyone else at once,
//! and cuts each stalled body off with 408 once it has paused for `http.body_timeout_secs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use galley_testkit::{GalleyProcess, TestDatabase};

use crate::support::galley_bin;

const STALLED: usize = 1_100;

/// One request on a fresh connection; the status line and how long it took.
fn ask(address: &str, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: galley\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    (
        answer.lines().next().unwrap_or("(nothing)").to_owned(),
        started.elapsed(),
    )
}

#[test]
fn stalled_uploads_neither_exhaust_files_nor_delay_anyone_and_are_cut_off_with_408() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // This test holds the client side of every connection.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise the test's own limit");
    assert!(
        hard > 2 * STALLED as u64 + 256,
        "the machine's hard open-file limit ({hard}) is too low for this test"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime
        .block_on(TestDatabase::migrated())
        .expect("database");
    // Started as a shell would start it with `ulimit -Sn 1024`.
    let mut command = Command::new("sh");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GALLEY_METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "GALLEY_AUTH_JWT_SECRET",
            "9c1185a5c5e9fc54612808977ee8f548b2258d319c1185a5c5e9fc54612808977",
        )
        .env("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true")
        .env("GALLEY_HTTP_BODY_TIMEOUT_SECS", "3")
        .args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""])
        .arg(galley_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--database-url",
            &db.url(),
        ]);
    let galley = GalleyProcess::spawn(command).expect("galley serves");
    let address = galley.address.to_string();
    assert!(
        galley
            .logs()
            .iter()
            .any(|line| line.contains("raised the open-file limit")),
        "the limit is raised at start"
    );

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(&address).expect("connect a stalled upload");
        stream
            .write_all(
                b"POST /rest/v1/anything HTTP/1.1\r\nHost: galley\r\n\
                  Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{",
            )
            .expect("start the upload");
        stalled.push(stream);
    }
    let started_stalling = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    for path in ["/health/live", "/health/ready", "/rest/v1/"] {
        let (status, took) = ask(&address, path);
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
        assert!(
            took < Duration::from_secs(1),
            "{path} took {took:?} beside {STALLED} stalled uploads"
        );
    }
    assert!(
        started_stalling.elapsed() < Duration::from_secs(3),
        "asked while every upload was still stalled"
    );

    // Each stalled upload hears 408 in the error shape, and its connection closes.
    let mut timed_out = 0;
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read until closed");
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 408") && answer.contains("\"code\":\"request_timeout\"") {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, STALLED);
    let (status, _) = ask(&address, "/health/live");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}
