//! A `postgres_changes` binding's `filter`, in Supabase Realtime's syntax:
//! `column=op.value`, several joined by top-level commas (all must hold), `not.` before
//! the operator to negate it. Parsing is pure; [`Condition::sql`] renders a condition
//! over a row built from the change, with its value bound as a parameter and cast to the
//! column's type, so PostgreSQL compares as it would in a query.

use std::fmt;

/// The operators Galley evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Is,
    Like,
    Ilike,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "is" => Op::Is,
            "like" => Op::Like,
            "ilike" => Op::Ilike,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::In => "in",
            Op::Is => "is",
            Op::Like => "like",
            Op::Ilike => "ilike",
        }
    }
}

/// One `column=op.value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Condition {
    pub column: String,
    pub op: Op,
    /// The value as given (unquoted); for `in`, the PostgreSQL array literal of the list.
    pub value: String,
    pub negate: bool,
}

/// Most values an `in` list may hold (Supabase Realtime's limit).
pub const MAX_IN_VALUES: usize = 100;

/// Why a filter did not parse: Supabase Realtime's words after
/// ``Error parsing `filter` params: ``.
#[derive(Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error parsing `filter` params: {}", self.0)
    }
}

/// Parses a whole filter; empty or blank means no condition.
pub fn parse(filter: &str) -> Result<Vec<Condition>, FilterError> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(filter)
        .into_iter()
        .map(|segment| {
            if segment.trim().is_empty() {
                return Err(FilterError(
                    "filter must not contain empty segments (check for extra commas)".into(),
                ));
            }
            parse_one(segment)
        })
        .collect()
}

/// Splits at commas outside parentheses and double quotes.
fn split_top_level(filter: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (index, ch) in filter.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                segments.push(&filter[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    segments.push(&filter[start..]);
    segments
}

fn parse_one(segment: &str) -> Result<Condition, FilterError> {
    let undefined = || FilterError("[\"undefined\"]".into());
    let (column, rest) = segment.split_once('=').ok_or_else(undefined)?;
    let (negate, rest) = match rest.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (op_text, value) = rest.split_once('.').ok_or_else(undefined)?;
    let column = column.trim();
    if column.is_empty() {
        return Err(undefined());
    }
    let op = Op::parse(op_text).ok_or_else(|| {
        FilterError(format!(
            "[{}, {}]",
            elixir_string(op_text),
            elixir_string(value)
        ))
    })?;
    let value = match op {
        Op::In => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    FilterError("`in` filter value must be wrapped by parentheses".into())
                })?;
            let items: Vec<String> = split_top_level(inner).into_iter().map(unquote).collect();
            if items.len() > MAX_IN_VALUES {
                return Err(FilterError(format!(
                    "too many values for `in` filter. Maximum {MAX_IN_VALUES}"
                )));
            }
            array_literal(&items)
        }
        Op::Is => {
            let value = value.to_ascii_lowercase();
            if !matches!(value.as_str(), "null" | "true" | "false" | "unknown") {
                return Err(FilterError(format!(
                    "[{}, {}]",
                    elixir_string(op_text),
                    elixir_string(&value)
                )));
            }
            value
        }
        _ => unquote(value),
    };
    Ok(Condition {
        column: column.to_owned(),
        op,
        value,
        negate,
    })
}

/// A value without its surrounding double quotes, backslash escapes resolved.
fn unquote(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(ch);
                }
            }
            out
        }
        None => trimmed.to_owned(),
    }
}

/// A PostgreSQL array literal whose every element is quoted.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// A string as Elixir's `inspect` prints it, for messages in Supabase's words.
fn elixir_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Condition {
    /// `{"col", "op", "value", false}`, as Supabase Realtime lists filters in messages.
    pub fn describe(&self) -> String {
        format!(
            "{{{}, {}, {}, {}}}",
            elixir_string(&self.column),
            elixir_string(self.op.name()),
            elixir_string(&self.value),
            self.negate
        )
    }

    /// The condition over the row alias `r`, its value the text parameter `$param`
    /// cast to `column_type` (a `format_type` name from the catalog; the column name is
    /// quoted here). A NULL column never matches, except `is.null`.
    pub fn sql(&self, column_type: &str, param: usize) -> String {
        let column = format!("r.\"{}\"", self.column.replace('"', "\"\""));
        let value = format!("(${param}::text)::{column_type}");
        let test = match self.op {
            Op::Eq => format!("{column} = {value}"),
            Op::Neq => format!("{column} <> {value}"),
            Op::Lt => format!("{column} < {value}"),
            Op::Lte => format!("{column} <= {value}"),
            Op::Gt => format!("{column} > {value}"),
            Op::Gte => format!("{column} >= {value}"),
            Op::In => format!("{column} = ANY ((${param}::text)::{column_type}[])"),
            Op::Like => format!("{column}::text LIKE ${param}::text"),
            Op::Ilike => format!("{column}::text ILIKE ${param}::text"),
            Op::Is => {
                let is = match self.value.as_str() {
                    "null" => "IS NULL",
                    "true" => "IS TRUE",
                    "false" => "IS FALSE",
                    _ => "IS UNKNOWN",
                };
                // The value is one of four keywords, not user text; the parameter stays
                // bound (as an unused text) so every condition binds exactly one.
                return if self.negate {
                    format!("(NOT ({column} {is}) AND ${param}::text IS NOT NULL)")
                } else {
                    format!("({column} {is} AND ${param}::text IS NOT NULL)")
                };
            }
        };
        if self.negate {
            format!("coalesce(NOT ({test}), false)")
        } else {
            format!("coalesce({test}, false)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(filter: &str) -> Condition {
        let mut parsed = parse(filter).expect("parses");
        assert_eq!(parsed.len(), 1);
        parsed.remove(0)
    }

    #[test]
    fn conditions_parse_as_supabase_realtime_reads_them() {
        let eq = one("user_id=eq.7f1a");
        assert_eq!(
            (eq.column.as_str(), eq.op, eq.value.as_str(), eq.negate),
            ("user_id", Op::Eq, "7f1a", false)
        );
        let not = one("done=not.eq.true");
        assert!(not.negate);
        let quoted = one(r#"title=eq."a, \"b\"""#);
        assert_eq!(quoted.value, r#"a, "b""#);
        let list = one(r#"id=in.(1,2,"x,y")"#);
        assert_eq!(list.value, r#"{"1","2","x,y"}"#);
        assert_eq!(parse("  ").expect("blank"), Vec::new());
        let both = parse(r#"id=in.(1,2),done=is.null"#).expect("two");
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].op, Op::Is);
    }

    #[test]
    fn bad_filters_are_refused_in_supabase_realtimes_words() {
        let err = |filter: &str| parse(filter).expect_err("refused").to_string();
        assert_eq!(
            err("subject=foo.hey"),
            r#"Error parsing `filter` params: ["foo", "hey"]"#
        );
        assert_eq!(
            err("subject"),
            r#"Error parsing `filter` params: ["undefined"]"#
        );
        assert_eq!(
            err("id=eq"),
            r#"Error parsing `filter` params: ["undefined"]"#
        );
        assert_eq!(
            err("id=in.1,2"),
            "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"
        );
        assert_eq!(
            err("id=eq.1,,done=eq.true"),
            "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"
        );
        let many = format!("id=in.({})", vec!["1"; 101].join(","));
        assert!(err(&many).contains("Maximum 100"));
    }

    #[test]
    fn conditions_render_with_a_typed_bound_value() {
        assert_eq!(
            one("user_id=eq.x").sql("uuid", 3),
            r#"coalesce(r."user_id" = ($3::text)::uuid, false)"#
        );
        assert_eq!(
            one("n=not.in.(1,2)").sql("bigint", 2),
            r#"coalesce(NOT (r."n" = ANY (($2::text)::bigint[])), false)"#
        );
        assert_eq!(
            one("n=is.null").sql("bigint", 1),
            r#"(r."n" IS NULL AND $1::text IS NOT NULL)"#
        );
        assert_eq!(
            one(r#"x"y=eq.1"#).sql("text", 1),
            r#"coalesce(r."x""y" = ($1::text)::text, false)"#
        );
        assert_eq!(one("n=eq.1").describe(), r#"{"n", "eq", "1", false}"#);
    }
}
