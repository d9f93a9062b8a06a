//! Emails: deliveries by state (failures with the SMTP answer), what relays reported
//! (bounces, complaints, deliveries; also for messages Roster does not know), the
//! suppressed addresses, and the dead jobs, each with a button that replays it.

use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;

use super::login::CsrfForm;
use super::session::Session;
use super::{DashboardError, Views, link, see_other_with_notice};
use crate::jobs::queue::{JobFilters, Replay, list_jobs, replay_dead_job};
use crate::jobs::state::JobState;
use crate::page::PageQuery;
use crate::relays::log::recent_events;
use crate::workflows::deliveries::{DeliveryFilters, list_deliveries};
use crate::workflows::state::DeliveryState;

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
        .as_deref()
        .and_then(|state| DeliveryState::parse("state", state).ok());
    let paging = PageQuery {
        limit: Some(50),
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
    };
    let deliveries = list_deliveries(
        &pool,
        &DeliveryFilters {
            state: state.map(|state| state.as_str().to_owned()),
        },
        &paging,
    )
    .await?;
    let dead = list_jobs(
        &pool,
        &JobFilters {
            state: Some(JobState::Dead.as_str().to_owned()),
        },
        &PageQuery {
            limit: Some(50),
            cursor: None,
        },
    )
    .await?;
    let counts = sqlx::query!(
        r#"select state, count(*) as "count!" from email_deliveries group by state order by state"#,
    )
    .fetch_all(pool.get_ref())
    .await?;
    let suppressed = sqlx::query!(
        "select email, reason, created_at from suppressions order by created_at desc limit 100",
    )
    .fetch_all(pool.get_ref())
    .await?;
    let suppressed: Vec<Value> = suppressed
        .into_iter()
        .map(|row| context! { email => row.email, reason => row.reason, at => row.created_at.format("%Y-%m-%d %H:%M").to_string() })
        .collect();
    let relay_events = recent_events(&pool, 50).await?;
    let state = state.map(DeliveryState::as_str);
    let next_url = deliveries
        .next_cursor
        .as_deref()
        .map(|cursor| link("/emails", &[("state", state), ("cursor", Some(cursor))]));
    views.render(
        "emails.html",
        context! {
            page_title => "Emails", section => "emails", csrf => session.csrf(),
            notice => query.notice.clone(), state,
            states => DeliveryState::ALL.map(DeliveryState::as_str).to_vec(),
            total => counts.iter().map(|row| row.count).sum::<i64>(),
            counts => counts.into_iter().map(|row| (row.state, row.count)).collect::<std::collections::BTreeMap<_, _>>(),
            deliveries => Value::from(Serde(&deliveries.data)), next_url,
            dead => Value::from(Serde(&dead.data)), suppressed,
            relay_events => Value::from(Serde(&relay_events)),
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
    let notice = match replay_dead_job(&mut conn, *id).await? {
        Replay::Replayed => "The job is back in the queue.",
        Replay::NotFound | Replay::NotDead(_) => "That job is not dead any more.",
    };
    Ok(see_other_with_notice("/emails", notice))
}
