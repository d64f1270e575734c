//! Logging through `tracing`: readable text by default, JSON lines for collectors. Logs
//! go to stderr; stdout carries only what a command prints (keys, URLs).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;
use crate::jsonlog::{JsonFields, JsonLines};
use crate::logwriter::{BatchWriter, DEFAULT_CAPACITY, WriterGuard};

/// Installs the global subscriber once; later calls (tests starting several apps) keep the
/// first one. Lines are formatted on the thread that logs and written to stderr in
/// batches by a thread of their own (`logwriter`), so a request never waits on the write;
/// the returned guard writes what is buffered when dropped (keep it until the process
/// ends). When the buffer is full the logging thread waits rather than drop lines.
pub fn init_telemetry(format: LogFormat, level: &str) -> anyhow::Result<Option<WriterGuard>> {
    let filter = EnvFilter::try_new(level)
        .map_err(|err| anyhow::anyhow!("invalid configuration: log_level `{level}`: {err}"))?;
    let (writer, guard) = BatchWriter::new(std::io::stderr(), std::io::stderr(), DEFAULT_CAPACITY)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_span_events(FmtSpan::NONE);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .try_init(),
    };
    // Already installed: keep the first subscriber (and let this writer go).
    Ok(installed.ok().map(|()| guard))
}
