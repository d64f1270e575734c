//! Logging through `tracing`: readable text by default, JSON lines for collectors. Logs
//! go to stderr; stdout carries only what a command prints (keys, URLs).

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;
use crate::jsonlog::JsonLayer;
use crate::logwriter::{BatchWriter, DEFAULT_CAPACITY, WriterGuard};
use crate::textlog::TextFormat;

/// Installs the global subscriber once; later calls (tests starting several apps) keep the
/// first one. Lines are formatted on the thread that logs and written to stderr in
/// batches by a thread of their own (`logwriter`), so a request never waits on the write;
/// the returned guard writes what is buffered when dropped (keep it until the process
/// ends). When the buffer is full the logging thread waits rather than drop lines.
///
/// `level` is a list of `target=level` directives and a default level
/// (`info,tokio_postgres=warn`). It is matched by target and level alone, once per
/// call site, and keeps no per-span state: `EnvFilter`'s span-field directives would cost
/// a shared lock on every entry to and exit from a request's span.
pub fn init_telemetry(format: LogFormat, level: &str) -> anyhow::Result<Option<WriterGuard>> {
    let filter: Targets = level
        .parse()
        .map_err(|err| anyhow::anyhow!("invalid configuration: log_level `{level}`: {err}"))?;
    let (writer, guard) = BatchWriter::new(std::io::stderr(), std::io::stderr(), DEFAULT_CAPACITY)?;
    let installed = subscriber(format, filter, writer).try_init();
    // Already installed: keep the first subscriber (and let this writer go).
    Ok(installed.ok().map(|()| guard))
}

/// The subscriber: `filter` decides what is logged, alone (the formatting layer adds no
/// level limit of its own), and `format` how.
fn subscriber<W>(format: LogFormat, filter: Targets, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .event_format(TextFormat)
                    .with_ansi(colour())
                    .with_writer(writer),
            ),
        ),
        LogFormat::Json => Box::new(registry.with(JsonLayer::new(writer))),
    }
}

/// Whether text lines are coloured: only on a terminal (a file or a journal gets no escape
/// codes), and not when `NO_COLOR` is set (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonlog::tests::Lines;

    /// The messages logged through a subscriber with this `log_level`.
    fn messages(level: &str) -> Vec<String> {
        let lines = Lines::default();
        let filter = level.parse().expect("filter");
        tracing::subscriber::with_default(
            subscriber(LogFormat::Json, filter, lines.clone()),
            || {
                tracing::trace!("trace");
                tracing::debug!("debug");
                tracing::info!("info");
                tracing::warn!("warn");
                tracing::info!(target: "quiet_crate", "quiet info");
                tracing::warn!(target: "quiet_crate", "quiet warn");
            },
        );
        lines
            .text()
            .lines()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).expect("json line");
                json["message"].as_str().expect("message").to_owned()
            })
            .collect()
    }

    #[test]
    fn the_log_level_is_a_default_and_per_target_levels() {
        assert_eq!(
            messages("info,quiet_crate=warn"),
            ["info", "warn", "quiet warn"]
        );
        assert_eq!(
            messages("trace,quiet_crate=off"),
            ["trace", "debug", "info", "warn"]
        );
        assert_eq!(messages("warn"), ["warn", "quiet warn"]);
    }

    #[test]
    fn an_unreadable_log_level_is_refused() {
        let err = init_telemetry(LogFormat::Json, "info,=nonsense=")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("log_level"), "{err}");
    }
}
