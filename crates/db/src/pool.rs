//! Connection pools: `api` logs in as `authenticator` and serves requests (each switches
//! role inside its own transaction, over [`crate::wire`]'s connections); `owner` runs
//! migrations, DDL and Galley's own bookkeeping (tokio-postgres).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::api_pool::ApiPool;
use crate::embedded::{Cluster, SUPERUSER};
use crate::{AUTHENTICATOR_ROLE, EMBEDDED_DATABASE};

/// Where the two kinds of connection go.
#[derive(Debug, Clone)]
pub struct ConnectTargets {
    pub owner: tokio_postgres::Config,
    pub authenticator: tokio_postgres::Config,
}

impl ConnectTargets {
    /// The embedded cluster: both roles over its private socket, where the cluster trusts
    /// whoever can reach the socket (only its own system user and root can).
    pub fn embedded(cluster: &Cluster) -> Self {
        Self {
            owner: cluster.connect_config(EMBEDDED_DATABASE, SUPERUSER),
            authenticator: cluster.connect_config(EMBEDDED_DATABASE, AUTHENTICATOR_ROLE),
        }
    }

    /// An operator-owned server: the URL's role is the owner; `authenticator` connects to
    /// the same server and database with `authenticator_password`.
    pub fn from_url(url: &str, authenticator_password: &str) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("must start with postgres:// or postgresql://".to_owned());
        }
        let mut owner = tokio_postgres::Config::from_str(url).map_err(|err| err.to_string())?;
        // Galley's own connections say so: the schema's event trigger leaves their DDL to
        // Galley, which records it itself.
        owner.application_name("galley");
        if owner.get_hosts().is_empty() {
            return Err("names no host".to_owned());
        }
        if owner.get_user().is_none() {
            return Err("names no user".to_owned());
        }
        let mut authenticator = owner.clone();
        authenticator
            .user(AUTHENTICATOR_ROLE)
            .password(authenticator_password);
        Ok(Self {
            owner,
            authenticator,
        })
    }

    /// Bounds every connection attempt and keeps idle connections probed, so a dead
    /// server or network shows up as an error within `timeout` rather than a hang.
    pub fn with_timeouts(mut self, timeout: Duration) -> Self {
        for config in [&mut self.owner, &mut self.authenticator] {
            config
                .connect_timeout(timeout)
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(30))
                .application_name("galley");
        }
        self
    }
}

/// The two pools every Galley instance holds.
#[derive(Clone)]
pub struct Pools {
    pub api: ApiPool,
    pub owner: Pool,
}

/// Connections for the threads that are no HTTP worker (readiness probes, tests).
const OTHER_API_CONNECTIONS: usize = 2;

impl Pools {
    /// Builds both pools, the request pool in one shard per HTTP worker (`api_size`
    /// connections split between them); no connection is opened until one is asked for,
    /// so Galley starts (and reports itself not ready) while the database is down.
    pub fn build(
        targets: &ConnectTargets,
        api_size: usize,
        workers: usize,
        timeout: Duration,
    ) -> Self {
        let workers = workers.clamp(1, api_size.max(1));
        // A request connection knows whether its last pipeline ended outside any
        // transaction, and a probe of its socket shows whether the server closed it
        // since (a database restart): either way it is replaced, without a round trip.
        let api = |size| crate::wire::pool(targets.authenticator.clone(), size, timeout);
        let shards = (0..workers)
            .map(|n| api(api_size / workers + usize::from(n < api_size % workers)))
            .collect();
        Self {
            api: ApiPool::new(shards, api(OTHER_API_CONNECTIONS)),
            // `Verified` runs a trivial query before handing out a reused connection, so
            // schema changes, auth and background work never start on a dead one.
            owner: pool(
                targets.owner.clone(),
                10,
                timeout,
                RecyclingMethod::Verified,
            ),
        }
    }
}

fn pool(
    config: tokio_postgres::Config,
    size: usize,
    timeout: Duration,
    recycling_method: RecyclingMethod,
) -> Pool {
    // Requests only ever change settings with set_config(.., true), which end with their
    // transaction, so no state leaks between requests.
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method });
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .expect("a pool with a runtime and timeouts always builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_targets_share_server_and_database_but_not_role() {
        let targets =
            ConnectTargets::from_url("postgres://owner:pw@db.example:6543/app", "derived")
                .expect("valid");
        assert_eq!(targets.owner.get_user(), Some("owner"));
        assert_eq!(targets.authenticator.get_user(), Some("authenticator"));
        assert_eq!(targets.authenticator.get_password(), Some(&b"derived"[..]));
        assert_eq!(targets.authenticator.get_dbname(), Some("app"));
        assert_eq!(targets.authenticator.get_ports(), &[6543]);
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert!(ConnectTargets::from_url("mysql://x@y/z", "p").is_err());
        assert!(ConnectTargets::from_url("postgres://", "p").is_err());
        assert!(ConnectTargets::from_url("postgres://host:notaport/db", "p").is_err());
    }
}
