//! The REST API under `/api`: the Loops-compatible routes (`loops`), Roster's own
//! (`roster`) and analytics, all behind `Authorization: Bearer $ROSTER_API_KEY`, and
//! the OpenAPI document that describes them (public, at `/api/openapi.json`).

pub mod analytics;
pub mod auth;
pub mod error;
pub mod idempotency;
pub mod input;
pub mod loops;
pub mod openapi;
pub mod roster;
pub mod schema;
pub mod throttle;

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use serde_json::{Map, Value};

use error::ApiError;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Mounts `/api`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi::openapi_json).service(
        web::scope("/api")
            .wrap(actix_web::middleware::from_fn(
                input::refuse_unstorable_input,
            ))
            .wrap(actix_web::middleware::from_fn(auth::require_api_key))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(|error, _| json_error(error).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::bad_request(format!("The query string is not valid: {error}.")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|error, _| {
                ApiError::not_found(format!("Not found: {error}.")).into()
            }))
            .configure(loops::routes)
            .configure(roster::routes)
            .configure(analytics::routes)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found(
                    "There is no such API route.",
                ))
            })),
    );
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("Send the body as JSON, with Content-Type: application/json.")
        }
        error => ApiError::bad_request(format!("The request body is not valid JSON: {error}.")),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The request body is larger than 1 MiB.",
    )
}

/// The raw body of a route that hashes it (`Idempotency-Key`), at most 1 MiB.
pub async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::bad_request("The request body could not be read.")),
        Err(_) => Err(too_large()),
    }
}

/// A request body that must be one JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "The request body is not valid JSON: {error}."
        ))),
    }
}

/// The `Idempotency-Key` header, if any.
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    match request.headers().get(idempotency::HEADER) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            ApiError::field(
                idempotency::HEADER,
                "The Idempotency-Key header must be ASCII text.",
            )
        }),
    }
}
