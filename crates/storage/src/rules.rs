//! What a bucket name, an object key, a content type and a size limit may be: Supabase
//! Storage's rules, plus Galley's own on keys (no empty, `.` or `..` segment, at most
//! 1,024 bytes), so a key names one object one way. Keys never reach a file system
//! (bytes are stored under their version's id), but policies compare them.

use crate::error::StorageError;

/// The characters Supabase allows in keys (and, without `/`, in bucket names).
fn allowed(c: char, slash: bool) -> bool {
    c.is_ascii_alphanumeric() || "_!.*'() &$=@;:+,?-".contains(c) || (slash && c == '/')
}

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

pub fn bucket_name_is_valid(name: &str) -> bool {
    (1..=100).contains(&name.chars().count()) && name.chars().all(|c| allowed(c, false))
}

/// A bucket named in a request's path or body.
pub fn check_bucket_name(name: &str) -> Result<(), StorageError> {
    if bucket_name_is_valid(name) {
        Ok(())
    } else {
        Err(StorageError::invalid_bucket_name())
    }
}

/// A new bucket's name: as above, and no surrounding whitespace.
pub fn check_new_bucket_name(name: &str) -> Result<(), StorageError> {
    if name.trim() != name {
        return Err(StorageError::invalid_bucket_name());
    }
    check_bucket_name(name)
}

pub fn key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.chars().all(|c| allowed(c, true))
        && key
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

pub fn check_key(key: &str) -> Result<(), StorageError> {
    if key_is_valid(key) {
        Ok(())
    } else {
        Err(StorageError::invalid_key(key))
    }
}

/// Whether a bucket whose `allowed` types are these accepts `mime`: any type when there
/// is no list; otherwise an entry of the same type whose subtype is `*` or the same.
/// Parameters are compared as part of the subtype, as Supabase does.
pub fn mime_is_allowed(allowed: &[String], mime: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some((kind, subtype)) = mime.split_once('/') else {
        return false;
    };
    allowed.iter().any(|entry| match entry.split_once('/') {
        Some((k, s)) => {
            k.eq_ignore_ascii_case(kind) && (s == "*" || s.eq_ignore_ascii_case(subtype))
        }
        None => false,
    })
}

/// An entry of a bucket's allowed types: `type/subtype` or `type/*`, optionally with a
/// charset, as Supabase validates them.
pub fn mime_entry_is_valid(entry: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+.".contains(c))
    };
    if entry.len() > 1000 {
        return false;
    }
    if entry.ends_with('*') {
        return true;
    }
    let (essence, charset) = match entry.split_once(';') {
        Some((essence, params)) => (essence, Some(params.trim_start())),
        None => (entry, None),
    };
    let charset_ok = charset.is_none_or(|p| {
        p.strip_prefix("charset=").is_some_and(|v| {
            !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    });
    charset_ok
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s))
}

/// A size limit as a bucket takes it: a number of bytes, or a string such as `20MB`
/// (decimal units, as Supabase reads them).
pub fn parse_size(value: &serde_json::Value) -> Result<Option<u64>, StorageError> {
    let invalid = || {
        StorageError::invalid_request("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")
    };
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => n.as_u64().map(Some).ok_or_else(invalid),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let lower = s.to_ascii_lowercase();
            let (number, unit) = ["gb", "mb", "kb", "b"]
                .iter()
                .find_map(|unit| lower.strip_suffix(unit).map(|n| (n.to_owned(), *unit)))
                .ok_or_else(invalid)?;
            let factor = match unit {
                "gb" => 1e9,
                "mb" => 1e6,
                "kb" => 1e3,
                _ => 1.0,
            };
            let valid = !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit() || c == '.')
                && number.matches('.').count() <= 1
                && !number.starts_with('.')
                && !number.ends_with('.');
            if !valid {
                return Err(invalid());
            }
            let value: f64 = number.parse().map_err(|_| invalid())?;
            Ok(Some((value * factor).round() as u64))
        }
        _ => Err(invalid()),
    }
}

/// Content types a browser would run as part of the page that serves them.
pub fn is_active_content(mime: &str) -> bool {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.contains("html")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
        || essence == "image/svg+xml"
        || essence == "application/pdf"
        || essence == "text/xsl"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_supabase_and_have_one_spelling() {
        for good in [
            "a.png",
            "folder/cat (1).png",
            "x/y/z",
            "u@x.com/+;:,?",
            ".hidden/.env",
        ] {
            assert!(key_is_valid(good), "{good}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../etc/passwd",
            "a/../b",
            "a/./b",
            "..",
            "a\0b",
            "a\nb",
            "é",
            "a%2e",
            "a\\b",
            "a#b",
            "~/x",
        ] {
            assert!(!key_is_valid(bad), "{bad:?}");
        }
        assert!(!key_is_valid(&"a".repeat(MAX_KEY_BYTES + 1)));
    }

    #[test]
    fn bucket_names() {
        assert!(bucket_name_is_valid("avatars"));
        assert!(!bucket_name_is_valid("a/b"));
        assert!(!bucket_name_is_valid(""));
        assert!(!bucket_name_is_valid(&"a".repeat(101)));
        assert!(check_new_bucket_name(" a").is_err());
    }

    #[test]
    fn mime_types_match_by_type_and_subtype() {
        let allowed = vec!["image/*".to_owned(), "text/plain".to_owned()];
        assert!(mime_is_allowed(&allowed, "image/png"));
        assert!(mime_is_allowed(&allowed, "text/plain"));
        // The parameters are part of what is compared, as in Supabase.
        assert!(!mime_is_allowed(&allowed, "text/plain;charset=UTF-8"));
        assert!(!mime_is_allowed(&allowed, "application/json"));
        assert!(!mime_is_allowed(&allowed, "nonsense"));
        assert!(mime_is_allowed(&[], "anything"));
        assert!(mime_entry_is_valid("image/png"));
        assert!(mime_entry_is_valid("text/plain; charset=utf-8"));
        assert!(mime_entry_is_valid("image/*"));
        assert!(!mime_entry_is_valid("image"));
        assert!(!mime_entry_is_valid("im age/png"));
    }

    #[test]
    fn sizes_parse_in_decimal_units() {
        assert_eq!(parse_size(&serde_json::json!(1024)), Ok(Some(1024)));
        assert_eq!(parse_size(&serde_json::json!("20MB")), Ok(Some(20_000_000)));
        assert_eq!(parse_size(&serde_json::json!("1.5kb")), Ok(Some(1500)));
        assert_eq!(parse_size(&serde_json::json!(null)), Ok(None));
        assert!(parse_size(&serde_json::json!("20 parsecs")).is_err());
        assert!(parse_size(&serde_json::json!(-1)).is_err());
    }

    #[test]
    fn active_content_is_recognised() {
        for mime in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/javascript",
            "application/xhtml+xml",
        ] {
            assert!(is_active_content(mime), "{mime}");
        }
        for mime in ["image/png", "text/plain", "application/json", "video/mp4"] {
            assert!(!is_active_content(mime), "{mime}");
        }
    }
}
