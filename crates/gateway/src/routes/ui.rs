//! The admin UI at `/admin/`: the files `admin-ui/dist` holds (built from `admin-ui/`
//! and committed), embedded in the binary. One page (`/admin/` is `index.html`; the UI
//! routes by the URL's fragment) and its assets, each with a strict Content-Security-Policy,
//! an ETag (names are stable, so every load revalidates and an unchanged file is a 304)
//! and gzip. `/admin/v1` is the API's scope, registered before this one: nothing under
//! it ever reaches these routes. `/` leads to the UI.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../admin-ui/dist"]
struct Dist;

/// Scripts, styles and requests from this origin only; nothing may frame the UI.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(to_admin)).service(
        web::scope("/admin")
            .wrap(actix_web::middleware::Compress::default())
            .route("", web::get().to(to_admin))
            .route("/", web::get().to(index))
            .route("/{file:.+}", web::get().to(asset))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn to_admin() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/admin/"))
        .finish()
}

async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "index.html")
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &file)
}

fn serve(req: &HttpRequest, path: &str) -> Result<HttpResponse, ApiError> {
    let file = Dist::get(path).ok_or_else(ApiError::not_found)?;
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header(("cross-origin-resource-policy", "same-origin"));
    if fresh {
        return Ok(response.finish());
    }
    Ok(response
        .content_type(file.metadata.mimetype())
        .body(file.data.into_owned()))
}
