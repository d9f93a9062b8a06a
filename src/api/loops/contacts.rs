//! Loops' contact routes: create, update (or create), find, delete.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::contact_input::ContactInput;
use crate::api::error::ApiError;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::properties::list_custom_properties;
use crate::contacts::store::{
    delete_contact, find_contact_by_email, find_contact_by_user_id, lock_person, save_contact,
};
use crate::workflows::Workflows;
use crate::workflows::runs::{TriggerEvent, start_runs};

/// `source` of contacts the API creates, unless the request names one.
const API_SOURCE: &str = "API";

/// Create a contact; 409 when its email or userId is taken.
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::openapi::ContactBody,
    responses((status = 200, body = crate::api::openapi::ContactIdResponse),
              (status = 400, body = crate::api::openapi::ErrorBody),
              (status = 409, body = crate::api::openapi::ErrorBody)))]
#[post("/v1/contacts/create")]
pub async fn create_contact(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = pool.begin().await?;
    let custom = list_custom_properties(&mut tx).await?;
    let input = ContactInput::parse(&body, &custom, &config, &[])?;
    let Some(email) = input.email.as_deref() else {
        return Err(ApiError::field("email", "`email` is required."));
    };
    lock_person(&mut tx, input.user_id.as_deref(), Some(email)).await?;
    let taken = match &input.user_id {
        Some(user_id) => find_contact_by_user_id(&mut tx, user_id).await?.is_some(),
        None => false,
    } || find_contact_by_email(&mut tx, email).await?.is_some();
    if taken {
        return Err(ApiError::conflict(
            "Email or userId is already on your audience.",
        ));
    }
    let mut contact = Contact::new(email, API_SOURCE);
    input.apply(&mut contact);
    let contact = save_contact(&mut tx, &contact).await?;
    emit(&mut tx, &workflows, "contact.created", &contact).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": contact.id })))
}

/// Update the contact matching `userId` or `email` (setting the other), or create it.
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::openapi::ContactBody,
    responses((status = 200, body = crate::api::openapi::ContactIdResponse),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[put("/v1/contacts/update")]
pub async fn update_contact(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = pool.begin().await?;
    let custom = list_custom_properties(&mut tx).await?;
    let input = ContactInput::parse(&body, &custom, &config, &[])?;
    let contact = upsert_contact(&mut tx, &workflows, &input).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": contact.id })))
}

/// Finds the contact by `userId`, then by `email`, and applies `input`, or creates the
/// contact (which needs an email). Starts the workflows of the lifecycle events the
/// change emits. Shared by update and events.
pub async fn upsert_contact(
    tx: &mut PgConnection,
    workflows: &Workflows,
    input: &ContactInput,
) -> Result<Contact, ApiError> {
    if input.email.is_none() && input.user_id.is_none() {
        return Err(ApiError::bad_request("Provide an `email` or a `userId`."));
    }
    lock_person(tx, input.user_id.as_deref(), input.email.as_deref()).await?;
    let by_user_id = match &input.user_id {
        Some(user_id) => find_contact_by_user_id(tx, user_id).await?,
        None => None,
    };
    let found = match (by_user_id, &input.email) {
        (Some(contact), Some(email)) => {
            // A new address for this user: it must not be another contact's.
            if !contact.email.eq_ignore_ascii_case(email)
                && let Some(holder) = find_contact_by_email(tx, email).await?
                && holder.id != contact.id
            {
                return Err(ApiError::field(
                    "email",
                    "Another contact already has this email address.",
                ));
            }
            Some(contact)
        }
        (Some(contact), None) => Some(contact),
        (None, Some(email)) => find_contact_by_email(tx, email).await?,
        (None, None) => None,
    };
    let (mut contact, created) = match found {
        Some(contact) => (contact, false),
        None => match &input.email {
            Some(email) => (Contact::new(email, API_SOURCE), true),
            None => {
                return Err(ApiError::field(
                    "userId",
                    "No contact has this userId; include `email` to create one.",
                ));
            }
        },
    };
    let unsubscribed = input.apply(&mut contact);
    let contact = save_contact(tx, &contact).await?;
    if created {
        emit(tx, workflows, "contact.created", &contact).await?;
    }
    if unsubscribed {
        emit(tx, workflows, "contact.unsubscribed", &contact).await?;
    }
    Ok(contact)
}

/// Starts the workflows a lifecycle event of `contact` triggers.
pub async fn emit(
    tx: &mut PgConnection,
    workflows: &Workflows,
    name: &str,
    contact: &Contact,
) -> sqlx::Result<()> {
    if workflows.triggered_by(name).next().is_none() {
        return Ok(());
    }
    let data = json!({ "type": name, "data": { "via": "api" } });
    let key = Uuid::now_v7().to_string();
    let event = TriggerEvent {
        name,
        key: &key,
        data: &data,
    };
    start_runs(tx, workflows, &event, contact, Utc::now()).await?;
    Ok(())
}

/// `?email=` or `?userId=`, exactly one.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ContactKey {
    email: Option<String>,
    user_id: Option<String>,
}

impl ContactKey {
    /// The contact this key names, if any.
    pub async fn find(&self, conn: &mut PgConnection) -> Result<Option<Contact>, ApiError> {
        match (nonempty(&self.email), nonempty(&self.user_id)) {
            (Some(email), None) => Ok(find_contact_by_email(conn, email).await?),
            (None, Some(user_id)) => Ok(find_contact_by_user_id(conn, user_id).await?),
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "Only one parameter is permitted: `email` or `userId`.",
            )),
            (None, None) => Err(ApiError::bad_request("Provide an `email` or a `userId`.")),
        }
    }

    pub fn email(&self) -> Option<&str> {
        nonempty(&self.email)
    }
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Find a contact by `email` or `userId`: an array, empty when none matches.
#[utoipa::path(tag = "Loops: contacts", params(ContactKey),
    responses((status = 200, body = Vec<crate::api::openapi::ContactBody>),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/contacts/find")]
pub async fn find_contact(
    key: web::Query<ContactKey>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let found = key.find(&mut conn).await?;
    let contacts: Vec<Value> = found.iter().map(Contact::to_json).collect();
    Ok(HttpResponse::Ok().json(contacts))
}

/// Delete a contact by `email` or `userId`; 404 when none matches.
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::openapi::ContactKeyBody,
    responses((status = 200, body = crate::api::openapi::MessageResponse),
              (status = 400, body = crate::api::openapi::ErrorBody),
              (status = 404, body = crate::api::openapi::ErrorBody)))]
#[post("/v1/contacts/delete")]
pub async fn delete_contact_route(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut key = ContactKey {
        email: None,
        user_id: None,
    };
    for (field, value) in body.iter() {
        let text = match value {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            _ => {
                return Err(ApiError::field(
                    field,
                    format!("`{field}` must be a string."),
                ));
            }
        };
        match field.as_str() {
            "email" => key.email = text,
            "userId" => key.user_id = text,
            _ => {
                return Err(ApiError::field(
                    field,
                    format!("`{field}` is not a field of this request: send `email` or `userId`."),
                ));
            }
        }
    }
    let mut tx = pool.begin().await?;
    let Some(contact) = key.find(&mut tx).await? else {
        return Err(ApiError::not_found("Contact not found."));
    };
    lock_person(&mut tx, contact.user_id.as_deref(), Some(&contact.email)).await?;
    delete_contact(&mut tx, contact.id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Contact deleted." })))
}
