//! `/v1/campaigns`: one template to an audience, now or at a time; changed while a
//! draft or scheduled, cancelled until sent; with its figures.

use actix_web::{HttpResponse, get, post, web};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::campaigns::store::{
    CampaignFields, cancel_campaign, create_campaign, find_campaign, list_campaigns, settle_sent,
    stats, update_campaign,
};
use crate::campaigns::{CampaignStatus, Scheduling, check_parts, queue_test_send, render_for};
use crate::config::ConfigFile;
use crate::contacts::input::normalise_email;
use crate::contacts::store::find_contact_by_email;
use crate::email::templates::Templates;
use crate::page::{PageQuery, page_of};
use crate::segments::check_name;

/// A request body's campaign, checked against the templates, lists and segments.
struct CampaignBody {
    name: String,
    template: String,
    list: Option<String>,
    segment: Option<Uuid>,
    scheduling: Scheduling,
    track: bool,
}

async fn campaign_body(
    body: &Map<String, Value>,
    pool: &PgPool,
    config: &ConfigFile,
    templates: &Templates,
) -> Result<CampaignBody, ApiError> {
    const FIELDS: [&str; 6] = [
        "name",
        "template",
        "mailingListId",
        "audienceSegmentId",
        "scheduling",
        "track",
    ];
    if let Some(key) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        let key: String = key.chars().take(100).collect();
        return Err(ApiError::field(
            &key,
            format!("`{key}` is not a field of a campaign."),
        ));
    }
    let text = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Some(_) => Err(ApiError::field(
            key,
            format!("`{key}` must be a non-empty string."),
        )),
    };
    let name = check_name(&text("name")?.unwrap_or_default())?;
    let template =
        text("template")?.ok_or_else(|| ApiError::field("template", "`template` is required."))?;
    let mailing_list = text("mailingListId")?;
    let segment = text("audienceSegmentId")?;
    let mut conn = pool.acquire().await?;
    let segment = check_parts(
        &mut conn,
        config,
        templates,
        &template,
        mailing_list.as_deref(),
        segment.as_deref(),
    )
    .await?;
    let scheduling = Scheduling::parse(body.get("scheduling"))?;
    let track = match body.get("track") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(track)) => *track,
        Some(_) => return Err(ApiError::field("track", "`track` must be true or false.")),
    };
    Ok(CampaignBody {
        track,
        name,
        template,
        list: mailing_list,
        segment,
        scheduling,
    })
}

impl CampaignBody {
    fn fields(&self) -> CampaignFields<'_> {
        CampaignFields {
            name: &self.name,
            template: &self.template,
            mailing_list_id: self.list.as_deref(),
            segment_id: self.segment,
            send_at: match self.scheduling {
                Scheduling::Draft => None,
                Scheduling::At(at) => Some(at),
            },
            track: self.track,
        }
    }
}

/// Create a campaign: a draft, or scheduled (`now` or at `timestamp`).
#[utoipa::path(tag = "Roster: campaigns", request_body = crate::api::schema::CampaignBody,
    responses((status = 200, body = crate::api::schema::CampaignCreated),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[post("/v1/campaigns")]
pub async fn create(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    let campaign = campaign_body(&body, &pool, &config, &templates).await?;
    let mut tx = pool.begin().await?;
    let (id, status) = create_campaign(&mut tx, &campaign.fields()).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": id, "status": status.label() })))
}

/// Campaigns, newest first.
#[utoipa::path(tag = "Roster: campaigns", params(PageQuery),
    responses((status = 200, body = crate::api::schema::Page),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/campaigns")]
pub async fn list(
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    settle_sent(&pool, None).await?;
    let rows = list_campaigns(&pool, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page_of(rows, limit, |c| c.id.to_string(), |c| c.to_json())))
}

/// One campaign with its `stats`.
#[utoipa::path(tag = "Roster: campaigns", params(("id" = Uuid, Path, description = "The campaign's ID")),
    responses((status = 200, body = crate::api::schema::CampaignResponse),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/campaigns/{id}")]
pub async fn show(id: web::Path<Uuid>, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    settle_sent(&pool, Some(*id)).await?;
    let campaign = find_campaign(&mut *pool.acquire().await?, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("Campaign not found."))?;
    let mut shown = campaign.to_json();
    shown["stats"] = stats(&pool, *id).await?;
    Ok(HttpResponse::Ok().json(shown))
}

/// Change a draft or scheduled campaign (the whole of it); 409 once it is sending.
#[utoipa::path(tag = "Roster: campaigns", params(("id" = Uuid, Path, description = "The campaign's ID")),
    request_body = crate::api::schema::CampaignBody,
    responses((status = 200, body = crate::api::schema::CampaignCreated),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[post("/v1/campaigns/{id}")]
pub async fn update(
    id: web::Path<Uuid>,
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    let campaign = campaign_body(&body, &pool, &config, &templates).await?;
    let mut tx = pool.begin().await?;
    let status = match update_campaign(&mut tx, *id, &campaign.fields()).await? {
        None => return Err(ApiError::not_found("Campaign not found.")),
        Some(Err(status)) => return Err(not_editable(status)),
        Some(Ok(status)) => status,
    };
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": *id, "status": status.label() })))
}

/// Cancel a campaign not yet sent: the sends still waiting are not made.
#[utoipa::path(tag = "Roster: campaigns", params(("id" = Uuid, Path, description = "The campaign's ID")),
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 404, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[post("/v1/campaigns/{id}/cancel")]
pub async fn cancel(
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = pool.begin().await?;
    match cancel_campaign(&mut tx, *id).await? {
        None => return Err(ApiError::not_found("Campaign not found.")),
        Some(Err(status)) => return Err(not_editable(status)),
        Some(Ok(())) => {}
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

fn not_editable(status: CampaignStatus) -> ApiError {
    ApiError::conflict(format!(
        "The campaign is {}; it can no longer change.",
        status.label()
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PreviewQuery {
    /// Render for the contact with this address; without it, for a sample contact.
    email: Option<String>,
}

/// The campaign's email (`subject`, `html`, `text`) as a contact would get it.
#[utoipa::path(tag = "Roster: campaigns",
    params(("id" = Uuid, Path, description = "The campaign's ID"), PreviewQuery),
    responses((status = 200, body = crate::api::schema::RenderedEmailBody),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/campaigns/{id}/preview")]
pub async fn preview(
    id: web::Path<Uuid>,
    query: web::Query<PreviewQuery>,
    pool: web::Data<PgPool>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let campaign = find_campaign(&mut conn, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("Campaign not found."))?;
    let contact =
        match query
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => None,
            Some(email) => Some(find_contact_by_email(&mut conn, email).await?.ok_or_else(
                || ApiError::not_found("No contact has this email address.").at("email"),
            )?),
        };
    let email = render_for(&templates, &campaign, contact.as_ref())
        .map_err(|e| ApiError::field("template", format!("The template does not render: {e}")))?;
    Ok(HttpResponse::Ok()
        .json(json!({ "subject": email.subject, "html": email.html, "text": email.text })))
}

/// Send the campaign's email once to one address, as a test (a transactional send:
/// no unsubscribe link, not counted in the campaign).
#[utoipa::path(tag = "Roster: campaigns", params(("id" = Uuid, Path, description = "The campaign's ID")),
    request_body = crate::api::schema::ContactKeyBody,
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[post("/v1/campaigns/{id}/test")]
pub async fn test_send(
    id: web::Path<Uuid>,
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    if let Some(key) = body.keys().find(|key| key.as_str() != "email") {
        let key: String = key.chars().take(100).collect();
        return Err(ApiError::field(
            &key,
            format!("`{key}` is not a field of a test send: send `email`."),
        ));
    }
    let email = match body.get("email") {
        Some(Value::String(email)) => normalise_email(email.clone())?,
        _ => return Err(ApiError::field("email", "`email` is required.")),
    };
    let mut tx = pool.begin().await?;
    let campaign = find_campaign(&mut tx, *id)
        .await?
        .ok_or_else(|| ApiError::not_found("Campaign not found."))?;
    let contact = find_contact_by_email(&mut tx, &email).await?;
    queue_test_send(&mut tx, &templates, &campaign, contact.as_ref(), &email).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
