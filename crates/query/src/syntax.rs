//! The lexical pieces shared by every parameter: names, quoted names, JSON paths, casts,
//! and splitting lists at top-level commas.

use crate::ast::{Field, JsonKey, JsonStep};

/// A position in one parameter's text.
pub(crate) struct Cursor<'a> {
    pub(crate) text: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn skip_spaces(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    /// A name: `"quoted"` (with `\` escapes) or a run of `[A-Za-z0-9_ $]` and `-` not
    /// followed by `>`, trimmed. `None` when there is none here.
    pub(crate) fn name(&mut self) -> Result<Option<String>, String> {
        if self.peek() == Some('"') {
            self.pos += 1;
            let mut out = String::new();
            let mut chars = self.rest().char_indices();
            while let Some((offset, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => out.push(escaped),
                        None => return Err("unterminated quoted name".to_owned()),
                    },
                    '"' => {
                        self.pos += offset + 1;
                        return Ok(Some(out));
                    }
                    other => out.push(other),
                }
            }
            return Err("unterminated quoted name".to_owned());
        }
        let rest = self.rest();
        let mut end = 0;
        for (offset, c) in rest.char_indices() {
            let ok = c.is_ascii_alphanumeric()
                || c == '_'
                || c == ' '
                || c == '$'
                || (c == '-' && !rest[offset + 1..].starts_with('>'));
            if !ok {
                break;
            }
            end = offset + c.len_utf8();
        }
        let name = rest[..end].trim();
        if name.is_empty() {
            return Ok(None);
        }
        self.pos += end;
        Ok(Some(name.to_owned()))
    }

    /// `name` followed by `->key`, `->>key` or `->N` steps.
    pub(crate) fn field(&mut self) -> Result<Option<Field>, String> {
        let Some(name) = self.name()? else {
            return Ok(None);
        };
        let mut json_path = Vec::new();
        loop {
            let double = if self.eat("->>") {
                true
            } else if self.eat("->") {
                false
            } else {
                break;
            };
            let key = self.json_key()?;
            json_path.push(if double {
                JsonStep::DoubleArrow(key)
            } else {
                JsonStep::Arrow(key)
            });
        }
        Ok(Some(Field { name, json_path }))
    }

    fn json_key(&mut self) -> Result<JsonKey, String> {
        let rest = self.rest();
        let digits = rest.strip_prefix('-').unwrap_or(rest);
        let count = digits.chars().take_while(char::is_ascii_digit).count();
        let after = &digits[count..];
        let ends_here = after.is_empty()
            || !(after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
        if count > 0 && ends_here {
            let len = rest.len() - digits.len() + count;
            let index = rest[..len]
                .parse::<i64>()
                .map_err(|_| "JSON array index out of range".to_owned())?;
            self.pos += len;
            return Ok(JsonKey::Index(index));
        }
        match self.name()? {
            Some(key) => Ok(JsonKey::Key(key)),
            None => Err("expected a JSON key or index after ->".to_owned()),
        }
    }

    /// `::type`: letters, digits, `_`, spaces and a trailing `[]`. The gateway also
    /// checks the type against its allowlist.
    pub(crate) fn cast(&mut self) -> Result<Option<String>, String> {
        if !self.eat("::") {
            return Ok(None);
        }
        let rest = self.rest();
        let len = rest
            .char_indices()
            .take_while(|(_, c)| {
                c.is_ascii_alphanumeric() || *c == '_' || *c == ' ' || *c == '[' || *c == ']'
            })
            .map(|(offset, c)| offset + c.len_utf8())
            .last()
            .unwrap_or(0);
        let cast = rest[..len].trim();
        if cast.is_empty() {
            return Err("expected a type after ::".to_owned());
        }
        self.pos += len;
        Ok(Some(cast.to_ascii_lowercase()))
    }
}

/// Splits `text` at commas that are outside quotes, parentheses and braces.
pub(crate) fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth_paren = 0i32;
    let mut depth_brace = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (offset, c) in text.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' => depth_paren += 1,
            ')' => {
                depth_paren -= 1;
                if depth_paren < 0 {
                    return Err("unbalanced parentheses".to_owned());
                }
            }
            '{' => depth_brace += 1,
            '}' => depth_brace = (depth_brace - 1).max(0),
            ',' if depth_paren == 0 && depth_brace == 0 => {
                parts.push(&text[start..offset]);
                start = offset + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated quote".to_owned());
    }
    if depth_paren != 0 {
        return Err("unbalanced parentheses".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// A value inside a list or tree: `"quoted"` (with `\` escapes) or taken as is.
pub(crate) fn unquote(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fields_and_json_paths() {
        let mut cursor = Cursor::new("data->a->>\"b c\"");
        let field = cursor.field().expect("parses").expect("a field");
        assert_eq!(field.name, "data");
        assert_eq!(
            field.json_path,
            vec![
                JsonStep::Arrow(JsonKey::Key("a".into())),
                JsonStep::DoubleArrow(JsonKey::Key("b c".into()))
            ]
        );
        let mut cursor = Cursor::new("arr->-1->>0");
        let field = cursor.field().expect("parses").expect("a field");
        assert_eq!(
            field.json_path,
            vec![
                JsonStep::Arrow(JsonKey::Index(-1)),
                JsonStep::DoubleArrow(JsonKey::Index(0))
            ]
        );
        let mut cursor = Cursor::new("first-name");
        assert_eq!(
            cursor.name().expect("parses").as_deref(),
            Some("first-name")
        );
    }

    #[test]
    fn lists_split_only_at_top_level_commas() {
        assert_eq!(
            split_top_level("a,b(c,d),\"e,f\",{1,2}").expect("splits"),
            vec!["a", "b(c,d)", "\"e,f\"", "{1,2}"]
        );
        assert!(split_top_level("a,(b").is_err());
        assert!(split_top_level("\"open").is_err());
        assert_eq!(unquote(" \"a\\\"b\" "), "a\"b");
    }
}
