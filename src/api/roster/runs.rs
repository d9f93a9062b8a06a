//! Workflow runs, email deliveries and jobs, filtered by state, newest first; and
//! replaying a dead job.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::contacts::Delivery;
use super::page::{PageQuery, page};
use crate::api::error::ApiError;
use crate::jobs::queue::replay_dead_job;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RunFilters {
    pub workflow: Option<String>,
    /// active, completed or exited.
    pub state: Option<String>,
}

/// Workflow runs.
#[utoipa::path(tag = "Roster", params(RunFilters, PageQuery),
    responses((status = 200, body = crate::api::openapi::Page),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/workflow-runs")]
pub async fn list_runs(
    filters: web::Query<RunFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(runs_page(&pool, &filters, &paging).await?))
}

/// The page `list_runs` answers, for the API and the dashboard.
pub async fn runs_page(
    pool: &PgPool,
    filters: &RunFilters,
    paging: &PageQuery,
) -> Result<Value, ApiError> {
    check_state(
        "state",
        filters.state.as_deref(),
        &["active", "completed", "exited"],
    )?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = sqlx::query!(
        "select id, workflow, contact_id, contact ->> 'email' as email, trigger_event, state,
                current_step, exit_reason, created_at, finished_at
         from workflow_runs
         where ($1::text is null or workflow = $1) and ($2::text is null or state = $2)
           and ($3::uuid is null or id < $3)
         order by id desc limit $4",
        filters.workflow,
        filters.state,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page(
        rows,
        limit,
        |r| r.id.to_string(),
        |r| {
            json!({
                "id": r.id, "workflow": r.workflow, "contactId": r.contact_id, "email": r.email,
                "trigger": r.trigger_event, "state": r.state, "currentStep": r.current_step,
                "exitReason": r.exit_reason, "createdAt": r.created_at, "finishedAt": r.finished_at,
            })
        },
    ))
}

/// The states of an email delivery, the most useful first.
pub const DELIVERY_STATES: [&str; 6] = [
    "sent",
    "failed",
    "suppressed",
    "retrying",
    "sending",
    "unknown",
];

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DeliveryFilters {
    /// sending, sent, retrying, failed, unknown (the worker stopped mid-send) or
    /// suppressed.
    pub state: Option<String>,
}

/// Email deliveries.
#[utoipa::path(tag = "Roster", params(DeliveryFilters, PageQuery),
    responses((status = 200, body = crate::api::openapi::Page),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/email-deliveries")]
pub async fn list_deliveries(
    filters: web::Query<DeliveryFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deliveries_page(&pool, &filters, &paging).await?))
}

/// The page `list_deliveries` answers, for the API and the dashboard.
pub async fn deliveries_page(
    pool: &PgPool,
    filters: &DeliveryFilters,
    paging: &PageQuery,
) -> Result<Value, ApiError> {
    check_state("state", filters.state.as_deref(), &DELIVERY_STATES)?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = sqlx::query_as!(
        Delivery,
        "select d.id, d.run_id, r.workflow, r.contact_id, d.step, d.template, d.recipient, d.message_id,
                d.transactional, d.state, d.smtp_response, d.attempts, d.created_at, d.sent_at
         from email_deliveries d join workflow_runs r on r.id = d.run_id
         where ($1::text is null or d.state = $1) and ($2::uuid is null or d.id < $2)
         order by d.id desc limit $3",
        filters.state,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page(rows, limit, |d| d.id.to_string(), Delivery::to_json))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct JobFilters {
    /// scheduled, running, done or dead.
    pub state: Option<String>,
}

/// Jobs of the queue (workflow steps): scheduled ones show what is due, dead ones what
/// gave up.
#[utoipa::path(tag = "Roster", params(JobFilters, PageQuery),
    responses((status = 200, body = crate::api::openapi::Page),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/jobs")]
pub async fn list_jobs(
    filters: web::Query<JobFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(jobs_page(&pool, &filters, &paging).await?))
}

/// The page `list_jobs` answers, for the API and the dashboard.
pub async fn jobs_page(
    pool: &PgPool,
    filters: &JobFilters,
    paging: &PageQuery,
) -> Result<Value, ApiError> {
    check_state(
        "state",
        filters.state.as_deref(),
        &["scheduled", "running", "done", "dead"],
    )?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<i64>().ok())?;
    let rows = sqlx::query!(
        "select id, kind, payload, state, run_at, attempts, max_attempts, last_error, created_at, finished_at
         from jobs
         where ($1::text is null or state = $1) and ($2::bigint is null or id < $2)
         order by id desc limit $3",
        filters.state,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page(
        rows,
        limit,
        |j| j.id.to_string(),
        |j| {
            json!({
                "id": j.id, "kind": j.kind, "payload": j.payload, "state": j.state,
                "runAt": j.run_at, "attempts": j.attempts, "maxAttempts": j.max_attempts,
                "lastError": j.last_error, "createdAt": j.created_at, "finishedAt": j.finished_at,
            })
        },
    ))
}

/// Put a dead job back in the queue, due now, with fresh attempts.
#[utoipa::path(tag = "Roster", params(("id" = i64, Path, description = "The job's ID")),
    responses((status = 200, body = crate::api::openapi::SuccessResponse),
              (status = 404, body = crate::api::openapi::ErrorBody),
              (status = 409, body = crate::api::openapi::ErrorBody)))]
#[post("/v1/jobs/{id}/replay")]
pub async fn replay_job(
    id: web::Path<i64>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    if replay_dead_job(&mut conn, *id).await? {
        tracing::info!(job = *id, "dead job replayed");
        return Ok(HttpResponse::Ok().json(json!({ "success": true })));
    }
    let exists = sqlx::query_scalar!("select state from jobs where id = $1", *id)
        .fetch_optional(&mut *conn)
        .await?;
    match exists {
        None => Err(ApiError::not_found("Job not found.")),
        Some(state) => Err(ApiError::conflict(format!(
            "Only dead jobs can be replayed; this one is {state}."
        ))),
    }
}

fn check_state(field: &str, state: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match state {
        Some(state) if !allowed.contains(&state) => Err(ApiError::field(
            field,
            format!("`{field}` must be one of {}.", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}
