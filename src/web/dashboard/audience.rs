//! The audience: contacts with search, filters, counts and pages; with no contacts
//! yet, how to point Clerk at this Roster, and a sample Clerk event to see it work.

use crate::forward::Forwarder;
use actix_web::{HttpResponse, get, post, web};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::session::Session;
use super::{DashboardError, Views, distinct_values, link, see_other_with_notice};
use crate::clerk::samples::{DEFAULT_EMAIL, sample_event, sample_types, test_user_id};
use crate::clerk::webhook::{WebhookError, ingest};
use crate::config::Settings;
use crate::config::clerk::ClerkSettings;
use crate::contacts::Contact;
use crate::contacts::input::normalise_email;
use crate::contacts::search::{ContactFilters, search};
use crate::contacts::store::find_contact_by_email;
use crate::input::given;
use crate::webhooks::log::disabled_endpoints;
use crate::workflows::Workflows;

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceQuery {
    email: Option<String>,
    name: Option<String>,
    user_group: Option<String>,
    /// `yes`, `no` or empty.
    subscribed: Option<String>,
    source: Option<String>,
    waitlist_status: Option<String>,
    cursor: Option<Uuid>,
    notice: Option<String>,
}

fn nonempty(value: &Option<String>) -> Option<String> {
    given(value).map(str::to_owned)
}

#[get("/")]
pub async fn audience(
    session: Session,
    query: web::Query<AudienceQuery>,
    pool: web::Data<PgPool>,
    views: web::Data<Views>,
    settings: web::Data<Settings>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, DashboardError> {
    let disabled_webhooks = disabled_endpoints(&pool, workflows.webhooks()).await?;
    let filters = ContactFilters {
        email: nonempty(&query.email),
        name: nonempty(&query.name),
        user_group: nonempty(&query.user_group),
        subscribed: match query.subscribed.as_deref() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        },
        source: nonempty(&query.source),
        waitlist_status: nonempty(&query.waitlist_status),
    };
    // The page, the counts and the filters' values at once, each on its own connection.
    let (mut contacts, counts, groups, sources) = tokio::try_join!(
        search(&pool, &filters, query.cursor, PAGE + 1),
        sqlx::query!(
            r#"select count(*) as "total!",
                      count(*) filter (where subscribed) as "subscribed!",
                      count(*) filter (where user_id is not null) as "users!",
                      count(*) filter (where waitlist_status in ('pending', 'invited')) as "waiting!"
               from contacts"#
        )
        .fetch_one(pool.get_ref()),
        // A few index probes each (skip scans), not a read of the table.
        distinct_values(&pool, "contacts", "user_group"),
        distinct_values(&pool, "contacts", "source"),
    )?;
    let next = (contacts.len() > PAGE as usize).then(|| contacts[PAGE as usize - 1].id);
    contacts.truncate(PAGE as usize);
    let next_url = next.map(|cursor| {
        let cursor = cursor.to_string();
        link(
            "/",
            &[
                ("email", filters.email.as_deref()),
                ("name", filters.name.as_deref()),
                ("userGroup", filters.user_group.as_deref()),
                ("subscribed", query.subscribed.as_deref()),
                ("source", filters.source.as_deref()),
                ("waitlistStatus", filters.waitlist_status.as_deref()),
                ("cursor", Some(&cursor)),
            ],
        )
    });
    let filtered = is_filtered(&filters);
    let contacts: Vec<Value> = contacts
        .iter()
        .map(|c| Value::from(Serde(Contact::details(c))))
        .collect();
    let save_url = filtered.then(|| {
        let filter = as_segment_filter(&filters).to_string();
        link("/segments", &[("filter", Some(&filter))])
    });
    views.render(
        "audience.html",
        context! {
            page_title => "Audience", section => "audience", csrf => session.csrf(),
            notice => query.notice.clone(), disabled_webhooks,
            contacts, next_url, filtered, save_url, paged => query.cursor.is_some(),
            total => counts.total, subscribed => counts.subscribed, users => counts.users,
            waiting => counts.waiting,
            groups, sources,
            q => context! {
                email => filters.email, name => filters.name, user_group => filters.user_group,
                subscribed => query.subscribed.clone(), source => filters.source,
                waitlist_status => filters.waitlist_status,
            },
            sample_types => sample_types().collect::<Vec<_>>(), default_email => DEFAULT_EMAIL,
            webhook_url => settings.public_url.join("webhooks/clerk").map(|u| u.to_string()).unwrap_or_default(),
            api_url => settings.public_url.join("api/").map(|u| u.to_string()).unwrap_or_default(),
        },
    )
}

#[derive(Deserialize)]
pub struct TestEventForm {
    csrf: String,
    #[serde(rename = "type")]
    event_type: String,
    email: String,
}

/// Stores a sample Clerk event of the chosen type for the address, as a delivery from
/// Clerk would be stored (what `roster send-test-event` posts, without the signature).
/// Only for an address no contact has, or an earlier test event's: a test user must not
/// take over a real person's contact.
#[post("/test-event")]
pub async fn send_test_event(
    session: Session,
    form: web::Form<TestEventForm>,
    pool: web::Data<PgPool>,
    settings: web::Data<ClerkSettings>,
    workflows: web::Data<Workflows>,
    forwarder: web::Data<Forwarder>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let email = normalise_email(form.email.clone())?;
    let event = sample_event(&form.event_type, &email, chrono::Utc::now())
        .map_err(|why| DashboardError::BadRequest(format!("type: {why}")))?;
    let mut conn = pool.acquire().await?;
    if let Some(contact) = find_contact_by_email(&mut conn, &email).await?
        && contact.user_id != Some(test_user_id(&email))
    {
        return Err(DashboardError::BadRequest(format!(
            "email: {email} is a contact's address already; send test events to a new address"
        )));
    }
    drop(conn);
    let body = serde_json::to_vec(&event).map_err(|e| DashboardError::Unexpected(e.into()))?;
    let svix_id = format!("msg_test{}", Uuid::now_v7().simple());
    let ingested = ingest(&pool, &settings, &workflows, &forwarder, &svix_id, &body)
        .await
        .map_err(|error| match error {
            WebhookError::DatabaseUnavailable(_) => DashboardError::Unavailable(error.into()),
            WebhookError::Unexpected(_) => DashboardError::Unexpected(error.into()),
            other => DashboardError::BadRequest(other.to_string()),
        })?;
    let notice = format!(
        "A test {} for {email} was stored ({}); see Events, Workflows and Emails.",
        ingested.event_type, ingested.status
    );
    Ok(see_other_with_notice("/", &notice))
}

/// The audience filters as a segment's filter: prefixes become `startsWith`, a name
/// prefix a match on the first or the last name.
fn as_segment_filter(filters: &ContactFilters) -> serde_json::Value {
    let equals = |property: &str, value: serde_json::Value| serde_json::json!({ "property": property, "operator": "equals", "value": value });
    let starts = |property: &str, value: &str| serde_json::json!({ "property": property, "operator": "startsWith", "value": value });
    let mut conditions = Vec::new();
    if let Some(email) = &filters.email {
        conditions.push(starts("email", email));
    }
    if let Some(name) = &filters.name {
        conditions.push(serde_json::json!({ "match": "any", "conditions": [
            starts("firstName", name), starts("lastName", name)] }));
    }
    for (property, value) in [
        ("userGroup", &filters.user_group),
        ("source", &filters.source),
        ("waitlistStatus", &filters.waitlist_status),
    ] {
        if let Some(value) = value {
            conditions.push(equals(property, value.clone().into()));
        }
    }
    if let Some(subscribed) = filters.subscribed {
        conditions.push(equals("subscribed", subscribed.into()));
    }
    serde_json::json!({ "match": "all", "conditions": conditions })
}

fn is_filtered(filters: &ContactFilters) -> bool {
    filters.email.is_some()
        || filters.name.is_some()
        || filters.user_group.is_some()
        || filters.subscribed.is_some()
        || filters.source.is_some()
        || filters.waitlist_status.is_some()
}
