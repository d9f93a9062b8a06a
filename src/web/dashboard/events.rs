//! The raw event log, filtered by type and time, and one event's JSON as stored.

use actix_web::{HttpResponse, get, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;

use super::session::Session;
use super::{DashboardError, Views, distinct_values, link};
use crate::events::log::{EventFilters, list_events};
use crate::page::PageQuery;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

#[get("/events")]
pub async fn events_page(
    session: Session,
    query: web::Query<EventsQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
) -> Result<HttpResponse, DashboardError> {
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let filters = EventFilters {
        event_type: given(&query.event_type),
        from: given(&query.from),
        to: given(&query.to),
    };
    let paging = PageQuery {
        limit: Some(50),
        cursor: given(&query.cursor),
    };
    let page = list_events(&pool, &filters, &paging).await?;
    let types = distinct_values(&pool, "clerk_events", "event_type").await?;
    let next_url = page.next_cursor.as_deref().map(|cursor| {
        link(
            "/events",
            &[
                ("type", filters.event_type.as_deref()),
                ("from", filters.from.as_deref()),
                ("to", filters.to.as_deref()),
                ("cursor", Some(cursor)),
            ],
        )
    });
    views.render(
        "events.html",
        context! {
            page_title => "Events", section => "events", csrf => session.csrf(),
            events => Value::from(Serde(&page.data)), next_url, types,
            q => context! { event_type => filters.event_type, from => filters.from, to => filters.to },
            paged => paging.cursor.is_some(),
        },
    )
}

#[get("/events/{id}")]
pub async fn event_page(
    session: Session,
    id: web::Path<i64>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
) -> Result<HttpResponse, DashboardError> {
    let event = sqlx::query!(
        "select id, svix_id, event_type, occurred_at, received_at, subject_id,
                jsonb_pretty(payload) as \"json!\"
         from clerk_events where id = $1",
        *id
    )
    .fetch_optional(pool.get_ref())
    .await?
    .ok_or(DashboardError::NotFound("There is no such event."))?;
    // Pretty-printed by PostgreSQL: an event of any depth is shown, never decoded.
    let json = event.json;
    views.render(
        "event.html",
        context! {
            page_title => event.event_type.clone(), section => "events", csrf => session.csrf(),
            id => event.id, svix_id => event.svix_id, event_type => event.event_type,
            occurred_at => event.occurred_at.to_rfc3339(), received_at => event.received_at.to_rfc3339(),
            subject_id => event.subject_id, json,
        },
    )
}
