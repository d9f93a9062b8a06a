//! `/healthz` says the process is up; `/readyz` says it can reach the database.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use sqlx::PgPool;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Probes give up long before a request would: a health checker with a short timeout
/// gets a 503, not a hung connection.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[get("/readyz")]
pub async fn readyz(pool: web::Data<PgPool>) -> HttpResponse {
    let probe = sqlx::query_scalar!("select 1 as \"one!\"").fetch_one(pool.get_ref());
    let failure = match tokio::time::timeout(READINESS_TIMEOUT, probe).await {
        Ok(Ok(_)) => return HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    tracing::warn!(error = failure, "readiness check failed");
    HttpResponse::ServiceUnavailable()
        .json(json!({ "status": "unavailable", "error": "the database cannot be reached" }))
}
