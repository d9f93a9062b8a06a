//! Loops' contact routes: create, update (or create), find, delete.

use actix_web::{HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::contact_input::ContactInput;
use crate::api::error::ApiError;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::properties::list_custom_properties;
use crate::contacts::store::{
    delete_contact, find_contact_by_email, find_contact_by_user_id, find_contact_for_update,
    lock_person, save_contact,
};
use crate::workflows::Workflows;
use crate::workflows::runs::emit_lifecycle_event;

/// `source` of contacts the API creates, unless the request names one.
pub const API_SOURCE: &str = "API";

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
    let (mut tx, input) = begin_with_input(&pool, &body, &config, &[]).await?;
    if input.email.is_none() {
        return Err(ApiError::field("email", "`email` is required."));
    }
    let contact = upsert_contact(&mut tx, &workflows, &input, Write::CreateOnly).await?;
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
    let (mut tx, input) = begin_with_input(&pool, &body, &config, &[]).await?;
    let contact = upsert_contact(&mut tx, &workflows, &input, Write::Upsert).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "id": contact.id })))
}

/// Whether a write may change an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Create; 409 when the email or userId is taken.
    CreateOnly,
    /// Update the match, or create.
    Upsert,
}

/// What `upsert_contact` did.
#[derive(Debug)]
pub struct Upserted {
    pub contact: Contact,
    pub created: bool,
}

/// Opens the request's transaction and reads the contact fields of `body`, checking
/// custom values against the properties as that transaction sees them. Fields named in
/// `other_fields` belong to the request (such as `eventName`) and are skipped.
pub async fn begin_with_input(
    pool: &PgPool,
    body: &Map<String, Value>,
    config: &ConfigFile,
    other_fields: &[&str],
) -> Result<(Transaction<'static, Postgres>, ContactInput), ApiError> {
    let mut tx = pool.begin().await?;
    let custom = list_custom_properties(&mut tx).await?;
    let input = ContactInput::parse(body, &custom, config, other_fields)?;
    Ok((tx, input))
}

/// Finds the contact by `userId`, then by `email`, and applies `input`, or creates the
/// contact (which needs an email). The person's locks are taken first and the row
/// found is locked too, so a concurrent change (an unsubscribe link, a Clerk update) is
/// never overwritten with what was read before it. Starts the workflows of the
/// lifecycle events the change emits. Shared by create, update, events and
/// transactional sends that add to the audience.
pub async fn upsert_contact(
    tx: &mut PgConnection,
    workflows: &Workflows,
    input: &ContactInput,
    write: Write,
) -> Result<Contact, ApiError> {
    upsert_contact_from(tx, workflows, input, write, API_SOURCE)
        .await
        .map(|upserted| upserted.contact)
}

/// `upsert_contact`, with the `source` a new contact gets unless `input` names one.
pub async fn upsert_contact_from(
    tx: &mut PgConnection,
    workflows: &Workflows,
    input: &ContactInput,
    write: Write,
    source: &str,
) -> Result<Upserted, ApiError> {
    if input.email.is_none() && input.user_id.is_none() {
        return Err(ApiError::bad_request("Provide an `email` or a `userId`."));
    }
    lock_person(tx, input.user_id.as_deref(), input.email.as_deref()).await?;
    let by_user_id = match &input.user_id {
        Some(user_id) => find_contact_by_user_id(tx, user_id).await?,
        None => None,
    };
    let by_email = match (&by_user_id, &input.email) {
        (Some(contact), Some(email)) if contact.email.eq_ignore_ascii_case(email) => None,
        (_, Some(email)) => find_contact_by_email(tx, email).await?,
        (_, None) => None,
    };
    if write == Write::CreateOnly && (by_user_id.is_some() || by_email.is_some()) {
        return Err(ApiError::conflict(
            "Email or userId is already on your audience.",
        ));
    }
    let found = match (by_user_id, by_email) {
        // A new address for this user: it must not be another contact's.
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "email",
                "Another contact already has this email address.",
            ));
        }
        (Some(contact), None) => Some(contact),
        (None, Some(contact)) => {
            // Found by address: its userId may be set, but not replaced.
            if let (Some(theirs), Some(asked)) = (&contact.user_id, &input.user_id)
                && theirs != asked
            {
                return Err(ApiError::field(
                    "userId",
                    "This email belongs to a contact with another userId.",
                ));
            }
            Some(contact)
        }
        (None, None) => None,
    };
    let (mut contact, created) = match found {
        Some(found) => match find_contact_for_update(tx, found.id).await? {
            Some(locked) => (locked, false),
            None => {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "The contact changed while it was written; retry.",
                ));
            }
        },
        None => match &input.email {
            Some(email) => (Contact::new(email, source), true),
            None => {
                return Err(ApiError::field(
                    "userId",
                    "No contact has this userId; include `email` to create one.",
                ));
            }
        },
    };
    let before = (!created).then(|| contact.clone());
    let unsubscribed = input.apply(&mut contact);
    // An event for a contact it does not change (the common case) writes nothing.
    let contact = if before.as_ref() == Some(&contact) {
        contact
    } else {
        save_contact(tx, &contact).await?
    };
    if created {
        emit_lifecycle_event(tx, workflows, "contact.created", &contact, "api").await?;
    } else if unsubscribed {
        emit_lifecycle_event(tx, workflows, "contact.unsubscribed", &contact, "api").await?;
    }
    Ok(Upserted { contact, created })
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

    pub fn user_id(&self) -> Option<&str> {
        nonempty(&self.user_id)
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
    // Locked by the key asked for before the look-up, so of two deletes at once one
    // finds the contact and the other finds it gone.
    lock_person(&mut tx, key.user_id(), key.email()).await?;
    let Some(contact) = key.find(&mut tx).await? else {
        return Err(ApiError::not_found("Contact not found."));
    };
    delete_contact(&mut tx, contact.id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Contact deleted." })))
}
