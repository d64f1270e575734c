//! `/admin/v1/sql`: the admin UI's SQL console. `POST /sql` runs SQL in one transaction,
//! as the owner or as an API role or app user (with their claims, so row-level security
//! applies as it would to them), and commits it only when asked; the answer holds the
//! last statement's rows (at most `limit`). Tables the SQL creates in `public` are made
//! first-class in the same transaction: row-level security enabled and forced, and
//! `service_role` granted, as tables made through the schema API are; a change to the
//! schema is recorded in the schema history and announced to every instance. What each
//! admin ran is kept (`GET /sql/history`), and snippets are saved server-side
//! (`/sql/snippets`).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use galley_db::DbError;
use galley_db::tokio_postgres::SimpleQueryMessage;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sql")
            .route(web::post().to(run))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/sql/history")
            .route(web::get().to(history))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/sql/snippets")
            .route(web::get().to(list_snippets))
            .route(web::post().to(save_snippet))
            .default_service(web::to(crate::routes::method_not_allowed)),
    )
    .service(
        web::resource("/sql/snippets/{id}")
            .route(web::delete().to(delete_snippet))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    sql: String,
    /// `owner` (default), `service_role`, `anon` or `user:<uuid>`.
    #[serde(default)]
    run_as: Option<String>,
    /// Commit the transaction; otherwise it is rolled back after the rows are read.
    #[serde(default)]
    commit: bool,
    /// Rows of the last statement to return (default 1000, at most 10000).
    #[serde(default)]
    limit: Option<usize>,
}

/// `public`'s ordinary and partitioned tables.
const PUBLIC_TABLES: &str = "SELECT c.oid::int8, quote_ident(c.relname) FROM pg_class c \
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')";

/// A PostgreSQL error in the console: its SQLSTATE as the code, PostgreSQL's own words,
/// and where in the text it happened.
fn sql_failure(err: galley_db::tokio_postgres::Error) -> ApiError {
    let Some(db) = err.as_db_error() else {
        return ApiError::from(DbError::from(err));
    };
    let position = match db.position() {
        Some(galley_db::tokio_postgres::error::ErrorPosition::Original(at)) => Some(*at),
        _ => None,
    };
    ApiError::with_code(
        StatusCode::BAD_REQUEST,
        db.code().code().to_owned(),
        db.message().to_owned(),
        Some(json!({ "position": position, "detail": db.detail() })),
        db.hint().map(str::to_owned),
    )
}

/// The first statement of `sql` that would end or nest the console's transaction
/// (`COMMIT`, `ROLLBACK`, `BEGIN`, a savepoint…), if any: refused before anything runs,
/// so "roll back" always does. Quotes, dollar quotes and comments are skipped.
pub(crate) fn transaction_control(sql: &str) -> Option<String> {
    const KEYWORDS: [&str; 10] = [
        "begin",
        "start",
        "commit",
        "end",
        "rollback",
        "abort",
        "savepoint",
        "release",
        "prepare",
        "set",
    ];
    for statement in statements(sql) {
        let words: Vec<String> = statement
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .take(2)
            .map(str::to_ascii_lowercase)
            .collect();
        let Some(first) = words.first() else { continue };
        if !KEYWORDS.contains(&first.as_str()) {
            continue;
        }
        // `SET` only when it changes the transaction itself.
        if first == "set" && words.get(1).map(String::as_str) != Some("transaction") {
            continue;
        }
        if first == "prepare" && words.get(1).map(String::as_str) != Some("transaction") {
            continue;
        }
        return Some(first.to_uppercase());
    }
    None
}

/// A character that continues an identifier (where `$` does not open a dollar quote).
fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// `sql` split into statements at top-level semicolons, without comments.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                // E'…' (escape string syntax): a backslash escapes the next character.
                let escapes = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && !(i > 1 && is_identifier_char(chars[i - 2]));
                current.push(c);
                i += 1;
                while i < chars.len() {
                    current.push(chars[i]);
                    if escapes && chars[i] == '\\' {
                        if let Some(&next) = chars.get(i + 1) {
                            current.push(next);
                        }
                        i += 2;
                        continue;
                    }
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            current.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
                current.push(' ');
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                current.push(' ');
            }
            '$' if i > 0 && is_identifier_char(chars[i - 1]) => {
                // Part of an identifier (`a$b`, `x$$`), never a dollar quote.
                current.push(c);
                i += 1;
            }
            '$' => {
                // A dollar quote: `$tag$ … $tag$` (a parameter like `$1` is no quote).
                let tag_end = chars[i + 1..]
                    .iter()
                    .position(|&d| !(d.is_alphanumeric() || d == '_'))
                    .map(|at| i + 1 + at);
                match tag_end {
                    Some(end)
                        if chars[end] == '$'
                            && !chars.get(i + 1).is_some_and(char::is_ascii_digit) =>
                    {
                        let tag: String = chars[i..=end].iter().collect();
                        current.push_str(&tag);
                        let rest: String = chars[end + 1..].iter().collect();
                        match rest.find(&tag) {
                            Some(at) => {
                                let body_chars = rest[..at].chars().count();
                                current.extend(chars[end + 1..end + 1 + body_chars].iter());
                                current.push_str(&tag);
                                i = end + 1 + body_chars + tag.chars().count();
                            }
                            None => {
                                current.extend(chars[end + 1..].iter());
                                i = chars.len();
                            }
                        }
                    }
                    _ => {
                        current.push(c);
                        i += 1;
                    }
                }
            }
            ';' => {
                out.push(std::mem::take(&mut current));
                i += 1;
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    out.push(current);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::transaction_control;

    #[test]
    fn statements_that_end_the_transaction_are_found_and_nothing_else() {
        for (sql, found) in [
            ("select 1; commit", Some("COMMIT")),
            ("CREATE TABLE t (a int);\nROLLBACK;", Some("ROLLBACK")),
            ("begin; select 1", Some("BEGIN")),
            ("end", Some("END")),
            ("savepoint a", Some("SAVEPOINT")),
            ("set transaction isolation level serializable", Some("SET")),
            ("select 'commit; rollback'", None),
            ("select 1 -- ; commit\n", None),
            ("/* ; commit; */ select 1", None),
            (
                "create function f() returns int language sql as $$ select 1; $$; select f()",
                None,
            ),
            ("do $body$ begin perform 1; end $body$", None),
            ("set search_path = public", None),
            ("select \"commit\" from t", None),
            ("update t set a = $1", None),
            ("delete from t; select E'\\'';commit;--'", Some("COMMIT")),
            (
                "delete from t; select 1 a$$; commit; select 1 b$$",
                Some("COMMIT"),
            ),
            ("delete from t;--\rcommit", Some("COMMIT")),
            ("prepare transaction'x'", Some("PREPARE")),
            ("select e'it''s; commit'", None),
            ("select 'a\\'; commit", Some("COMMIT")),
        ] {
            assert_eq!(transaction_control(sql).as_deref(), found, "{sql}");
        }
    }
}

async fn run(
    admin: AdminAccess,
    state: web::Data<AppState>,
    body: web::Json<Run>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if let Some(statement) = transaction_control(&body.sql) {
        return Err(ApiError::invalid(
            "transaction_control",
            format!(
                "{statement} is not allowed here: the console runs your SQL in its own transaction and commits or rolls it back as you choose"
            ),
        ));
    }
    let limit = body.limit.unwrap_or(1000).clamp(1, 10_000);
    let run_as = body.run_as.clone().unwrap_or_else(|| "owner".to_owned());
    let claims = claims_for(&state, &run_as).await?;
    let actor = admin.actor();

    let mut client = state.owner().await?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    tx.batch_execute("SET LOCAL statement_timeout = '30s'; SET LOCAL lock_timeout = '5s'")
        .await
        .map_err(DbError::from)?;
    let fingerprint: String = tx
        .query_one(galley_schema::SCHEMA_FINGERPRINT, &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    let before: Vec<i64> = tx
        .query(PUBLIC_TABLES, &[])
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some((role, claims)) = &claims {
        tx.execute(
            "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
            &[role, &claims.to_string()],
        )
        .await
        .map_err(DbError::from)?;
    }

    // The transaction's id, to tell afterwards whether the SQL ended it anyway (a form of
    // COMMIT the check above did not recognise).
    let xid: i64 = tx
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    let started = Instant::now();
    let outcome = tx.simple_query(&body.sql).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let messages = match outcome {
        Ok(messages) => messages,
        Err(err) => {
            let failure = sql_failure(err);
            drop(tx);
            // Session settings the SQL made never reach another request.
            drop(galley_db::PooledClient::take(client));
            record(
                &state,
                &actor,
                &run_as,
                &body.sql,
                false,
                elapsed_ms,
                None,
                Some(&failure.to_string()),
            )
            .await;
            return Err(failure);
        }
    };
    let answer = last_result(&messages, limit);
    let still: i64 = tx
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    if still != xid {
        drop(tx);
        drop(galley_db::PooledClient::take(client));
        let message = "the SQL ended the console's transaction itself (a COMMIT or ROLLBACK in it): \
                       what ran after that point was committed on its own";
        tracing::error!(event = "admin.sql_escaped", actor = %actor, "the SQL console's transaction was ended by the SQL it ran");
        record(
            &state,
            &actor,
            &run_as,
            &body.sql,
            true,
            elapsed_ms,
            None,
            Some(message),
        )
        .await;
        return Err(ApiError::invalid("transaction_control", message));
    }

    // Back to the owner for Galley's own bookkeeping.
    tx.batch_execute("RESET ROLE")
        .await
        .map_err(DbError::from)?;
    let mut adopted = Vec::new();
    for row in tx.query(PUBLIC_TABLES, &[]).await.map_err(DbError::from)? {
        let (oid, name): (i64, String) = (row.get(0), row.get(1));
        if before.contains(&oid) {
            continue;
        }
        tx.batch_execute(&galley_schema::adoption(&format!("public.{name}")).join(";"))
            .await
            .map_err(DbError::from)?;
        adopted.push(name);
    }
    let changed: String = tx
        .query_one(galley_schema::SCHEMA_FINGERPRINT, &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    let schema_changed = changed != fingerprint;
    let mut history_id: Option<i64> = None;
    if schema_changed && body.commit {
        let target = if adopted.is_empty() {
            "sql".to_owned()
        } else {
            adopted.join(",")
        };
        history_id = Some(
            tx.query_one(
                "INSERT INTO galley.schema_history (actor, operation, target, sql) \
                 VALUES ($1, 'sql', $2, $3) RETURNING id",
                &[&actor, &target, &body.sql],
            )
            .await
            .map_err(DbError::from)?
            .get(0),
        );
        tx.execute("SELECT pg_notify($1, 'sql')", &[&galley_schema::CHANNEL])
            .await
            .map_err(DbError::from)?;
    }
    if body.commit {
        tx.commit().await.map_err(sql_failure)?;
        state.wrote(None);
        if schema_changed && let Err(err) = state.catalog.reload().await {
            // Committed all the same (and announced: every instance reloads on the
            // notification); the run is recorded below either way.
            tracing::error!(error = %galley_db::report(&err), "reloading the catalog after the SQL console");
        }
    } else {
        tx.rollback().await.map_err(DbError::from)?;
    }
    // Session settings the SQL made (SET, temporary tables) never reach another request.
    drop(galley_db::PooledClient::take(client));
    record(
        &state,
        &actor,
        &run_as,
        &body.sql,
        body.commit,
        elapsed_ms,
        Some(answer.row_count),
        None,
    )
    .await;
    tracing::info!(event = "admin.sql", actor = %actor, run_as = %run_as, committed = body.commit, schema_changed, elapsed_ms, "SQL console");
    Ok(HttpResponse::Ok().json(json!({
        "columns": answer.columns,
        "rows": answer.rows,
        "row_count": answer.row_count,
        "truncated": answer.truncated,
        "committed": body.commit,
        "schema_changed": schema_changed,
        "history_id": history_id,
        "adopted": adopted,
        "elapsed_ms": elapsed_ms,
    })))
}

/// The role and claims to run as, or `None` for the owner.
async fn claims_for(
    state: &AppState,
    run_as: &str,
) -> Result<Option<(String, serde_json::Value)>, ApiError> {
    if run_as == "owner" {
        return Ok(None);
    }
    let (role, claims) =
        crate::extract::acting_as(state, run_as, "invalid_run_as", "run_as (or owner)").await?;
    Ok(Some((role.to_owned(), claims)))
}

struct Answer {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    row_count: i64,
    truncated: bool,
}

/// The last statement's result: its rows (as text, as PostgreSQL sends them), or the
/// count of rows it touched.
fn last_result(messages: &[SimpleQueryMessage], limit: usize) -> Answer {
    let mut answer = Answer {
        columns: Vec::new(),
        rows: Vec::new(),
        row_count: 0,
        truncated: false,
    };
    let mut current: Vec<Vec<Option<String>>> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let mut seen = 0_i64;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description.iter().map(|c| c.name().to_owned()).collect();
                current.clear();
                seen = 0;
            }
            SimpleQueryMessage::Row(row) => {
                if columns.is_empty() {
                    columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                seen += 1;
                if current.len() < limit {
                    current.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    );
                }
            }
            SimpleQueryMessage::CommandComplete(count) => {
                answer = Answer {
                    truncated: usize::try_from(seen).unwrap_or(usize::MAX) > current.len(),
                    columns: std::mem::take(&mut columns),
                    rows: std::mem::take(&mut current),
                    row_count: i64::try_from(*count).unwrap_or(i64::MAX),
                };
                seen = 0;
            }
            _ => {}
        }
    }
    answer
}

#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    actor: &str,
    run_as: &str,
    sql: &str,
    committed: bool,
    elapsed_ms: f64,
    row_count: Option<i64>,
    error: Option<&str>,
) {
    let recorded = async {
        state
            .pools
            .owner
            .get()
            .await?
            .execute(
                "INSERT INTO galley.sql_history (actor, run_as, sql, committed, elapsed_ms, row_count, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&actor, &run_as, &sql, &committed, &elapsed_ms, &row_count, &error],
            )
            .await?;
        Ok::<_, DbError>(())
    }
    .await;
    if let Err(err) = recorded {
        tracing::error!(error = %galley_db::report(&err), "recording the SQL console's history");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<i64>,
}

async fn history(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    query: web::Query<Limit>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let entries: serde_json::Value = state
        .owner_json(
            "SELECT coalesce(json_agg(h ORDER BY h.id DESC), '[]') FROM ( \
               SELECT id, ran_at, actor, run_as, sql, committed, elapsed_ms, row_count, error \
               FROM galley.sql_history ORDER BY id DESC LIMIT $1) h",
            &[&limit],
        )
        .await?;
    Ok(HttpResponse::Ok().json(entries))
}

async fn list_snippets(
    _admin: AdminAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snippets: serde_json::Value = state
        .owner_json(
            "SELECT coalesce(json_agg(s ORDER BY s.name), '[]') FROM galley.sql_snippets s",
            &[],
        )
        .await?;
    Ok(HttpResponse::Ok().json(snippets))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Snippet {
    name: String,
    sql: String,
}

/// Saves a snippet under its name, replacing one of the same name.
async fn save_snippet(
    admin: AdminAccess,
    state: web::Data<AppState>,
    body: web::Json<Snippet>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid_body(
            "a snippet needs a name of 1 to 200 characters",
        ));
    }
    let saved: serde_json::Value = state
        .owner_json(
            "INSERT INTO galley.sql_snippets (name, sql, created_by) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET sql = EXCLUDED.sql, updated_at = now() \
             RETURNING row_to_json(sql_snippets)",
            &[&name, &body.sql, &admin.actor()],
        )
        .await?;
    Ok(HttpResponse::Ok().json(saved))
}

async fn delete_snippet(
    _admin: AdminAccess,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let deleted = state
        .owner()
        .await?
        .execute("DELETE FROM galley.sql_snippets WHERE id = $1", &[&*id])
        .await
        .map_err(DbError::from)?;
    if deleted == 0 {
        return Err(ApiError::not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
