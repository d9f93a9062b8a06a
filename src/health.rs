//! `/healthz` says the process is up; `/readyz` says it can reach the database.

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use sqlx::PgPool;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[get("/readyz")]
pub async fn readyz(pool: web::Data<PgPool>) -> HttpResponse {
    match sqlx::query_scalar!("select 1 as \"one!\"")
        .fetch_one(pool.get_ref())
        .await
    {
        Ok(_) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "error": "the database cannot be reached" }))
        }
    }
}
