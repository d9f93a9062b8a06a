//! Roster's contact routes: the audience list with search and filters, and one
//! contact with its timeline (Clerk and API events, workflow runs with their steps,
//! emails).

use actix_web::{HttpResponse, get, web};
use sqlx::PgPool;
use uuid::Uuid;

use futures_util::StreamExt;

use crate::activity::timeline;
use crate::api::error::ApiError;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::search::{ContactFilters, search};
use crate::contacts::store::find_contact_by_id;
use crate::export::{CsvPages, audience};
use crate::page::{PageQuery, page_of};
use crate::telemetry::error_chain;
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

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// Only the contacts of this segment (its ID).
    segment: Option<String>,
    /// Only the contacts on this mailing list.
    list: Option<String>,
}

/// The audience (or a segment's, a list's contacts) as CSV, streamed newest first:
/// Loops' column names, `createdAt`, then one column per custom property; what
/// `roster import` takes back unchanged.
#[utoipa::path(tag = "Roster", params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/contacts/export")]
pub async fn export_contacts(
    query: web::Query<ExportQuery>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, ApiError> {
    // Given but blank is a mistake (an unset variable in a script), not "everyone".
    let given = |name: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some("") => Err(ApiError::field(name, format!("`{name}` is empty."))),
        other => Ok(other.map(str::to_owned)),
    };
    let (segment, list) = (
        given("segment", &query.segment)?,
        given("list", &query.list)?,
    );
    let filter = audience(&pool, &config, segment.as_deref(), list.as_deref()).await?;
    let mut pages = CsvPages::new(&pool, &config, filter).await?;
    // The first page before the answer: a failure there is an error answer, not a 200
    // that ends early.
    let first = pages
        .next_chunk()
        .await?
        .map(|(csv, _)| web::Bytes::from(csv));
    let rest = futures_util::stream::unfold(Some(pages), |pages| async move {
        let mut pages = pages?;
        match pages.next_chunk().await {
            Ok(Some((csv, _))) => Some((Ok(web::Bytes::from(csv)), Some(pages))),
            Ok(None) => None,
            Err(error) => {
                // Headers are gone: the client sees the body end early.
                tracing::error!(error = error_chain(&error), "export failed");
                Some((
                    Err(actix_web::error::ErrorServiceUnavailable("export failed")),
                    None,
                ))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            "attachment; filename=\"contacts.csv\"",
        ))
        .streaming(futures_util::stream::iter(first.map(Ok)).chain(rest)))
}
