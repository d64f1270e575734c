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
pub(crate) struct OwnCluster {
    pub(crate) cluster: galley_db::Cluster,
    _dir: tempfile::TempDir,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}

impl OwnCluster {
    /// A cluster of the test's own, started, and a superuser connection to it.
    pub(crate) async fn start() -> (OwnCluster, tokio_postgres::Client) {
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
        let (admin, connection) = own
            .cluster
            .connect_config("postgres", galley_db::SUPERUSER)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("superuser connects");
        tokio::spawn(connection);
        (own, admin)
    }
}

#[tokio::test]
async fn an_operator_database_runs_without_a_superuser_once_the_roles_exist() {
    // What an operator does once, as a superuser (see README): roles, an owner, a database.
    let (own, admin) = OwnCluster::start().await;
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

    // Without the event trigger, tables the owner makes with psql are adopted by the next
    // poll: row-level security forced, service_role granted, recorded in a form that replays.
    let galley = GalleyProcess::serve(
        crate::support::galley_bin(),
        &["--database-url", &url],
        &[
            ("GALLEY_AUTH_JWT_SECRET", secret),
            ("GALLEY_DATABASE_ALLOW_UNSAFE_DURABILITY", "true"),
        ],
    )
    .expect("serves");
    let (psql, connection) = format!("{url}&application_name=psql")
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("owner connects");
    tokio::spawn(connection);
    psql.batch_execute(
        "CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL UNIQUE, \
           bio text COLLATE \"C\", joined timestamptz DEFAULT now()); \
         CREATE TABLE books (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
           author_id int REFERENCES authors (id) ON DELETE CASCADE, \
           title text CHECK (length(title) > 0), pages int, \
           sheets int GENERATED ALWAYS AS (pages / 2) STORED); \
         CREATE INDEX books_title ON books (lower(title)); \
         COMMENT ON TABLE books IS 'the author''s books'; \
         INSERT INTO authors (name) VALUES ('Ann');",
    )
    .await
    .expect("DDL as the owner");
    let keys = crate::support::run_galley(
        &["keys", "--database-url", &url],
        &[("GALLEY_AUTH_JWT_SECRET", secret)],
        std::path::Path::new("."),
    );
    let keys = String::from_utf8(keys.stdout).expect("utf-8");
    let key = |role: &str| {
        keys.lines()
            .find_map(|line| line.strip_prefix(&format!("{role}: ")))
            .unwrap_or_else(|| panic!("{role} key in {keys}"))
            .to_owned()
    };
    let http = reqwest::Client::new();
    let served = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        http.get(galley.url("/rest/v1/authors?select=name"))
            .bearer_auth(key("service_role"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served, "service_role reads the table made with psql");
    let anon = http
        .get(galley.url("/rest/v1/authors"))
        .header("apikey", key("anon"))
        .send()
        .await
        .expect("response");
    assert_eq!(anon.status(), 401, "others only through rules");
    for table in ["authors", "books"] {
        let row = psql
            .query_one(
                "SELECT relrowsecurity, relforcerowsecurity, \
                        has_table_privilege('service_role', c.oid, 'SELECT') \
                 FROM pg_class c WHERE c.oid = ('public.' || $1)::regclass",
                &[&table],
            )
            .await
            .expect("catalog");
        let flags: (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(flags, (true, true, true), "{table}");
    }
    let recorded: Vec<(String, String, String)> = psql
        .query(
            "SELECT actor, target, sql FROM galley.schema_history WHERE operation = 'adopt'",
            &[],
        )
        .await
        .expect("history")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (actor, target, sql) = &recorded[0];
    assert_eq!(actor, "galley_owner (outside Galley)");
    assert_eq!(target, "authors,books");
    // Replayed into an empty database, the record makes the same tables.
    admin
        .batch_execute("CREATE DATABASE replay OWNER galley_owner")
        .await
        .expect("database");
    let (replay, connection) = own
        .cluster
        .connect_config("replay", galley_db::SUPERUSER)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    replay
        .batch_execute(sql)
        .await
        .unwrap_or_else(|err| panic!("{err:?}\n{sql}"));
    const SHAPE: &str = "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ( \
           SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                  || ' ' || a.attnotnull || ' ' || a.attidentity::text || a.attgenerated::text || ' ' \
                  || a.attcollation::regcollation::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS x \
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' \
           UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE connamespace = 'public'::regnamespace \
           UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
           UNION ALL SELECT relname || ' ' || relrowsecurity || relforcerowsecurity || ' ' \
                  || coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class \
                     WHERE relnamespace = 'public'::regnamespace AND relkind = 'r') parts";
    let original: String = psql.query_one(SHAPE, &[]).await.expect("shape").get(0);
    let replayed: String = replay.query_one(SHAPE, &[]).await.expect("shape").get(0);
    assert_eq!(replayed, original, "{sql}");

    // An admin who turns row-level security off afterwards is not overruled: the next
    // adoption (of another table) leaves it off.
    psql.batch_execute(
        "ALTER TABLE authors DISABLE ROW LEVEL SECURITY; CREATE TABLE later (id int);",
    )
    .await
    .expect("DDL");
    let adopted = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        psql.query_one(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.later'::regclass",
            &[],
        )
        .await
        .is_ok_and(|row| row.get::<_, bool>(0))
    })
    .await;
    assert!(adopted, "the later table is adopted");
    let authors: bool = psql
        .query_one(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.authors'::regclass",
            &[],
        )
        .await
        .expect("catalog")
        .get(0);
    assert!(
        !authors,
        "row-level security stays off where the admin turned it off"
    );
    drop(galley);

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
