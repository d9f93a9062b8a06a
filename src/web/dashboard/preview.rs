//! Preview: any template rendered for any contact, HTML and text, before anything is
//! sent. Workflow templates see a sample Clerk event; the others their data variables
//! set to "sample", as `roster check` renders them.

use actix_web::{HttpResponse, get, web};
use minijinja::context;
use serde::Deserialize;
use sqlx::PgPool;

use super::session::Session;
use super::{DashboardError, Views};
use crate::contacts::store::{find_contact_by_email, find_contact_by_id};
use crate::email::templates::Templates;
use crate::workflows::context::{sample_context, sample_transactional_context, step_context};

#[derive(Deserialize)]
pub struct PreviewQuery {
    template: Option<String>,
    /// A contact's ID or email; empty for the sample contact.
    contact: Option<String>,
}

#[get("/preview")]
pub async fn preview_page(
    session: Session,
    query: web::Query<PreviewQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    let names: Vec<String> = templates.names().map(str::to_owned).collect();
    let template = query
        .template
        .clone()
        .filter(|t| templates.contains(t))
        .or_else(|| names.first().map(|n| n.to_string()));
    let wanted = query
        .contact
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let mut conn = pool.acquire().await?;
    let contact = match wanted {
        Some(key) => match key.parse::<uuid::Uuid>() {
            Ok(id) => find_contact_by_id(&mut conn, id).await?,
            Err(_) => find_contact_by_email(&mut conn, key).await?,
        },
        None => None,
    };
    let (rendered, error) = match &template {
        None => (None, None),
        Some(name) => {
            let sample = if templates.data_variables(name).is_empty() {
                sample_context("preview")
            } else {
                sample_transactional_context(&templates, name)
            };
            let context = match &contact {
                Some(contact) => {
                    let event = sample
                        .get_attr("event")
                        .ok()
                        .map(|e| serde_json::to_value(&e).unwrap_or_default());
                    let step =
                        step_context(contact.step_json(), event.unwrap_or_default(), "preview");
                    context! { unsubscribe_url => "https://roster.example/unsubscribe/preview", ..step }
                }
                None => sample,
            };
            match templates.render(name, &context) {
                Ok(email) => (
                    Some(
                        context! { subject => email.subject, text => email.text, html => email.html },
                    ),
                    None,
                ),
                Err(error) => (None, Some(error.to_string())),
            }
        }
    };
    views.render(
        "preview.html",
        context! {
            page_title => "Preview", section => "preview", csrf => session.csrf(),
            names, template, contact_key => wanted, contact_email => contact.as_ref().map(|c| c.email.clone()),
            not_found => wanted.is_some() && contact.is_none(),
            rendered, error,
        },
    )
}
