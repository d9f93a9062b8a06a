//! `/v1/audience-segments`: saved filters over the audience, their counts and their
//! contacts. The filter grammar is in `segments::filter` and the README.

use actix_web::{HttpResponse, delete, get, post, web};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::campaigns::store::segment_in_use;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::page::{PageQuery, page_of};
use crate::segments::filter::Filter;
use crate::segments::store::{
    count_matching, create_segment, delete_segment, find_segment, list_segments, matching_contacts,
    update_segment,
};
use crate::segments::{check_filter, check_name};

/// `name` and `filter` of a request body, each checked; absent ones are `None`.
struct SegmentBody {
    name: Option<String>,
    filter: Option<Value>,
}

fn segment_body(body: &Map<String, Value>) -> Result<SegmentBody, ApiError> {
    let mut parsed = SegmentBody {
        name: None,
        filter: None,
    };
    for (key, value) in body {
        match (key.as_str(), value) {
            ("name", Value::String(name)) => parsed.name = Some(check_name(name)?),
            ("name", _) => return Err(ApiError::field("name", "`name` must be a string.")),
            ("filter", filter) => parsed.filter = Some(filter.clone()),
            (key, _) => {
                return Err(ApiError::field(
                    key,
                    format!("`{key}` is not a field of a segment: send `name` and `filter`."),
                ));
            }
        }
    }
    Ok(parsed)
}

/// The segment's filter, checked against today's properties and lists (a list taken
/// out of the config file since makes it a 400 naming the condition).
async fn checked_filter(
    pool: &PgPool,
    config: &ConfigFile,
    filter: &Value,
) -> Result<Filter, ApiError> {
    let mut conn = pool.acquire().await?;
    Ok(check_filter(&mut conn, config, filter).await?)
}

/// Save a segment.
#[utoipa::path(tag = "Roster: segments", request_body = crate::api::schema::SegmentBody,
    responses((status = 200, body = crate::api::schema::ContactIdResponse),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[post("/v1/audience-segments")]
pub async fn create(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, ApiError> {
    let body = segment_body(&body)?;
    let name = body
        .name
        .ok_or_else(|| ApiError::field("name", "`name` is required."))?;
    let filter = body
        .filter
        .ok_or_else(|| ApiError::field("filter", "`filter` is required."))?;
    let mut conn = pool.acquire().await?;
    check_filter(&mut conn, &config, &filter).await?;
    let id = create_segment(&mut conn, &name, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": id })))
}

/// Saved segments, newest first.
#[utoipa::path(tag = "Roster: segments", params(PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/audience-segments")]
pub async fn list(
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = list_segments(&pool, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page_of(rows, limit, |s| s.id.to_string(), |s| s.to_json())))
}

/// One segment, with how many contacts it matches now.
#[utoipa::path(tag = "Roster: segments", params(("id" = Uuid, Path, description = "The segment's ID")),
    responses((status = 200, body = crate::api::schema::SegmentResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/audience-segments/{id}")]
pub async fn show(
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, ApiError> {
    let segment = find(&pool, *id).await?;
    let filter = checked_filter(&pool, &config, &segment.filter).await?;
    let mut shown = segment.to_json();
    shown["count"] = json!(count_matching(&pool, &filter).await?);
    Ok(HttpResponse::Ok().json(shown))
}

/// Change a segment's `name`, `filter` or both.
#[utoipa::path(tag = "Roster: segments", params(("id" = Uuid, Path, description = "The segment's ID")),
    request_body = crate::api::schema::SegmentBody,
    responses((status = 200, body = crate::api::schema::ContactIdResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[post("/v1/audience-segments/{id}")]
pub async fn update(
    id: web::Path<Uuid>,
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, ApiError> {
    let body = segment_body(&body)?;
    let mut conn = pool.acquire().await?;
    if let Some(filter) = &body.filter {
        check_filter(&mut conn, &config, filter).await?;
    }
    if !update_segment(&mut conn, *id, body.name.as_deref(), body.filter.as_ref()).await? {
        return Err(ApiError::not_found("Segment not found."));
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": *id })))
}

/// Delete a segment.
#[utoipa::path(tag = "Roster: segments", params(("id" = Uuid, Path, description = "The segment's ID")),
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 404, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[delete("/v1/audience-segments/{id}")]
pub async fn remove(
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    if segment_in_use(&mut conn, *id).await? {
        return Err(ApiError::conflict(
            "A campaign sends to this segment; it cannot be deleted.",
        ));
    }
    if !delete_segment(&mut conn, *id).await? {
        return Err(ApiError::not_found("Segment not found."));
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

/// The contacts a segment matches now, newest first.
#[utoipa::path(tag = "Roster: segments",
    params(("id" = Uuid, Path, description = "The segment's ID"), PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/audience-segments/{id}/contacts")]
pub async fn contacts(
    id: web::Path<Uuid>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> Result<HttpResponse, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let segment = find(&pool, *id).await?;
    let filter = checked_filter(&pool, &config, &segment.filter).await?;
    let rows = matching_contacts(&pool, &filter, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page_of(rows, limit, |c| c.id.to_string(), Contact::details)))
}

async fn find(pool: &PgPool, id: Uuid) -> Result<crate::segments::store::Segment, ApiError> {
    find_segment(&mut *pool.acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Segment not found."))
}
