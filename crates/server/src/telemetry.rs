//! Logging through `tracing`: readable text by default, JSON lines for collectors. Logs
//! go to stderr; stdout carries only what a command prints (keys, URLs).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests starting several apps) keep the
/// first one.
pub fn init_telemetry(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|err| anyhow::anyhow!("invalid configuration: log_level `{level}`: {err}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
    // Already installed: keep the first subscriber.
    drop(installed);
    Ok(())
}
