//! The `Prefer` header: every preference PostgREST knows, parsed once per request.
//! Unknown ones are ignored unless `handling=strict`, which refuses them (PGRST122).

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use galley_query::Count;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Return {
    #[default]
    Minimal,
    Representation,
    HeadersOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Preferences {
    pub(crate) return_: Return,
    pub(crate) count: Count,
    pub(crate) resolution: Option<Resolution>,
    /// `missing=default`: keys absent from a row take the column's default, not NULL.
    pub(crate) missing_default: bool,
    /// `tx=rollback`.
    pub(crate) rollback: bool,
    /// `max-affected=N`, enforced with `handling=strict`.
    pub(crate) max_affected: Option<i64>,
    pub(crate) strict: bool,
    /// The preferences honoured, for `Preference-Applied`.
    pub(crate) applied: Vec<String>,
}

impl Preferences {
    pub(crate) fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        let mut prefs = Preferences::default();
        let mut invalid = Vec::new();
        let items = req
            .headers()
            .get_all("prefer")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>();
        for item in items.iter().flat_map(|value| value.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let known = match item {
                "return=minimal" => {
                    prefs.return_ = Return::Minimal;
                    true
                }
                "return=representation" => {
                    prefs.return_ = Return::Representation;
                    true
                }
                "return=headers-only" => {
                    prefs.return_ = Return::HeadersOnly;
                    true
                }
                "count=exact" => {
                    prefs.count = Count::Exact;
                    true
                }
                "count=planned" => {
                    prefs.count = Count::Planned;
                    true
                }
                "count=estimated" => {
                    prefs.count = Count::Estimated;
                    true
                }
                "resolution=merge-duplicates" => {
                    prefs.resolution = Some(Resolution::MergeDuplicates);
                    true
                }
                "resolution=ignore-duplicates" => {
                    prefs.resolution = Some(Resolution::IgnoreDuplicates);
                    true
                }
                "missing=default" => {
                    prefs.missing_default = true;
                    true
                }
                "missing=null" => {
                    prefs.missing_default = false;
                    true
                }
                "tx=rollback" => {
                    prefs.rollback = true;
                    true
                }
                "tx=commit" => {
                    prefs.rollback = false;
                    true
                }
                "handling=strict" => {
                    prefs.strict = true;
                    true
                }
                "handling=lenient" => {
                    prefs.strict = false;
                    true
                }
                other => match other.strip_prefix("max-affected=") {
                    Some(n) => match n.parse::<i64>() {
                        Ok(n) if n >= 0 => {
                            prefs.max_affected = Some(n);
                            true
                        }
                        _ => false,
                    },
                    None => false,
                },
            };
            if known {
                prefs.applied.push(item.to_owned());
            } else {
                invalid.push(item.chars().take(100).collect::<String>());
            }
        }
        if prefs.strict && !invalid.is_empty() {
            return Err(ApiError::rest(
                StatusCode::BAD_REQUEST,
                "PGRST122",
                "Invalid preferences given with handling=strict",
                Some(format!("Invalid preferences: {}", invalid.join(", "))),
                None,
            ));
        }
        if !prefs.strict {
            // Without strict handling the limit is not enforced, so not applied.
            prefs.max_affected = None;
            prefs.applied.retain(|p| !p.starts_with("max-affected="));
        }
        Ok(prefs)
    }

    /// `Preference-Applied`, when any was.
    pub(crate) fn applied_header(&self) -> Option<(&'static str, String)> {
        (!self.applied.is_empty()).then(|| ("preference-applied", self.applied.join(", ")))
    }
}
