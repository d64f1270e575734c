//! `GET /rest/v1/`: an OpenAPI 3.1 document of the tables and functions of the request's
//! schema (`Accept-Profile`) that the caller's role may use (PostgREST's `follow-privileges`), built from the catalog.

use actix_web::{HttpRequest, HttpResponse, web};
use galley_db::DbError;
use galley_schema::{Catalog, Relation};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::extract::RequestRole;
use crate::state::AppState;

pub(super) async fn document(
    role: RequestRole,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let schema = super::profile(&req, &state.rest.schemas)?;
    let (tables, functions) = visible(&state, &role, schema).await?;
    let catalog = state.catalog.snapshot();
    let body = build(&catalog, schema, &tables, &functions);
    Ok(HttpResponse::Ok()
        .content_type("application/openapi+json; charset=utf-8")
        .body(body.to_string()))
}

/// The names of the tables and functions of `schema` the role holds any privilege on.
async fn visible(
    state: &AppState,
    role: &RequestRole,
    schema: &str,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let failed =
        |err: galley_db::wire::WireError| ApiError::from_statement(&err, role.is_anonymous());
    let mut conn = state.pools.api.get().await.map_err(DbError::from)?;
    conn.push("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", &[])
        .map_err(failed)?;
    conn.push("SELECT set_config('role', $1, true)", &[role.role])
        .map_err(failed)?;
    conn.push(
        "SELECT c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE')",
        &[schema],
    )
    .map_err(failed)?;
    conn.push(
        "SELECT p.proname::text FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')",
        &[schema],
    )
    .map_err(failed)?;
    conn.push("COMMIT", &[]).map_err(failed)?;
    let results = conn.sync().await.map_err(failed)?;
    let names = |index: usize| -> Vec<String> {
        results
            .get(index)
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| row.text(0).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((names(2), names(3)))
}

fn build(catalog: &Catalog, schema: &str, tables: &[String], functions: &[String]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for relation in catalog
        .relations
        .values()
        .filter(|r| r.schema == schema && tables.contains(&r.name))
    {
        schemas.insert(relation.name.clone(), table_schema(relation));
        paths.insert(format!("/{}", relation.name), table_path(relation));
    }
    for function in catalog
        .functions
        .iter()
        .filter(|f| f.schema == schema && functions.contains(&f.name))
    {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for arg in function
            .args
            .iter()
            .filter(|a| matches!(a.mode.as_str(), "in" | "inout" | "variadic"))
        {
            let Some(name) = &arg.name else { continue };
            properties.insert(name.clone(), json_type(&arg.data_type));
            if !arg.has_default {
                required.push(Value::String(name.clone()));
            }
        }
        paths.insert(
            format!("/rpc/{}", function.name),
            json!({
                "post": {
                    "tags": ["(rpc) functions"],
                    "summary": format!("Call {}, which returns {}", function.name, function.returns),
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "object", "properties": properties, "required": required,
                        }}},
                    },
                    "responses": {"200": {"description": "The function's result"}, "204": {"description": "The function returns void"}},
                }
            }),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Galley REST API",
            "description": "The PostgREST dialect over the tables and functions of the public schema.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apikey": {"type": "apiKey", "in": "header", "name": "apikey"},
            },
        },
        "security": [{"bearer": []}, {"apikey": []}],
    })
}

fn table_schema(relation: &Relation) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for column in &relation.columns {
        let mut schema = json_type(&column.data_type);
        let mut notes = Vec::new();
        if relation.primary_key.contains(&column.name) {
            notes.push("Primary key".to_owned());
        }
        for fk in &relation.foreign_keys {
            if fk.columns.contains(&column.name) {
                notes.push(format!(
                    "Foreign key to {}.{}",
                    fk.target_schema, fk.target_table
                ));
            }
        }
        if let Some(comment) = &column.comment {
            notes.push(comment.clone());
        }
        if let Some(object) = schema.as_object_mut() {
            object.insert("format".into(), Value::String(column.data_type.clone()));
            if !notes.is_empty() {
                object.insert("description".into(), Value::String(notes.join(". ")));
            }
        }
        if !column.nullable && column.default.is_none() && !column.identity && !column.generated {
            required.push(Value::String(column.name.clone()));
        }
        properties.insert(column.name.clone(), schema);
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn table_path(relation: &Relation) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", relation.name)});
    let rows = json!({"type": "array", "items": reference});
    let filters: Vec<Value> = relation
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "in": "query", "required": false,
                   "description": "A filter such as eq.value, in.(a,b) or is.null",
                   "schema": {"type": "string"}})
        })
        .collect();
    let mut read_params = vec![
        json!({"name": "select", "in": "query", "schema": {"type": "string"}}),
        json!({"name": "order", "in": "query", "schema": {"type": "string"}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}}),
        json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}),
    ];
    read_params.extend(filters.iter().cloned());
    let ok = |description: &str| json!({"description": description, "content": {"application/json": {"schema": rows}}});
    json!({
        "get": {"tags": [relation.name], "parameters": read_params,
                "responses": {"200": ok("The matching rows"), "206": ok("A partial page")}},
        "post": {"tags": [relation.name],
                 "requestBody": {"content": {"application/json": {"schema": {"oneOf": [reference, rows]}}}},
                 "responses": {"201": ok("Created"), "200": ok("Upserted")}},
        "patch": {"tags": [relation.name], "parameters": filters,
                  "requestBody": {"content": {"application/json": {"schema": reference}}},
                  "responses": {"200": ok("The updated rows"), "204": {"description": "Updated"}}},
        "delete": {"tags": [relation.name], "parameters": filters,
                   "responses": {"200": ok("The deleted rows"), "204": {"description": "Deleted"}}},
    })
}

/// The JSON Schema type of a PostgreSQL type.
fn json_type(data_type: &str) -> Value {
    if let Some(element) = data_type.strip_suffix("[]") {
        return json!({"type": "array", "items": json_type(element)});
    }
    match data_type {
        "smallint" | "integer" | "bigint" => json!({"type": "integer"}),
        "real" | "double precision" => json!({"type": "number"}),
        t if t.starts_with("numeric") => json!({"type": "number"}),
        "boolean" => json!({"type": "boolean"}),
        "json" | "jsonb" => json!({}),
        "uuid" => json!({"type": "string", "format": "uuid"}),
        "date" => json!({"type": "string", "format": "date"}),
        t if t.starts_with("timestamp") => json!({"type": "string", "format": "date-time"}),
        _ => json!({"type": "string"}),
    }
}
