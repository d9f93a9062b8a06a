//! Loops' contact property routes: list the built-in and custom properties, create a
//! custom one.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::api::error::ApiError;
use crate::contacts::properties::{
    BUILT_IN, PropertyStoreError, PropertyType, create_property, label, list_custom_properties,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PropertiesQuery {
    /// `all` (the default) or `custom`.
    list: Option<String>,
}

/// List contact properties: `[{key, label, type}]`, built-in ones first.
#[utoipa::path(tag = "Loops: contacts", params(PropertiesQuery),
    responses((status = 200, body = Vec<crate::api::schema::PropertyBody>),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/contacts/properties")]
pub async fn list_properties(
    query: web::Query<PropertiesQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let with_built_in = match query.list.as_deref() {
        None | Some("all") => true,
        Some("custom") => false,
        Some(_) => return Err(ApiError::field("list", "`list` must be `all` or `custom`.")),
    };
    let mut conn = pool.acquire().await?;
    let custom = list_custom_properties(&mut conn).await?;
    let built_in = BUILT_IN
        .iter()
        .filter(|_| with_built_in)
        .map(|(name, kind)| (name.to_string(), *kind));
    let all: Vec<Value> = built_in
        .chain(custom.into_iter().map(|p| (p.name, p.kind)))
        .map(|(name, kind)| json!({ "key": name, "label": label(&name), "type": kind }))
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProperty {
    /// camelCase, like `planName`.
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Create a custom contact property.
#[utoipa::path(tag = "Loops: contacts", request_body = NewProperty,
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[post("/v1/contacts/properties")]
pub async fn create_property_route(
    body: web::Json<NewProperty>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let Some(kind) = PropertyType::parse(&body.kind) else {
        return Err(ApiError::field(
            "type",
            "`type` must be one of string, number, boolean or date.",
        ));
    };
    let mut conn = pool.acquire().await?;
    match create_property(&mut conn, &body.name, kind).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "success": true }))),
        Err(PropertyStoreError::Invalid(why)) => Err(ApiError::field("name", why.to_string())),
        Err(PropertyStoreError::Database(error)) => Err(error.into()),
    }
}
