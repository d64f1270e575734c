//! Parse errors, worded like PostgREST's PGRST100 so clients see familiar messages.

/// `failed to parse <what> (<input>)`, with what was expected in `details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse {what} ({input})")]
pub struct ParseError {
    pub what: &'static str,
    pub input: String,
    pub details: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str, details: impl Into<String>) -> Self {
        // Long hostile inputs are cut in the message; the details say what went wrong.
        let input: String = input.chars().take(200).collect();
        Self {
            what,
            input,
            details: details.into(),
        }
    }
}
