//! Loops' contact routes: create, update (or create), find, delete.

use actix_web::{HttpResponse, get, post, put, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::api::error::ApiError;
use crate::config::ConfigFile;
use crate::contacts::Contact;
use crate::contacts::input::ContactInput;
use crate::contacts::lifecycle::Via;
use crate::contacts::store::{
    delete_contact, find_contact_by_email, find_contact_by_user_id, lock_person,
};
use crate::contacts::write::{Write, upsert};
use crate::input::given;
use crate::webhooks::news::{ContactNews, contact_news};
use crate::workflows::Workflows;
use crate::workflows::runs::start_for_change;

/// `source` of contacts the API creates, unless the request names one.
pub const API_SOURCE: &str = "API";

/// Create a contact; 409 when its email or userId is taken.
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::schema::ContactBody,
    responses((status = 200, body = crate::api::schema::ContactIdResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 409, body = crate::api::schema::ErrorBody)))]
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
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::schema::ContactBody,
    responses((status = 200, body = crate::api::schema::ContactIdResponse),
              (status = 400, body = crate::api::schema::ErrorBody)))]
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

/// Writes the contact of an API request (`source` "API" unless it names one) and
/// starts the workflows of the lifecycle event its change emits, in the caller's
/// transaction. Shared by create, update, events and transactional sends that add to
/// the audience.
pub async fn upsert_contact(
    tx: &mut PgConnection,
    workflows: &Workflows,
    input: &ContactInput,
    write: Write,
) -> Result<Contact, ApiError> {
    let upserted = upsert(tx, input, write, API_SOURCE).await?;
    start_for_change(tx, workflows, &upserted, Via::Api).await?;
    Ok(upserted.contact)
}

/// Opens the request's transaction and reads the contact fields of `body` as that
/// transaction sees the custom properties.
pub async fn begin_with_input(
    pool: &PgPool,
    body: &Map<String, Value>,
    config: &ConfigFile,
    other_fields: &[&str],
) -> Result<(Transaction<'static, Postgres>, ContactInput), ApiError> {
    let mut tx = pool.begin().await?;
    let input = ContactInput::read(&mut tx, body, config, other_fields).await?;
    Ok((tx, input))
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
        match (given(&self.email), given(&self.user_id)) {
            (Some(email), None) => Ok(find_contact_by_email(conn, email).await?),
            (None, Some(user_id)) => Ok(find_contact_by_user_id(conn, user_id).await?),
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "Only one parameter is permitted: `email` or `userId`.",
            )),
            (None, None) => Err(ApiError::bad_request("Provide an `email` or a `userId`.")),
        }
    }

    pub fn email(&self) -> Option<&str> {
        given(&self.email)
    }

    pub fn user_id(&self) -> Option<&str> {
        given(&self.user_id)
    }
}

/// Find a contact by `email` or `userId`: an array, empty when none matches.
#[utoipa::path(tag = "Loops: contacts", params(ContactKey),
    responses((status = 200, body = Vec<crate::api::schema::ContactBody>),
              (status = 400, body = crate::api::schema::ErrorBody)))]
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
#[utoipa::path(tag = "Loops: contacts", request_body = crate::api::schema::ContactKeyBody,
    responses((status = 200, body = crate::api::schema::MessageResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[post("/v1/contacts/delete")]
pub async fn delete_contact_route(
    body: web::Json<Map<String, Value>>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
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
    let news = [ContactNews::Deleted, ContactNews::Unsubscribed];
    contact_news(&mut tx, workflows.webhooks(), &contact, &news).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Contact deleted." })))
}
