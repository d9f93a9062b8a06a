//! Roster's contact routes: the audience list with search and filters, and one
//! contact with its timeline (Clerk and API events, workflow runs with their steps,
//! emails).

use actix_web::{HttpResponse, get, web};
use sqlx::PgPool;
use uuid::Uuid;

use crate::activity::timeline;
use crate::api::error::ApiError;
use crate::contacts::Contact;
use crate::contacts::search::{ContactFilters, search};
use crate::contacts::store::find_contact_by_id;
use crate::page::{PageQuery, page_of};
use crate::workflows::Workflows;

/// List and search contacts, newest first.
#[utoipa::path(tag = "Roster", params(ContactFilters, PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/contacts")]
pub async fn list_contacts(
    filters: web::Query<ContactFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = search(&pool, &filters, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page_of(rows, limit, |c| c.id.to_string(), Contact::details)))
}

/// One contact with its timeline.
#[utoipa::path(tag = "Roster", params(("id" = Uuid, Path, description = "The contact's ID")),
    responses((status = 200, body = crate::api::schema::ContactTimeline),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/contacts/{id}")]
pub async fn contact_timeline(
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let Some(contact) = find_contact_by_id(&mut conn, *id).await? else {
        return Err(ApiError::not_found("Contact not found."));
    };
    Ok(HttpResponse::Ok().json(timeline(&mut conn, &workflows, &contact).await?))
}
