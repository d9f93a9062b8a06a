//! The raw event log: Clerk events as stored (secrets removed), filtered by type and
//! time, newest first.

use actix_web::{HttpResponse, get, web};
use sqlx::PgPool;

use crate::api::error::ApiError;
use crate::events::log::{EventFilters, list_events as events_page};
use crate::page::PageQuery;

/// The raw event log.
#[utoipa::path(tag = "Roster", params(EventFilters, PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/events")]
pub async fn list_events(
    filters: web::Query<EventFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(events_page(&pool, &filters, &paging).await?))
}
