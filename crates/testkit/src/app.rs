//! Galley in-process, on a free port, against a fresh database.

use std::net::SocketAddr;

use galley_auth::{ApiRole, JwtSecret, mint_api_key};
use galley_server::{Application, Config, LogFormat};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::cluster::TestDatabase;

/// A running Galley and the database behind it.
pub struct TestApp {
    pub address: SocketAddr,
    /// The metrics listener, when it runs.
    pub metrics_address: Option<SocketAddr>,
    pub db: TestDatabase,
    pub http: reqwest::Client,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `/metrics` on the metrics listener.
    pub fn metrics_url(&self) -> String {
        let address = self.metrics_address.expect("the metrics listener runs");
        format!("http://{address}/metrics")
    }

    /// The `service_role` API key for this app's secret.
    pub fn service_key(&self) -> String {
        self.key(ApiRole::ServiceRole)
    }

    /// The `anon` API key for this app's secret.
    pub fn anon_key(&self) -> String {
        self.key(ApiRole::Anon)
    }

    /// An access token for a signed-in user `sub` (role `authenticated`), as the auth
    /// endpoints will issue them.
    pub fn user_token(&self, sub: &str) -> String {
        let secret = self
            .config
            .auth
            .jwt_secret
            .as_ref()
            .expect("test apps have a configured secret");
        let claims = serde_json::json!({
            "sub": sub,
            "role": "authenticated",
            "aud": "authenticated",
            "exp": chrono::Utc::now().timestamp() + 3600,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        )
        .expect("HS256 signing cannot fail")
    }

    fn key(&self, role: ApiRole) -> String {
        let secret = self
            .config
            .auth
            .jwt_secret
            .as_ref()
            .expect("test apps have a configured secret");
        let secret = JwtSecret::parse(secret.expose_secret()).expect("a valid test secret");
        mint_api_key(&secret, role, chrono::Utc::now())
    }

    /// Shuts Galley down the way SIGTERM would, and returns how it ended.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.stopped.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

/// Galley with default settings on a fresh migrated database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Galley with settings adjusted by `configure`, on a fresh migrated database.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::migrated()
        .await
        .expect("a fresh test database");
    spawn_app_on(db, configure).await
}

/// Another Galley instance on the same database and secret as `app`: a second node
/// behind the load balancer.
pub async fn spawn_second_instance(app: &TestApp) -> TestApp {
    spawn_second_instance_with(app, |_| {}).await
}

/// Another instance on the same database and secret, with settings of its own (a
/// rolling change of configuration).
pub async fn spawn_second_instance_with(
    app: &TestApp,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let secret = app.config.auth.jwt_secret.clone();
    spawn_app_on(app.db.clone(), move |config| {
        config.auth.jwt_secret = secret;
        configure(config);
    })
    .await
}

async fn spawn_app_on(db: TestDatabase, configure: impl FnOnce(&mut Config)) -> TestApp {
    init_test_logging();
    let mut config = Config::default();
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.http.workers = Some(1);
    config.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.database.url = Some(SecretString::from(db.url()));
    config.database.pool_size = 4;
    // The test cluster runs with fsync off: fine for tests, refused anywhere else.
    config.database.allow_unsafe_durability = true;
    config.auth.jwt_secret = Some(SecretString::from(random_secret()));
    // Unused with a database URL, but keep anything Galley writes out of the checkout.
    config.data_dir = std::env::temp_dir().join(format!("galley-test-app-{}", db.name));
    configure(&mut config);

    let app = Application::build(config.clone())
        .await
        .expect("Galley starts");
    let address = app.address();
    let metrics_address = app.metrics_address();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        metrics_address,
        db,
        http: reqwest::Client::new(),
        config,
        stop: Some(stop),
        stopped: Some(handle),
    }
}

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Logs from in-process apps go to the test's captured output; `RUST_LOG`-style filters
/// come from `TEST_LOG` (e.g. `TEST_LOG=debug`), quiet by default.
fn init_test_logging() {
    let level = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
    // The writer's guard lives as long as the test process, so nothing is lost.
    if let Ok(Some(guard)) = galley_server::init_telemetry(LogFormat::Text, &level) {
        std::mem::forget(guard);
    }
}
