//! A small parser-combinator core with Parsec's semantics, so that a malformed query
//! parameter is refused at the same column and in the same words as PostgREST refuses it.
//!
//! Each parser is a function from a [`St`] (the text and an offset into it) to a
//! [`Reply`]: a value or an error, and whether any input was consumed. The rules that make
//! the messages come out right are Parsec's:
//!
//! - `p.or(q)` tries `q` only when `p` failed without consuming input;
//! - [`Reply::attempt`] (Parsec's `try`) turns a failure after consuming into one without;
//! - when a step succeeds or fails without consuming, its error is merged with the one
//!   before it: the error further into the text wins, and at the same place their
//!   messages are joined;
//! - [`Reply::label`] replaces what a parser that consumed nothing says it expected.
//!
//! An error is rendered as Parsec renders it: `(line L, column C)` for the place, and
//! `unexpected … expecting a, b or c` for the messages, with tokens shown as Haskell's
//! `show` writes characters and strings.

use std::fmt::Write as _;

/// Where a parser stands: the whole parameter and a byte offset into it, and whether
/// errors say what they met and expected.
///
/// What an error says never decides whether a parse succeeds, only how its failure
/// reads; so a parameter is parsed first without messages (no error allocates, which is
/// most of a parser's cost: every alternative and every repetition ends in one), and only
/// a failed parse is run again with them ([`St::reporting`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct St<'a> {
    pub(crate) text: &'a str,
    pub(crate) off: usize,
    report: bool,
}

impl<'a> St<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            off: 0,
            report: false,
        }
    }

    /// The start of `text`, for a parse whose errors carry their messages.
    pub(crate) fn reporting(text: &'a str) -> Self {
        Self {
            text,
            off: 0,
            report: true,
        }
    }

    #[inline]
    fn next(self) -> Option<(char, St<'a>)> {
        let c = self.text[self.off..].chars().next()?;
        Some((
            c,
            St {
                off: self.off + c.len_utf8(),
                ..self
            },
        ))
    }
}

/// One thing an error says, in Parsec's four kinds; the order of the variants is the
/// order in which they are rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Msg {
    /// A token the parser met: shown as a one-character string, or "end of input" for
    /// `None`.
    SysUnexpected(Option<char>),
    /// A token a parser refused on purpose (`notFollowedBy`, `eof`): shown as a character.
    Unexpected(char),
    /// What was expected: a literal (shown as a string) or a label (as is).
    Expected(Expect),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// `char c`'s expectation: shown as a one-character string.
    Char(char),
    Literal(&'static str),
    Label(&'static str),
}

/// A parse error: the place and what is said about it. No messages means "unknown".
#[derive(Clone, Debug, Default)]
pub(crate) struct PErr {
    off: usize,
    msgs: Vec<Msg>,
    /// Made by a reporting parse ([`St::reporting`]); otherwise it never says anything.
    report: bool,
}

impl PErr {
    fn unknown(st: St<'_>) -> Self {
        Self {
            off: st.off,
            msgs: Vec::new(),
            report: st.report,
        }
    }

    fn at(st: St<'_>, msg: Msg) -> Self {
        Self {
            off: st.off,
            msgs: if st.report { vec![msg] } else { Vec::new() },
            report: st.report,
        }
    }

    /// Parsec's `mergeError`: a meaningful error beats an unknown one, the error further
    /// into the text beats the other, and at the same place the messages are joined.
    #[inline]
    fn merge(mut self, mut other: PErr) -> PErr {
        // Unreported errors are never shown: which one survives does not matter.
        if !self.report {
            return self;
        }
        if other.msgs.is_empty() && !self.msgs.is_empty() {
            return self;
        }
        if self.msgs.is_empty() && !other.msgs.is_empty() {
            return other;
        }
        match self.off.cmp(&other.off) {
            std::cmp::Ordering::Equal => {
                self.msgs.append(&mut other.msgs);
                self
            }
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
        }
    }

    /// `(line L, column C)` for Parsec's source position: lines start at 1 after each
    /// newline, columns count characters, and a tab moves to the next multiple of 8 plus 1.
    pub(crate) fn position(&self, text: &str) -> String {
        let (mut line, mut column) = (1usize, 1usize);
        for c in text[..self.off.min(text.len())].chars() {
            match c {
                '\n' => {
                    line += 1;
                    column = 1;
                }
                '\t' => column = column + 8 - ((column - 1) % 8),
                _ => column += 1,
            }
        }
        format!("(line {line}, column {column})")
    }

    /// Parsec's `showErrorMessages "or" "unknown parse error" "expecting" "unexpected"
    /// "end of input"`, with its newlines turned into spaces and the ends trimmed, as
    /// PostgREST words the details of a PGRST100.
    pub(crate) fn describe(&self) -> String {
        if self.msgs.is_empty() {
            return "unknown parse error".to_owned();
        }
        let mut system = Vec::new();
        let mut refused = Vec::new();
        let mut expected = Vec::new();
        for msg in &self.msgs {
            match msg {
                Msg::SysUnexpected(token) => system.push(*token),
                Msg::Unexpected(c) => refused.push(show_char(*c)),
                Msg::Expected(Expect::Char(c)) => expected.push(show_string_char(*c)),
                Msg::Expected(Expect::Literal(text)) => expected.push(show_string(text)),
                Msg::Expected(Expect::Label(text)) => expected.push((*text).to_owned()),
            }
        }
        let mut parts = Vec::new();
        // The first token met is said only when nothing was refused on purpose.
        if refused.is_empty() {
            match system.first() {
                Some(None) => parts.push("unexpected end of input".to_owned()),
                Some(Some(c)) => parts.push(format!("unexpected {}", show_string_char(*c))),
                None => {}
            }
        }
        if let Some(list) = or_list(refused) {
            parts.push(format!("unexpected {list}"));
        }
        if let Some(list) = or_list(expected) {
            parts.push(format!("expecting {list}"));
        }
        parts.join(" ").trim().to_owned()
    }
}

/// `a, b or c`, after dropping empty and repeated items.
fn or_list(items: Vec<String>) -> Option<String> {
    let mut unique: Vec<String> = Vec::new();
    for item in items {
        if !item.is_empty() && !unique.contains(&item) {
            unique.push(item);
        }
    }
    match unique.len() {
        0 => None,
        1 => unique.pop(),
        _ => {
            let last = unique.pop().unwrap_or_default();
            Some(format!("{} or {last}", unique.join(", ")))
        }
    }
}

/// Haskell's `showLitChar`, the escaping `show` applies inside quotes.
fn escape(c: char, quote: char, out: &mut String) {
    const NAMES: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a", "b", "t", "n", "v", "f", "r", "SO",
        "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
        "FS", "GS", "RS", "US",
    ];
    match c {
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        '\u{7f}' => out.push_str("\\DEL"),
        c if (c as u32) > 0x7f => {
            let _ = write!(out, "\\{}", c as u32);
        }
        c if (c as u32) < 0x20 => {
            out.push('\\');
            out.push_str(NAMES[c as usize]);
        }
        c => out.push(c),
    }
}

/// `show c` for a character: `'x'`.
fn show_char(c: char) -> String {
    let mut out = String::from("'");
    escape(c, '\'', &mut out);
    out.push('\'');
    out
}

/// `show [c]`: the character as a one-character string, `"x"`.
fn show_string_char(c: char) -> String {
    let mut out = String::from("\"");
    escape(c, '"', &mut out);
    out.push('"');
    out
}

/// `show s` for a string of the grammar's own (ASCII) literals.
fn show_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        escape(c, '"', &mut out);
    }
    out.push('"');
    out
}

/// What a parser did: a value and the state after it, or an error; either way, whether
/// input was consumed, and the error to merge with what follows.
#[must_use]
pub(crate) enum Reply<'a, T> {
    Ok {
        value: T,
        st: St<'a>,
        err: PErr,
        consumed: bool,
    },
    Err {
        err: PErr,
        consumed: bool,
    },
}

impl<'a, T> Reply<'a, T> {
    /// Succeeds with `value` at `st`, consuming nothing (Parsec's `pure`).
    pub(crate) fn pure(value: T, st: St<'a>) -> Self {
        Reply::Ok {
            value,
            st,
            err: PErr::unknown(st),
            consumed: false,
        }
    }

    /// Stops the whole parse at `st`: a failure that counts as consumed, so no
    /// alternative is tried. Used when a limit of Galley's own is crossed.
    pub(crate) fn abort(st: St<'a>) -> Self {
        Reply::Err {
            err: PErr::unknown(st),
            consumed: true,
        }
    }

    /// Fails at `st` saying nothing, consuming nothing (Parsec's `mzero`).
    pub(crate) fn zero(st: St<'a>) -> Self {
        Reply::Err {
            err: PErr::unknown(st),
            consumed: false,
        }
    }

    /// Parsec's bind: runs `next` after a success; when `next` consumes nothing, its
    /// error is merged with this one's and this one's consumption stands.
    #[inline]
    pub(crate) fn then<U>(self, next: impl FnOnce(T, St<'a>) -> Reply<'a, U>) -> Reply<'a, U> {
        match self {
            Reply::Err { err, consumed } => Reply::Err { err, consumed },
            Reply::Ok {
                value,
                st,
                err: first,
                consumed: before,
            } => match next(value, st) {
                Reply::Ok {
                    value,
                    st,
                    err,
                    consumed: true,
                } => Reply::Ok {
                    value,
                    st,
                    err,
                    consumed: true,
                },
                Reply::Ok {
                    value,
                    st,
                    err,
                    consumed: false,
                } => Reply::Ok {
                    value,
                    st,
                    err: first.merge(err),
                    consumed: before,
                },
                Reply::Err {
                    err,
                    consumed: true,
                } => Reply::Err {
                    err,
                    consumed: true,
                },
                Reply::Err {
                    err,
                    consumed: false,
                } => Reply::Err {
                    err: first.merge(err),
                    consumed: before,
                },
            },
        }
    }

    /// `p *> q`: runs `next` and keeps its value.
    pub(crate) fn right<U>(self, next: impl FnOnce(St<'a>) -> Reply<'a, U>) -> Reply<'a, U> {
        self.then(|_, st| next(st))
    }

    /// `p <* q`: runs `next` and keeps this value.
    pub(crate) fn left<U>(self, next: impl FnOnce(St<'a>) -> Reply<'a, U>) -> Reply<'a, T> {
        self.then(|value, st| next(st).then(|_, st| Reply::pure(value, st)))
    }

    #[inline]
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<'a, U> {
        match self {
            Reply::Ok {
                value,
                st,
                err,
                consumed,
            } => Reply::Ok {
                value: f(value),
                st,
                err,
                consumed,
            },
            Reply::Err { err, consumed } => Reply::Err { err, consumed },
        }
    }

    /// `p <|> q`, `st` being where `p` started: `q` runs only when `p` failed without
    /// consuming, and an empty answer from `q` carries both errors.
    #[inline]
    pub(crate) fn or(self, st: St<'a>, other: impl FnOnce(St<'a>) -> Reply<'a, T>) -> Self {
        match self {
            Reply::Err {
                err: first,
                consumed: false,
            } => match other(st) {
                Reply::Ok {
                    value,
                    st,
                    err,
                    consumed: false,
                } => Reply::Ok {
                    value,
                    st,
                    err: first.merge(err),
                    consumed: false,
                },
                Reply::Err {
                    err,
                    consumed: false,
                } => Reply::Err {
                    err: first.merge(err),
                    consumed: false,
                },
                consumed => consumed,
            },
            done => done,
        }
    }

    /// Parsec's `try`: a failure after consuming becomes one without.
    #[inline]
    pub(crate) fn attempt(self) -> Self {
        match self {
            Reply::Err { err, .. } => Reply::Err {
                err,
                consumed: false,
            },
            ok => ok,
        }
    }

    /// Parsec's `<?>`: when nothing was consumed, what was expected is `label` alone.
    #[inline]
    pub(crate) fn label(self, label: Expect) -> Self {
        let relabel = |mut err: PErr| {
            // Unreported errors say nothing; a label would make them say something.
            if !err.report {
                return err;
            }
            err.msgs.retain(|m| !matches!(m, Msg::Expected(_)));
            err.msgs.insert(0, Msg::Expected(label));
            err
        };
        match self {
            Reply::Ok {
                value,
                st,
                err,
                consumed: false,
            } if !err.msgs.is_empty() => Reply::Ok {
                value,
                st,
                err: relabel(err),
                consumed: false,
            },
            Reply::Err {
                err,
                consumed: false,
            } => Reply::Err {
                err: relabel(err),
                consumed: false,
            },
            other => other,
        }
    }

    /// The value, or where and why it failed.
    pub(crate) fn finish(self) -> Result<(T, St<'a>), PErr> {
        match self {
            Reply::Ok { value, st, .. } => Ok((value, st)),
            Reply::Err { err, .. } => Err(err),
        }
    }
}

/// One character satisfying `test`.
#[inline]
pub(crate) fn satisfy<'a>(st: St<'a>, test: impl Fn(char) -> bool) -> Reply<'a, char> {
    match st.next() {
        Some((c, after)) if test(c) => Reply::Ok {
            value: c,
            st: after,
            err: PErr::unknown(after),
            consumed: true,
        },
        Some((c, _)) => Reply::Err {
            err: PErr::at(st, Msg::SysUnexpected(Some(c))),
            consumed: false,
        },
        None => Reply::Err {
            err: PErr::at(st, Msg::SysUnexpected(None)),
            consumed: false,
        },
    }
}

/// `char c`: that character, expected as a one-character string.
pub(crate) fn char_(st: St<'_>, c: char) -> Reply<'_, char> {
    satisfy(st, |got| got == c).label(Expect::Char(c))
}

/// `string s`: every character of `s` in turn. A mismatch is reported where `s` began,
/// as the character met; it counts as consumed when the first character matched.
pub(crate) fn string<'a>(st: St<'a>, s: &'static str) -> Reply<'a, &'static str> {
    let mut at = st;
    for (i, want) in s.chars().enumerate() {
        at = match at.next() {
            Some((got, after)) if got == want => after,
            other => {
                let mut err = PErr::at(st, Msg::SysUnexpected(other.map(|(c, _)| c)));
                if err.report {
                    err.msgs.insert(0, Msg::Expected(Expect::Literal(s)));
                }
                return Reply::Err {
                    err,
                    consumed: i > 0,
                };
            }
        };
    }
    Reply::Ok {
        value: s,
        st: at,
        err: PErr::unknown(at),
        consumed: !s.is_empty(),
    }
}

/// `many p`: `p` as often as it succeeds by consuming; a failure after consuming fails it.
pub(crate) fn many<'a, T>(
    st: St<'a>,
    mut p: impl FnMut(St<'a>) -> Reply<'a, T>,
) -> Reply<'a, Vec<T>> {
    let mut values = Vec::new();
    let mut at = st;
    loop {
        match p(at) {
            Reply::Ok {
                value,
                st: after,
                consumed: true,
                ..
            } => {
                values.push(value);
                at = after;
            }
            // A parser that succeeds on nothing would loop forever; Parsec refuses it, and
            // no parser of this grammar is one. Stop here instead.
            Reply::Ok { err, .. } => {
                return Reply::Ok {
                    value: values,
                    st: at,
                    err,
                    consumed: at.off > st.off,
                };
            }
            Reply::Err {
                err,
                consumed: true,
            } => {
                return Reply::Err {
                    err,
                    consumed: true,
                };
            }
            Reply::Err {
                err,
                consumed: false,
            } => {
                return Reply::Ok {
                    value: values,
                    st: at,
                    err,
                    consumed: at.off > st.off,
                };
            }
        }
    }
}

/// `many (satisfy test)`, or with `at_least_one` `many1`, where `satisfy test` says it
/// expected `expects` (in order) when it fails: the run of characters as a slice of the
/// text, without collecting them. The error is the one the last, failing `satisfy` gives.
pub(crate) fn span<'a>(
    st: St<'a>,
    at_least_one: bool,
    test: impl Fn(char) -> bool,
    expects: &[Expect],
) -> Reply<'a, &'a str> {
    let rest = &st.text[st.off..];
    let (len, met) = match rest.char_indices().find(|(_, c)| !test(*c)) {
        Some((at, c)) => (at, Some(c)),
        None => (rest.len(), None),
    };
    let end = St {
        off: st.off + len,
        ..st
    };
    let mut err = PErr::unknown(end);
    if end.report {
        err.msgs = expects.iter().map(|e| Msg::Expected(*e)).collect();
        err.msgs.push(Msg::SysUnexpected(met));
    }
    if len == 0 && at_least_one {
        return Reply::Err {
            err,
            consumed: false,
        };
    }
    Reply::Ok {
        value: &rest[..len],
        st: end,
        err,
        consumed: len > 0,
    }
}

/// `many1 p`.
pub(crate) fn many1<'a, T>(
    st: St<'a>,
    mut p: impl FnMut(St<'a>) -> Reply<'a, T>,
) -> Reply<'a, Vec<T>> {
    p(st).then(|first, st| {
        many(st, p).map(|mut rest| {
            rest.insert(0, first);
            rest
        })
    })
}

/// `p \`sepBy1\` sep`.
pub(crate) fn sep_by1<'a, T, S>(
    st: St<'a>,
    mut p: impl FnMut(St<'a>) -> Reply<'a, T>,
    mut sep: impl FnMut(St<'a>) -> Reply<'a, S>,
) -> Reply<'a, Vec<T>> {
    p(st).then(|first, st| {
        many(st, |st| sep(st).right(&mut p)).map(|mut rest| {
            rest.insert(0, first);
            rest
        })
    })
}

/// `optionMaybe p`.
pub(crate) fn optional<'a, T>(
    st: St<'a>,
    p: impl FnOnce(St<'a>) -> Reply<'a, T>,
) -> Reply<'a, Option<T>> {
    p(st).map(Some).or(st, |st| Reply::pure(None, st))
}

/// `lookAhead p`: `p`'s value without moving.
pub(crate) fn look_ahead<'a, T>(
    st: St<'a>,
    p: impl FnOnce(St<'a>) -> Reply<'a, T>,
) -> Reply<'a, T> {
    match p(st) {
        Reply::Ok { value, .. } => Reply::pure(value, st),
        Reply::Err { err, consumed } => Reply::Err { err, consumed },
    }
}

/// `notFollowedBy p` for a one-character `p`: fails, at the place after the character,
/// when `p` matches next; succeeds with `p`'s error otherwise.
fn not_followed_by<'a>(st: St<'a>, p: impl FnOnce(St<'a>) -> Reply<'a, char>) -> Reply<'a, ()> {
    match p(st) {
        Reply::Ok {
            value, st: after, ..
        } => Reply::Err {
            err: PErr::at(after, Msg::Unexpected(value)),
            consumed: false,
        },
        Reply::Err { err, .. } => Reply::Ok {
            value: (),
            st,
            err,
            consumed: false,
        },
    }
}

/// `notFollowedBy (char c)`.
pub(crate) fn not_followed_by_char(st: St<'_>, c: char) -> Reply<'_, ()> {
    not_followed_by(st, |st| char_(st, c))
}

/// `notFollowedBy (noneOf cs)`: fails when a character outside `cs` comes next.
pub(crate) fn not_followed_by_none_of<'a>(st: St<'a>, cs: &'static str) -> Reply<'a, ()> {
    not_followed_by(st, |st| satisfy(st, |c| !cs.contains(c)))
}

/// `eof`: the end, or the next character refused; expected as "end of input".
pub(crate) fn eof(st: St<'_>) -> Reply<'_, ()> {
    let reply = match st.next() {
        // `anyToken` does not move the position, so the refusal is reported here.
        Some((c, _)) => Reply::Err {
            err: PErr::at(st, Msg::Unexpected(c)),
            consumed: false,
        },
        None => Reply::Ok {
            value: (),
            st,
            err: PErr::at(st, Msg::SysUnexpected(None)),
            consumed: false,
        },
    };
    reply.label(Expect::Label("end of input"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail<T>(reply: Reply<'_, T>, text: &str) -> String {
        match reply.finish() {
            Ok(_) => panic!("expected a failure"),
            Err(err) => format!("{} {}", err.position(text), err.describe()),
        }
    }

    #[test]
    fn show_escapes_as_haskell_does() {
        assert_eq!(show_char('\''), "'\\''");
        assert_eq!(show_char('"'), "'\"'");
        assert_eq!(show_string_char('"'), "\"\\\"\"");
        assert_eq!(show_string_char('é'), "\"\\233\"");
        assert_eq!(show_string_char('\n'), "\"\\n\"");
        assert_eq!(show_string_char('\u{1}'), "\"\\SOH\"");
        assert_eq!(show_string_char('\u{7f}'), "\"\\DEL\"");
    }

    #[test]
    fn columns_count_characters_and_tabs_jump() {
        let err = PErr {
            off: 4,
            msgs: Vec::new(),
            report: true,
        };
        assert_eq!(err.position("é\tab"), "(line 1, column 10)");
        let err = PErr {
            off: 3,
            msgs: Vec::new(),
            report: true,
        };
        assert_eq!(err.position("a\nbc"), "(line 2, column 2)");
    }

    #[test]
    fn alternatives_merge_what_they_expected() {
        let text = "x";
        let st = St::reporting(text);
        let reply = char_(st, 'a').map(|_| "a").or(st, |st| string(st, "bc"));
        assert_eq!(
            fail(reply, text),
            "(line 1, column 1) unexpected \"x\" expecting \"a\" or \"bc\""
        );
    }

    #[test]
    fn a_failure_after_consuming_is_not_backtracked_unless_attempted() {
        let text = "ab";
        let st = St::reporting(text);
        let reply = string(st, "ax").or(st, |st| string(st, "ab"));
        assert_eq!(
            fail(reply, text),
            "(line 1, column 1) unexpected \"b\" expecting \"ax\""
        );
        let reply = string(st, "ax").attempt().or(st, |st| string(st, "ab"));
        assert!(reply.finish().is_ok());
    }

    #[test]
    fn eof_refuses_the_next_character() {
        let text = "ab";
        let st = St::reporting(text);
        let reply = char_(st, 'a').right(eof);
        assert_eq!(
            fail(reply, text),
            "(line 1, column 2) unexpected 'b' expecting end of input"
        );
    }
}
