//! Galley's JSON log lines, one object per line:
//!
//! ```text
//! {"timestamp":"2026-11-21T23:53:22.123456Z","level":"INFO","message":"request served",
//!  "status":200,"elapsed_ms":1.2,"route":"/rest/v1/{table}",...,"target":"galley_gateway::…",
//!  "span":{"request_id":"…","method":"GET","path":"/rest/v1/items","name":"request"}}
//! ```
//!
//! The shape is `tracing-subscriber`'s JSON format with flattened event fields and the
//! current span; the difference is the cost. Fields are written straight into the line
//! with a JSON string escaper, and a span's fields are formatted once, when the span is
//! created, and copied into each line as they are, where the stock formatter parses them
//! back into a map for every line. On the request path this is most of what logging costs.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats a span's fields as the members of a JSON object, without the braces
/// (`"request_id":"…","method":"GET"`), so a line can copy them in unchanged.
#[derive(Debug, Default)]
pub(crate) struct JsonFields;

/// Formats one event as a JSON line (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct JsonLines;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = Members::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = Members::new(&mut current.fields, first);
        fields.record(&mut visitor);
        visitor.result
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{{\"timestamp\":\"{}\",\"level\":\"{}\"",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            meta.level()
        )?;
        let mut visitor = Members::new(&mut writer, false);
        event.record(&mut visitor);
        visitor.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>()
                && !fields.fields.is_empty()
            {
                writer.write_str(&fields.fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes each field it visits as a JSON member, `"name":value`, separated by commas.
struct Members<'w, W: Write> {
    out: &'w mut W,
    /// No member written yet, so the next one needs no comma before it.
    first: bool,
    result: fmt::Result,
}

impl<'w, W: Write> Members<'w, W> {
    fn new(out: &'w mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            self.member(field, |out| out.write_str("null"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }
}

/// A JSON string: quotes, and the contents escaped.
fn string(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what is written through it as the contents of a JSON string: quotes,
/// backslashes and every control character, so no value can break a line or forge a field.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x00..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    }

    #[test]
    fn lines_carry_the_event_fields_flat_and_the_span_fields_nested() {
        let lines = logged(|| {
            let span = tracing::info_span!("request", request_id = "r-1", method = %"GET", path = "/a\"b\r\nc");
            let _entered = span.enter();
            tracing::info!(
                status = 404u16,
                elapsed_ms = 1.5,
                role = "anon",
                ok = false,
                big = -7i64,
                nan = f64::NAN,
                "request served"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request served");
        assert_eq!(line["status"], 404);
        assert_eq!(line["elapsed_ms"], 1.5);
        assert_eq!(line["role"], "anon");
        assert_eq!(line["ok"], false);
        assert_eq!(line["big"], -7);
        assert!(line["nan"].is_null());
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["span"]["request_id"], "r-1");
        assert_eq!(line["span"]["method"], "GET");
        assert_eq!(line["span"]["path"], "/a\"b\r\nc");
        assert_eq!(line["span"]["name"], "request");
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
    }

    #[test]
    fn lines_outside_a_span_and_fields_recorded_later() {
        let lines = logged(|| {
            tracing::warn!(error = %"a\u{1}b", "alone");
            let span = tracing::info_span!("job", first = 1u64, later = tracing::field::Empty);
            span.record("later", "set");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["error"], "a\u{1}b");
        assert!(lines[0].get("span").is_none());
        assert_eq!(lines[1]["span"]["first"], 1);
        assert_eq!(lines[1]["span"]["later"], "set");
        assert_eq!(lines[1]["span"]["name"], "job");
    }
}
