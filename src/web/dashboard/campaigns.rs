//! Campaigns: the list and a form to create one; each campaign's page with its status
//! and figures (refreshing while it sends), its email previewed, a test send, and
//! buttons to send now or cancel.

use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::session::Session;
use super::{DashboardError, Views, see_other, see_other_with_notice};
use crate::campaigns::store::{
    CampaignFields, cancel_campaign, create_campaign, find_campaign, list_campaigns, settle_sent,
    stats, update_campaign,
};
use crate::campaigns::{CampaignStatus, check_parts, queue_test_send, render_for};
use crate::config::ConfigFile;
use crate::contacts::input::normalise_email;
use crate::contacts::store::find_contact_by_email;
use crate::email::templates::Templates;
use crate::input::given;
use crate::segments::check_name;
use crate::segments::store::list_segments;

#[get("/campaigns")]
pub async fn campaigns_page(
    session: Session,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    config: web::Data<ConfigFile>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    settle_sent(&pool, None).await?;
    let campaigns: Vec<serde_json::Value> = list_campaigns(&pool, None, 200)
        .await?
        .iter()
        .map(|c| c.to_json())
        .collect();
    let segments: Vec<serde_json::Value> = list_segments(&pool, None, 200)
        .await?
        .iter()
        .map(|s| s.to_json())
        .collect();
    views.render(
        "campaigns.html",
        context! {
            page_title => "Campaigns", section => "campaigns", csrf => session.csrf(),
            campaigns => Value::from(Serde(&campaigns)),
            segments => Value::from(Serde(&segments)),
            lists => config.lists.iter().map(|l| context! { id => l.id.clone(), name => l.name.clone() }).collect::<Vec<_>>(),
            templates => templates.names().map(str::to_owned).collect::<Vec<_>>(),
        },
    )
}

#[derive(Deserialize)]
pub struct NewCampaignForm {
    csrf: String,
    name: String,
    template: String,
    list: Option<String>,
    segment: Option<String>,
    /// `draft`, `now`, or `at` with `at_time`.
    when: String,
    /// `YYYY-MM-DDTHH:MM` in UTC, as a datetime-local input sends it.
    at_time: Option<String>,
}

#[post("/campaigns")]
pub async fn create(
    session: Session,
    form: web::Form<NewCampaignForm>,
    pool: web::Data<PgPool>,
    config: web::Data<ConfigFile>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let (list, segment) = (given(&form.list), given(&form.segment));
    let name = check_name(&form.name)?;
    let mut tx = pool.begin().await?;
    let segment_id =
        check_parts(&mut tx, &config, &templates, &form.template, list, segment).await?;
    let send_at = match form.when.as_str() {
        "now" => Some(chrono::Utc::now()),
        "at" => Some(
            given(&form.at_time)
                .and_then(|t| crate::input::parse_date_text(&format!("{t}:00Z")))
                .ok_or_else(|| {
                    DashboardError::BadRequest("Give the time to send, in UTC.".to_owned())
                })?,
        ),
        _ => None,
    };
    let fields = CampaignFields {
        name: &name,
        template: &form.template,
        mailing_list_id: list,
        segment_id,
        send_at,
        track: true,
    };
    let (id, _) = create_campaign(&mut tx, &fields).await?;
    tx.commit().await?;
    Ok(see_other(&format!("/campaigns/{id}")))
}

#[derive(Deserialize)]
pub struct CampaignQuery {
    /// Preview for this contact's address.
    email: Option<String>,
    notice: Option<String>,
}

#[get("/campaigns/{id}")]
pub async fn campaign_page(
    session: Session,
    id: web::Path<Uuid>,
    query: web::Query<CampaignQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    settle_sent(&pool, Some(*id)).await?;
    let mut conn = pool.acquire().await?;
    let campaign = find_campaign(&mut conn, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such campaign."))?;
    let wanted = query
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let contact = match wanted {
        Some(email) => find_contact_by_email(&mut conn, email).await?,
        None => None,
    };
    let (preview, preview_error) = match render_for(&templates, &campaign, contact.as_ref()) {
        Ok(email) => (
            Some(context! { subject => email.subject, html => email.html }),
            None,
        ),
        Err(error) => (None, Some(error.to_string())),
    };
    views.render(
        "campaign.html",
        context! {
            page_title => campaign.name.clone(), section => "campaigns", csrf => session.csrf(),
            notice => query.notice.clone(),
            campaign => Value::from(Serde(campaign.to_json())),
            stats => Value::from(Serde(stats(&pool, *id).await?)),
            sending => campaign.status == CampaignStatus::Sending,
            editable => campaign.status.is_editable(),
            cancellable => !matches!(campaign.status, CampaignStatus::Sent | CampaignStatus::Cancelled),
            preview, preview_error, preview_email => wanted,
            contact_missing => wanted.is_some() && contact.is_none(),
        },
    )
}

#[derive(Deserialize)]
pub struct TestForm {
    csrf: String,
    email: String,
}

#[post("/campaigns/{id}/test")]
pub async fn test_send(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<TestForm>,
    pool: web::Data<PgPool>,
    templates: web::Data<Templates>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let email = normalise_email(form.email.clone())?;
    let mut tx = pool.begin().await?;
    let campaign = find_campaign(&mut tx, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such campaign."))?;
    let contact = find_contact_by_email(&mut tx, &email).await?;
    queue_test_send(&mut tx, &templates, &campaign, contact.as_ref(), &email).await?;
    tx.commit().await?;
    let notice = format!("A test is on its way to {email}.");
    Ok(see_other_with_notice(&format!("/campaigns/{id}"), &notice))
}

#[post("/campaigns/{id}/send")]
pub async fn send_now(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<super::login::CsrfForm>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let mut tx = pool.begin().await?;
    let campaign = find_campaign(&mut tx, *id)
        .await?
        .ok_or(DashboardError::NotFound("There is no such campaign."))?;
    let fields = CampaignFields {
        name: &campaign.name,
        template: &campaign.template,
        mailing_list_id: campaign.mailing_list_id.as_deref(),
        segment_id: campaign.segment_id,
        send_at: Some(chrono::Utc::now()),
        track: campaign.track,
    };
    let notice = match update_campaign(&mut tx, *id, &fields).await? {
        Some(Ok(_)) => "Sending has started.",
        _ => "This campaign can no longer change.",
    };
    tx.commit().await?;
    Ok(see_other_with_notice(&format!("/campaigns/{id}"), notice))
}

#[post("/campaigns/{id}/cancel")]
pub async fn cancel(
    session: Session,
    id: web::Path<Uuid>,
    form: web::Form<super::login::CsrfForm>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let mut tx = pool.begin().await?;
    let notice = match cancel_campaign(&mut tx, *id).await? {
        Some(Ok(())) => "Cancelled: the sends still waiting will not go.",
        _ => "This campaign can no longer change.",
    };
    tx.commit().await?;
    Ok(see_other_with_notice(&format!("/campaigns/{id}"), notice))
}
