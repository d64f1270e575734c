//! The shared throwaway cluster and the per-test databases cloned from its template.

use std::path::PathBuf;

use anyhow::Context;
use galley_db::{Cluster, ClusterOptions, PgBinaries, SUPERUSER};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

/// The cluster every test of this run shares.
#[derive(Debug, Clone)]
pub struct TestCluster {
    cluster: Cluster,
    template: String,
}

static SHARED: OnceCell<TestCluster> = OnceCell::const_new();

impl TestCluster {
    /// Finds the run's cluster, starting it (and building the template database) if this
    /// is the first test process to need it. Panics when no cluster can be had: no test
    /// can run without one.
    pub async fn shared() -> &'static TestCluster {
        SHARED
            .get_or_try_init(Self::start)
            .await
            .expect("the test PostgreSQL cluster starts")
    }

    async fn start() -> anyhow::Result<TestCluster> {
        let root = root_dir();
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let bins = PgBinaries::locate(None)?;
        let options = ClusterOptions {
            durable: false,
            os_user: "postgres".to_owned(),
            max_connections: 400,
        };
        let cluster = Cluster::new(&root, bins, options)?;
        // Blocks while another test process is starting the cluster.
        let locking = cluster.clone();
        let lock = tokio::task::spawn_blocking(move || locking.lock(true))
            .await??
            .context("locking the test cluster")?;
        if !cluster.is_running() {
            let starting = cluster.clone();
            tokio::task::spawn_blocking(move || starting.start()).await??;
        }
        let template = format!("galley_template_{}", galley_db::migrations_fingerprint());
        ensure_template(&cluster, &template).await?;
        drop(lock);
        Ok(TestCluster { cluster, template })
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// A superuser connection to `database`.
    pub async fn connect(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.cluster, database).await
    }
}

/// `$TESTKIT_ROOT` when set (the test script points it at a fresh directory per run and
/// removes it afterwards), else a directory per checkout under the system's temp dir,
/// reused by later `cargo test` runs.
fn root_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESTKIT_ROOT") {
        return PathBuf::from(dir);
    }
    // One cluster per checkout; short, so the socket path stays under 107 bytes.
    let manifest = env!("CARGO_MANIFEST_DIR");
    let tag: u32 = manifest.bytes().fold(2166136261u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16777619)
    });
    std::env::temp_dir().join(format!("galley-testkit-{tag:08x}"))
}

async fn connect(cluster: &Cluster, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = cluster
        .connect_config(database, SUPERUSER)
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to test database {database}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Builds the migrated template under a scratch name and renames it when complete, so a
/// test process that died half-way never leaves a broken template behind.
async fn ensure_template(cluster: &Cluster, template: &str) -> anyhow::Result<()> {
    let admin = connect(cluster, "postgres").await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    let scratch = format!("{template}_building");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {scratch}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {scratch}"))
        .await?;
    {
        let mut owner = connect(cluster, &scratch).await?;
        let authenticator = cluster.connect_config(&scratch, galley_db::AUTHENTICATOR_ROLE);
        galley_db::migrate(&mut owner, &authenticator)
            .await
            .context("migrating the template")?;
    }
    // Wait for the migration connection to be gone: CREATE DATABASE .. TEMPLATE refuses
    // a template with sessions.
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{scratch}' AND pid <> pg_backend_pid()"
        ))
        .await?;
    admin
        .batch_execute(&format!("ALTER DATABASE {scratch} RENAME TO {template}"))
        .await?;
    admin
        .batch_execute(&format!("ALTER DATABASE {template} IS_TEMPLATE true"))
        .await?;
    Ok(())
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    cluster: TestCluster,
}

impl TestDatabase {
    /// A fresh database with Galley's migrations applied (a copy of the template).
    pub async fn migrated() -> anyhow::Result<TestDatabase> {
        let cluster = TestCluster::shared().await;
        Self::create(cluster, Some(&cluster.template)).await
    }

    /// A fresh database with nothing of Galley's in it.
    pub async fn empty() -> anyhow::Result<TestDatabase> {
        Self::create(TestCluster::shared().await, None).await
    }

    async fn create(cluster: &TestCluster, template: Option<&str>) -> anyhow::Result<TestDatabase> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = cluster.connect("postgres").await?;
        let template = template.unwrap_or("template0");
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
            ))
            .await
            .with_context(|| format!("creating {name}"))?;
        Ok(TestDatabase {
            name,
            cluster: cluster.clone(),
        })
    }

    /// A `postgres://` URL for the superuser, as an operator would pass to Galley.
    pub fn url(&self) -> String {
        self.cluster.cluster.url(&self.name)
    }

    /// A superuser connection, for setting up and inspecting data behind Galley's back.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.cluster.connect(&self.name).await
    }
}
