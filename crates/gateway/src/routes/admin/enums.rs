//! `/admin/v1/enums`: enum types for columns typed `enum:<name>`.

use actix_web::{HttpResponse, web};
use galley_schema::{EnumDefinition, SchemaChange, plan_create_enum};

use super::{ChangeOptions, finish};
use crate::error::ApiError;
use crate::extract::AdminAccess;
use crate::state::AppState;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/enums")
            .route(web::get().to(list_enums))
            .route(web::post().to(create_enum))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

async fn list_enums(_admin: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    // The admin API defines types in `public`; other exposed schemas are the operator's.
    let catalog = state.catalog.snapshot();
    let enums: Vec<_> = catalog
        .enums
        .iter()
        .filter(|e| e.schema == "public")
        .collect();
    HttpResponse::Ok().json(enums)
}

async fn create_enum(
    admin: AdminAccess,
    state: web::Data<AppState>,
    options: web::Query<ChangeOptions>,
    definition: web::Json<EnumDefinition>,
) -> Result<HttpResponse, ApiError> {
    let definition = definition.into_inner();
    let catalog = state.catalog.snapshot();
    let change = SchemaChange {
        operation: "create_enum",
        target: definition.name.clone(),
        before: None,
        after: Some(serde_json::to_value(&definition).map_err(|_| ApiError::internal())?),
        plan: plan_create_enum(&definition, &catalog)?,
        confirmed: false,
    };
    finish(&state, &admin, &change, options.dry_run).await
}
