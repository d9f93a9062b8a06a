//! `GET /unsubscribe/{token}` shows a confirmation page; `POST` (the page's button, and
//! RFC 8058 one-click from the mail client) unsubscribes the contact, emits
//! `contact.unsubscribed`, and is idempotent. A forged or altered token changes nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use sqlx::PgPool;

use super::html_escape;
use crate::contacts::ContactError;
use crate::contacts::lifecycle::Via;
use crate::contacts::store::find_contact_by_id;
use crate::contacts::write::{Change, set_subscribed};
use crate::email::unsubscribe::UnsubscribeKey;
use crate::telemetry::error_chain;
use crate::workflows::Workflows;
use crate::workflows::runs::start_for_change;

#[get("/unsubscribe/{token}")]
pub async fn confirm_unsubscribe(
    token: web::Path<String>,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
) -> HttpResponse {
    let Some(contact_id) = key.as_ref().as_ref().and_then(|key| key.verify(&token)) else {
        return invalid_link();
    };
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(_) => return unavailable(),
    };
    match find_contact_by_id(&mut conn, contact_id).await {
        Ok(Some(contact)) if contact.subscribed => page(
            StatusCode::OK,
            "Unsubscribe?",
            &format!(
                "<p>Stop sending email to <strong>{}</strong>?</p>\
                 <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                html_escape(&contact.email)
            ),
        ),
        Ok(_) => unsubscribed_page(),
        Err(_) => unavailable(),
    }
}

#[post("/unsubscribe/{token}")]
pub async fn unsubscribe(
    token: web::Path<String>,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> HttpResponse {
    let Some(contact_id) = key.as_ref().as_ref().and_then(|key| key.verify(&token)) else {
        return invalid_link();
    };
    match unsubscribe_contact(&pool, &workflows, contact_id).await {
        Ok(()) => unsubscribed_page(),
        Err(error) => {
            tracing::error!(error = error_chain(&error), "unsubscribe failed");
            unavailable()
        }
    }
}

/// Unsubscribes the contact and, if it was subscribed, starts the workflows on
/// `contact.unsubscribed` (`via` "link"), in one transaction.
async fn unsubscribe_contact(
    pool: &PgPool,
    workflows: &Workflows,
    contact_id: uuid::Uuid,
) -> Result<(), ContactError> {
    let mut tx = pool.begin().await?;
    if let Some(upserted) = set_subscribed(&mut tx, contact_id, false).await?
        && upserted.change == Change::Unsubscribed
    {
        tracing::info!(contact_id = %contact_id, "contact unsubscribed by link");
        start_for_change(&mut tx, workflows, &upserted, Via::Link).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn unsubscribed_page() -> HttpResponse {
    page(
        StatusCode::OK,
        "You are unsubscribed",
        "<p>You will not get these emails any more.</p>",
    )
}

fn invalid_link() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "<p>This unsubscribe link is not valid. Use the link in the email you received.</p>",
    )
}

fn unavailable() -> HttpResponse {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>Something went wrong on our side. Please try again in a minute.</p>",
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\
         <body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:480px;margin:64px auto;padding:0 16px;line-height:1.5\">\
         <h1 style=\"font-size:22px\">{title}</h1>{body}</body></html>"
    ))
}
