//! `galley serve` on its embedded cluster: first start, restart, signals, recovery from a
//! killed run, the cluster supervised (restarted when its postmaster dies, liveness failing
//! when it cannot be), and stale pid files that never lead to signalling a stranger.

use std::time::Duration;

use crate::support::{
    connect, data_dir, db_url, embedded_cluster, eventually, galley_bin, processes_mentioning,
    status_of,
};
use galley_testkit::GalleyProcess;
use nix::sys::signal::Signal;

fn serve(data: &std::path::Path) -> GalleyProcess {
    let dir = data.to_str().expect("utf-8 path");
    GalleyProcess::serve(galley_bin(), &["--data-dir", dir], &[]).expect("galley serves")
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

/// The service_role key of the Galley serving `data`.
fn service_key(data: &std::path::Path) -> String {
    let output = GalleyProcess::command(galley_bin())
        .args(["keys", "--data-dir"])
        .arg(data)
        .output()
        .expect("galley keys runs");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .find_map(|line| line.strip_prefix("service_role: "))
        .expect("service_role key")
        .to_owned()
}

#[tokio::test]
async fn a_killed_postmaster_under_write_load_is_restarted_and_loses_no_acknowledged_write() {
    let data = data_dir();
    let galley = serve(data.path());
    let key = service_key(data.path());
    let http = reqwest::Client::new();
    let created = http
        .post(galley.url("/admin/v1/tables"))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"name": "writes", "primary_key": "bigint",
            "columns": [{"name": "n", "type": "bigint", "nullable": false}]}),
        )
        .send()
        .await
        .expect("response");
    assert_eq!(created.status(), 201);

    // Writers insert numbered rows and keep the numbers PostgreSQL acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4i64)
        .map(|writer| {
            let (http, key, url, stop) = (
                http.clone(),
                key.clone(),
                galley.url("/rest/v1/writes"),
                stop.clone(),
            );
            tokio::spawn(async move {
                let (mut acknowledged, mut refused) = (Vec::new(), 0u32);
                let mut n = writer * 1_000_000;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let response = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("apikey", &key)
                        .json(&serde_json::json!({"n": n}))
                        .send()
                        .await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(201) => acknowledged.push(n),
                        Ok(503) | Err(_) => refused += 1,
                        Ok(other) => panic!("a write answered {other}"),
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cluster = embedded_cluster(data.path());
    let postmaster = cluster.postmaster_pid().expect("postmaster pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(postmaster), Signal::SIGKILL)
        .expect("postmaster killed");
    let killed = std::time::Instant::now();
    let ready = galley.url("/health/ready");
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&ready).await == 503
        })
        .await,
        "readiness fails while the cluster is down"
    );
    assert!(
        eventually(Duration::from_secs(60), || async {
            status_of(&ready).await == 200
        })
        .await,
        "back without restarting Galley"
    );
    let back_after = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for writer in writers {
        let (mine, theirs) = writer.await.expect("writer");
        acknowledged.extend(mine);
        refused += theirs;
    }
    eprintln!(
        "postmaster killed: ready again after {} ms; {} writes acknowledged, {refused} refused meanwhile",
        back_after.as_millis(),
        acknowledged.len()
    );
    let client = connect(&db_url(data.path())).await;
    let stored: Vec<i64> = client
        .query("SELECT n FROM public.writes", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let stored: std::collections::HashSet<i64> = stored.into_iter().collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(
        acknowledged.iter().any(|n| n % 1_000_000 > 0) && refused > 0,
        "writes were refused while it was down and acknowledged around it"
    );
    assert!(
        galley
            .logs()
            .iter()
            .any(|line| line.contains("postgres.restarted")),
        "Galley restarted the cluster itself"
    );
}

#[tokio::test]
async fn a_cluster_that_cannot_start_fails_liveness_until_it_can_then_serves_again() {
    let data = data_dir();
    let dir = data.path().to_str().expect("utf-8 path");
    let galley = GalleyProcess::serve(
        galley_bin(),
        &["--data-dir", dir],
        &[("GALLEY_DATABASE_RESTART_TIMEOUT_SECS", "2")],
    )
    .expect("galley serves");
    let (ready, live) = (galley.url("/health/ready"), galley.url("/health/live"));
    let cluster = embedded_cluster(data.path());
    // A setting PostgreSQL refuses at start, as a full disk would refuse its crash
    // recovery: every restart fails until the cause is gone.
    let conf = cluster.pgdata().join("postgresql.conf");
    let original = std::fs::read_to_string(&conf).expect("conf");
    std::fs::write(&conf, format!("{original}\nno_such_setting_at_all = 1\n")).expect("break");
    let postmaster = cluster.postmaster_pid().expect("postmaster pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(postmaster), Signal::SIGKILL)
        .expect("postmaster killed");
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&ready).await == 503
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(&live).await == 503
        })
        .await,
        "liveness fails once the cluster has been down past its restart timeout"
    );
    std::fs::write(&conf, original).expect("repair");
    assert!(
        eventually(Duration::from_secs(30), || async {
            status_of(&ready).await == 200
        })
        .await,
        "serving again once the cluster can start, without restarting Galley"
    );
    // Liveness is restored when the restart returns, a moment after the first request
    // may already succeed.
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&live).await == 200
        })
        .await
    );
}

#[tokio::test]
async fn recovering_a_stale_postmaster_pid_never_signals_another_program() {
    let data = data_dir();
    let mut galley = serve(data.path());
    galley.signal_and_wait(Signal::SIGTERM).expect("exits");
    let cluster = embedded_cluster(data.path());
    assert!(!cluster.is_running());
    // A program that looks like PostgreSQL (its name is `postgres`) but serves no
    // data directory of Galley's, holding the pid a stale postmaster.pid names.
    let decoy_dir = data_dir();
    let decoy = decoy_dir.path().join("postgres");
    std::fs::copy("/bin/sleep", &decoy).expect("copy sleep");
    let mut decoy = std::process::Command::new(&decoy)
        .arg("120")
        .current_dir(decoy_dir.path())
        .spawn()
        .expect("decoy runs");
    let pid_file = cluster.pgdata().join("postmaster.pid");
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n", decoy.id(), cluster.pgdata().display()),
    )
    .expect("stale pid file");

    let galley = serve(data.path());
    assert_eq!(status_of(&galley.url("/health/ready")).await, 200);
    assert!(
        decoy.try_wait().expect("decoy status").is_none(),
        "the decoy was left alone"
    );
    assert!(
        galley
            .logs()
            .iter()
            .any(|line| line.contains("removing a stale postmaster.pid")),
        "the pid file was treated as stale"
    );
    decoy.kill().expect("stop the decoy");
    let _ = decoy.wait();
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

#[tokio::test]
async fn a_table_made_with_psql_is_first_class_at_once() {
    let data = data_dir();
    let galley = serve(data.path());
    let url = db_url(data.path());
    // As psql would: its own application_name, a transaction with two tables.
    let separator = if url.contains('?') { '&' } else { '?' };
    let client = connect(&format!("{url}{separator}application_name=psql")).await;
    client
        .batch_execute(
            "BEGIN; CREATE TABLE public.from_psql (id int PRIMARY KEY, v text); \
             CREATE TABLE public.also_psql AS SELECT 1 AS n; \
             INSERT INTO public.from_psql VALUES (1, 'kept'); COMMIT;",
        )
        .await
        .expect("DDL");
    for table in ["from_psql", "also_psql"] {
        let row = client
            .query_one(
                "SELECT relrowsecurity, relforcerowsecurity, has_table_privilege('service_role', c.oid, 'SELECT') \
                 FROM pg_class c WHERE c.oid = ('public.' || $1)::regclass",
                &[&table],
            )
            .await
            .expect("catalog");
        let (enabled, forced, granted): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
        assert!(
            enabled && forced && granted,
            "{table}: {enabled} {forced} {granted}"
        );
    }
    let recorded: Vec<(String, String)> = client
        .query(
            "SELECT target, sql FROM galley.schema_history WHERE operation = 'sql' ORDER BY id",
            &[],
        )
        .await
        .expect("history")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(
        recorded
            .iter()
            .any(|(target, sql)| target == "public.from_psql"
                && sql.contains("CREATE TABLE public.from_psql")),
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .any(|(target, _)| target == "public.also_psql"),
        "{recorded:?}"
    );

    // Served at once to service_role, to others only through rules.
    let keys = GalleyProcess::command(galley_bin())
        .args(["keys", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("keys");
    let keys = String::from_utf8(keys.stdout).expect("utf-8");
    let key = |role: &str| {
        keys.lines()
            .find_map(|line| line.strip_prefix(&format!("{role}: ")))
            .expect("key")
            .to_owned()
    };
    let http = reqwest::Client::new();
    let served = eventually(Duration::from_secs(10), || async {
        http.get(galley.url("/rest/v1/from_psql?select=v"))
            .bearer_auth(key("service_role"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served, "service_role reads the new table");
    let anon = http
        .get(galley.url("/rest/v1/from_psql"))
        .header("apikey", key("anon"))
        .send()
        .await
        .expect("response");
    assert_eq!(anon.status(), 401);
}
