//! Following `galley.realtime_changes`: a dedicated connection reads the rows of the
//! transactions that became visible since its last snapshot when a write through this
//! instance committed (it then `NOTIFY`s `galley_realtime`, which the others `LISTEN`
//! on, so they read too), on another instance's notification, and every 100 ms
//! regardless (writes made outside Galley); the rows go to
//! [`super::deliver`] one read at a time, in order. A lost connection reconnects with
//! backoff and resumes from the same snapshot, so nothing committed meanwhile is missed.
//! Every minute the instance deletes what every live instance has read: rows of
//! transactions that were already finished two minutes ago.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_db::tokio_postgres;

use super::Changes;
use crate::Realtime;

/// The NOTIFY channel the capture trigger announces commits on.
pub const CHANNEL: &str = "galley_realtime";

/// Read at least this often, even without a wake-up: writes made outside Galley (psql,
/// another tool) are seen within it.
const POLL: Duration = Duration::from_millis(100);
/// The horizon for pruning is sampled this often.
const SAMPLE: Duration = Duration::from_secs(1);
/// Rows are deleted once their transactions ended this long ago.
const KEEP: Duration = Duration::from_secs(120);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A snapshot as `pg_current_snapshot()` prints it: `xmin:xmax:xip,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub xmin: String,
    pub xmax: String,
    /// In progress when it was taken, as a PostgreSQL array literal.
    pub xip: String,
}

impl Snapshot {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let xmin = parts.next()?.to_owned();
        let xmax = parts.next()?.to_owned();
        let xip = parts.next()?;
        let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !valid(&xmin) || !valid(&xmax) || !xip.split(',').filter(|s| !s.is_empty()).all(valid) {
            return None;
        }
        Some(Self {
            xmin,
            xmax,
            xip: format!("{{{xip}}}"),
        })
    }
}

/// One logged change, as read.
#[derive(Debug, Clone)]
pub struct Change {
    pub schema: String,
    pub table: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub op: String,
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
    pub old_record: Option<serde_json::Map<String, serde_json::Value>>,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub commit_timestamp: String,
    /// When the row changed, in Unix seconds (for the delivery lag).
    pub at: f64,
}

const SNAPSHOT: &str = "SELECT pg_current_snapshot()::text";

/// The snapshot of this statement and the rows of the transactions not visible in the
/// previous one (`$1` its xmax, `$2` its in-progress list), each transaction's rows
/// together, transactions in the order of their last change. One statement, so one
/// snapshot (READ COMMITTED takes one per statement) answers both; with no rows, one
/// row of NULLs carries the snapshot.
const READ: &str = "WITH now AS (SELECT pg_current_snapshot()::text AS snapshot) \
     SELECT now.snapshot, fresh.schema_name::text, fresh.table_name::text, fresh.op, \
     fresh.record::text, fresh.old_record::text, \
     to_char(fresh.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
     extract(epoch FROM fresh.at)::float8 \
     FROM now LEFT JOIN ( \
       SELECT *, max(id) OVER (PARTITION BY txid) AS last FROM galley.realtime_changes \
       WHERE txid >= $1::text::xid8 OR txid = ANY ($2::text::xid8[])) AS fresh ON true \
     ORDER BY fresh.last, fresh.id";

pub(crate) async fn run(changes: Arc<Changes>, rt: Arc<Realtime>) {
    let mut cursor = None;
    let mut history = VecDeque::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        match follow(&changes, &rt, &mut cursor, &mut history).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(err) => {
                tracing::warn!(error = %galley_db::report(&err), "realtime change feed lost its connection; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: listen, read, deliver, prune.
async fn follow(
    changes: &Arc<Changes>,
    rt: &Arc<Realtime>,
    cursor: &mut Option<Snapshot>,
    history: &mut VecDeque<(Instant, String)>,
) -> Result<(), tokio_postgres::Error> {
    let galley_db::Listening {
        client,
        mut notified,
        driver,
    } = galley_db::listen(&changes.sources.listen, CHANNEL).await?;
    let read_statement = client.prepare(READ).await?;
    if cursor.is_none() {
        // Deliver what commits from now on.
        let text: String = client.query_one(SNAPSHOT, &[]).await?.get(0);
        *cursor = Snapshot::parse(&text);
    }
    changes.following.send_replace(cursor.is_some());
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = Instant::now();
    // Woken by a write through this instance: the others are told after the read.
    let mut local = false;
    let result = loop {
        let Some(previous) = cursor.clone() else {
            break Ok(());
        };
        let (batch, snapshot) = match read(&client, &read_statement, &previous).await {
            Ok(read) => read,
            Err(err) => break Err(err),
        };
        if history
            .back()
            .is_none_or(|(taken, _)| taken.elapsed() >= SAMPLE)
        {
            history.push_back((Instant::now(), snapshot.xmin.clone()));
        }
        *cursor = Some(snapshot);
        if !batch.is_empty() {
            // The other instances are told while this one delivers.
            let tell = async {
                if local {
                    client
                        .execute("SELECT pg_notify('galley_realtime', '')", &[])
                        .await
                        .map(drop)
                } else {
                    Ok(())
                }
            };
            let (told, ()) = tokio::join!(tell, super::deliver::deliver(changes, rt, batch));
            if let Err(err) = told {
                break Err(err);
            }
        }
        local = false;
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Err(err) = prune(&client, history).await {
                tracing::warn!(error = %galley_db::report(&err), "realtime change log could not be pruned");
            }
        }
        tokio::select! {
            // Another instance wrote (this one's own notification costs one idle read).
            message = notified.recv() => {
                if message.is_none() {
                    break Ok(());
                }
                while notified.try_recv().is_ok() {}
            }
            () = changes.wake.notified() => local = true,
            _ = ticks.tick() => {}
        }
    };
    drop(client);
    let _ = driver.await;
    result
}

async fn read(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    previous: &Snapshot,
) -> Result<(Vec<Change>, Snapshot), tokio_postgres::Error> {
    let rows = client
        .query(statement, &[&previous.xmax, &previous.xip])
        .await?;
    let snapshot = rows
        .first()
        .and_then(|row| Snapshot::parse(row.get::<_, &str>(0)))
        .unwrap_or_else(|| previous.clone());
    let object = |text: Option<String>| match text
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(serde_json::Value::Object(map))) => Some(map),
        _ => None,
    };
    let changes = rows
        .into_iter()
        .filter_map(|row| {
            Some(Change {
                schema: row.get::<_, Option<String>>(1)?,
                table: row.get(2),
                op: row.get(3),
                record: object(row.get(4)),
                old_record: object(row.get(5)),
                commit_timestamp: row.get(6),
                at: row.get(7),
            })
        })
        .collect();
    Ok((changes, snapshot))
}

/// Deletes the rows of transactions that had ended by a snapshot at least [`KEEP`] old.
async fn prune(
    client: &tokio_postgres::Client,
    history: &mut VecDeque<(Instant, String)>,
) -> Result<(), tokio_postgres::Error> {
    let mut horizon = None;
    while let Some((taken, _)) = history.front() {
        if taken.elapsed() < KEEP {
            break;
        }
        horizon = history.pop_front().map(|(_, xmin)| xmin);
    }
    if let Some(xmin) = horizon {
        let deleted = client
            .execute(
                "DELETE FROM galley.realtime_changes WHERE txid < $1::text::xid8",
                &[&xmin],
            )
            .await?;
        tracing::debug!(deleted, "realtime change log pruned");
    }
    // Broadcasts from the database are delivered as they commit; their rows are kept
    // three days (for inspection), as Supabase keeps its messages.
    client
        .execute(
            "DELETE FROM realtime.messages WHERE inserted_at < now() - interval '3 days'",
            &[],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse_as_postgresql_prints_them() {
        let busy = Snapshot::parse("740:745:740,742").expect("parses");
        assert_eq!(
            (busy.xmin.as_str(), busy.xmax.as_str(), busy.xip.as_str()),
            ("740", "745", "{740,742}")
        );
        let idle = Snapshot::parse("750:750:").expect("parses");
        assert_eq!(idle.xip, "{}");
        assert_eq!(Snapshot::parse("1:2:3;DROP"), None);
        assert_eq!(Snapshot::parse("x:2:"), None);
    }
}
