//! JSON values from definitions rendered as typed SQL literals.

use crate::error::SchemaError;
use crate::ident::quote_literal;
use crate::types::ColumnType;

/// `value` as a literal of type `ty`, e.g. `'42'::integer`. Whether the text is valid for
/// the type is PostgreSQL's call, made when the plan runs (and in dry runs).
pub(crate) fn typed_literal(
    value: &serde_json::Value,
    ty: &ColumnType,
    field: &str,
) -> Result<String, SchemaError> {
    use serde_json::Value;
    let invalid = |message: &str| SchemaError::invalid(field, message);
    match (value, ty) {
        (Value::Null, _) => Ok("NULL".to_owned()),
        (_, ColumnType::Jsonb) => Ok(format!("{}::jsonb", checked(&value.to_string(), field)?)),
        (Value::Array(items), ColumnType::Array(element)) => {
            if items.is_empty() {
                return Ok(format!("'{{}}'::{ty}"));
            }
            let items = items
                .iter()
                .map(|item| typed_literal(item, element, field))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("ARRAY[{}]::{ty}", items.join(", ")))
        }
        (Value::Array(_) | Value::Object(_), _) => {
            Err(invalid(&format!("a {ty} value must be a single value")))
        }
        (Value::String(text), _) => Ok(format!("{}::{ty}", checked(text, field)?)),
        (Value::Number(number), _) => Ok(format!("{}::{ty}", quote_literal(&number.to_string()))),
        (Value::Bool(flag), _) => Ok(format!("{}::{ty}", quote_literal(&flag.to_string()))),
    }
}

fn checked(text: &str, field: &str) -> Result<String, SchemaError> {
    if text.contains('\0') {
        return Err(SchemaError::invalid(
            field,
            "text must not contain NUL characters",
        ));
    }
    Ok(quote_literal(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lit(value: serde_json::Value, ty: &str) -> String {
        typed_literal(&value, &ty.parse().expect("type"), "default").expect("literal")
    }

    #[test]
    fn values_render_as_typed_quoted_literals() {
        assert_eq!(lit(json!(42), "integer"), "'42'::integer");
        assert_eq!(lit(json!("it's"), "text"), "'it''s'::text");
        assert_eq!(lit(json!(true), "boolean"), "'true'::boolean");
        assert_eq!(lit(json!({"a": [1]}), "jsonb"), r#"'{"a":[1]}'::jsonb"#);
        assert_eq!(
            lit(json!(["a", "b"]), "text[]"),
            "ARRAY['a'::text, 'b'::text]::text[]"
        );
        assert_eq!(lit(json!([]), "uuid[]"), "'{}'::uuid[]");
        assert_eq!(lit(json!(null), "date"), "NULL");
    }

    #[test]
    fn injection_attempts_stay_inside_the_literal() {
        assert_eq!(
            lit(json!("x'; DROP TABLE users; --"), "text"),
            "'x''; DROP TABLE users; --'::text"
        );
        assert!(typed_literal(&json!("nul\u{0}"), &ColumnType::Text, "default").is_err());
        assert!(typed_literal(&json!({"a": 1}), &ColumnType::Text, "default").is_err());
    }
}
