//! The schema history as migration files: `export` writes one file per applied change,
//! in order; `apply` replays them on another database, skipping what it already has and
//! refusing files that disagree with its own history.

use galley_db::tokio_postgres::Client;

use crate::cache::CHANNEL;
use crate::error::SchemaError;

/// One exported change: `NNNN_<operation>_<target>.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub name: String,
    pub content: String,
}

const HEADER: &str = "-- galley schema change ";

/// Every recorded change, oldest first, as migration files.
pub async fn export_history(client: &Client) -> Result<Vec<MigrationFile>, SchemaError> {
    let rows = client
        .query(
            "SELECT operation, target, sql FROM galley.schema_history ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let operation: String = row.get(0);
            let target: String = row.get(1);
            let sql: String = row.get(2);
            let sequence = index + 1;
            let slug: String = target
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            MigrationFile {
                name: format!("{sequence:04}_{operation}_{slug}.sql"),
                content: format!("{HEADER}{sequence}: {operation} {target}\n{sql}"),
            }
        })
        .collect())
}

/// What applying a set of files did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: Vec<String>,
    pub skipped: Vec<String>,
}

/// Applies `files` (sorted by name) in one transaction, under the schema lock. The n-th
/// file corresponds to the n-th change in this database's history: equal SQL is skipped,
/// different SQL refuses the whole set, and files past the end are applied and recorded.
pub async fn apply_files(
    client: &mut Client,
    files: &[MigrationFile],
) -> Result<ApplyReport, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&crate::apply::SCHEMA_LOCK],
    )
    .await?;
    let recorded: Vec<String> = tx
        .query("SELECT sql FROM galley.schema_history ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut report = ApplyReport::default();
    for (index, file) in files.iter().enumerate() {
        let (operation, target, sql) = parse(file)?;
        match recorded.get(index) {
            Some(existing) if *existing == sql => report.skipped.push(file.name.clone()),
            Some(_) => {
                return Err(SchemaError::invalid(
                    &file.name,
                    &format!(
                        "this database's change {} differs from the file; the histories diverged, nothing was applied",
                        index + 1
                    ),
                ));
            }
            None => {
                // Files are the operator's own, like `psql -f`: run as one script.
                tx.batch_execute(&sql)
                    .await
                    .map_err(|err| SchemaError::Refused {
                        message: format!(
                            "{}: {}",
                            file.name,
                            err.as_db_error()
                                .map_or_else(|| err.to_string(), |db| db.message().to_owned())
                        ),
                    })?;
                tx.execute(
                    "INSERT INTO galley.schema_history (actor, operation, target, sql) VALUES ('import', $1, $2, $3)",
                    &[&operation, &target, &sql],
                )
                .await?;
                report.applied.push(file.name.clone());
            }
        }
    }
    if !report.applied.is_empty() {
        // Tables the files made with plain SQL (recorded from the console or psql, whose
        // adoption was not part of the text) are adopted here as they were there; not
        // recorded, so this history keeps matching the files one for one.
        crate::adopt::adopt_new_tables(&tx, None).await?;
        tx.execute("SELECT pg_notify($1, 'galley')", &[&CHANNEL])
            .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Splits a file into its header's operation and target, and the SQL.
fn parse(file: &MigrationFile) -> Result<(String, String, String), SchemaError> {
    let malformed = || {
        SchemaError::invalid(
            &file.name,
            "not a Galley schema change file (its first line is the header)",
        )
    };
    let (header, sql) = file.content.split_once('\n').ok_or_else(malformed)?;
    let rest = header.strip_prefix(HEADER).ok_or_else(malformed)?;
    let (_, description) = rest.split_once(": ").ok_or_else(malformed)?;
    let (operation, target) = description.split_once(' ').ok_or_else(malformed)?;
    Ok((operation.to_owned(), target.to_owned(), sql.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let file = MigrationFile {
            name: "0001_create_table_todos.sql".to_owned(),
            content: format!("{HEADER}1: create_table todos\nCREATE TABLE x ();\n"),
        };
        assert_eq!(
            parse(&file).expect("parses"),
            (
                "create_table".to_owned(),
                "todos".to_owned(),
                "CREATE TABLE x ();\n".to_owned()
            )
        );
        let bad = MigrationFile {
            name: "x.sql".to_owned(),
            content: "DROP TABLE todos;".to_owned(),
        };
        assert!(parse(&bad).is_err());
    }
}
