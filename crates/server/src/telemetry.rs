//! Logging through `tracing`: readable text by default, JSON lines for collectors. Logs
//! go to stderr; stdout carries only what a command prints (keys, URLs).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests starting several apps) keep the
/// first one. Lines are formatted on the thread that logs and written to stderr by a
/// thread of their own, so a request never waits on the write; the returned guard
/// flushes what is queued when dropped (keep it until the process ends). When the queue
/// is full the logging thread waits rather than drop lines.
pub fn init_telemetry(
    format: LogFormat,
    level: &str,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let filter = EnvFilter::try_new(level)
        .map_err(|err| anyhow::anyhow!("invalid configuration: log_level `{level}`: {err}"))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_span_events(FmtSpan::NONE);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed: keep the first subscriber (and let this writer go).
    Ok(installed.ok().map(|()| guard))
}
