//! `POST /v1/transactional` sends a template to one address with data variables:
//! checked and rendered at once (so a missing variable is a 400, not a failed send
//! later), then sent by the workflow engine as a one-step transactional run, which
//! ignores `subscribed` but not suppression. `GET` lists the templates.

use actix_web::{HttpRequest, HttpResponse, get, post, web};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::contacts::upsert_contact;
use crate::api::error::ApiError;
use crate::api::idempotency::{self, Reservation};
use crate::api::{idempotency_key, read_body};
use crate::contacts::input::{ContactInput, normalise_email};
use crate::contacts::store::find_contact_by_email;
use crate::contacts::write::Write;
use crate::email::templates::Templates;
use crate::workflows::Workflows;
use crate::workflows::transactional::queue_transactional;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransactionalRequest {
    /// The template's name (its folder under `templates/`).
    transactional_id: String,
    email: String,
    /// Create a contact for the address if there is none.
    #[serde(default)]
    add_to_audience: bool,
    /// What the template sees as `event.data`.
    #[serde(default)]
    #[schema(value_type = Object)]
    data_variables: Map<String, Value>,
    /// Not supported: must be absent or empty.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    attachments: Vec<Value>,
}

/// Send a transactional email.
#[utoipa::path(tag = "Loops: transactional", request_body = TransactionalRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 100 characters; the same key and body within 24 hours replays the answer")),
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[post("/v1/transactional")]
pub async fn send_transactional(
    request: HttpRequest,
    payload: web::Payload,
    pool: web::Data<PgPool>,
    templates: web::Data<Templates>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let parsed: TransactionalRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}.")))?;
    let key = idempotency_key(&request)?;
    idempotency::run_once(&pool, "transactional", key, &body, |reservation| {
        send(&pool, &templates, &workflows, parsed, reservation)
    })
    .await
}

async fn send(
    pool: &PgPool,
    templates: &Templates,
    workflows: &Workflows,
    request: TransactionalRequest,
    reservation: Option<Reservation>,
) -> Result<Value, ApiError> {
    let template = request.transactional_id.trim();
    if !templates.contains(template) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "Transactional email not found.",
        )
        .at("transactionalId"));
    }
    if !request.attachments.is_empty() {
        return Err(ApiError::field(
            "attachments",
            "Attachments are not supported.",
        ));
    }
    let email = normalise_email(request.email)?;
    for (name, value) in &request.data_variables {
        if !(value.is_string() || value.is_number() || value.is_array()) {
            return Err(ApiError::field(
                format!("dataVariables.{name}"),
                format!("`{name}` must be a string, a number or an array of objects."),
            ));
        }
    }
    let data = Value::Object(request.data_variables);

    let mut tx = pool.begin().await?;
    let contact = if request.add_to_audience {
        let input = ContactInput {
            email: Some(email.clone()),
            ..ContactInput::default()
        };
        Some(upsert_contact(&mut tx, workflows, &input, Write::Upsert).await?)
    } else {
        find_contact_by_email(&mut tx, &email).await?
    };
    queue_transactional(
        &mut tx,
        templates,
        template,
        contact.as_ref(),
        &email,
        &data,
    )
    .await?;
    let answer = json!({ "success": true });
    if let Some(reservation) = reservation {
        reservation.record(&mut tx, &answer).await?;
    }
    tx.commit().await?;
    Ok(answer)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// 10 to 50, default 20.
    per_page: Option<String>,
    /// `pagination.nextCursor` of the previous page.
    cursor: Option<String>,
}

/// List the templates that can be sent as transactional emails (Loops' older route).
#[utoipa::path(tag = "Loops: transactional", params(ListQuery),
    responses((status = 200, body = crate::api::schema::TransactionalList),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/transactional")]
pub async fn list_transactional(
    request: HttpRequest,
    query: web::Query<ListQuery>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    list(
        &request,
        &query,
        &templates,
        |name, variables| json!({ "id": name, "name": name, "lastUpdated": null, "dataVariables": variables }),
    )
}

/// The same list in the shape of Loops' `transactional-emails` route (SDK 6 and later).
#[utoipa::path(tag = "Loops: transactional", params(ListQuery),
    responses((status = 200, body = crate::api::schema::TransactionalList),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/transactional-emails")]
pub async fn list_transactional_emails(
    request: HttpRequest,
    query: web::Query<ListQuery>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, ApiError> {
    list(&request, &query, &templates, |name, variables| {
        json!({
            "id": name, "name": name, "url": null,
            "draftEmailMessageId": null, "publishedEmailMessageId": name,
            "transactionalGroupId": null, "createdAt": null, "updatedAt": null,
            "dataVariables": variables,
        })
    })
}

/// One page of templates by name, after `cursor`.
fn list(
    request: &HttpRequest,
    query: &ListQuery,
    templates: &Templates,
    shape: impl Fn(&str, Vec<String>) -> Value,
) -> Result<HttpResponse, ApiError> {
    let per_page = match query.per_page.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (10..=50).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::field(
                "perPage",
                "`perPage` must be a number from 10 to 50.",
            ));
        }
    };
    let names: Vec<&str> = templates.names().collect();
    let start = match &query.cursor {
        Some(cursor) => names
            .iter()
            .position(|name| name > &cursor.as_str())
            .unwrap_or(names.len()),
        None => 0,
    };
    let page: Vec<&str> = names[start..].iter().take(per_page).copied().collect();
    let next_cursor = (start + page.len() < names.len())
        .then(|| page.last().map(|last| last.to_string()))
        .flatten();
    let next_page = next_cursor.as_ref().map(|cursor| {
        let path = request.path();
        format!("{path}?perPage={per_page}&cursor={cursor}")
    });
    let data: Vec<Value> = page
        .iter()
        .map(|name| shape(name, templates.data_variables(name).into_iter().collect()))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "pagination": {
            "totalResults": names.len(),
            "returnedResults": data.len(),
            "perPage": per_page,
            "totalPages": names.len().div_ceil(per_page),
            "nextCursor": next_cursor,
            "nextPage": next_page,
        },
        "data": data,
    })))
}
