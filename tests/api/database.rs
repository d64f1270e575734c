//! What the migrations leave in the database: roles, schemas, helpers; and migrating from
//! two instances at once.

use galley_server::{Application, Config};
use galley_testkit::{GalleyProcess, TestDatabase, spawn_app};
use secrecy::SecretString;

#[tokio::test]
async fn roles_have_the_documented_attributes() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    let rows = client
        .query(
            "SELECT rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper FROM pg_roles \
             WHERE rolname IN ('authenticator', 'anon', 'authenticated', 'service_role') ORDER BY rolname",
            &[],
        )
        .await
        .expect("roles");
    let roles: Vec<(String, bool, bool, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("anon".into(), false, false, false, false),
            ("authenticated".into(), false, false, false, false),
            ("authenticator".into(), true, false, false, false),
            ("service_role".into(), false, false, true, false),
        ]
    );
    let member: bool = client
        .query_one(
            "SELECT bool_and(pg_has_role('authenticator', r, 'MEMBER')) FROM unnest(ARRAY['anon','authenticated','service_role']) r",
            &[],
        )
        .await
        .expect("membership")
        .get(0);
    assert!(member, "authenticator may switch to every API role");
}

#[tokio::test]
async fn auth_helpers_read_the_request_claims_like_supabase() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    let row = client
        .query_one(
            "SELECT set_config('request.jwt.claims', $1, false), auth.uid()::text, auth.role(), auth.jwt() ->> 'email'",
            &[&r#"{"sub":"8d0fd2b3-9ca9-4b4e-9c4e-1d7f0e0d3a11","role":"authenticated","email":"a@example.com"}"#],
        )
        .await
        .expect("helpers");
    // set_config runs in the same statement, so read the helpers in a second one.
    drop(row);
    let row = client
        .query_one(
            "SELECT auth.uid()::text, auth.role(), auth.jwt() ->> 'email'",
            &[],
        )
        .await
        .expect("helpers");
    assert_eq!(
        row.get::<_, String>(0),
        "8d0fd2b3-9ca9-4b4e-9c4e-1d7f0e0d3a11"
    );
    assert_eq!(row.get::<_, String>(1), "authenticated");
    assert_eq!(row.get::<_, String>(2), "a@example.com");

    let unset = client
        .query_one(
            "SELECT set_config('request.jwt.claims', '', false) IS NOT NULL, auth.uid() IS NULL, auth.role() IS NULL",
            &[],
        )
        .await
        .expect("helpers");
    assert!(unset.get::<_, bool>(0));
    let unset = client
        .query_one("SELECT auth.uid() IS NULL, auth.role() IS NULL", &[])
        .await
        .expect("helpers");
    assert!(unset.get::<_, bool>(0) && unset.get::<_, bool>(1));
}

#[tokio::test]
async fn api_roles_see_nothing_of_galleys_own_tables() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    for role in ["anon", "authenticated"] {
        let readable: bool = client
            .query_one(
                "SELECT has_table_privilege($1, 'auth.users', 'SELECT')",
                &[&role],
            )
            .await
            .expect("privilege")
            .get(0);
        assert!(!readable, "{role} can read auth.users");
        let usable: bool = client
            .query_one(
                "SELECT has_schema_privilege($1, 'galley', 'USAGE')",
                &[&role],
            )
            .await
            .expect("privilege")
            .get(0);
        assert!(!usable, "{role} can use schema galley");
    }
}

#[tokio::test]
async fn every_foreign_key_in_galleys_schemas_has_an_index() {
    let app = spawn_app().await;
    let client = app.db.connect().await.expect("connect");
    let unindexed = client
        .query(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c \
             JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE c.contype = 'f' AND n.nspname IN ('auth', 'galley') \
             AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid \
                 AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)",
            &[],
        )
        .await
        .expect("lint");
    let names: Vec<String> = unindexed
        .iter()
        .map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert!(names.is_empty(), "foreign keys without an index: {names:?}");
}

#[tokio::test]
async fn two_instances_starting_together_apply_each_migration_once() {
    let db = TestDatabase::empty().await.expect("empty database");
    let config = |_: ()| {
        let mut config = Config::default();
        config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.http.workers = Some(1);
        config.metrics.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        config.database.url = Some(SecretString::from(db.url()));
        config.database.allow_unsafe_durability = true;
        config.auth.jwt_secret = Some(SecretString::from(
            "8f3a6c1e9b2d4f7a0c5e8b1d3f6a9c2e4b7d0f3a",
        ));
        config.data_dir = std::env::temp_dir().join(format!("galley-two-{}", db.name));
        config
    };
    let (a, b) = tokio::join!(
        Application::build(config(())),
        Application::build(config(()))
    );
    let (a, b) = (
        a.expect("first instance starts"),
        b.expect("second instance starts"),
    );
    let client = db.connect().await.expect("connect");
    let rows = client
        .query("SELECT version, count(*) FROM galley.schema_migrations GROUP BY version ORDER BY version", &[])
        .await
        .expect("history");
    assert_eq!(rows.len() as i32, galley_db::expected_version());
    for row in rows {
        assert_eq!(
            row.get::<_, i64>(1),
            1,
            "migration {} applied once",
            row.get::<_, i32>(0)
        );
    }

    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let (addr_a, addr_b) = (a.address(), b.address());
    let run_a = tokio::spawn(a.run_until(async move {
        let _ = stopped_a.await;
    }));
    let run_b = tokio::spawn(b.run_until(async move {
        let _ = stopped_b.await;
    }));
    for addr in [addr_a, addr_b] {
        let status = reqwest::get(format!("http://{addr}/health/ready"))
            .await
            .expect("response")
            .status();
        assert_eq!(status, 200, "{addr} ready");
    }
    let _ = (stop_a.send(()), stop_b.send(()));
    run_a.await.expect("join").expect("clean stop");
    run_b.await.expect("join").expect("clean stop");
}

/// A cluster of the test's own, stopped when dropped.
struct OwnCluster {
    cluster: galley_db::Cluster,
    _dir: tempfile::TempDir,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}

#[tokio::test]
async fn an_operator_database_runs_without_a_superuser_once_the_roles_exist() {
    let dir = crate::support::data_dir();
    let bins = galley_db::PgBinaries::locate(None).expect("binaries");
    let options = galley_db::ClusterOptions {
        durable: false,
        ..galley_db::ClusterOptions::default()
    };
    let cluster = galley_db::Cluster::new(dir.path(), bins, options).expect("cluster");
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .expect("join")
        .expect("starts");
    let own = OwnCluster { cluster, _dir: dir };

    // What an operator does once, as a superuser (see README): roles, an owner, a database.
    let (admin, connection) = own
        .cluster
        .connect_config("postgres", galley_db::SUPERUSER)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("superuser connects");
    tokio::spawn(connection);
    admin
        .batch_execute(
            "CREATE ROLE anon NOLOGIN NOINHERIT;
             CREATE ROLE authenticated NOLOGIN NOINHERIT;
             CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
             CREATE ROLE authenticator LOGIN NOINHERIT;
             CREATE ROLE galley_owner LOGIN CREATEROLE PASSWORD 'owner-password-123';",
        )
        .await
        .expect("operator roles");
    admin
        .batch_execute("CREATE DATABASE app OWNER galley_owner")
        .await
        .expect("operator database");
    // Passwords are checked for everyone but the superuser from now on.
    let hba = own.cluster.pgdata().join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all postgres trust\nlocal all all scram-sha-256\n",
    )
    .expect("pg_hba");
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");

    let socket = own.cluster.socket_dir();
    let url = format!(
        "postgresql://galley_owner:owner-password-123@/app?host={}",
        socket.to_str().expect("utf-8")
    );
    let secret = "5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99";
    for start in ["first", "second"] {
        let galley = GalleyProcess::serve(
            crate::support::galley_bin(),
            &["--database-url", &url],
            &[
                ("GALLEY_AUTH_JWT_SECRET", secret),
                ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
            ],
        )
        .unwrap_or_else(|err| panic!("{start} start: {err:#}"));
        let ready = reqwest::get(galley.url("/health/ready"))
            .await
            .expect("response");
        assert_eq!(ready.status(), 200, "{start} start is ready");
        let set_password = galley
            .logs()
            .iter()
            .any(|line| line.contains("set the password of the `authenticator` role"));
        // The first start gives authenticator its password; the second finds it working.
        assert_eq!(set_password, start == "first", "{start} start");
    }
    let superuser: bool = admin
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'galley_owner'",
            &[],
        )
        .await
        .expect("role")
        .get(0);
    assert!(!superuser);

    // Backups: refused by name while row-level security binds the owner; once the
    // operator grants BYPASSRLS, a backup is taken and verifies.
    let backups = crate::support::data_dir();
    let backup = |command: &str| {
        crate::support::run_galley(
            &["backup", command, "--database-url", &url],
            &[
                ("GALLEY_AUTH_JWT_SECRET", secret),
                ("GALLEY_BACKUP_DIR", backups.path().to_str().expect("utf-8")),
            ],
            backups.path(),
        )
    };
    let refused = backup("create");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ALTER ROLE galley_owner BYPASSRLS"),
        "{stderr}"
    );
    admin
        .batch_execute("ALTER ROLE galley_owner BYPASSRLS CREATEDB")
        .await
        .expect("grant");
    for command in ["create", "verify"] {
        let output = backup(command);
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn a_server_that_can_lose_acknowledged_writes_is_refused() {
    // The test cluster runs with fsync off.
    let db = TestDatabase::migrated().await.expect("database");
    let mut config = Config::default();
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.database.url = Some(SecretString::from(db.url()));
    config.auth.jwt_secret = Some(SecretString::from(
        "3f1d9a7c5e2b4086a1c3e5f7092b4d6f8a1c3e5f",
    ));
    let err = match Application::build(config).await {
        Ok(_) => panic!("started on an fsync=off server"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("fsync=off"), "{err}");
    assert!(err.contains("allow_unsafe_durability"), "{err}");
}
