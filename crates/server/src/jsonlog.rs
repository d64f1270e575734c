//! Galley's JSON log lines, one object per line:
//!
//! ```text
//! {"timestamp":"2026-11-21T23:53:22.123456Z","level":"INFO","message":"request served",
//!  "status":200,"elapsed_ms":1.2,"route":"/rest/v1/{table}",...,"target":"galley_gateway::…",
//!  "request":{"id":"…","method":"GET","path":"/rest/v1/items"}}
//! ```
//!
//! The event's fields are flattened into the object; a line logged while a request is
//! served carries the request (`galley_gateway::current_request`), and a line inside a
//! `tracing` span carries the span as `"span":{…fields,"name":…}`, as `tracing-subscriber`'s
//! JSON format does. The difference from the stock format is the cost, since a line is
//! written on every request. `JsonLayer` is a layer of its own rather than a formatter
//! plugged into the stock `fmt` layer: a span's fields are formatted once, when the span is
//! created, and copied into each line as they are (the stock JSON formatter parses them
//! back into a map for every line); a line is built in a reused per-thread buffer by
//! direct calls, with numbers written by `itoa` and `ryu`, and handed to the writer whole.

use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Writes every event as one JSON line to `W`.
pub(crate) struct JsonLayer<W> {
    writer: W,
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(writer: W) -> Self {
        Self { writer }
    }
}

/// A span's fields as the members of a JSON object, without the braces
/// (`"request_id":"…","method":"GET"`), kept in the span's extensions.
struct SpanFields(String);

/// Bytes a line's buffer may keep between lines; one huge line does not stay allocated.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        // Enough for a request's id, method and path without growing.
        let mut fields = String::with_capacity(160);
        attrs.record(&mut Members::span(&mut fields, true));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            let first = fields.is_empty();
            values.record(&mut Members::span(fields, first));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            /// The line being formatted on this thread, kept for the next one.
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let write = |line: &str| {
            // There is nowhere to report a failed log write; the line is given up.
            let _ = std::io::Write::write_all(
                &mut self.writer.make_writer_for(event.metadata()),
                line.as_bytes(),
            );
        };
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                format_line(&ctx, &mut line, event);
                write(&line);
                if line.capacity() > KEEP_LINE_CAPACITY {
                    *line = String::new();
                }
            }
            // A field's formatting logged a line of its own: that one gets a fresh buffer.
            Err(_) => {
                let mut own = String::new();
                format_line(&ctx, &mut own, event);
                write(&own);
            }
        });
    }
}

fn format_line<S>(ctx: &Context<'_, S>, line: &mut String, event: &Event<'_>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    timestamp(line);
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push('"');
    event.record(&mut Members::event(line));
    line.push_str(",\"target\":");
    string(line, meta.target());
    galley_gateway::current_request(|request| {
        line.push_str(",\"request\":{\"id\":");
        string(line, request.id());
        line.push_str(",\"method\":");
        string(line, request.method());
        line.push_str(",\"path\":");
        string(line, request.path());
        line.push('}');
    });
    if let Some(span) = ctx.event_span(event) {
        line.push_str(",\"span\":{");
        if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>()
            && !fields.is_empty()
        {
            line.push_str(fields);
            line.push(',');
        }
        line.push_str("\"name\":");
        string(line, span.name());
        line.push('}');
    }
    line.push_str("}\n");
}

/// Writes each field it visits as a JSON member, `"name":value`, separated by commas.
struct Members<'a> {
    out: &'a mut String,
    /// No member written yet, so the next one needs no comma before it.
    first: bool,
    /// The members are an event's, flattened into the line beside the line's own.
    event: bool,
}

impl<'a> Members<'a> {
    /// The fields of a span, into the span's object.
    fn span(out: &'a mut String, first: bool) -> Self {
        Self {
            out,
            first,
            event: false,
        }
    }

    /// The fields of an event, into the line after its level.
    fn event(out: &'a mut String) -> Self {
        Self {
            out,
            first: false,
            event: true,
        }
    }

    /// Opens the member: the comma if one is due, the name and the colon.
    fn name(&mut self, field: &Field) -> &mut String {
        self.out.push_str(if std::mem::take(&mut self.first) {
            "\""
        } else {
            ",\""
        });
        let name = field.name();
        // An event field named like one of the line's own members is kept apart from it,
        // so no line has a key twice (most readers keep only the last).
        if self.event && matches!(name, "timestamp" | "level" | "target" | "request" | "span") {
            self.out.push_str("field.");
        }
        escape_into(self.out, name);
        self.out.push_str("\":");
        self.out
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        string(self.name(field), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let out = self.name(field);
        out.push('"');
        // Writing into a `String` cannot fail.
        let _ = write!(Escaped(out), "{value:?}");
        out.push('"');
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let out = self.name(field);
        out.push('"');
        let _ = write!(Escaped(out), "{value}");
        out.push('"');
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let out = self.name(field);
        // JSON has no NaN or infinity.
        if value.is_finite() {
            out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            out.push_str("null");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field)
            .push_str(if value { "true" } else { "false" });
    }
}

/// A JSON string: quotes, and the contents escaped.
fn string(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends `value` escaped as the contents of a JSON string.
fn escape_into(out: &mut String, value: &str) {
    // Writing into a `String` cannot fail.
    let _ = Escaped(out).write_str(value);
}

/// Escapes what is written through it as the contents of a JSON string: quotes,
/// backslashes and every control character, so no value can break a line or forge a field.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if is_clean(s.as_bytes()) {
            self.0.push_str(s);
            return Ok(());
        }
        // `s[start..]` is not yet written.
        let mut start = 0;
        for (at, &byte) in s.as_bytes().iter().enumerate() {
            if !NEEDS_ESCAPE[usize::from(byte)] {
                continue;
            }
            // Only ASCII bytes are escaped, so `at` is on a character boundary.
            self.0.push_str(&s[start..at]);
            match byte {
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                b'\n' => self.0.push_str("\\n"),
                b'\r' => self.0.push_str("\\r"),
                b'\t' => self.0.push_str("\\t"),
                _ => write!(self.0, "\\u{byte:04x}")?,
            }
            start = at + 1;
        }
        self.0.push_str(&s[start..]);
        Ok(())
    }
}

/// The bytes that need escaping: control characters (below 0x20, and 0x7f), the quote and
/// the backslash. Bytes of multi-byte UTF-8 characters (0x80 and up) never do.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = byte < 0x20 || byte == 0x22 || byte == 0x5c || byte == 0x7f;
        byte += 1;
    }
    table
};

/// Whether no byte needs escaping. Most of a log line needs none, so this is checked first,
/// eight bytes at a time.
fn is_clean(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    !words
        .iter()
        .any(|word| needs_escape(u64::from_le_bytes(*word)))
        && !rest.iter().any(|&byte| NEEDS_ESCAPE[usize::from(byte)])
}

/// Whether any of the eight bytes packed in `word` needs escaping (as `NEEDS_ESCAPE`).
/// Exact, with no false positives, by the classic "has a byte below n" bit trick (exact for
/// n <= 0x80), applied three times: to the word with bit 1 of every byte flipped, where
/// below 0x21 means a control character or a quote (0x22 ^ 0x02 = 0x20), and to the word
/// xor-ed with a backslash and with 0x7f, where below 1 means equal.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let control_or_quote = below(word ^ (ONES * 0x02), 0x21);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    let delete = below(word ^ (ONES * 0x7f), 1);
    (control_or_quote | backslash | delete) != 0
}

/// Writes the current UTC time as RFC 3339 with microseconds (`2026-11-21T23:53:22.123456Z`).
/// The part up to the second is formatted by chrono once a second per thread and reused.
fn timestamp(out: &mut String) {
    thread_local! {
        static SECOND: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != now.timestamp() {
            prefix.clear();
            let _ = write!(prefix, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            *second = now.timestamp();
        }
        out.push_str(prefix);
        // Below 1,000,000: `Utc::now()` never lands in a leap second.
        let mut buffer = itoa::Buffer::new();
        let micros = buffer.format(now.timestamp_subsec_micros());
        out.push('.');
        out.extend(std::iter::repeat_n(
            '0',
            6usize.saturating_sub(micros.len()),
        ));
        out.push_str(micros);
        out.push('Z');
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What a test subscriber wrote (its writer is a clone of this).
    #[derive(Clone, Default)]
    pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lines").clone()).expect("utf-8")
        }
    }

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Lines {
        type Writer = Lines;

        fn make_writer(&self) -> Lines {
            self.clone()
        }
    }

    /// A request being served, for lines to be logged in.
    pub(crate) fn request(
        id: &str,
        method: actix_web::http::Method,
        path: &str,
    ) -> std::rc::Rc<galley_gateway::RequestContext> {
        std::rc::Rc::new(galley_gateway::RequestContext::new(
            id.to_owned(),
            method,
            path.to_owned(),
        ))
    }

    /// What `log` logged through a `JsonLayer`, as written.
    fn logged_text(log: impl FnOnce()) -> String {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, log);
        lines.text()
    }

    /// What `log` logged through a `JsonLayer`, a JSON value per line.
    fn logged(log: impl FnOnce()) -> Vec<serde_json::Value> {
        logged_text(log)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    }

    #[test]
    fn lines_carry_the_event_fields_flat_and_the_span_fields_nested() {
        let lines = logged(|| {
            let span = tracing::info_span!("export", table = "items", format = %"csv", note = "/a\"b\r\nc");
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
        assert_eq!(line["span"]["table"], "items");
        assert_eq!(line["span"]["format"], "csv");
        assert_eq!(line["span"]["note"], "/a\"b\r\nc");
        assert_eq!(line["span"]["name"], "export");
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
    }

    #[test]
    fn event_fields_named_like_the_lines_own_members_are_kept_apart() {
        let text = logged_text(|| {
            galley_gateway::in_request(request("r-4", actix_web::http::Method::GET, "/"), || {
                let span = tracing::info_span!("job", target = "inner");
                let _entered = span.enter();
                tracing::info!(
                    timestamp = 1,
                    level = "x",
                    target = "t",
                    request = "q",
                    span = "s",
                    "clash"
                );
            });
        });
        let line: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text.trim_end()).expect("one line");
        // A key written twice would leave fewer keys than members: count them in the text.
        let members = text.matches("\":").count();
        let nested = line["request"].as_object().map_or(0, |o| o.len())
            + line["span"].as_object().map_or(0, |o| o.len());
        assert_eq!(line.len() + nested, members, "{text}");
        assert_eq!(line["field.timestamp"], 1);
        assert_eq!(line["field.level"], "x");
        assert_eq!(line["field.target"], "t");
        assert_eq!(line["field.request"], "q");
        assert_eq!(line["field.span"], "s");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["request"]["id"], "r-4");
        assert_eq!(line["span"]["target"], "inner");
    }

    #[test]
    fn lines_logged_while_a_request_is_served_carry_it() {
        let request = request("r-2", actix_web::http::Method::PATCH, "/rest/v1/a\"b\r\nc");
        let lines = logged(|| {
            galley_gateway::in_request(request, || tracing::info!("inside"));
            tracing::info!("after");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["request"]["id"], "r-2");
        assert_eq!(lines[0]["request"]["method"], "PATCH");
        assert_eq!(lines[0]["request"]["path"], "/rest/v1/a\"b\r\nc");
        assert!(lines[1].get("request").is_none());
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

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        string(&mut out, value);
        out
    }

    /// Every ASCII byte, at every offset within and across the eight-byte words the escaper
    /// skips over, comes back as itself, and nothing below 0x20 or at 0x7f is left raw.
    #[test]
    fn every_character_at_every_offset_round_trips() {
        let samples = (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '😀', '\u{80}', '\u{2028}']);
        for c in samples {
            for offset in 0..17 {
                for len in [offset + 1, offset + 9, 24] {
                    let value: String = (0..len)
                        .map(|i| if i == offset { c } else { 'a' })
                        .collect();
                    let out = escaped(&value);
                    assert!(
                        !out.bytes().any(|b| b < 0x20 || b == 0x7f),
                        "raw control character in {out:?}"
                    );
                    let back: String =
                        serde_json::from_str(&out).unwrap_or_else(|err| panic!("{err}: {out:?}"));
                    assert_eq!(back, value, "{c:?} at {offset} of {len}");
                }
            }
        }
        assert_eq!(escaped("a\"b\\c\nd\u{7f}"), r#""a\"b\\c\nd\u007f""#);
    }

    #[test]
    fn the_byte_table_and_the_word_test_flag_exactly_the_bytes_to_escape() {
        for byte in 0u8..=255 {
            let must = byte < 0x20 || byte == 0x7f || byte == b'"' || byte == b'\\';
            assert_eq!(NEEDS_ESCAPE[usize::from(byte)], must, "byte {byte:#04x}");
            for position in 0..8 {
                let mut word = *b"abcdefgh";
                word[position] = byte;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    must,
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds_and_follow_the_clock() {
        let mut first = String::new();
        timestamp(&mut first);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut second = String::new();
        timestamp(&mut second);
        for t in [&first, &second] {
            let parsed =
                chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|err| panic!("{err}: {t}"));
            assert_eq!(t.len(), "2026-11-21T23:53:22.123456Z".len(), "{t}");
            assert!(
                (chrono::Utc::now() - parsed.to_utc()).num_seconds() < 5,
                "{t}"
            );
        }
        // A second later the reused prefix has moved on with the clock.
        assert_ne!(first[..19], second[..19]);
        assert!(second > first);
    }
}
