//! Parse errors, worded as PostgREST words its PGRST100.

use crate::parsec::PErr;

/// A query parameter that does not parse: `message` names the parameter, its text and
/// (for a syntax error) the place; `details` says what was met and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub details: String,
}

impl ParseError {
    /// A syntax error as PostgREST reports Parsec's: `"failed to parse <what> (<input>)"
    /// (line L, column C)`, with `unexpected … expecting …` in the details. `text` is what
    /// was parsed, which for a logic tree is the input behind its operator.
    pub(crate) fn syntax(what: &str, input: &str, text: &str, err: &PErr) -> Self {
        Self {
            message: format!(
                "\"failed to parse {what} ({input})\" {}",
                err.position(text)
            ),
            details: err.describe(),
        }
    }

    /// A limit of Galley's own, past which a parameter is refused.
    pub(crate) fn limit(what: &str, input: &str, details: impl Into<String>) -> Self {
        // Long hostile inputs are cut in the message; the details say what went wrong.
        let input: String = input.chars().take(200).collect();
        Self {
            message: format!("failed to parse {what} ({input})"),
            details: details.into(),
        }
    }
}
