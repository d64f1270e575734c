//! The request pool's connections (`galley_db::wire`) against a real cluster: one `Sync`
//! per pipeline, errors that leave no transaction open, a bounded statement cache that a
//! failed `Parse` does not poison, connections that are not reused once abandoned mid
//! pipeline or closed by the server, and every password method PostgreSQL offers.

use std::time::Duration;

use galley_db::wire::{Connection, STATEMENT_CACHE, WireError};
use galley_testkit::TestDatabase;

async fn connect(db: &TestDatabase) -> Connection {
    let config: tokio_postgres::Config = db.url().parse().expect("url");
    Connection::connect(&config).await.expect("connects")
}

fn code(err: &WireError) -> &str {
    &err.server().expect("an error from PostgreSQL").code
}

/// The first column of the one row `sql` answers, on this connection.
async fn one_value(conn: &mut Connection, sql: &str) -> Option<String> {
    conn.push(sql, &[]).expect("queued");
    let results = conn.sync().await.expect("runs");
    results[0][0].text(0).map(str::to_owned)
}

#[tokio::test]
async fn a_pipeline_runs_as_one_transaction_and_answers_each_statement() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    admin
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        .await
        .expect("table");
    let mut conn = connect(&db).await;
    conn.push("BEGIN", &[]).expect("queued");
    conn.push("SELECT set_config('app.who', $1, true)", &["ada"])
        .expect("queued");
    conn.push(
        "INSERT INTO notes VALUES ($1::int, current_setting('app.who') || ': ' || $2) RETURNING body",
        &["1", "it's \\ \"quoted\""],
    )
    .expect("queued");
    conn.push("SELECT id, body, NULL::text FROM notes ORDER BY id", &[])
        .expect("queued");
    conn.push("COMMIT", &[]).expect("queued");
    let results = conn.sync().await.expect("runs");
    assert_eq!(results.len(), 5);
    assert_eq!(results[2][0].text(0), Some("ada: it's \\ \"quoted\""));
    assert_eq!(results[3].len(), 1);
    assert_eq!(results[3][0].text(0), Some("1"));
    assert_eq!(results[3][0].text(2), None, "NULL is None");
    assert!(conn.is_ready(), "committed: outside any transaction");
    // The setting was the transaction's only.
    assert_eq!(
        one_value(&mut conn, "SELECT current_setting('app.who', true)").await,
        Some(String::new())
    );
    let row = admin
        .query_one("SELECT body FROM notes WHERE id = 1", &[])
        .await
        .expect("committed row");
    assert_eq!(row.get::<_, String>(0), "ada: it's \\ \"quoted\"");
}

#[tokio::test]
async fn a_failing_statement_rolls_its_transaction_back_and_the_connection_serves_on() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    admin
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY)")
        .await
        .expect("table");
    let mut conn = connect(&db).await;

    // Sync: the error comes back, COMMIT never ran, nothing was kept.
    conn.push("BEGIN", &[]).expect("queued");
    conn.push("INSERT INTO notes VALUES ($1::int)", &["1"])
        .expect("queued");
    conn.push("SELECT 1 / $1::int", &["0"]).expect("queued");
    conn.push("COMMIT", &[]).expect("queued");
    let err = conn.sync().await.expect_err("division by zero");
    assert_eq!(code(&err), "22012");
    assert!(conn.is_ready(), "the failed transaction was rolled back");
    assert_eq!(
        one_value(&mut conn, "SELECT count(*) FROM notes").await,
        Some("0".to_owned())
    );

    // Flush: the transaction stays open until the caller ends it.
    conn.push("BEGIN", &[]).expect("queued");
    conn.push("INSERT INTO notes VALUES ($1::int) RETURNING id", &["2"])
        .expect("queued");
    let results = conn.flush().await.expect("runs");
    assert_eq!(results[1][0].text(0), Some("2"));
    assert!(!conn.is_ready(), "a transaction is open");
    conn.push("ROLLBACK", &[]).expect("queued");
    conn.sync().await.expect("rolls back");
    assert!(conn.is_ready());

    // A flushed statement that fails ends its transaction too.
    conn.push("BEGIN", &[]).expect("queued");
    conn.push("INSERT INTO notes VALUES ($1::int)", &["3"])
        .expect("queued");
    conn.push("INSERT INTO notes VALUES ($1::int)", &["3"])
        .expect("queued");
    let err = conn.flush().await.expect_err("duplicate key");
    assert_eq!(code(&err), "23505");
    assert!(conn.is_ready());
    assert_eq!(
        one_value(&mut conn, "SELECT count(*) FROM notes").await,
        Some("0".to_owned())
    );
    // Text that is no valid parameter (a NUL) is PostgreSQL's to refuse, as any other.
    conn.push("SELECT $1", &["a\0b"]).expect("queued");
    let err = conn.sync().await.expect_err("NUL in text");
    assert_eq!(code(&err), "22021");
    assert!(conn.is_ready());
}

/// How many statements the connection's session holds prepared.
async fn prepared(conn: &mut Connection) -> usize {
    one_value(conn, "SELECT count(*) FROM pg_prepared_statements")
        .await
        .expect("a count")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn the_statement_cache_is_bounded_and_a_failed_parse_prepares_nothing() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    let mut conn = connect(&db).await;

    // A statement naming a table that does not exist yet fails to parse...
    let sql = "SELECT count(*) FROM later";
    conn.push(sql, &[]).expect("queued");
    assert_eq!(code(&conn.sync().await.expect_err("no table")), "42P01");
    // ...and so does one queued behind a failure, never parsed at all.
    conn.push("SELECT 1 / 0", &[]).expect("queued");
    conn.push("SELECT 2 AS behind_a_failure", &[])
        .expect("queued");
    conn.sync().await.expect_err("division by zero");
    admin
        .batch_execute("CREATE TABLE later (id int)")
        .await
        .expect("table");
    assert_eq!(one_value(&mut conn, sql).await, Some("0".to_owned()));
    assert_eq!(
        one_value(&mut conn, "SELECT 2 AS behind_a_failure").await,
        Some("2".to_owned())
    );

    // The same SQL bound with another number of parameters (a planned count's EXPLAIN
    // with and without `limit`) is prepared again for it, in either order.
    let counted = "SELECT count(*) FROM later WHERE $1::text IS NOT NULL";
    for params in [&["a"][..], &["a", "b"][..], &["a"][..]] {
        conn.push(counted, params).expect("queued");
        let results = conn
            .sync()
            .await
            .expect("runs with any declared parameters");
        assert_eq!(results[0][0].text(0), Some("0"));
    }

    // Far more distinct statements than the cache holds, several per pipeline.
    for batch in 0..(STATEMENT_CACHE + 100) / 10 {
        for n in 0..10 {
            conn.push(&format!("SELECT {} AS n", batch * 10 + n), &[])
                .expect("queued");
        }
        let results = conn.sync().await.expect("runs");
        assert_eq!(
            results[9][0].text(0),
            Some((batch * 10 + 9).to_string().as_str())
        );
    }
    // The cache is full, and the counting statement took the place of another.
    assert_eq!(prepared(&mut conn).await, STATEMENT_CACHE);
    // A statement evicted behind a failure is not closed by that pipeline; it is closed
    // by the next one instead of staying prepared on the session for good.
    conn.push("SELECT 1 / 0 AS failing", &[]).expect("queued");
    conn.push("SELECT 'evicts another'", &[]).expect("queued");
    conn.sync().await.expect_err("division by zero");
    let held = prepared(&mut conn).await;
    assert_eq!(
        held,
        conn.prepared_statements(),
        "the session holds what the cache knows"
    );
    assert_eq!(held, STATEMENT_CACHE - 1);
    // One used again after its eviction is prepared again.
    assert_eq!(
        one_value(&mut conn, "SELECT 0 AS n").await,
        Some("0".to_owned())
    );
}

#[tokio::test]
async fn a_connection_abandoned_mid_pipeline_or_closed_by_the_server_is_not_reused() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");

    let mut abandoned = connect(&db).await;
    abandoned.push("BEGIN", &[]).expect("queued");
    abandoned.push("SELECT pg_sleep(5)", &[]).expect("queued");
    abandoned.push("COMMIT", &[]).expect("queued");
    let gave_up = tokio::time::timeout(Duration::from_millis(200), abandoned.sync()).await;
    assert!(gave_up.is_err(), "the pipeline was still waiting");
    assert!(!abandoned.is_ready());
    admin
        .execute(
            "SELECT pg_terminate_backend($1)",
            &[&abandoned.process_id()],
        )
        .await
        .expect("ends the sleeping session");

    let mut closed = connect(&db).await;
    assert!(closed.is_ready());
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&closed.process_id()])
        .await
        .expect("terminates");
    let mut seen = false;
    for _ in 0..100 {
        if !closed.is_ready() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the server's closing is seen without a round trip");
}

#[tokio::test]
async fn a_large_answer_leaves_no_large_buffer_behind() {
    let db = TestDatabase::empty().await.expect("database");
    let mut conn = connect(&db).await;
    conn.push("SELECT repeat('x', $1::int)", &["4000000"])
        .expect("queued");
    let results = conn.sync().await.expect("runs");
    assert_eq!(results[0][0].text(0).map(str::len), Some(4_000_000));
    drop(results);
    assert!(
        conn.buffer_capacity() < 1024 * 1024,
        "{} bytes kept",
        conn.buffer_capacity()
    );
}

#[tokio::test]
async fn cleartext_md5_and_scram_passwords_all_log_in_and_a_wrong_one_is_refused() {
    let (own, admin) = crate::database::OwnCluster::start().await;
    admin
        .batch_execute(
            "SET password_encryption = 'md5';
             CREATE ROLE by_md5 LOGIN PASSWORD 'md5-secret';
             SET password_encryption = 'scram-sha-256';
             CREATE ROLE by_scram LOGIN PASSWORD 'scram-secret';
             CREATE ROLE by_cleartext LOGIN PASSWORD 'clear-secret';",
        )
        .await
        .expect("roles");
    std::fs::write(
        own.cluster.pgdata().join("pg_hba.conf"),
        "local all postgres trust\nlocal all by_md5 md5\nlocal all by_scram scram-sha-256\n\
         local all by_cleartext password\n",
    )
    .expect("pg_hba");
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");

    for (user, password) in [
        ("by_md5", "md5-secret"),
        ("by_scram", "scram-secret"),
        ("by_cleartext", "clear-secret"),
    ] {
        let mut config = own.cluster.connect_config("postgres", user);
        config.password(password);
        let mut conn = Connection::connect(&config)
            .await
            .unwrap_or_else(|err| panic!("{user} logs in: {err}"));
        assert_eq!(
            one_value(&mut conn, "SELECT current_user::text").await,
            Some(user.to_owned())
        );
        config.password("wrong");
        let err = Connection::connect(&config)
            .await
            .expect_err("a wrong password is refused");
        assert_eq!(code(&err), "28P01", "{user}");
    }
}

#[tokio::test]
async fn hosts_are_tried_in_turn_and_a_read_only_server_is_passed_over_for_read_write() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    let socket = galley_testkit::TestCluster::shared()
        .await
        .cluster()
        .socket_dir();
    let mut config: tokio_postgres::Config = db.url().parse().expect("url");
    // A first host with no server behind it: the second one answers.
    let mut both = tokio_postgres::Config::new();
    both.host_path("/nonexistent/galley-socket-dir")
        .host_path(&socket)
        .user(config.get_user().expect("user"))
        .dbname(config.get_dbname().expect("database"));
    let mut conn = Connection::connect(&both).await.expect("the second host");
    assert_eq!(one_value(&mut conn, "SELECT 1").await, Some("1".to_owned()));

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name
        ))
        .await
        .expect("read-only database");
    config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    let err = Connection::connect(&config)
        .await
        .expect_err("no read-write server");
    assert!(err.to_string().contains("read-only"), "{err}");
    config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::Any);
    Connection::connect(&config)
        .await
        .expect("any server will do");
}

#[tokio::test]
async fn groups_in_one_pipeline_are_transactions_of_their_own() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    admin
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        .await
        .expect("table");
    let mut conn = connect(&db).await;
    let insert =
        "INSERT INTO notes VALUES ($1::int, current_setting('app.who', true)) RETURNING body";
    // 1: a setting and a row, committed at its Sync.
    conn.push("SELECT set_config('app.who', $1, true)", &["ada"])
        .expect("queued");
    conn.push(insert, &["1"]).expect("queued");
    conn.end_group();
    // 2: a row, then a failure: neither kept, and the statement parsed here for the
    // first time is not prepared (its Parse was skipped)...
    conn.push("INSERT INTO notes VALUES ($1::int, 'lost')", &["2"])
        .expect("queued");
    conn.push("SELECT 1 / $1::int", &["0"]).expect("queued");
    conn.push("SELECT 'first parsed behind a failure' || $1", &["!"])
        .expect("queued");
    conn.end_group();
    // 3: ...so this group, using it, parses it again rather than bind a name that was
    // never prepared; the setting of group 1 did not outlive it.
    conn.push("SELECT 'first parsed behind a failure' || $1", &["?"])
        .expect("queued");
    conn.push(insert, &["3"]).expect("queued");
    conn.end_group();
    // 4: the duplicate key of group 1.
    conn.push(insert, &["1"]).expect("queued");
    let groups = conn.run_groups().await.expect("the connection answers");
    assert_eq!(groups.len(), 4);
    let first = groups[0].as_ref().expect("group 1 commits");
    assert_eq!(first[1][0].text(0), Some("ada"));
    assert_eq!(
        code(groups[1].as_ref().expect_err("group 2 fails")),
        "22012"
    );
    let third = groups[2].as_ref().expect("group 3 commits");
    assert_eq!(third[0][0].text(0), Some("first parsed behind a failure?"));
    assert_eq!(
        third[1][0].text(0),
        Some(""),
        "no setting left from group 1"
    );
    assert_eq!(
        code(groups[3].as_ref().expect_err("group 4 fails")),
        "23505"
    );
    assert!(conn.is_ready(), "every group ended outside a transaction");
    let kept = admin
        .query("SELECT id FROM notes ORDER BY id", &[])
        .await
        .expect("rows");
    let kept: Vec<i32> = kept.iter().map(|row| row.get(0)).collect();
    assert_eq!(kept, [1, 3]);
    let held = prepared(&mut conn).await;
    assert_eq!(
        held,
        conn.prepared_statements(),
        "the session holds what the cache knows"
    );
}

/// A request pool of `size` connections for one worker, on `db`.
fn one_worker_pool(db: &TestDatabase, size: usize) -> galley_db::Pools {
    let config: tokio_postgres::Config = db.url().parse().expect("url");
    let targets = galley_db::ConnectTargets {
        owner: config.clone(),
        authenticator: config,
    };
    galley_db::Pools::build(&targets, size, 1, Duration::from_secs(10))
}

#[tokio::test]
async fn batched_requests_each_get_their_own_answer_and_a_gone_one_is_not_sent() {
    let db = TestDatabase::empty().await.expect("database");
    let admin = db.connect().await.expect("admin");
    admin
        .batch_execute("CREATE TABLE notes (id int PRIMARY KEY)")
        .await
        .expect("table");
    let pools = one_worker_pool(&db, 2);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            pools.api.bind_worker();
            // Queued before the batcher first runs: one whose request is gone by then...
            let gone = pools.api.run_group(vec![(
                "INSERT INTO notes VALUES ($1::int)".into(),
                vec!["99".into()],
            )]);
            assert!(
                tokio::time::timeout(Duration::ZERO, gone).await.is_err(),
                "queued, not answered yet"
            );
            // ...and forty others, every fifth failing.
            let tasks: Vec<_> = (0..40)
                .map(|n| {
                    let api = pools.api.clone();
                    tokio::task::spawn_local(async move {
                        let last = if n % 5 == 0 {
                            "SELECT 1 / 0, pg_backend_pid()"
                        } else {
                            "SELECT current_setting('app.n')::int * 2, pg_backend_pid()"
                        };
                        let (answer, _) = api
                            .run_group(vec![
                                (
                                    "SELECT set_config('app.n', $1, true)".into(),
                                    vec![n.to_string()],
                                ),
                                (last.into(), vec![]),
                            ])
                            .await;
                        (n, answer)
                    })
                })
                .collect();
            let mut backends = std::collections::HashSet::new();
            for task in tasks {
                let (n, answer) = task.await.expect("task");
                if n % 5 == 0 {
                    assert_eq!(code(&answer.expect_err("division by zero")), "22012");
                } else {
                    let rows = answer.expect("answered");
                    assert_eq!(rows[1][0].text(0), Some((n * 2).to_string().as_str()));
                    backends.insert(rows[1][0].text(1).expect("pid").to_owned());
                }
            }
            let sent = pools.api.sent();
            let batches = sent.batches.load(std::sync::atomic::Ordering::Relaxed);
            let groups = sent.groups.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(groups, 40, "the gone request was not sent");
            assert!(
                batches < 40,
                "requests shared batches: {batches} for {groups}"
            );
            assert!(
                backends.len() <= 2,
                "one connection per batch: {backends:?}"
            );
        })
        .await;
    let kept = admin
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count");
    assert_eq!(kept.get::<_, i64>(0), 0);
}

/// Slow statements in every batch a worker keeps in flight hold up the next request
/// only until it has waited long enough to be sent in a batch of its own.
#[tokio::test]
async fn a_read_queued_behind_slow_batches_is_sent_in_another() {
    let db = TestDatabase::empty().await.expect("database");
    let pools = one_worker_pool(&db, 3);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            pools.api.bind_worker();
            // Each slow statement leaves in a batch of its own: the second is queued
            // once the first has been sent.
            let mut slow = Vec::new();
            for _ in 0..2 {
                let api = pools.api.clone();
                slow.push(tokio::task::spawn_local(async move {
                    api.run_group(vec![("SELECT pg_sleep(5)".into(), vec![])])
                        .await
                }));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let (answer, _) = pools
                .api
                .run_group(vec![("SELECT 'quick'".into(), vec![])])
                .await;
            assert_eq!(answer.expect("answered")[0][0].text(0), Some("quick"));
            assert!(
                slow.iter().all(|task| !task.is_finished()),
                "answered while both slow batches were still in flight"
            );
            for task in slow {
                task.await.expect("task").0.expect("slept");
            }
            let sent = pools.api.sent();
            assert_eq!(sent.batches.load(std::sync::atomic::Ordering::Relaxed), 3);
        })
        .await;
}
