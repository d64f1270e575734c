//! PostgreSQL's own dump tools, for backups: finding `pg_dump` and `pg_restore`, checking
//! their major version against the server's, and running them with the connection passed
//! through the environment (never on a command line another user could read).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why a dump or a restore could not run.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(
        "pg_dump and pg_restore were not found on PATH or under /usr/lib/postgresql/*/bin; \
         install PostgreSQL's client tools (Debian: postgresql-client-15)"
    )]
    NoTools,
    #[error("{program} could not run: {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed: {output}")]
    Failed {
        program: &'static str,
        output: String,
    },
    #[error(
        "{program} is PostgreSQL {tools}, older than the server's {server}: it cannot dump \
         or restore that server; install the client tools of PostgreSQL {server} or newer"
    )]
    TooOld {
        program: &'static str,
        tools: u32,
        server: u32,
    },
    #[error("cannot read the version of {program}: {output}")]
    Version {
        program: &'static str,
        output: String,
    },
}

/// The directory holding `pg_dump` and `pg_restore`.
#[derive(Debug, Clone)]
pub struct PgTools {
    dir: PathBuf,
}

const TOOLS: [&str; 2] = ["pg_dump", "pg_restore"];

impl PgTools {
    /// Searches `dir` when given, else `PATH`, then `/usr/lib/postgresql/*/bin` (newest
    /// major first).
    pub fn locate(dir: Option<&Path>) -> Result<Self, DumpError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut candidates: Vec<PathBuf> = dir.map(Path::to_path_buf).into_iter().collect();
        candidates.extend(std::env::split_paths(&path));
        candidates.extend(crate::pgbin::distribution_dirs(Path::new(
            "/usr/lib/postgresql",
        )));
        candidates
            .into_iter()
            .find(|dir| TOOLS.iter().all(|tool| dir.join(tool).is_file()))
            .map(|dir| Self { dir })
            .ok_or(DumpError::NoTools)
    }

    /// `pg_dump`'s major version, e.g. 15.
    pub fn major_version(&self) -> Result<u32, DumpError> {
        let output = self.run(
            "pg_dump",
            Command::new(self.dir.join("pg_dump")).arg("--version"),
        )?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        text.split_whitespace()
            .nth(2)
            .and_then(|version| version.split('.').next())
            .and_then(|major| major.parse().ok())
            .ok_or(DumpError::Version {
                program: "pg_dump",
                output: text.trim().to_owned(),
            })
    }

    /// The tools' full version line, for a backup's manifest.
    pub fn version_line(&self) -> Result<String, DumpError> {
        let output = self.run(
            "pg_dump",
            Command::new(self.dir.join("pg_dump")).arg("--version"),
        )?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Refuses tools older than the server (`server_version_num`, e.g. 150018).
    pub fn check_against(&self, server_version_num: u32) -> Result<(), DumpError> {
        let tools = self.major_version()?;
        let server = server_version_num / 10_000;
        if tools < server {
            return Err(DumpError::TooOld {
                program: "pg_dump",
                tools,
                server,
            });
        }
        Ok(())
    }

    /// `pg_dump -Fc` of the database `target` names, into `out`, as of `snapshot` (from
    /// `pg_export_snapshot()` in a transaction the caller keeps open meanwhile).
    pub fn dump_snapshot(
        &self,
        target: &tokio_postgres::Config,
        out: &Path,
        snapshot: &str,
    ) -> Result<(), DumpError> {
        let mut command = Command::new(self.dir.join("pg_dump"));
        command
            .args(["--format=custom", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .arg("--file")
            .arg(out);
        connect_through_env(&mut command, target);
        self.run("pg_dump", &mut command).map(drop)
    }

    /// The same dump written into `out` as it is made (for a backup encrypted on its way
    /// to disk), instead of into a file.
    pub fn dump_snapshot_into(
        &self,
        target: &tokio_postgres::Config,
        snapshot: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<(), DumpError> {
        use std::process::Stdio;
        let mut command = Command::new(self.dir.join("pg_dump"));
        command
            .args(["--format=custom", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        connect_through_env(&mut command, target);
        let spawn = |source| DumpError::Spawn {
            program: "pg_dump",
            source,
        };
        let mut child = command.spawn().map_err(spawn)?;
        let copied = match child.stdout.take() {
            Some(mut stdout) => std::io::copy(&mut stdout, out).map(drop),
            None => Ok(()),
        };
        let output = child.wait_with_output().map_err(spawn)?;
        if !output.status.success() {
            return Err(DumpError::Failed {
                program: "pg_dump",
                output: String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        copied.map_err(spawn)
    }

    /// `pg_restore` of `dump` into the database `target` names. With `clean`, what the
    /// dump holds is dropped first; the whole restore is one transaction either way.
    pub fn restore(
        &self,
        target: &tokio_postgres::Config,
        dump: &Path,
        clean: bool,
    ) -> Result<(), DumpError> {
        let mut command = Command::new(self.dir.join("pg_restore"));
        command.args(["--no-password", "--single-transaction", "--exit-on-error"]);
        if clean {
            command.args(["--clean", "--if-exists"]);
        }
        connect_through_env(&mut command, target);
        let database = target.get_dbname().unwrap_or("postgres");
        command.arg("--dbname").arg(database).arg(dump);
        self.run("pg_restore", &mut command).map(drop)
    }

    fn run(&self, program: &'static str, command: &mut Command) -> Result<Output, DumpError> {
        let output = command
            .output()
            .map_err(|source| DumpError::Spawn { program, source })?;
        if output.status.success() {
            return Ok(output);
        }
        let text = String::from_utf8_lossy(&output.stderr);
        Err(DumpError::Failed {
            program,
            output: text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .take(5)
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

/// libpq's environment variables for `target`: host (or socket directory), port, user,
/// database and password.
fn connect_through_env(command: &mut Command, target: &tokio_postgres::Config) {
    command.env_remove("PGPASSFILE").env_remove("PGSERVICE");
    if let Some(host) = target.get_hosts().first() {
        match host {
            tokio_postgres::config::Host::Tcp(name) => command.env("PGHOST", name),
            tokio_postgres::config::Host::Unix(dir) => command.env("PGHOST", dir),
        };
    }
    if let Some(port) = target.get_ports().first() {
        command.env("PGPORT", port.to_string());
    }
    if let Some(user) = target.get_user() {
        command.env("PGUSER", user);
    }
    if let Some(database) = target.get_dbname() {
        command.env("PGDATABASE", database);
    }
    match target.get_password() {
        Some(password) => command.env("PGPASSWORD", String::from_utf8_lossy(password).as_ref()),
        None => command.env_remove("PGPASSWORD"),
    };
}
