//! Checks of the server Galley is about to trust, run at every start: durability settings
//! that lose acknowledged writes, PostgreSQL minors with known row-level security holes,
//! and an `authenticator` that is a superuser (which would make every policy moot).

use tokio_postgres::Client;

use crate::error::DbError;

/// Oldest fixed minor per major for CVE-2024-10976 (RLS policies below subqueries
/// disregarded user ID changes), the latest RLS bypass at the time of writing.
const RLS_FIXED: &[(i32, i32)] = &[
    (13, 130_018),
    (14, 140_015),
    (15, 150_010),
    (16, 160_006),
    (17, 170_002),
];

/// Oldest major Galley runs on.
const OLDEST_MAJOR: i32 = 13;

/// What is wrong with the server, one line each; empty when all is well.
pub async fn preflight(owner: &Client, allow_unsafe: bool) -> Result<Vec<String>, DbError> {
    let row = owner
        .query_one(
            "SELECT current_setting('server_version_num')::int,
                    current_setting('fsync'), current_setting('synchronous_commit'),
                    current_setting('full_page_writes'),
                    coalesce((SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'authenticator'), false)",
            &[],
        )
        .await?;
    let version: i32 = row.get(0);
    let mut problems = Vec::new();
    if !allow_unsafe {
        let off: Vec<&str> = [
            ("fsync", row.get::<_, String>(1)),
            ("synchronous_commit", row.get::<_, String>(2)),
            ("full_page_writes", row.get::<_, String>(3)),
        ]
        .into_iter()
        .filter(|(_, value)| value == "off")
        .map(|(setting, _)| setting)
        .collect();
        if !off.is_empty() {
            problems.push(format!(
                "the server runs with {}=off, which can lose acknowledged writes; turn it on \
                 (or set database.allow_unsafe_durability for a throwaway server)",
                off.join("=off, ")
            ));
        }
    }
    let major = version / 10_000;
    if major < OLDEST_MAJOR {
        problems.push(format!(
            "PostgreSQL {major} is too old; Galley needs {OLDEST_MAJOR} or newer"
        ));
    } else if let Some((_, fixed)) = RLS_FIXED.iter().find(|(m, _)| *m == major)
        && version < *fixed
    {
        problems.push(format!(
            "PostgreSQL {major}.{} has a known row-level security bypass (CVE-2024-10976); upgrade to {major}.{} or newer",
            version % 10_000,
            fixed % 10_000
        ));
    }
    if row.get::<_, bool>(4) {
        problems.push(
            "the `authenticator` role is a superuser or bypasses RLS, so access rules would not apply; \
             ALTER ROLE authenticator NOSUPERUSER NOBYPASSRLS"
                .to_owned(),
        );
    }
    Ok(problems)
}
