//! `galley serve` on its embedded cluster: first start, restart, signals, recovery from a
//! killed run, and readiness following the database.

use std::time::Duration;

use galley_testkit::GalleyProcess;
use nix::sys::signal::Signal;
use tokio_postgres::NoTls;

use crate::support::{
    data_dir, embedded_cluster, eventually, galley_bin, processes_mentioning, status_of,
};

fn serve(data: &std::path::Path) -> GalleyProcess {
    let dir = data.to_str().expect("utf-8 path");
    GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &[]).expect("galley serves")
}

fn db_url(data: &std::path::Path) -> String {
    let output = GalleyProcess::command(galley_bin())
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

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connects via db url");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_row_written_through_db_url_survives_a_restart() {
    let data = data_dir();
    let mut galley = serve(data.path());
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);

    let url = db_url(data.path());
    let client = connect(&url).await;
    client
        .batch_execute("CREATE TABLE public.notes (body text NOT NULL); INSERT INTO public.notes VALUES ('kept')")
        .await
        .expect("write through db url");
    drop(client);
    let status = galley.signal_and_wait(Signal::SIGTERM).expect("exits");
    assert!(status.success(), "{status:?}");

    let galley = serve(data.path());
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
    let client = connect(&db_url(data.path())).await;
    let body: String = client
        .query_one("SELECT body FROM public.notes", &[])
        .await
        .expect("row survives")
        .get(0);
    assert_eq!(body, "kept");
    // The restart reused the cluster: one migration record, not two.
    let applied: i64 = client
        .query_one("SELECT count(*) FROM galley.schema_migrations", &[])
        .await
        .expect("history")
        .get(0);
    assert_eq!(applied, i64::from(galley_db::expected_version()));
}

#[tokio::test]
async fn sigterm_exits_zero_and_stops_the_cluster() {
    let data = data_dir();
    let mut galley = serve(data.path());
    let cluster = embedded_cluster(data.path());
    assert!(cluster.is_running());
    let pgdata = cluster.pgdata().to_string_lossy().into_owned();
    assert!(
        !processes_mentioning(&pgdata).is_empty(),
        "postmaster runs with -D {pgdata}"
    );

    let status = galley.signal_and_wait(Signal::SIGTERM).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(!cluster.is_running());
    assert!(!cluster.pgdata().join("postmaster.pid").exists());
    assert_eq!(processes_mentioning(&pgdata), Vec::<u32>::new());
    let logs = galley.logs().join("\n");
    assert!(logs.contains("PostgreSQL stopped"), "{logs}");
}

#[tokio::test]
async fn sigint_also_shuts_down_cleanly() {
    let data = data_dir();
    let mut galley = serve(data.path());
    let status = galley.signal_and_wait(Signal::SIGINT).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(!embedded_cluster(data.path()).is_running());
}

#[tokio::test]
async fn a_killed_run_is_recovered_on_the_next_start() {
    let data = data_dir();
    let mut galley = serve(data.path());
    let client = connect(&db_url(data.path())).await;
    client
        .batch_execute(
            "CREATE TABLE public.survivor (id int); INSERT INTO public.survivor VALUES (1)",
        )
        .await
        .expect("write");
    drop(client);
    // SIGKILL: Galley gets no chance to stop its cluster, which keeps running.
    galley.signal_and_wait(Signal::SIGKILL).expect("killed");
    let cluster = embedded_cluster(data.path());
    assert!(cluster.is_running(), "the orphaned cluster is still up");

    let galley = serve(data.path());
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
    let count: i64 = connect(&db_url(data.path()))
        .await
        .query_one("SELECT count(*) FROM public.survivor", &[])
        .await
        .expect("data kept")
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_stale_postmaster_pid_is_recovered_on_the_next_start() {
    let data = data_dir();
    let mut galley = serve(data.path());
    let cluster = embedded_cluster(data.path());
    let postmaster = cluster.postmaster_pid().expect("postmaster pid");
    galley
        .signal_and_wait(Signal::SIGKILL)
        .expect("galley killed");
    // Kill the postmaster too, as a power cut would: postmaster.pid stays behind.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(postmaster), Signal::SIGKILL)
        .expect("postmaster killed");
    let gone = eventually(Duration::from_secs(10), || async {
        !std::path::Path::new(&format!("/proc/{postmaster}")).exists()
    })
    .await;
    assert!(gone, "postmaster exited");
    // Its children notice the postmaster's death and exit on their own; give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cluster.pgdata().join("postmaster.pid").exists());

    let galley = serve(data.path());
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
}

#[tokio::test]
async fn readiness_follows_the_database_while_liveness_stays_200() {
    let data = data_dir();
    let galley = serve(data.path());
    let ready = galley.url("/health/ready");
    let live = galley.url("/health/live");
    assert_eq!(status_of(&ready).await, 200);

    let cluster = embedded_cluster(data.path());
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("join")
        .expect("cluster stops");
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(&ready).await == 503
        })
        .await,
        "ready turns 503 with the database down"
    );
    assert_eq!(status_of(&live).await, 200);
    let body: serde_json::Value = reqwest::get(&ready)
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(body["code"], "unavailable");

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .expect("join")
        .expect("cluster starts");
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(&ready).await == 200
        })
        .await,
        "ready returns to 200 when the database is back"
    );
    assert_eq!(status_of(&live).await, 200);
}

#[tokio::test]
async fn a_second_galley_on_the_same_data_directory_is_refused() {
    let data = data_dir();
    let _first = serve(data.path());
    let output = GalleyProcess::command(galley_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another galley process"), "{stderr}");
}

#[tokio::test]
async fn the_cluster_listens_on_its_socket_only() {
    let data = data_dir();
    let _galley = serve(data.path());
    let client = connect(&db_url(data.path())).await;
    let listen: String = client
        .query_one("SHOW listen_addresses", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(listen, "");
    let fsync: String = client
        .query_one("SHOW fsync", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(fsync, "on", "the embedded cluster is durable");
}
