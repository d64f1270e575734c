//! Database changes for `postgres_changes` subscribers.
//!
//! Capture (`migrations/V12__realtime_changes.sql`): a table that opted in logs each
//! changed row to `galley.realtime_changes` from a trigger, in the writer's transaction,
//! and notifies `galley_realtime` on commit. No replication privilege or superuser is
//! needed, and a change made any way (any instance, psql) is logged.
//!
//! Reading ([`feed`]): every instance follows the log by snapshot. Each read runs in a
//! REPEATABLE READ transaction and returns the rows of exactly the transactions that
//! became visible since the previous read's snapshot (those at or past its `xmax`, or in
//! progress then), so every committed change is read once, none twice, in whatever
//! order transactions commit; a long-running transaction delays nothing but itself.
//! Within one read, transactions are ordered by their last change (a transaction that
//! depends on another's row waited for its commit, so it comes after).
//!
//! Delivery ([`deliver`]): per table, the changes are matched to subscriptions (schema,
//! table, event, filters evaluated by PostgreSQL on the row), then each distinct
//! identity (role and claims) asks PostgreSQL which of them it may see: an inserted or
//! updated row is looked up by its key under the subscriber's role and claims, so
//! row-level security decides; a deleted row is tested against the table's SELECT
//! policies for that role (the row is gone), and is sent as its key. Columns the role
//! may not read are left out. Identities go in one pipelined round trip per table.

mod bus;
pub mod deliver;
pub mod feed;
pub mod filter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use galley_schema::{Catalog, CatalogCache};
use serde_json::{Value, json};

use crate::Realtime;
use crate::hub::Outbox;
use crate::identity::Identity;
use crate::protocol::{self, Vsn};
use filter::Condition;

/// What change delivery needs from the rest of Galley.
pub struct ChangeSources {
    /// Galley's own role: reads the log and the catalog.
    pub owner: galley_db::Pool,
    /// `authenticator`: asks, as each subscriber, which rows it may see.
    pub api: galley_db::ApiPool,
    pub catalog: Arc<CatalogCache>,
    /// For the listening connection.
    pub listen: galley_db::tokio_postgres::Config,
}

/// The events a binding asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    All,
    Insert,
    Update,
    Delete,
}

impl Event {
    fn parse(value: Option<&Value>) -> Self {
        match value.and_then(Value::as_str).map(str::to_ascii_uppercase) {
            Some(event) if event == "INSERT" => Event::Insert,
            Some(event) if event == "UPDATE" => Event::Update,
            Some(event) if event == "DELETE" => Event::Delete,
            _ => Event::All,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Event::All => "*",
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
        }
    }

    pub(crate) fn matches(self, op: &str) -> bool {
        self == Event::All || self.name() == op
    }
}

/// One `postgres_changes` entry of a join.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The id the join reply gave it (what change messages carry in `ids`).
    pub id: u64,
    pub event: Event,
    pub schema: String,
    /// `*`: every published table of the schema.
    pub table: String,
    pub conditions: Vec<Condition>,
}

impl Binding {
    /// Reads a binding as Supabase Realtime does, or says why not in its words.
    pub fn parse(id: u64, params: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
        let (schema, table) = match (text("schema"), text("table")) {
            (Some(schema), Some(table)) => (schema, table),
            (Some(schema), None) => (schema, "*".to_owned()),
            (None, Some(table)) => ("public".to_owned(), table),
            (None, None) => {
                return Err(format!(
                    "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {}",
                    elixir_map(params)
                ));
            }
        };
        let conditions = match params.get("filter") {
            None => Vec::new(),
            Some(Value::String(filter)) => filter::parse(filter).map_err(|err| err.to_string())?,
            Some(_) => {
                return Err(format!(
                    "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: {}",
                    elixir_map(params)
                ));
            }
        };
        Ok(Self {
            id,
            event: Event::parse(params.get("event")),
            schema,
            table,
            conditions,
        })
    }

    /// `[event: *, schema: public, table: todos, filters: [], select: nil]`, as Supabase
    /// Realtime names a subscription in its messages.
    pub(crate) fn describe(&self) -> String {
        let filters: Vec<String> = self.conditions.iter().map(Condition::describe).collect();
        format!(
            "[event: {}, schema: {}, table: {}, filters: [{}], select: nil]",
            self.event.name(),
            self.schema,
            self.table,
            filters.join(", ")
        )
    }

    fn covers(&self, schema: &str, table: &str) -> bool {
        (self.schema == "*" || self.schema == schema) && (self.table == "*" || self.table == table)
    }
}

/// `%{"event" => "*", ...}`: a params map as Elixir's `inspect` prints it.
fn elixir_map(params: &serde_json::Map<String, Value>) -> String {
    let entries: Vec<String> = params
        .iter()
        .map(|(key, value)| format!("{key:?} => {value}"))
        .collect();
    format!("%{{{}}}", entries.join(", "))
}

/// Who a subscription sees rows as: what `request.jwt.claims` and `role` are set to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub role: &'static str,
    pub claims: Arc<str>,
}

impl Viewer {
    pub(crate) fn of(identity: &Identity) -> Self {
        Self {
            role: identity.role,
            claims: identity.claims.to_string().into(),
        }
    }
}

/// One channel's `postgres_changes` bindings.
pub struct Subscription {
    pub(crate) channel: u64,
    /// `realtime:<name>`.
    pub(crate) topic: String,
    pub(crate) join_ref: Value,
    pub(crate) vsn: Vsn,
    pub(crate) outbox: Outbox,
    pub(crate) bindings: Vec<Binding>,
    viewer: Mutex<Viewer>,
    /// Receives changes (bindings with filters only once their values were checked).
    active: AtomicBool,
}

impl Subscription {
    pub(crate) fn viewer(&self) -> Viewer {
        self.viewer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn sub_topic(&self) -> &str {
        self.topic.strip_prefix("realtime:").unwrap_or(&self.topic)
    }

    fn system(&self, ok: bool, message: &str) {
        let frame = protocol::encode(
            self.vsn,
            &self.join_ref,
            &Value::Null,
            &self.topic,
            "system",
            &json!({
                "channel": self.sub_topic(),
                "extension": "postgres_changes",
                "message": message,
                "status": if ok { "ok" } else { "error" },
            }),
        );
        self.outbox.send(frame);
    }
}

/// The subscriptions of this instance, and the change feed that serves them.
pub struct Changes {
    pub(crate) sources: ChangeSources,
    subscriptions: Mutex<HashMap<u64, Arc<Subscription>>>,
    pub(crate) tables: deliver::TableCache,
    pub(crate) bus: bus::Bus,
    /// A write through this instance committed changes to a published table.
    pub(crate) wake: tokio::sync::Notify,
    /// The feed holds its first snapshot: everything committed from now on is read.
    pub(crate) following: tokio::sync::watch::Sender<bool>,
}

impl Changes {
    pub fn new(sources: ChangeSources) -> Arc<Self> {
        Arc::new(Self {
            sources,
            subscriptions: Mutex::new(HashMap::new()),
            tables: deliver::TableCache::default(),
            bus: bus::Bus::default(),
            wake: tokio::sync::Notify::new(),
            following: tokio::sync::watch::Sender::new(false),
        })
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Subscription>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The active subscriptions, as of now.
    pub(crate) fn active(&self) -> Vec<Arc<Subscription>> {
        self.subscriptions()
            .values()
            .filter(|sub| sub.active.load(Ordering::Acquire))
            .cloned()
            .collect()
    }

    /// Subscribes a channel's bindings: refused (with Supabase Realtime's message) when
    /// a table does not publish or a filter names no column of it. Bindings without
    /// filters receive changes from now on; with filters, once their values are checked
    /// ([`Changes::confirm`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn subscribe(
        &self,
        channel: u64,
        topic: &str,
        join_ref: &Value,
        vsn: Vsn,
        outbox: &Outbox,
        viewer: Viewer,
        bindings: Vec<Binding>,
    ) -> Result<Arc<Subscription>, String> {
        let catalog = self.sources.catalog.snapshot();
        for binding in &bindings {
            check_binding(&catalog, binding)?;
        }
        let filtered = bindings.iter().any(|b| !b.conditions.is_empty());
        let sub = Arc::new(Subscription {
            channel,
            topic: topic.to_owned(),
            join_ref: join_ref.clone(),
            vsn,
            outbox: outbox.clone(),
            bindings,
            viewer: Mutex::new(viewer),
            active: AtomicBool::new(!filtered),
        });
        self.subscriptions().insert(channel, sub.clone());
        Ok(sub)
    }

    /// Tells the client its subscription holds (`Subscribed to PostgreSQL`), after
    /// checking, where it has filters, that each value is one of its column's type and
    /// that the role may read the column; or refuses it.
    pub(crate) fn confirm(self: &Arc<Self>, sub: Arc<Subscription>) {
        let mut following = self.following.subscribe();
        if sub.active.load(Ordering::Acquire) && *following.borrow() {
            sub.system(true, "Subscribed to PostgreSQL");
            return;
        }
        let changes = self.clone();
        tokio::spawn(async move {
            // Only once the feed follows the log is every later commit sure to arrive.
            if following.wait_for(|ready| *ready).await.is_err() {
                return;
            }
            if sub.active.load(Ordering::Acquire) {
                sub.system(true, "Subscribed to PostgreSQL");
                return;
            }
            match changes.check_values(&sub).await {
                Ok(()) => {
                    sub.active.store(true, Ordering::Release);
                    sub.system(true, "Subscribed to PostgreSQL");
                }
                Err(message) => {
                    changes.unsubscribe(sub.channel);
                    sub.system(false, &message);
                }
            }
        });
    }

    async fn check_values(&self, sub: &Subscription) -> Result<(), String> {
        let catalog = self.sources.catalog.snapshot();
        let role = sub.viewer().role;
        let client = self.sources.owner.get().await.map_err(|err| {
            tracing::warn!(error = %err, "realtime could not check a subscription's filters");
            "Realtime was unable to connect to the project database".to_owned()
        })?;
        for binding in &sub.bindings {
            for relation in published(&catalog, binding) {
                for condition in &binding.conditions {
                    let column = relation
                        .column(&condition.column)
                        .ok_or_else(|| invalid_column(binding, &condition.column))?;
                    let qualified = format!(
                        "\"{}\".\"{}\"",
                        relation.schema.replace('"', "\"\""),
                        relation.name.replace('"', "\"\"")
                    );
                    let cast = match condition.op {
                        filter::Op::In => format!("($3::text)::{}[]", column.data_type),
                        filter::Op::Is | filter::Op::Like | filter::Op::Ilike => {
                            "$3::text".to_owned()
                        }
                        _ => format!("($3::text)::{}", column.data_type),
                    };
                    let sql = format!(
                        "SELECT has_column_privilege($1::text, $2::text::regclass, $4::text, 'SELECT'), {cast} IS NULL"
                    );
                    let row = client
                        .query_one(
                            &sql,
                            &[&role, &qualified, &condition.value, &condition.column],
                        )
                        .await
                        .map_err(|err| exception(binding, &err))?;
                    if !row.get::<_, bool>(0) {
                        return Err(format!(
                            "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: {}. Exception: ERROR 42501 (insufficient_privilege) permission denied for column {}",
                            binding.describe(),
                            condition.column
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn subscription_count(&self) -> usize {
        self.subscriptions().len()
    }

    pub(crate) fn unsubscribe(&self, channel: u64) {
        self.subscriptions().remove(&channel);
    }

    /// A channel's new identity (`access_token`): its changes are checked as it from now on.
    pub(crate) fn set_viewer(&self, channel: u64, viewer: Viewer) -> bool {
        match self.subscriptions().get(&channel) {
            Some(sub) => {
                *sub.viewer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = viewer;
                true
            }
            None => false,
        }
    }

    /// Starts following the log (and pruning it), for as long as the runtime runs.
    pub fn spawn(self: &Arc<Self>, rt: &Arc<Realtime>) -> tokio::task::JoinHandle<()> {
        let bus = tokio::spawn(bus::run(self.clone(), rt.clone()));
        let feed = feed::run(self.clone(), rt.clone());
        tokio::spawn(async move {
            // Aborting the feed's task ends the bus too.
            struct Abort(tokio::task::JoinHandle<()>);
            impl Drop for Abort {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let _bus = Abort(bus);
            feed.await;
        })
    }
}

/// The published tables a binding covers.
fn published<'a>(
    catalog: &'a Catalog,
    binding: &'a Binding,
) -> impl Iterator<Item = &'a galley_schema::Relation> + 'a {
    catalog.relations.values().filter(move |relation| {
        relation.realtime && binding.covers(&relation.schema, &relation.name)
    })
}

fn check_binding(catalog: &Catalog, binding: &Binding) -> Result<(), String> {
    let mut any = false;
    for relation in published(catalog, binding) {
        any = true;
        for condition in &binding.conditions {
            if relation.column(&condition.column).is_none() {
                return Err(invalid_column(binding, &condition.column));
            }
        }
    }
    if any {
        Ok(())
    } else {
        Err(format!(
            "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: {}",
            binding.describe()
        ))
    }
}

fn invalid_column(binding: &Binding, column: &str) -> String {
    format!(
        "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: {}. Exception: ERROR P0001 (raise_exception) invalid column for filter {column}",
        binding.describe()
    )
}

fn exception(binding: &Binding, err: &galley_db::tokio_postgres::Error) -> String {
    let detail = match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let name = galley_db::condition_name(code)
                .map(|name| format!(" ({name})"))
                .unwrap_or_default();
            format!("ERROR {code}{name} {}", db.message())
        }
        None => "the database could not be reached".to_owned(),
    };
    format!(
        "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: {}. Exception: {detail}",
        binding.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn bindings_read_their_params_as_supabase_realtime_does() {
        let both = Binding::parse(7, &params(json!({"event": "insert", "schema": "public", "table": "todos", "filter": "id=eq.1"})))
            .expect("parses");
        assert_eq!(
            (both.event, both.schema.as_str(), both.table.as_str()),
            (Event::Insert, "public", "todos")
        );
        assert_eq!(
            both.describe(),
            r#"[event: INSERT, schema: public, table: todos, filters: [{"id", "eq", "1", false}], select: nil]"#
        );
        let schema_only =
            Binding::parse(7, &params(json!({"event": "*", "schema": "public"}))).expect("parses");
        assert_eq!(schema_only.table, "*");
        let table_only =
            Binding::parse(7, &params(json!({"event": "odd", "table": "todos"}))).expect("parses");
        assert_eq!(
            (table_only.schema.as_str(), table_only.event),
            ("public", Event::All)
        );
        let none = Binding::parse(7, &params(json!({"event": "*"}))).expect_err("refused");
        assert_eq!(
            none,
            r#"No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{"event" => "*"}"#
        );
        let bad = Binding::parse(
            7,
            &params(json!({"schema": "public", "table": "t", "filter": "x=foo.1"})),
        )
        .expect_err("refused");
        assert_eq!(bad, r#"Error parsing `filter` params: ["foo", "1"]"#);
    }
}
