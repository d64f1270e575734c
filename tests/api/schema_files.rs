//! `galley schema export` and `galley schema apply`: one instance's history replayed on
//! a fresh database gives the same schema; replays are idempotent; divergence is refused.

use galley_testkit::{GalleyProcess, TestApp, TestDatabase, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::galley_bin;

async fn admin(app: &TestApp, method: Method, path: &str, body: Value) {
    let response = app
        .http
        .request(method, app.url(path))
        .bearer_auth(app.service_key())
        .json(&body)
        .send()
        .await
        .expect("response");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.text().await.unwrap_or_default()
    );
}

fn galley_schema(args: &[&str], url: &str) -> std::process::Output {
    GalleyProcess::command(galley_bin())
        .arg("schema")
        .args(args)
        .args(["--database-url", url])
        .output()
        .expect("galley runs")
}

/// `pg_dump --schema-only` of `public`, without comments and the per-dump random
/// `\restrict` key.
fn schema_dump(db: &TestDatabase) -> String {
    // pg_dump sits beside the real initdb (which may be reached through a symlink).
    let bins = galley_db::PgBinaries::locate(None).expect("binaries");
    let initdb = std::fs::canonicalize(bins.bin("initdb")).expect("initdb resolves");
    let pg_dump = initdb.with_file_name("pg_dump");
    let output = std::process::Command::new(pg_dump)
        .args(["--schema-only", "--schema=public", "--no-owner", "--dbname"])
        .arg(db.url())
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter(|line| {
            !line.starts_with("--")
                && !line.starts_with("\\restrict")
                && !line.starts_with("\\unrestrict")
                && !line.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn an_exported_history_applied_to_a_fresh_database_gives_the_same_schema() {
    let source = spawn_app().await;
    admin(
        &source,
        Method::POST,
        "/admin/v1/tables",
        json!({"name": "authors", "primary_key": "bigint", "columns": [{"name": "name", "type": "text", "nullable": false}], "timestamps": true}),
    )
    .await;
    admin(
        &source,
        Method::POST,
        "/admin/v1/tables",
        json!({"name": "books", "columns": [
                {"name": "author", "type": "bigint"},
                {"name": "title", "type": "varchar(200)", "nullable": false, "default": {"value": "untitled; it's fine"}}],
               "foreign_keys": [{"columns": ["author"], "references": {"table": "authors"}, "on_delete": "set_null"}],
               "checks": [{"column": "title", "min_length": 1}]}),
    )
    .await;
    admin(
        &source,
        Method::POST,
        "/admin/v1/tables/books/columns",
        json!({"name": "isbn", "type": "text", "unique": true}),
    )
    .await;
    admin(
        &source,
        Method::PUT,
        "/admin/v1/tables/books/rules",
        json!({"select": {"preset": "public"}}),
    )
    .await;
    // Made in the SQL console: adopted there (row-level security, service_role), and so
    // when the file is applied, though the adoption is not part of the recorded text.
    admin(
        &source,
        Method::POST,
        "/admin/v1/sql",
        json!({"sql": "CREATE TABLE notes (id int PRIMARY KEY, body text)", "commit": true}),
    )
    .await;

    let dir = tempfile::tempdir().expect("dir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let export = galley_schema(&["export", dir_arg], &source.db.url());
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0001_create_table_authors.sql",
            "0002_create_table_books.sql",
            "0003_add_column_books.sql",
            "0004_set_rules_books.sql",
            "0005_sql_notes.sql"
        ]
    );

    let target = TestDatabase::migrated().await.expect("fresh database");
    let apply = galley_schema(&["apply", dir_arg], &target.url());
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(String::from_utf8_lossy(&apply.stdout).contains("applied 5"));
    assert_eq!(schema_dump(&target), schema_dump(&source.db));

    // Again: everything is already there.
    let again = galley_schema(&["apply", dir_arg], &target.url());
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied 0, skipped 5"));

    // A file that no longer matches what was applied is refused, and nothing changes.
    let tampered = dir.path().join("0002_create_table_books.sql");
    let text = std::fs::read_to_string(&tampered).expect("read");
    std::fs::write(&tampered, text.replace("varchar(200)", "varchar(100)")).expect("write");
    let diverged = galley_schema(&["apply", dir_arg], &target.url());
    assert!(!diverged.status.success());
    assert!(String::from_utf8_lossy(&diverged.stderr).contains("diverged"));
    assert_eq!(schema_dump(&target), schema_dump(&source.db));
}
