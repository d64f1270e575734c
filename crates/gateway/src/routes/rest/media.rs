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
    /// `application/geo+json`: a FeatureCollection, when PostGIS is installed.
    GeoJson,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Media {
    pub(crate) shape: Shape,
    /// `nulls=stripped`: members whose value is null are left out.
    pub(crate) stripped: bool,
    /// `application/vnd.pgrst.plan`: the statement's EXPLAIN instead of its rows; the
    /// shape above is the one of its `for` media type.
    pub(crate) plan: Option<Plan>,
}

/// An EXPLAIN asked for by `application/vnd.pgrst.plan[+json|+text]; for="…";
/// options=analyze|verbose|settings|buffers|wal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    pub(crate) json: bool,
    pub(crate) analyze: bool,
    pub(crate) verbose: bool,
    pub(crate) settings: bool,
    pub(crate) buffers: bool,
    pub(crate) wal: bool,
    /// The `for` media type's shape, for the answer's `Content-Type`.
    pub(crate) target: Option<Shape>,
}

impl Plan {
    /// `EXPLAIN (…)` with the options asked for.
    pub(crate) fn explain(self) -> String {
        let mut options = vec![if self.json {
            "FORMAT JSON"
        } else {
            "FORMAT TEXT"
        }];
        for (on, option) in [
            (self.analyze, "ANALYZE"),
            (self.verbose, "VERBOSE"),
            (self.settings, "SETTINGS"),
            (self.buffers, "BUFFERS"),
            (self.wal, "WAL"),
        ] {
            if on {
                options.push(option);
            }
        }
        format!("EXPLAIN ({})", options.join(", "))
    }

    /// The media type as PostgREST writes it: `application/vnd.pgrst.plan+json;
    /// for="application/json"; options=analyze|verbose`.
    pub(crate) fn media_type(self) -> String {
        let target = match self.target {
            None | Some(Shape::Array) => "application/json",
            Some(Shape::Object) => "application/vnd.pgrst.object+json",
            Some(Shape::Csv) => "text/csv",
            Some(Shape::GeoJson) => "application/geo+json",
        };
        let format = if self.json { "json" } else { "text" };
        let options: Vec<&str> = [
            (self.analyze, "analyze"),
            (self.verbose, "verbose"),
            (self.settings, "settings"),
            (self.buffers, "buffers"),
            (self.wal, "wal"),
        ]
        .into_iter()
        .filter_map(|(on, option)| on.then_some(option))
        .collect();
        let mut media = format!("application/vnd.pgrst.plan+{format}; for=\"{target}\"");
        if !options.is_empty() {
            media.push_str(&format!("; options={}", options.join("|")));
        }
        media
    }

    pub(crate) fn content_type(self) -> String {
        format!("{}; charset=utf-8", self.media_type())
    }
}

/// The shape a media type names, if Galley produces it.
fn shape_of(media: &str) -> Option<Shape> {
    Some(match media {
        "" | "*/*" | "application/*" | "application/json" => Shape::Array,
        "application/vnd.pgrst.array+json" => Shape::Array,
        "application/vnd.pgrst.object+json" => Shape::Object,
        "text/csv" | "text/*" => Shape::Csv,
        "application/geo+json" => Shape::GeoJson,
        _ => return None,
    })
}

/// The plan a `vnd.pgrst.plan` media type's parameters ask for; `None` when one is not
/// understood.
fn plan<'a>(media: &str, parameters: impl Iterator<Item = &'a str>) -> Option<Plan> {
    let mut plan = Plan {
        json: media == "application/vnd.pgrst.plan+json",
        ..Plan::default()
    };
    for parameter in parameters.filter(|p| !p.is_empty()) {
        let (name, value) = parameter.split_once('=')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "for" => {
                let target = value.trim().trim_matches('"').to_ascii_lowercase();
                plan.target = Some(shape_of(&target)?);
            }
            "options" => {
                for option in value.split('|').map(str::trim).filter(|o| !o.is_empty()) {
                    match option.to_ascii_lowercase().as_str() {
                        "analyze" => plan.analyze = true,
                        "verbose" => plan.verbose = true,
                        "settings" => plan.settings = true,
                        "buffers" => plan.buffers = true,
                        "wal" => plan.wal = true,
                        _ => return None,
                    }
                }
            }
            "charset" => {}
            _ => return None,
        }
    }
    Some(plan)
}

impl Media {
    /// The first media type of `Accept` Galley produces; `application/geo+json` only
    /// when `postgis` (the extension is installed).
    pub(crate) fn parse(req: &HttpRequest, postgis: bool) -> Result<Self, ApiError> {
        let Some(accept) = req.headers().get("accept") else {
            return Ok(Self {
                shape: Shape::Array,
                stripped: false,
                plan: None,
            });
        };
        let accept = String::from_utf8_lossy(accept.as_bytes());
        for candidate in accept.split(',') {
            let mut parts = candidate.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            if matches!(
                media.as_str(),
                "application/vnd.pgrst.plan"
                    | "application/vnd.pgrst.plan+json"
                    | "application/vnd.pgrst.plan+text"
            ) {
                let Some(plan) =
                    plan(&media, parts).filter(|p| postgis || p.target != Some(Shape::GeoJson))
                else {
                    continue;
                };
                return Ok(Self {
                    shape: plan.target.unwrap_or(Shape::Array),
                    stripped: false,
                    plan: Some(plan),
                });
            }
            let stripped = parts.any(|p| p.eq_ignore_ascii_case("nulls=stripped"));
            let Some(shape) = shape_of(&media).filter(|s| postgis || *s != Shape::GeoJson) else {
                continue;
            };
            let stripped = stripped && media.starts_with("application/vnd.pgrst.");
            return Ok(Self {
                shape,
                stripped,
                plan: None,
            });
        }
        Err(not_available(&accept))
    }
}

/// 406 PGRST107: no media type of `accept` is one Galley produces.
pub(crate) fn not_available(accept: &str) -> ApiError {
    ApiError::rest(
        StatusCode::NOT_ACCEPTABLE,
        "PGRST107",
        format!(
            "None of these media types are available: {}",
            accept.chars().take(200).collect::<String>()
        ),
        None,
        None,
    )
}

impl Media {
    /// How PostgreSQL builds the body; `catalog` says where PostGIS is.
    pub(crate) fn format(self, catalog: &galley_schema::Catalog) -> BodyFormat {
        match (self.shape, self.stripped) {
            (Shape::Csv, _) => BodyFormat::Csv,
            (Shape::GeoJson, _) => BodyFormat::GeoJson {
                postgis: catalog
                    .postgis_schema
                    .clone()
                    .unwrap_or_else(|| "public".to_owned()),
            },
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
            Shape::GeoJson => "application/geo+json; charset=utf-8",
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
