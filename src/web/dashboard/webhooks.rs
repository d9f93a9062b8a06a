//! Outgoing webhooks: each configured endpoint with its health (failing since,
//! disabled, with a button that enables it again), and the delivery log.

use actix_web::{HttpResponse, get, post, web};
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Deserialize;
use sqlx::PgPool;

use super::session::Session;
use super::{DashboardError, Views, see_other_with_notice};
use crate::webhooks::deliver::enable_endpoint;
use crate::webhooks::log::{endpoint_health, recent_messages};
use crate::workflows::Workflows;

#[derive(Deserialize)]
pub struct WebhooksQuery {
    notice: Option<String>,
}

#[get("/webhooks")]
pub async fn webhooks_page(
    session: Session,
    query: web::Query<WebhooksQuery>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
    views: web::Data<Views>,
) -> Result<HttpResponse, DashboardError> {
    let endpoints = endpoint_health(&pool, workflows.webhooks()).await?;
    let messages = recent_messages(&pool, 100).await?;
    views.render(
        "webhooks.html",
        context! {
            page_title => "Webhooks", section => "webhooks", csrf => session.csrf(),
            notice => query.notice.clone(),
            endpoints => Value::from(Serde(&endpoints)),
            messages => Value::from(Serde(&messages)),
        },
    )
}

#[derive(Deserialize)]
pub struct EnableForm {
    csrf: String,
    url: String,
}

#[post("/webhooks/endpoints/enable")]
pub async fn enable(
    session: Session,
    form: web::Form<EnableForm>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let notice = if enable_endpoint(&pool, &form.url).await? {
        "The endpoint is enabled: new events are posted to it again."
    } else {
        "That endpoint was not disabled."
    };
    Ok(see_other_with_notice("/webhooks", notice))
}
