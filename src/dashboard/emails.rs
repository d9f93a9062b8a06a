//! Emails: deliveries by state (failures with the SMTP answer), the suppressed
//! addresses, and the dead jobs, each with a button that replays it.

use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;

use super::login::CsrfForm;
use super::session::Session;
use super::{DashboardError, Views, link, see_other};
use crate::api::roster::page::PageQuery;
use crate::api::roster::runs::{
    DELIVERY_STATES, DeliveryFilters, JobFilters, deliveries_page, jobs_page,
};
use crate::jobs::queue::replay_dead_job;

#[derive(Deserialize)]
pub struct EmailsQuery {
    state: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

#[get("/emails")]
pub async fn emails_page(
    session: Session,
    query: web::Query<EmailsQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
) -> Result<HttpResponse, DashboardError> {
    let state = query
        .state
        .clone()
        .filter(|s| DELIVERY_STATES.contains(&s.as_str()));
    let paging = PageQuery {
        limit: Some(50),
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
    };
    let deliveries = deliveries_page(
        &pool,
        &DeliveryFilters {
            state: state.clone(),
        },
        &paging,
    )
    .await?;
    let dead = jobs_page(
        &pool,
        &JobFilters {
            state: Some("dead".into()),
        },
        &PageQuery {
            limit: Some(50),
            cursor: None,
        },
    )
    .await?;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "select state, count(*) from email_deliveries group by state order by state",
    )
    .fetch_all(pool.get_ref())
    .await?;
    let suppressed: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select email, reason, created_at from suppressions order by created_at desc limit 100",
    )
    .fetch_all(pool.get_ref())
    .await?;
    let suppressed: Vec<Value> = suppressed
        .into_iter()
        .map(|(email, reason, at)| context! { email, reason, at => at.format("%Y-%m-%d %H:%M").to_string() })
        .collect();
    let next_url = deliveries["nextCursor"]
        .as_str()
        .map(|cursor| match &state {
            Some(state) => format!("/emails?state={state}&cursor={cursor}"),
            None => format!("/emails?cursor={cursor}"),
        });
    views.render(
        "emails.html",
        context! {
            page_title => "Emails", section => "emails", csrf => session.csrf(),
            notice => query.notice.clone(), state, states => DELIVERY_STATES.to_vec(),
            total => counts.iter().map(|(_, n)| n).sum::<i64>(),
            counts => counts.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            deliveries => Value::from(Serde(&deliveries["data"])), next_url,
            dead => Value::from(Serde(&dead["data"])), suppressed,
        },
    )
}

#[post("/jobs/{id}/replay")]
pub async fn replay_job(
    session: Session,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let mut conn = pool.acquire().await?;
    let notice = if replay_dead_job(&mut conn, *id).await? {
        "The job is back in the queue."
    } else {
        "That job is not dead any more."
    };
    Ok(see_other(&link("/emails", &[("notice", Some(notice))])))
}
