//! The `Accept` header: which shape the rows take in the response body.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use galley_query::BodyFormat;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A JSON array (the default).
    Array,
    /// `application/vnd.pgrst.object+json`: exactly one row, as an object.
    Object,
    /// `text/csv`.
    Csv,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Media {
    pub(crate) shape: Shape,
    /// `nulls=stripped`: members whose value is null are left out.
    pub(crate) stripped: bool,
}

impl Media {
    pub(crate) fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        let Some(accept) = req.headers().get("accept") else {
            return Ok(Self {
                shape: Shape::Array,
                stripped: false,
            });
        };
        let accept = String::from_utf8_lossy(accept.as_bytes());
        for candidate in accept.split(',') {
            let mut parts = candidate.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let stripped = parts.any(|p| p.eq_ignore_ascii_case("nulls=stripped"));
            let shape = match media.as_str() {
                "" | "*/*" | "application/*" | "application/json" => Shape::Array,
                "application/vnd.pgrst.array+json" => Shape::Array,
                "application/vnd.pgrst.object+json" => Shape::Object,
                "text/csv" | "text/*" => Shape::Csv,
                _ => continue,
            };
            let stripped = stripped && media.starts_with("application/vnd.pgrst.");
            return Ok(Self { shape, stripped });
        }
        Err(ApiError::rest(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST107",
            format!(
                "None of these media types are available: {}",
                accept.chars().take(200).collect::<String>()
            ),
            None,
            None,
        ))
    }

    pub(crate) fn format(self) -> BodyFormat {
        match (self.shape, self.stripped) {
            (Shape::Csv, _) => BodyFormat::Csv,
            (_, true) => BodyFormat::StrippedJson,
            (_, false) => BodyFormat::Json,
        }
    }

    pub(crate) fn single(self) -> bool {
        self.shape == Shape::Object
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self.shape {
            Shape::Array if self.stripped => {
                "application/vnd.pgrst.array+json; nulls=stripped; charset=utf-8"
            }
            Shape::Array => "application/json; charset=utf-8",
            Shape::Object if self.stripped => {
                "application/vnd.pgrst.object+json; nulls=stripped; charset=utf-8"
            }
            Shape::Object => "application/vnd.pgrst.object+json; charset=utf-8",
            Shape::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The body as the client asked: a single object is the one element of the array
    /// PostgreSQL built (the caller has checked there is exactly one).
    pub(crate) fn body(self, body: String) -> String {
        if self.shape != Shape::Object {
            return body;
        }
        match body
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            Some(object) => object.to_owned(),
            None => body,
        }
    }
}
