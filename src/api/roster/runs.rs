//! Workflow runs, email deliveries and jobs, filtered by state, newest first; and
//! replaying a dead job.

use actix_web::{HttpResponse, get, post, web};
use serde_json::json;
use sqlx::PgPool;

use crate::api::error::ApiError;
use crate::jobs::queue::{JobFilters, Replay, list_jobs as jobs_page, replay_dead_job};
use crate::page::PageQuery;
use crate::workflows::deliveries::{DeliveryFilters, list_deliveries as deliveries_page};
use crate::workflows::runs::{RunFilters, list_runs as runs_page};

/// Workflow runs.
#[utoipa::path(tag = "Roster", params(RunFilters, PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/workflow-runs")]
pub async fn list_runs(
    filters: web::Query<RunFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(runs_page(&pool, &filters, &paging).await?))
}

/// Email deliveries.
#[utoipa::path(tag = "Roster", params(DeliveryFilters, PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/email-deliveries")]
pub async fn list_deliveries(
    filters: web::Query<DeliveryFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deliveries_page(&pool, &filters, &paging).await?))
}

/// Jobs of the queue (workflow steps): scheduled ones show what is due, dead ones what
/// gave up.
#[utoipa::path(tag = "Roster", params(JobFilters, PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/jobs")]
pub async fn list_jobs(
    filters: web::Query<JobFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(jobs_page(&pool, &filters, &paging).await?))
}

/// Put a dead job back in the queue, due now, with fresh attempts.
#[utoipa::path(tag = "Roster", params(("id" = i64, Path, description = "The job's ID")),
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 404, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[post("/v1/jobs/{id}/replay")]
pub async fn replay_job(
    id: web::Path<i64>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    match replay_dead_job(&mut conn, *id).await? {
        Replay::Replayed => {
            tracing::info!(job = *id, "dead job replayed");
            Ok(HttpResponse::Ok().json(json!({ "success": true })))
        }
        Replay::NotFound => Err(ApiError::not_found("Job not found.")),
        Replay::NotDead(state) => Err(ApiError::conflict(format!(
            "Only dead jobs can be replayed; this one is {}.",
            state.as_str()
        ))),
    }
}
