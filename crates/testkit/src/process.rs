//! The real `galley` binary as a child process, for what only a process can show: the
//! embedded cluster's life cycle, signals, exit codes and start-up errors.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running `galley serve`.
pub struct GalleyProcess {
    pub child: Child,
    pub address: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl GalleyProcess {
    /// Runs `galley serve --listen 127.0.0.1:0 --log-format json <args>` with a clean
    /// environment (no `GALLEY_*` from the caller) and waits until it serves.
    pub fn serve(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<GalleyProcess> {
        let mut command = Self::command(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Runs `command` (a `galley serve` with `--log-format json`) and waits until it
    /// serves; its standard output (the banner) is kept as lines.
    pub fn spawn(mut command: Command) -> anyhow::Result<GalleyProcess> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning galley")?;
        let stderr = child.stderr.take().context("galley's stderr")?;
        let stdout_pipe = child.stdout.take().context("galley's stdout")?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let banner = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout_pipe).lines().map_while(Result::ok) {
                banner.lock().expect("stdout buffer").push(line);
            }
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = serving_url(&line) {
                    let _ = found.send(url);
                }
                sink.lock().expect("log buffer").push(line);
            }
        });
        match address.recv_timeout(Duration::from_secs(120)) {
            Ok(address) => Ok(GalleyProcess {
                child,
                address,
                logs,
                stdout,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let logs = logs.lock().expect("log buffer").join("\n");
                anyhow::bail!("galley did not start (exit {status:?}); its log:\n{logs}")
            }
        }
    }

    /// A `galley` command with a clean environment.
    pub fn command(binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command.env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        // Tests run several instances at once: each its own metrics port.
        command.env("GALLEY_METRICS_LISTEN", "127.0.0.1:0");
        command
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log buffer").clone()
    }

    /// What it printed on standard output so far, by line.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout buffer").clone()
    }

    /// Sends `signal` and waits (up to a minute) for the process to exit.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> anyhow::Result<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).context("pid")?);
        nix::sys::signal::kill(pid, signal).context("signalling galley")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "galley did not exit within a minute"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GalleyProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// The `url` field of the "Galley is serving" log line.
fn serving_url(line: &str) -> Option<SocketAddr> {
    let marker = "\"url\":\"http://";
    let start = line.find(marker)? + marker.len();
    let rest = &line[start..];
    rest[..rest.find('"')?].parse().ok()
}
