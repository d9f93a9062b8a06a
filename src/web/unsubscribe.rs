//! `GET /unsubscribe/{token}` shows the contact's preferences: the public mailing lists
//! with checkboxes (saved by `POST /unsubscribe/{token}/preferences`), and
//! "Unsubscribe from everything". `POST /unsubscribe/{token}` (that button, and RFC
//! 8058 one-click from the mail client) unsubscribes the contact from all email, emits
//! `contact.unsubscribed`, and is idempotent. A forged or altered token changes nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use sqlx::PgPool;

use super::html_escape;
use crate::config::ConfigFile;
use crate::contacts::input::ContactInput;
use crate::contacts::lifecycle::Via;
use crate::contacts::store::find_contact_by_id;
use crate::contacts::write::{Change, change_contact, set_subscribed};
use crate::contacts::{Contact, ContactError};
use crate::email::tracking::{Kind, Tracked, read};
use crate::email::unsubscribe::UnsubscribeKey;
use crate::telemetry::error_chain;
use crate::webhooks::news::email_news;
use crate::workflows::Workflows;
use crate::workflows::runs::start_for_change;

/// The first `name` of the query string: read leniently (a mail client may add or
/// repeat parameters), since a one-click unsubscribe must never fail on its URL.
fn query_value(request: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[get("/unsubscribe/{token}")]
pub async fn confirm_unsubscribe(
    token: web::Path<String>,
    request: HttpRequest,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
) -> HttpResponse {
    let Some(contact_id) = key.as_ref().as_ref().and_then(|key| key.verify(&token)) else {
        return invalid_link();
    };
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(_) => return unavailable(),
    };
    match find_contact_by_id(&mut conn, contact_id).await {
        Ok(Some(contact)) if contact.subscribed => {
            let email = query_value(&request, "email");
            let saved = query_value(&request, "saved").is_some();
            preferences_page(&config, &token, email.as_deref(), &contact, saved)
        }
        Ok(_) => unsubscribed_page(),
        Err(_) => unavailable(),
    }
}

/// The lists the contact can see (the public ones) with its choices, and the button
/// that unsubscribes it from everything.
/// Served at `/unsubscribe/{token}` only: its forms' relative actions resolve from
/// there, behind any path prefix a proxy adds.
fn preferences_page(
    config: &ConfigFile,
    token: &str,
    email: Option<&str>,
    contact: &Contact,
    saved: bool,
) -> HttpResponse {
    let email = email_param(email, "?");
    let everything = html_escape(&format!("{token}{email}"));
    let preferences = html_escape(&format!("{token}/preferences{email}"));
    let public: Vec<_> = config.lists.iter().filter(|list| list.public).collect();
    let mut body = format!(
        "<p>Email preferences for <strong>{}</strong>.</p>",
        html_escape(&contact.email)
    );
    if saved {
        body.push_str("<p role=\"status\"><em>Your preferences are saved.</em></p>");
    }
    if !public.is_empty() {
        body.push_str(&format!("<form method=\"post\" action=\"{preferences}\"><fieldset style=\"border:0;padding:0\"><legend>Mailing lists</legend>"));
        for list in public {
            let checked = if contact.mailing_lists[list.id.as_str()] == true {
                " checked"
            } else {
                ""
            };
            let description = list
                .description
                .as_deref()
                .map(|d| format!("<br><small>{}</small>", html_escape(d)))
                .unwrap_or_default();
            body.push_str(&format!(
                "<p><label><input type=\"checkbox\" name=\"list\" value=\"{id}\"{checked}> {name}</label>{description}</p>",
                id = html_escape(&list.id),
                name = html_escape(&list.name),
            ));
        }
        body.push_str("<button type=\"submit\">Save preferences</button></fieldset></form><hr>");
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{everything}\"><p>Or stop all email from us:</p>\
         <button type=\"submit\">Unsubscribe from everything</button></form>"
    ));
    page(StatusCode::OK, "Email preferences", &body)
}

/// `?email=…` (after `separator`) to keep naming the email the link came in, if it is
/// token-shaped (it is checked where it is used).
fn email_param(email: Option<&str>, separator: &str) -> String {
    email
        .filter(|e| {
            e.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map(|e| format!("{separator}email={e}"))
        .unwrap_or_default()
}

/// Saves the public lists' checkboxes (each checked list joined, each unchecked left),
/// then shows the preferences again (303 to `/unsubscribe/{token}?saved`).
#[post("/unsubscribe/{token}/preferences")]
pub async fn save_preferences(
    token: web::Path<String>,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    workflows: web::Data<Workflows>,
) -> HttpResponse {
    let Some(contact_id) = key.as_ref().as_ref().and_then(|key| key.verify(&token)) else {
        return invalid_link();
    };
    let checked: Vec<&str> = form
        .iter()
        .filter(|(name, _)| name == "list")
        .map(|(_, id)| id.as_str())
        .collect();
    let input = ContactInput {
        mailing_lists: config
            .lists
            .iter()
            .filter(|list| list.public)
            .map(|list| (list.id.clone(), checked.contains(&list.id.as_str())))
            .collect(),
        ..ContactInput::default()
    };
    match save_lists(&pool, &workflows, contact_id, &input).await {
        // Relative to /unsubscribe/{token}/preferences.
        Ok(Some(_)) => HttpResponse::SeeOther()
            .insert_header((
                actix_web::http::header::LOCATION,
                format!(
                    "../{}?saved=1{}",
                    *token,
                    email_param(query_value(&request, "email").as_deref(), "&")
                ),
            ))
            .finish(),
        Ok(None) => unsubscribed_page(),
        Err(error) => {
            tracing::error!(error = error_chain(&error), "saving preferences failed");
            unavailable()
        }
    }
}

/// Applies the choices and tells workflows and webhooks of the lists joined and left.
async fn save_lists(
    pool: &PgPool,
    workflows: &Workflows,
    contact_id: uuid::Uuid,
    input: &ContactInput,
) -> Result<Option<Contact>, ContactError> {
    let mut tx = pool.begin().await?;
    let Some(upserted) = change_contact(&mut tx, contact_id, input).await? else {
        return Ok(None);
    };
    start_for_change(&mut tx, workflows, &upserted, Via::Link).await?;
    tx.commit().await?;
    Ok(Some(upserted.contact))
}

#[post("/unsubscribe/{token}")]
pub async fn unsubscribe(
    token: web::Path<String>,
    request: HttpRequest,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> HttpResponse {
    let Some(key) = key.as_ref().as_ref() else {
        return invalid_link();
    };
    let Some(contact_id) = key.verify(&token) else {
        return invalid_link();
    };
    // The email the link came in, when the link names it (a bad name is ignored).
    let email =
        query_value(&request, "email").and_then(|email| read(key, Kind::Unsubscribe, &email));
    match unsubscribe_contact(&pool, &workflows, contact_id, email).await {
        Ok(()) => unsubscribed_page(),
        Err(error) => {
            tracing::error!(error = error_chain(&error), "unsubscribe failed");
            unavailable()
        }
    }
}

/// Unsubscribes the contact and, if it was subscribed, starts the workflows on
/// `contact.unsubscribed` (`via` "link") and tells the webhooks which email's link it
/// was (`email.unsubscribed`), in one transaction.
async fn unsubscribe_contact(
    pool: &PgPool,
    workflows: &Workflows,
    contact_id: uuid::Uuid,
    email: Option<Tracked>,
) -> Result<(), ContactError> {
    let mut tx = pool.begin().await?;
    if let Some(upserted) = set_subscribed(&mut tx, contact_id, false).await?
        && upserted.change == Change::Unsubscribed
    {
        tracing::info!(contact_id = %contact_id, "contact unsubscribed by link");
        start_for_change(&mut tx, workflows, &upserted, Via::Link).await?;
        if let Some(email) = email {
            let delivery = sqlx::query_scalar!(
                "select d.id from email_deliveries d join workflow_runs r on r.id = d.run_id
                 where d.run_id = $1 and d.step = $2 and r.contact_id = $3 and not d.transactional",
                email.run,
                email.step,
                contact_id
            )
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(delivery) = delivery {
                email_news(
                    &mut tx,
                    workflows.webhooks(),
                    "email.unsubscribed",
                    delivery,
                )
                .await?;
            }
        }
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
