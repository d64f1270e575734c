//! From logged changes to `postgres_changes` frames: matching, filters, row-level
//! security, payloads. See the module above for the rules.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use galley_schema::Catalog;
use serde_json::{Map, Value, json};

use super::feed::Change;
use super::filter::Condition;
use super::{Changes, Subscription, Viewer};
use crate::Realtime;
use crate::protocol;

/// The API roles, in the order [`TableInfo`]'s per-role facts are kept.
const ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

fn role_index(role: &str) -> usize {
    ROLES.iter().position(|known| *known == role).unwrap_or(0)
}

/// Groups one round trip carries at most (see `galley_db::api_pool`'s batch bound).
const PIPELINE: usize = 64;

/// What delivery needs to know of a table, for each API role.
#[derive(Debug)]
pub(crate) struct TableInfo {
    schema: String,
    name: String,
    /// `"schema"."name"`.
    qualified: String,
    primary_key: Vec<String>,
    /// Column name → `format_type` (for filter casts).
    types: HashMap<String, String>,
    columns: Vec<ColumnInfo>,
    rls: bool,
    bypass: [bool; 3],
    policies: Vec<PolicyInfo>,
}

#[derive(Debug, serde::Deserialize)]
struct ColumnInfo {
    name: String,
    #[serde(rename = "type")]
    typname: String,
    readable: [bool; 3],
}

#[derive(Debug, serde::Deserialize)]
struct PolicyInfo {
    permissive: bool,
    using: Option<String>,
    applies: [bool; 3],
}

/// Per table: the catalog snapshot the facts were read under, and the facts. A new
/// snapshot (any schema, policy or grant change) makes them be read again.
#[derive(Default)]
pub(crate) struct TableCache {
    tables: Mutex<HashMap<(String, String), Cached>>,
}

type Cached = (Arc<Catalog>, Arc<TableInfo>);

const TABLE_INFO: &str = r#"
SELECT c.relrowsecurity,
  coalesce((
    SELECT json_agg(json_build_object(
      'name', a.attname,
      'type', t.typname,
      'readable', json_build_array(
        has_column_privilege('anon', c.oid, a.attnum, 'SELECT'),
        has_column_privilege('authenticated', c.oid, a.attnum, 'SELECT'),
        has_column_privilege('service_role', c.oid, a.attnum, 'SELECT'))
    ) ORDER BY a.attnum)
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]')::text,
  coalesce((
    SELECT json_agg(json_build_object(
      'permissive', p.polpermissive,
      'using', pg_get_expr(p.polqual, p.polrelid),
      'applies', json_build_array(
        0 = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid) WHERE pg_has_role('anon', r.oid, 'MEMBER')),
        0 = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid) WHERE pg_has_role('authenticated', r.oid, 'MEMBER')),
        0 = ANY (p.polroles) OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid) WHERE pg_has_role('service_role', r.oid, 'MEMBER')))
    ))
    FROM pg_policy p WHERE p.polrelid = c.oid AND p.polcmd IN ('r', '*')), '[]')::text,
  json_build_array(
    (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'anon'),
    (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'authenticated'),
    (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role'))::text
FROM pg_class c WHERE c.oid = to_regclass($1)
"#;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl TableCache {
    async fn get(&self, changes: &Changes, schema: &str, table: &str) -> Option<Arc<TableInfo>> {
        let catalog = changes.sources.catalog.snapshot();
        let key = (schema.to_owned(), table.to_owned());
        if let Some((seen, info)) = self.lock().get(&key)
            && Arc::ptr_eq(seen, &catalog)
        {
            return Some(info.clone());
        }
        let relation = catalog.relation(schema, table)?;
        let qualified = format!("{}.{}", quote(schema), quote(table));
        let loaded = async {
            let client = changes.sources.owner.get().await.ok()?;
            let row = client
                .query_opt(TABLE_INFO, &[&qualified])
                .await
                .map_err(|err| tracing::warn!(error = %galley_db::report(&err), table, "realtime could not read a table's access rules"))
                .ok()??;
            let columns: Vec<ColumnInfo> = serde_json::from_str(row.get(1)).ok()?;
            let policies: Vec<PolicyInfo> = serde_json::from_str(row.get(2)).ok()?;
            let bypass: [Option<bool>; 3] = serde_json::from_str(row.get(3)).ok()?;
            Some(TableInfo {
                schema: schema.to_owned(),
                name: table.to_owned(),
                qualified: qualified.clone(),
                primary_key: relation.primary_key.clone(),
                types: relation
                    .columns
                    .iter()
                    .map(|column| (column.name.clone(), column.data_type.clone()))
                    .collect(),
                columns,
                rls: row.get(0),
                bypass: bypass.map(|flag| flag.unwrap_or(false)),
                policies,
            })
        }
        .await?;
        let info = Arc::new(loaded);
        self.lock().insert(key, (catalog, info.clone()));
        Some(info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TableInfo {
    fn readable(&self, role: usize, column: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.name == column && c.readable[role])
    }

    /// Whether `role` can look its rows up by key at all.
    fn keys_readable(&self, role: usize) -> bool {
        !self.primary_key.is_empty() && self.primary_key.iter().all(|key| self.readable(role, key))
    }

    /// Row-level security lets the role read every row here: it does not apply, or a
    /// permissive policy for the role is `USING (true)` and no restrictive one applies
    /// (a public table), so asking per row would only repeat the answer.
    fn unrestricted(&self, role: usize) -> bool {
        let applies = |p: &&PolicyInfo| p.applies[role];
        !self.rls
            || self.bypass[role]
            || (self
                .policies
                .iter()
                .filter(applies)
                .any(|p| p.permissive && p.using.as_deref() == Some("true"))
                && !self.policies.iter().filter(applies).any(|p| !p.permissive))
    }

    /// Inserted and updated rows the viewer may see: the key looked up in the table.
    fn lookup_sql(&self) -> String {
        let matches: Vec<String> = self
            .primary_key
            .iter()
            .map(|key| format!("galley_t.{k} = galley_p.{k}", k = quote(key)))
            .collect();
        format!(
            "SELECT galley_k.galley_i FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS galley_k(galley_doc, galley_i) \
             CROSS JOIN LATERAL jsonb_populate_record(NULL::{q}, galley_k.galley_doc) AS galley_p \
             WHERE EXISTS (SELECT 1 FROM {q} AS galley_t WHERE {m})",
            q = self.qualified,
            m = matches.join(" AND ")
        )
    }

    /// Deleted rows the viewer's role may see: the table's SELECT policies for the role
    /// (any permissive one, and every restrictive one), evaluated on the old row under
    /// the viewer's claims. `None`: no permissive policy, so nothing.
    fn policy_sql(&self, role: usize) -> Option<String> {
        let expr = |p: &PolicyInfo| format!("({})", p.using.as_deref().unwrap_or("true"));
        let permissive: Vec<String> = self
            .policies
            .iter()
            .filter(|p| p.applies[role] && p.permissive)
            .map(expr)
            .collect();
        if permissive.is_empty() {
            return None;
        }
        let mut condition = format!("({})", permissive.join(" OR "));
        for restrictive in self
            .policies
            .iter()
            .filter(|p| p.applies[role] && !p.permissive)
        {
            condition.push_str(" AND ");
            condition.push_str(&expr(restrictive));
        }
        Some(format!(
            "SELECT galley_k.galley_i FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS galley_k(galley_doc, galley_i) \
             CROSS JOIN LATERAL jsonb_populate_record(NULL::{q}, galley_k.galley_doc) AS {alias} \
             WHERE {condition}",
            q = self.qualified,
            alias = quote(&self.name),
        ))
    }

    /// The `data` of a change message for `role`: only the columns it may read.
    fn data(&self, change: &Change, role: usize) -> String {
        let readable = |map: &Map<String, Value>, keys_only: bool| -> Map<String, Value> {
            map.iter()
                .filter(|(name, _)| self.readable(role, name))
                .filter(|(name, _)| !keys_only || self.primary_key.contains(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        };
        let columns: Vec<Value> = self
            .columns
            .iter()
            .filter(|c| c.readable[role])
            .map(|c| json!({ "name": c.name, "type": c.typname }))
            .collect();
        let mut data = Map::new();
        data.insert("schema".into(), json!(self.schema));
        data.insert("table".into(), json!(self.name));
        data.insert("commit_timestamp".into(), json!(change.commit_timestamp));
        data.insert("type".into(), json!(change.op));
        data.insert("columns".into(), Value::Array(columns));
        let empty = Map::new();
        if change.op != "DELETE" {
            let record = change.record.as_ref().unwrap_or(&empty);
            data.insert("record".into(), Value::Object(readable(record, false)));
        }
        if change.op != "INSERT" {
            let old = change.old_record.as_ref().unwrap_or(&empty);
            // An update's old row is its key (as with PostgreSQL's default replica
            // identity); a delete's, its key when row-level security is on.
            let keys_only = change.op == "UPDATE" || self.rls;
            data.insert("old_record".into(), Value::Object(readable(old, keys_only)));
        }
        data.insert("errors".into(), Value::Null);
        Value::Object(data).to_string()
    }
}

/// The row a change is judged by: the new row, or the old one for a delete.
fn image(change: &Change) -> Option<&Map<String, Value>> {
    if change.op == "DELETE" {
        change.old_record.as_ref()
    } else {
        change.record.as_ref()
    }
}

pub(crate) async fn deliver(changes: &Arc<Changes>, rt: &Arc<Realtime>, batch: Vec<Change>) {
    // Broadcasts from the database (`realtime.send`) and what other instances pass on,
    // in commit order.
    for change in batch.iter().filter(|c| c.op == "INSERT") {
        match (change.schema.as_str(), change.table.as_str()) {
            ("realtime", "messages") => broadcast_message(rt, change),
            ("galley", "bus") => {
                if let Some(record) = &change.record {
                    super::bus::receive(rt, record);
                }
            }
            _ => {}
        }
    }
    let subscriptions = changes.active();
    if subscriptions.is_empty() {
        return;
    }
    // Each table's changes, tables in order of their first change.
    let mut tables: Vec<(&str, &str, Vec<usize>)> = Vec::new();
    for (index, change) in batch.iter().enumerate() {
        match tables
            .iter_mut()
            .find(|(schema, table, _)| *schema == change.schema && *table == change.table)
        {
            Some((_, _, indices)) => indices.push(index),
            None => tables.push((&change.schema, &change.table, vec![index])),
        }
    }
    for (schema, table, indices) in tables {
        let interested: Vec<&Arc<Subscription>> = subscriptions
            .iter()
            .filter(|sub| sub.bindings.iter().any(|b| b.covers(schema, table)))
            .collect();
        if interested.is_empty() {
            continue;
        }
        let Some(info) = changes.tables.get(changes, schema, table).await else {
            continue;
        };
        let rows: Vec<&Change> = indices.iter().map(|&i| &batch[i]).collect();
        deliver_table(changes, rt, &info, &rows, &interested).await;
    }
}

/// A `realtime.messages` row written by `realtime.send`: a user broadcast on its topic
/// (kind 4 for 2.0.0 sockets, with the row's id as metadata, as Supabase sends it), to
/// the channels that may read broadcasts there.
fn broadcast_message(rt: &Realtime, change: &Change) {
    let Some(row) = change.record.as_ref() else {
        return;
    };
    let text = |key: &str| row.get(key).and_then(Value::as_str);
    let (Some(topic), Some(event), Some(payload)) =
        (text("topic"), text("event"), row.get("payload"))
    else {
        return;
    };
    let private = row.get("private").and_then(Value::as_bool).unwrap_or(false);
    let metadata = match text("id") {
        Some(id) => json!({ "id": id }).to_string(),
        None => String::new(),
    };
    let key = crate::hub::TopicKey {
        topic: format!("realtime:{topic}"),
        private,
    };
    let message = protocol::Encoded::new(
        key.topic.clone(),
        protocol::Fanout::User {
            event: event.to_owned(),
            json: true,
            data: payload.to_string().into(),
            metadata,
        },
    );
    let queued = rt
        .hub
        .publish(&key, crate::hub::Kind::Broadcast, &message, None);
    rt.count_out("broadcast", queued);
}

/// A change's frame for one role, topic, set of binding ids and serializer.
type FrameKey = (usize, usize, String, Vec<u64>, protocol::Vsn);

/// One subscription's claim on one change: the binding ids that match it.
struct Candidate<'a> {
    sub: &'a Arc<Subscription>,
    change: usize,
    ids: Vec<u64>,
}

async fn deliver_table(
    changes: &Changes,
    rt: &Realtime,
    info: &TableInfo,
    rows: &[&Change],
    interested: &[&Arc<Subscription>],
) {
    let conditions = distinct_conditions(info, interested);
    let passes = if conditions.is_empty() {
        Vec::new()
    } else {
        match evaluate(changes, info, rows, &conditions).await {
            Some(passes) => passes,
            None => vec![vec![false; conditions.len()]; rows.len()],
        }
    };
    let mut candidates = Vec::new();
    for (index, change) in rows.iter().enumerate() {
        for sub in interested {
            let ids: Vec<u64> = sub
                .bindings
                .iter()
                .filter(|b| b.covers(&info.schema, &info.name) && b.event.matches(&change.op))
                .filter(|b| {
                    b.conditions
                        .iter()
                        .all(|c| conditions.get(c).is_some_and(|&i| passes[index][i]))
                })
                .map(|b| b.id)
                .collect();
            if !ids.is_empty() {
                candidates.push(Candidate {
                    sub,
                    change: index,
                    ids,
                });
            }
        }
    }
    if candidates.is_empty() {
        return;
    }
    let mut viewers: Vec<(Viewer, Vec<usize>)> = Vec::new();
    let mut positions: HashMap<Viewer, usize> = HashMap::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let viewer = candidate.sub.viewer();
        match positions.get(&viewer) {
            Some(&position) => viewers[position].1.push(index),
            None => {
                positions.insert(viewer.clone(), viewers.len());
                viewers.push((viewer, vec![index]));
            }
        }
    }
    let visible = visibility(changes, info, rows, &candidates, &viewers).await;
    let mut data: HashMap<(usize, usize), String> = HashMap::new();
    let mut frames: HashMap<FrameKey, protocol::Frame> = HashMap::new();
    let mut sent = 0usize;
    let mut delivered = vec![false; rows.len()];
    for ((viewer, list), seen) in viewers.iter().zip(visible) {
        let role = role_index(viewer.role);
        for &candidate_index in list {
            let candidate = &candidates[candidate_index];
            if !seen.get(candidate.change).copied().unwrap_or(false) {
                continue;
            }
            let sub = candidate.sub;
            // Subscribers of one topic with the same bindings and role get the same
            // frame: encoded once, shared.
            let key = (
                candidate.change,
                role,
                sub.topic.clone(),
                candidate.ids.clone(),
                sub.vsn,
            );
            let frame = match frames.get(&key) {
                Some(frame) => frame.clone(),
                None => {
                    let body = data
                        .entry((candidate.change, role))
                        .or_insert_with(|| info.data(rows[candidate.change], role));
                    let payload = format!(
                        "{{\"ids\":{},\"data\":{body}}}",
                        serde_json::to_string(&candidate.ids).unwrap_or_else(|_| "[]".into())
                    );
                    let Ok(payload) = serde_json::value::RawValue::from_string(payload) else {
                        continue;
                    };
                    let frame = protocol::encode(
                        sub.vsn,
                        &Value::Null,
                        &Value::Null,
                        &sub.topic,
                        "postgres_changes",
                        &payload,
                    );
                    frames.insert(key, frame.clone());
                    frame
                }
            };
            if sub.outbox.send(frame) {
                sent += 1;
                delivered[candidate.change] = true;
            }
        }
    }
    rt.count_out("postgres_changes", sent);
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    for (change, _) in rows.iter().zip(&delivered).filter(|(_, done)| **done) {
        rt.metrics
            .realtime_delivery_lag
            .observe((now - change.at).max(0.0));
    }
}

/// Every distinct condition the interested bindings on this table hold, numbered.
fn distinct_conditions(
    info: &TableInfo,
    interested: &[&Arc<Subscription>],
) -> HashMap<Condition, usize> {
    let mut conditions = HashMap::new();
    for sub in interested {
        for binding in sub
            .bindings
            .iter()
            .filter(|b| b.covers(&info.schema, &info.name))
        {
            for condition in &binding.conditions {
                let next = conditions.len();
                conditions.entry(condition.clone()).or_insert(next);
            }
        }
    }
    conditions
}

/// Which conditions each change's row meets, decided by PostgreSQL with the values
/// cast to the columns' types. `None` when the statement failed (logged).
async fn evaluate(
    changes: &Changes,
    info: &TableInfo,
    rows: &[&Change],
    conditions: &HashMap<Condition, usize>,
) -> Option<Vec<Vec<bool>>> {
    let mut ordered: Vec<(&Condition, usize)> = conditions.iter().map(|(c, &i)| (c, i)).collect();
    ordered.sort_by_key(|(_, i)| *i);
    let tests: Vec<String> = ordered
        .iter()
        .map(
            |(condition, index)| match info.types.get(&condition.column) {
                Some(column_type) => condition.sql(column_type, index + 2),
                None => format!("(${}::text IS NULL AND false)", index + 2),
            },
        )
        .collect();
    let sql = format!(
        "SELECT galley_k.galley_i, ARRAY[{tests}]::bool[] \
         FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS galley_k(galley_doc, galley_i) \
         CROSS JOIN LATERAL jsonb_populate_record(NULL::{q}, galley_k.galley_doc) AS r \
         ORDER BY galley_k.galley_i",
        tests = tests.join(", "),
        q = info.qualified
    );
    let images: Vec<Value> = rows
        .iter()
        .map(|change| {
            image(change)
                .cloned()
                .map(Value::Object)
                .unwrap_or(Value::Null)
        })
        .collect();
    let images = Value::Array(images).to_string();
    let mut params: Vec<&(dyn galley_db::tokio_postgres::types::ToSql + Sync)> = vec![&images];
    for (condition, _) in &ordered {
        params.push(&condition.value);
    }
    let client = changes.sources.owner.get().await.ok()?;
    let result = client.query(&sql, &params).await;
    match result {
        Ok(answer) => {
            let mut passes = vec![vec![false; ordered.len()]; rows.len()];
            for row in answer {
                let ordinal: i64 = row.get(0);
                let flags: Vec<Option<bool>> = row.get(1);
                if let Some(slot) = usize::try_from(ordinal - 1)
                    .ok()
                    .and_then(|i| passes.get_mut(i))
                {
                    for (flag, value) in slot.iter_mut().zip(flags) {
                        *flag = value.unwrap_or(false);
                    }
                }
            }
            Some(passes)
        }
        Err(err) => {
            tracing::warn!(error = %galley_db::report(&err), table = %info.name, "realtime filters could not be evaluated; filtered subscribers miss these changes");
            None
        }
    }
}

const SETTINGS: &str = "SELECT set_config('role', $1::text, true), set_config('request.jwt.claims', $2::text, true), \
     set_config('transaction_read_only', 'on', true), set_config('statement_timeout', '5000', true)";

/// For each viewer, which of the table's changes it may see (indexed like `rows`).
async fn visibility(
    changes: &Changes,
    info: &TableInfo,
    rows: &[&Change],
    candidates: &[Candidate<'_>],
    viewers: &[(Viewer, Vec<usize>)],
) -> Vec<Vec<bool>> {
    let mut visible: Vec<Vec<bool>> = vec![vec![false; rows.len()]; viewers.len()];
    // The questions for PostgreSQL: per viewer, one group of settings and lookups.
    struct Ask {
        viewer: usize,
        statements: Vec<galley_db::wire::Queued>,
        /// Per lookup statement, the changes its ordinals refer to.
        lists: Vec<Vec<usize>>,
    }
    let mut asks = Vec::new();
    for (position, (viewer, list)) in viewers.iter().enumerate() {
        let role = role_index(viewer.role);
        if !info.keys_readable(role) {
            continue;
        }
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for &candidate in list {
            let change = candidates[candidate].change;
            let bucket = if rows[change].op == "DELETE" {
                &mut deletes
            } else {
                &mut upserts
            };
            if !bucket.contains(&change) {
                bucket.push(change);
            }
        }
        if info.unrestricted(role) {
            for change in upserts.into_iter().chain(deletes) {
                visible[position][change] = true;
            }
            continue;
        }
        let mut statements: Vec<galley_db::wire::Queued> = vec![(
            Cow::Borrowed(SETTINGS),
            vec![viewer.role.to_owned(), viewer.claims.to_string()],
        )];
        let mut lists = Vec::new();
        if !upserts.is_empty() {
            let keys: Vec<Value> = upserts
                .iter()
                .map(|&change| {
                    let record = rows[change].record.as_ref();
                    let key: Map<String, Value> = info
                        .primary_key
                        .iter()
                        .map(|k| {
                            (
                                k.clone(),
                                record
                                    .and_then(|r| r.get(k))
                                    .cloned()
                                    .unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    Value::Object(key)
                })
                .collect();
            statements.push((
                Cow::Owned(info.lookup_sql()),
                vec![Value::Array(keys).to_string()],
            ));
            lists.push(upserts);
        }
        if !deletes.is_empty()
            && let Some(sql) = info.policy_sql(role)
        {
            let olds: Vec<Value> = deletes
                .iter()
                .map(|&change| {
                    rows[change]
                        .old_record
                        .clone()
                        .map(Value::Object)
                        .unwrap_or(Value::Null)
                })
                .collect();
            statements.push((Cow::Owned(sql), vec![Value::Array(olds).to_string()]));
            lists.push(deletes);
        }
        if lists.is_empty() {
            continue;
        }
        asks.push(Ask {
            viewer: position,
            statements,
            lists,
        });
    }
    for chunk in asks.chunks(PIPELINE) {
        let mut conn = match changes.sources.api.get().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "realtime could not check row-level security; these changes are not delivered");
                return visible;
            }
        };
        let mut pushed = true;
        for ask in chunk {
            if let Err(err) = conn.push_all(&ask.statements) {
                tracing::warn!(error = %err, "realtime could not queue a row-level security check");
                pushed = false;
                break;
            }
            conn.end_group();
        }
        if !pushed {
            return visible;
        }
        let results = match conn.run_groups().await {
            Ok(results) => results,
            Err(err) => {
                tracing::warn!(error = %err, "realtime row-level security checks failed; these changes are not delivered");
                return visible;
            }
        };
        for (ask, result) in chunk.iter().zip(results) {
            match result {
                Ok(answers) => {
                    for (list, answer) in ask.lists.iter().zip(answers.iter().skip(1)) {
                        for row in answer {
                            let ordinal = row.text(0).and_then(|t| t.parse::<usize>().ok());
                            if let Some(&change) = ordinal.and_then(|o| list.get(o.wrapping_sub(1)))
                            {
                                visible[ask.viewer][change] = true;
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, table = %info.name, role = viewers[ask.viewer].0.role, "a realtime row-level security check failed; that subscriber misses these changes");
                }
            }
        }
    }
    visible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(policies: Vec<PolicyInfo>) -> TableInfo {
        TableInfo {
            schema: "public".into(),
            name: "notes".into(),
            qualified: "\"public\".\"notes\"".into(),
            primary_key: vec!["id".into()],
            types: HashMap::new(),
            columns: Vec::new(),
            rls: true,
            bypass: [false, false, true],
            policies,
        }
    }

    fn policy(permissive: bool, using: &str, applies: [bool; 3]) -> PolicyInfo {
        PolicyInfo {
            permissive,
            using: Some(using.into()),
            applies,
        }
    }

    #[test]
    fn only_a_policy_that_shows_every_row_spares_the_per_row_question() {
        let public = table(vec![policy(true, "true", [true, true, false])]);
        assert!(public.unrestricted(0) && public.unrestricted(1));
        assert!(
            public.unrestricted(2),
            "service_role bypasses row-level security"
        );
        let owner = table(vec![policy(
            true,
            "(auth.uid() = owner)",
            [false, true, false],
        )]);
        assert!(!owner.unrestricted(1));
        assert!(!owner.unrestricted(0));
        let narrowed = table(vec![
            policy(true, "true", [true, true, false]),
            policy(false, "(NOT hidden)", [true, false, false]),
        ]);
        assert!(
            !narrowed.unrestricted(0),
            "a restrictive policy still applies to anon"
        );
        assert!(narrowed.unrestricted(1));
        assert_eq!(
            narrowed
                .policy_sql(0)
                .expect("permissive")
                .split("WHERE ")
                .nth(1),
            Some("((true)) AND ((NOT hidden))")
        );
        assert_eq!(
            owner.policy_sql(0),
            None,
            "no policy for anon: nothing visible"
        );
    }
}
