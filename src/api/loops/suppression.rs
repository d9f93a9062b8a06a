//! Loops' suppression routes: whether a contact's address is suppressed after a hard
//! bounce, and lifting it. Roster does not ration removals: `removalQuota` is null.

use actix_web::{HttpResponse, delete, get, web};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::contacts::ContactKey;
use crate::api::error::ApiError;
use crate::email::suppressions::{is_suppressed, lift};

/// The address a key names: the contact's, or for `email`, the address itself (a
/// transactional recipient who is not a contact can be suppressed too).
async fn address(
    conn: &mut PgConnection,
    key: &ContactKey,
) -> Result<(serde_json::Value, String), ApiError> {
    if let Some(contact) = key.find(conn).await? {
        let shown = json!({ "id": contact.id, "email": contact.email, "userId": contact.user_id });
        return Ok((shown, contact.email));
    }
    match key.email() {
        Some(email) if is_suppressed(conn, email).await? => Ok((
            json!({ "id": null, "email": email, "userId": null }),
            email.to_owned(),
        )),
        _ => Err(ApiError::not_found("Contact not found.")),
    }
}

/// Check whether a contact's address is suppressed.
#[utoipa::path(tag = "Loops: contacts", params(ContactKey),
    responses((status = 200, body = crate::api::schema::SuppressionResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[get("/v1/contacts/suppression")]
pub async fn check_suppression(
    key: web::Query<ContactKey>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let (contact, email) = address(&mut conn, &key).await?;
    let suppressed = is_suppressed(&mut conn, &email).await?;
    Ok(HttpResponse::Ok().json(json!({
        "contact": contact,
        "isSuppressed": suppressed,
        "removalQuota": { "limit": null, "remaining": null },
    })))
}

/// Lift the suppression of a contact's address; 400 when it is not suppressed.
#[utoipa::path(tag = "Loops: contacts", params(ContactKey),
    responses((status = 200, body = crate::api::schema::MessageResponse),
              (status = 400, body = crate::api::schema::ErrorBody),
              (status = 404, body = crate::api::schema::ErrorBody)))]
#[delete("/v1/contacts/suppression")]
pub async fn remove_suppression(
    key: web::Query<ContactKey>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let (_, email) = address(&mut conn, &key).await?;
    if !lift(&mut conn, &email).await? {
        return Err(ApiError::bad_request("Contact is not suppressed."));
    }
    tracing::info!(email = %crate::email::mask::mask_addresses(&email), "suppression lifted");
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "Email removed from suppression list.",
        "removalQuota": { "limit": null, "remaining": null },
    })))
}
