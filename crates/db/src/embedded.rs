//! A private PostgreSQL cluster inside a directory, driven by the system's `initdb` and
//! `pg_ctl`: Galley's embedded default, and the test harness's throwaway cluster.
//!
//! Layout under the cluster root:
//!
//! ```text
//! postgres/        PGDATA (mode 0700, owned by the cluster's system user)
//! postgres/galley.conf   settings Galley rewrites at every start (socket dir, no TCP)
//! run/             the Unix socket; the only way in (no TCP listener)
//! log/postgres.log the server's own log
//! ```

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};

use crate::pgbin::PgBinaries;

/// The superuser `initdb` creates; Galley's migrations and DDL run as it.
pub const SUPERUSER: &str = "postgres";

/// Why the embedded cluster could not be prepared, started or stopped. Each message is one
/// line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin: \
         install them (apt-get install postgresql), point --pg-bin at their directory, \
         or use --database-url to run against a PostgreSQL server you manage"
    )]
    NoBinaries,
    #[error("--pg-bin {dir:?} does not contain initdb and pg_ctl")]
    BinariesNotInDir { dir: PathBuf },
    #[error(
        "Galley runs as root, and PostgreSQL refuses to; the system user `{user}` that should own the \
         embedded cluster does not exist: create it (apt-get install postgresql does), \
         set database.os_user to another unprivileged user, or run Galley as a normal user"
    )]
    OsUserMissing { user: String },
    #[error(
        "{program} cannot run as the cluster's system user in {dir:?}: that user must be able to enter the data \
         directory and every directory above it; choose a --data-dir it can reach (not under /root or a 0700 directory)"
    )]
    Unreachable { program: String, dir: PathBuf },
    #[error("{action} {path:?}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{program} failed: {output}")]
    CommandFailed { program: String, output: String },
}

/// How a cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `false` turns off fsync and friends: only for throwaway test clusters.
    pub durable: bool,
    /// System user the cluster runs as when this process is root.
    pub os_user: String,
    pub max_connections: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: true,
            os_user: "postgres".to_owned(),
            max_connections: 100,
        }
    }
}

/// The system user that owns and runs the cluster, when it is not this process's user.
#[derive(Debug, Clone)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

/// Proof that this process holds a cluster's lock file; dropping it releases the lock.
#[derive(Debug)]
pub struct ClusterLock(#[allow(dead_code, reason = "held for its Drop")] Flock<fs::File>);

/// A PostgreSQL cluster in a directory that Galley owns.
#[derive(Debug, Clone)]
pub struct Cluster {
    root: PathBuf,
    bins: PgBinaries,
    run_as: Option<RunAs>,
    options: ClusterOptions,
}

impl Cluster {
    /// Describes the cluster under `root`; touches nothing on disk yet.
    pub fn new(
        root: &Path,
        bins: PgBinaries,
        options: ClusterOptions,
    ) -> Result<Self, EmbeddedError> {
        let root = std::path::absolute(root).map_err(|source| EmbeddedError::Io {
            action: "resolve",
            path: root.to_owned(),
            source,
        })?;
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(&options.os_user)
                .ok()
                .flatten()
                .ok_or_else(|| EmbeddedError::OsUserMissing {
                    user: options.os_user.clone(),
                })?;
            Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })
        } else {
            None
        };
        Ok(Self {
            root,
            bins,
            run_as,
            options,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pgdata(&self) -> PathBuf {
        self.root.join("postgres")
    }

    /// Directory of the Unix socket; pass it as `host` to any PostgreSQL client.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("log").join("postgres.log")
    }

    /// A connection string for `database` as the superuser, usable by psql and pg_dump.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@/{database}?host={}",
            percent_encode(&self.socket_dir().to_string_lossy())
        )
    }

    /// Connection settings for `user` on `database` over the socket.
    pub fn connect_config(&self, database: &str, user: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .user(user)
            .dbname(database)
            .application_name("galley");
        config
    }

    /// Takes the cluster's lock file, `<root>/galley.lock`, so that one process at a time
    /// manages the cluster. The lock goes with the returned guard, or with the process.
    /// Without `wait`, `Ok(None)` means another process holds it.
    pub fn lock(&self, wait: bool) -> Result<Option<ClusterLock>, EmbeddedError> {
        self.make_root()?;
        let path = self.root.join("galley.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let mode = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(file, mode) {
            Ok(lock) => Ok(Some(ClusterLock(lock))),
            Err((_, Errno::EWOULDBLOCK)) if !wait => Ok(None),
            Err((_, errno)) => Err(io_err("lock", &path)(io::Error::from(errno))),
        }
    }

    /// Runs `initdb` unless the cluster exists. An interrupted earlier `initdb` leaves only
    /// a scratch directory, which is discarded: the real PGDATA appears by rename, whole.
    pub fn ensure_initialized(&self) -> Result<(), EmbeddedError> {
        self.make_root()?;
        let pgdata = self.pgdata();
        if pgdata.join("PG_VERSION").is_file() {
            return Ok(());
        }
        let scratch = self.root.join("postgres.initdb");
        if scratch.exists() {
            fs::remove_dir_all(&scratch).map_err(io_err("remove", &scratch))?;
        }
        if pgdata.exists() {
            // A PGDATA without PG_VERSION is not a cluster; refuse to guess what it is.
            return Err(EmbeddedError::CommandFailed {
                program: "initdb".to_owned(),
                output: format!(
                    "{} exists but holds no PostgreSQL cluster; move it away",
                    pgdata.display()
                ),
            });
        }
        self.make_owned_dir(&scratch)?;
        let mut initdb = self.command("initdb");
        initdb
            .arg("--pgdata")
            .arg(&scratch)
            .args([
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
            ])
            .arg("--data-checksums");
        if !self.options.durable {
            initdb.arg("--no-sync");
        }
        run(initdb, "initdb")?;
        let conf = scratch.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(io_err("read", &conf))?;
        text.push_str("\n# Written by Galley at every start.\ninclude_if_exists = 'galley.conf'\n");
        fs::write(&conf, text).map_err(io_err("write", &conf))?;
        fs::rename(&scratch, &pgdata).map_err(io_err("rename", &scratch))?;
        tracing::info!(pgdata = %pgdata.display(), "initialised a new PostgreSQL cluster");
        Ok(())
    }

    /// Starts the cluster and waits until it accepts connections. A server left running
    /// by a killed run is stopped first, and a stale `postmaster.pid` is removed.
    pub fn start(&self) -> Result<(), EmbeddedError> {
        self.ensure_initialized()?;
        self.make_owned_dir(&self.socket_dir())?;
        self.make_owned_dir(&self.root.join("log"))?;
        self.write_settings()?;
        self.recover_previous_run()?;
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("start")
            .arg("--pgdata")
            .arg(self.pgdata())
            .arg("--log")
            .arg(self.log_file())
            .args(["--wait", "--timeout", "120", "--silent"]);
        run(pg_ctl, "pg_ctl start").map_err(|err| self.with_log_tail(err))?;
        Ok(())
    }

    /// Stops the cluster (fast shutdown: open transactions roll back) and waits for it.
    /// Stopping a cluster that is not running is not an error.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        if !self.is_running() {
            return Ok(());
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("stop").arg("--pgdata").arg(self.pgdata()).args([
            "--mode",
            "fast",
            "--wait",
            "--timeout",
            "120",
            "--silent",
        ]);
        run(pg_ctl, "pg_ctl stop")
    }

    /// Whether a postmaster is serving this PGDATA, per `pg_ctl status`.
    pub fn is_running(&self) -> bool {
        if !self.pgdata().join("postmaster.pid").exists() {
            return false;
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("status").arg("--pgdata").arg(self.pgdata());
        pg_ctl.output().is_ok_and(|out| out.status.success())
    }

    /// The pid of the running postmaster, if any.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether this data directory's postmaster is alive: the pid in `postmaster.pid` is
    /// a PostgreSQL server working in this PGDATA. Cheap (no child process), for the
    /// supervisor's frequent checks.
    pub fn postmaster_alive(&self) -> bool {
        self.postmaster_pid()
            .is_some_and(|pid| is_postmaster_of(pid, &self.pgdata()))
    }

    fn recover_previous_run(&self) -> Result<(), EmbeddedError> {
        let pid_file = self.pgdata().join("postmaster.pid");
        let Some(pid) = self.postmaster_pid() else {
            return Ok(());
        };
        if is_postmaster_of(pid, &self.pgdata()) {
            tracing::warn!(
                pid,
                "a PostgreSQL server from an earlier run is still up; stopping it"
            );
            let mut pg_ctl = self.command("pg_ctl");
            pg_ctl.arg("stop").arg("--pgdata").arg(self.pgdata()).args([
                "--mode",
                "fast",
                "--wait",
                "--timeout",
                "120",
                "--silent",
            ]);
            run(pg_ctl, "pg_ctl stop")?;
        } else {
            tracing::warn!(
                pid,
                "removing a stale postmaster.pid left by an earlier run"
            );
            fs::remove_file(&pid_file).map_err(io_err("remove", &pid_file))?;
        }
        Ok(())
    }

    /// Settings that depend on where the cluster lives now, so they are rewritten at each
    /// start: the socket moves with the directory, and TCP stays off.
    fn write_settings(&self) -> Result<(), EmbeddedError> {
        let mut conf = String::from("# Managed by Galley; rewritten at every start.\n");
        conf.push_str("listen_addresses = ''\n");
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            self.socket_dir().to_string_lossy().replace('\'', "''")
        ));
        conf.push_str("unix_socket_permissions = 0700\n");
        conf.push_str(&format!(
            "max_connections = {}\n",
            self.options.max_connections
        ));
        if !self.options.durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let path = self.pgdata().join("galley.conf");
        fs::write(&path, conf).map_err(io_err("write", &path))?;
        self.chown(&path)
    }

    fn make_root(&self) -> Result<(), EmbeddedError> {
        // The cluster's user must be able to reach its own directories through the root.
        let mode = if self.run_as.is_some() { 0o711 } else { 0o700 };
        if !self.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&self.root)
                .map_err(io_err("create", &self.root))?;
        } else if self.run_as.is_some() {
            let current = fs::metadata(&self.root).map_err(io_err("inspect", &self.root))?;
            if current.permissions().mode() & 0o001 == 0 {
                let perms =
                    fs::Permissions::from_mode((current.permissions().mode() & 0o777) | 0o011);
                fs::set_permissions(&self.root, perms)
                    .map_err(io_err("set permissions on", &self.root))?;
            }
        }
        Ok(())
    }

    fn make_owned_dir(&self, dir: &Path) -> Result<(), EmbeddedError> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_err("create", dir))?;
        }
        self.chown(dir)
    }

    fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(run_as) = &self.run_as {
            std::os::unix::fs::chown(path, Some(run_as.uid.as_raw()), Some(run_as.gid.as_raw()))
                .map_err(io_err("change owner of", path))?;
        }
        Ok(())
    }

    /// A command for one of the PostgreSQL programs, run as the cluster's user, in its own
    /// process group so a terminal's Ctrl-C reaches Galley, which then stops the cluster in
    /// order.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bins.bin(program));
        command
            .current_dir(&self.root)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .process_group(0);
        if let Some(run_as) = &self.run_as {
            command.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
        }
        command
    }

    fn with_log_tail(&self, err: EmbeddedError) -> EmbeddedError {
        let EmbeddedError::CommandFailed { program, output } = err else {
            return err;
        };
        let log = fs::read_to_string(self.log_file()).unwrap_or_default();
        let tail = one_line(
            &log.lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        );
        EmbeddedError::CommandFailed {
            program,
            output: format!("{output} (server log: {tail})"),
        }
    }
}

fn run(mut command: Command, program: &str) -> Result<(), EmbeddedError> {
    let output: Output = command.output().map_err(|source| match source.kind() {
        // As another system user, a directory it cannot enter fails the spawn itself.
        io::ErrorKind::PermissionDenied => EmbeddedError::Unreachable {
            program: program.to_owned(),
            dir: command
                .get_current_dir()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        },
        _ => EmbeddedError::Io {
            action: "run",
            path: PathBuf::from(command.get_program()),
            source,
        },
    })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Err(EmbeddedError::CommandFailed {
        program: program.to_owned(),
        output: one_line(&text),
    })
}

/// Collapses a program's output into one line for a one-line error.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `pid` is the postmaster of `pgdata`: a PostgreSQL server process whose
/// working directory is that data directory (a postmaster changes into its PGDATA). A
/// recycled pid, another program, or the server of another data directory is not, and is
/// never signalled.
fn is_postmaster_of(pid: i32, pgdata: &Path) -> bool {
    if !is_postgres_process(pid) {
        return false;
    }
    let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    let pgdata = fs::canonicalize(pgdata).unwrap_or_else(|_| pgdata.to_owned());
    cwd == pgdata
}

/// Whether `pid` is a running PostgreSQL server process (not a recycled pid).
fn is_postgres_process(pid: i32) -> bool {
    let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else {
        // Not ours to inspect, or gone: fall back to the name it runs under.
        return fs::read(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| String::from_utf8_lossy(&comm).trim() == "postgres");
    };
    exe.file_name()
        .is_some_and(|name| name == OsStr::new("postgres") || name == OsStr::new("postmaster"))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_owned();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

/// Percent-encodes everything but unreserved characters and `/`, for a URL query value.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_with_odd_characters_survive_the_url() {
        assert_eq!(percent_encode("/tmp/my data/run"), "/tmp/my%20data/run");
        assert_eq!(percent_encode("/a&b=c"), "/a%26b%3Dc");
    }

    #[test]
    fn command_output_collapses_to_one_line() {
        assert_eq!(
            one_line("initdb: error\n\n  hint: do x\n"),
            "initdb: error; hint: do x"
        );
    }
}
