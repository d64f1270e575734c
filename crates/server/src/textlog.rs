//! Galley's text log lines, for terminals: `tracing-subscriber`'s full format, with the
//! request being served (if any) in front of the target, where the stock format puts the
//! current span:
//!
//! ```text
//! 2026-11-21T23:53:22.123456Z  INFO request{id=… method=GET path="/rest/v1/items"}: galley_gateway::…: request served status=200 …
//! ```

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub(crate) struct TextFormat;

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        SystemTime.format_time(&mut writer)?;
        let (colour, level) = match *meta.level() {
            Level::ERROR => ("31", "ERROR"),
            Level::WARN => ("33", " WARN"),
            Level::INFO => ("32", " INFO"),
            Level::DEBUG => ("34", "DEBUG"),
            Level::TRACE => ("35", "TRACE"),
        };
        if writer.has_ansi_escapes() {
            write!(writer, " \x1b[{colour}m{level}\x1b[0m ")?;
        } else {
            write!(writer, " {level} ")?;
        }
        // The id is plausible by construction and the method a token; the path is the
        // client's and is written quoted and escaped, so it cannot break the line.
        galley_gateway::current_request(|request| {
            write!(
                writer,
                "request{{id={} method={} path={:?}}}: ",
                request.id(),
                request.method(),
                request.path()
            )
        })
        .transpose()?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }
        write!(writer, "{}: ", meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::jsonlog::tests::{Lines, request};

    #[test]
    fn lines_name_the_request_being_served_and_the_spans() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(TextFormat)
                .with_ansi(false)
                .with_writer(lines.clone()),
        );
        let request = request("r-3", actix_web::http::Method::GET, "/rest/v1/a\r\nb");
        tracing::subscriber::with_default(subscriber, || {
            galley_gateway::in_request(request, || tracing::warn!(status = 404u16, "inside"));
            let span = tracing::info_span!("job", table = "items");
            span.in_scope(|| tracing::info!("in a span"));
        });
        let text = lines.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                r#" WARN request{id=r-3 method=GET path="/rest/v1/a\r\nb"}: galley_server::textlog::tests: inside status=404"#
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1]
                .ends_with(r#" INFO job{table="items"}: galley_server::textlog::tests: in a span"#),
            "{}",
            lines[1]
        );
        let timestamp = lines[0].split(' ').next().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
    }
}
