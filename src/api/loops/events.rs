//! `POST /v1/events/send`: records an event for the contact found by `userId` or
//! `email` (created if missing, updated with the contact properties sent along) and
//! starts the workflows the event triggers, in one transaction; honours
//! `Idempotency-Key`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Utc;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::contacts::{begin_with_input, upsert_contact};
use crate::api::error::ApiError;
use crate::api::idempotency::{self, Reservation};
use crate::api::{idempotency_key, json_object, read_body};
use crate::config::ConfigFile;
use crate::contacts::properties::MAX_STRING_CHARS;
use crate::contacts::write::Write;
use crate::workflows::Workflows;
use crate::workflows::runs::{TriggerEvent, start_runs};

/// The prefixes (before a `.`) of Clerk's webhook events and of Roster's lifecycle
/// events: an API event named so would start workflows meant for those, with data of
/// another shape.
const RESERVED_NAMESPACES: [&str; 14] = [
    "contact",
    "user",
    "session",
    "email",
    "sms",
    "organization",
    "organizationMembership",
    "organizationInvitation",
    "organizationDomain",
    "waitlistEntry",
    "role",
    "permission",
    "subscription",
    "paymentAttempt",
];

/// Send an event; it starts the workflows whose trigger is its name.
#[utoipa::path(tag = "Loops: events", request_body = crate::api::schema::EventBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 100 characters; the same key and body within 24 hours replays the answer")),
    responses((status = 200, body = crate::api::schema::SuccessResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
#[post("/v1/events/send")]
pub async fn send_event(
    request: HttpRequest,
    payload: web::Payload,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let object = json_object(&body)?;
    let key = idempotency_key(&request)?;
    idempotency::run_once(&pool, "events/send", key, &body, |reservation| {
        record_event(&pool, &config, &workflows, object, reservation)
    })
    .await
}

async fn record_event(
    pool: &PgPool,
    config: &ConfigFile,
    workflows: &Workflows,
    body: Map<String, Value>,
    reservation: Option<Reservation>,
) -> Result<Value, ApiError> {
    let name = match body.get("eventName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        None | Some(Value::Null) => {
            return Err(ApiError::field("eventName", "`eventName` is required."));
        }
        Some(_) => {
            return Err(ApiError::field(
                "eventName",
                "`eventName` must be a non-empty string.",
            ));
        }
    };
    if name.chars().count() > MAX_STRING_CHARS {
        return Err(ApiError::field("eventName", "`eventName` is too long."));
    }
    if let Some((namespace, _)) = name.split_once('.')
        && RESERVED_NAMESPACES.contains(&namespace)
    {
        return Err(ApiError::field(
            "eventName",
            format!(
                "`{name}` is named like a Clerk event or one Roster emits; give API events names of their own."
            ),
        ));
    }
    let properties = event_properties(body.get("eventProperties"))?;

    let (mut tx, input) =
        begin_with_input(pool, &body, config, &["eventName", "eventProperties"]).await?;
    let contact = upsert_contact(&mut tx, workflows, &input, Write::Upsert).await?;
    let event_id = sqlx::query_scalar!(
        "insert into api_events (event_name, contact_id, properties) values ($1, $2, $3) returning id",
        name,
        contact.id,
        Value::Object(properties.clone()),
    )
    .fetch_one(&mut *tx)
    .await?;
    let data = json!({ "type": name, "data": properties, "source": "api" });
    let key = format!("api-event:{event_id}");
    let trigger = TriggerEvent {
        name: &name,
        key: &key,
        data: &data,
    };
    start_runs(&mut tx, workflows, &trigger, &contact, Utc::now()).await?;
    let answer = json!({ "success": true });
    if let Some(reservation) = reservation {
        reservation.record(&mut tx, &answer).await?;
    }
    tx.commit().await?;
    tracing::info!(event = %name, contact_id = %contact.id, "API event recorded");
    Ok(answer)
}

/// `eventProperties`: an object of strings, numbers and booleans (dates as strings).
fn event_properties(value: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::field(
                "eventProperties",
                "`eventProperties` must be an object.",
            ));
        }
    };
    for (name, value) in object {
        let path = format!("eventProperties.{name}");
        match value {
            Value::String(text) if text.chars().count() > MAX_STRING_CHARS => {
                return Err(ApiError::field(path, format!("`{name}` is too long.")));
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            _ => {
                return Err(ApiError::field(
                    path,
                    format!("`eventProperties.{name}` must be a string, number or boolean."),
                ));
            }
        }
    }
    Ok(object.clone())
}
