//! One contact: its properties and timeline, and the actions on it: unsubscribe or
//! resubscribe, and send any template to it as a test.

use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::session::Session;
use super::{DashboardError, Views, see_other_with_notice};
use crate::activity::timeline;
use crate::contacts::lifecycle::Via;
use crate::contacts::store::find_contact_by_id;
use crate::contacts::write::set_subscribed;
use crate::email::templates::Templates;
use crate::workflows::Workflows;
use crate::workflows::context::sample_data_variables;
use crate::workflows::runs::start_for_change;
use crate::workflows::transactional::queue_transactional;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

#[get("/contacts/{id}")]
pub async fn contact_page(
    session: Session,
    id: web::Path<Uuid>,
    query: web::Query<NoticeQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    workflows: web::Data<Workflows>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    let mut conn = pool.acquire().await?;
    let contact = find_contact_by_id(&mut conn, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such contact."))?;
    let timeline = timeline(&mut conn, &workflows, &contact).await?;
    let templates: Vec<String> = templates.names().map(str::to_owned).collect();
    views.render(
        "contact.html",
        context! {
            page_title => contact.email.clone(), section => "audience", csrf => session.csrf(),
            notice => query.notice.clone(),
            contact => Value::from(Serde(&timeline["contact"])),
            events => Value::from(Serde(&timeline["events"])),
            runs => Value::from(Serde(&timeline["runs"])),
            emails => Value::from(Serde(&timeline["emails"])),
            templates,
        },
    )
}

#[derive(Deserialize)]
pub struct SubscriptionForm {
    csrf: String,
    /// `yes` to resubscribe, `no` to unsubscribe.
    subscribed: String,
}

/// Unsubscribes (starting the `contact.unsubscribed` workflows, `via` "dashboard") or
/// resubscribes.
#[post("/contacts/{id}/subscription")]
pub async fn change_subscription(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<SubscriptionForm>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let subscribed = form.subscribed == "yes";
    let mut tx = pool.begin().await?;
    let upserted = set_subscribed(&mut tx, *id, subscribed)
        .await?
        .ok_or(DashboardError::NotFound("There is no such contact."))?;
    start_for_change(&mut tx, &workflows, &upserted, Via::Dashboard).await?;
    tx.commit().await?;
    let contact = upserted.contact;
    let notice = if subscribed {
        "Resubscribed."
    } else {
        "Unsubscribed."
    };
    Ok(see_other_with_notice(
        &format!("/contacts/{}", contact.id),
        notice,
    ))
}

#[derive(Deserialize)]
pub struct TestEmailForm {
    csrf: String,
    template: String,
}

/// Queues `template` to the contact as a transactional send, each data variable it
/// uses set to "sample".
#[post("/contacts/{id}/test-email")]
pub async fn send_test_email(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<TestEmailForm>,
    pool: web::Data<PgPool>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    if !templates.contains(&form.template) {
        return Err(DashboardError::BadRequest(format!(
            "There is no template named {:?}.",
            form.template
        )));
    }
    let mut tx = pool.begin().await?;
    let contact = find_contact_by_id(&mut tx, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such contact."))?;
    queue_transactional(
        &mut tx,
        &templates,
        &form.template,
        Some(&contact),
        &contact.email,
        &sample_data_variables(&templates, &form.template),
    )
    .await?;
    tx.commit().await?;
    let notice = format!(
        "A test of {} is on its way to {}.",
        form.template, contact.email
    );
    Ok(see_other_with_notice(
        &format!("/contacts/{}", contact.id),
        &notice,
    ))
}
