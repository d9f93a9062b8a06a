//! Roster's contact routes: the audience list with search and filters, and one
//! contact with its timeline (Clerk and API events, workflow runs with their steps,
//! emails).

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::page::{PageQuery, page};
use crate::api::error::ApiError;
use crate::contacts::Contact;
use crate::contacts::store::find_contact_by_id;
use crate::workflows::Workflows;
use crate::workflows::definition::{Step, Workflow, describe_duration};
use crate::workflows::versions::definition_for;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilters {
    /// Start of the email address (case-insensitive).
    pub email: Option<String>,
    /// Start of the first name, the last name, or "first last" (case-insensitive).
    pub name: Option<String>,
    pub user_group: Option<String>,
    pub subscribed: Option<bool>,
    pub source: Option<String>,
    /// pending, invited, completed or rejected.
    pub waitlist_status: Option<String>,
}

/// List and search contacts, newest first.
#[utoipa::path(tag = "Roster", params(ContactFilters, PageQuery),
    responses((status = 200, body = crate::api::openapi::Page),
              (status = 400, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/contacts")]
pub async fn list_contacts(
    filters: web::Query<ContactFilters>,
    paging: web::Query<PageQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<Uuid>().ok())?;
    let rows = search_contacts(&pool, &filters, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |c| c.id.to_string(), contact_details)))
}

/// Contacts matching `filters`, newest first, after `cursor` (a contact ID), at most
/// `limit`. Shared by the API and the dashboard.
pub async fn search_contacts(
    pool: &PgPool,
    filters: &ContactFilters,
    cursor: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Contact>> {
    let mut query = QueryBuilder::<Postgres>::new("select * from ");
    match filters
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        // The matches of a name prefix come from the three name indexes first; left to
        // itself the planner would walk the whole table newest first looking for a rare
        // name (`offset 0` keeps the subquery from being merged into the outer one).
        Some(name) => {
            let pattern = prefix_pattern(name);
            query
                .push("(select * from contacts where lower(first_name) like lower(")
                .push_bind(pattern.clone())
                .push(") or lower(last_name) like lower(")
                .push_bind(pattern.clone())
                .push(") or lower(first_name || ' ' || last_name) like lower(")
                .push_bind(pattern)
                .push(") offset 0) as contacts where true");
        }
        None => {
            query.push("contacts where true");
        }
    }
    if let Some(email) = filters
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        query
            .push(" and lower(email) like lower(")
            .push_bind(prefix_pattern(email))
            .push(")");
    }
    if let Some(group) = &filters.user_group {
        query.push(" and user_group = ").push_bind(group.clone());
    }
    if let Some(subscribed) = filters.subscribed {
        query.push(" and subscribed = ").push_bind(subscribed);
    }
    if let Some(source) = &filters.source {
        query.push(" and source = ").push_bind(source.clone());
    }
    if let Some(status) = &filters.waitlist_status {
        query
            .push(" and waitlist_status = ")
            .push_bind(status.clone());
    }
    if let Some(cursor) = cursor {
        query.push(" and id < ").push_bind(cursor);
    }
    query.push(" order by id desc limit ").push_bind(limit);
    query.build_query_as().fetch_all(pool).await
}

/// A `LIKE` pattern for "starts with `text`", with `%`, `_` and `\` taken literally.
/// The queries lower it with PostgreSQL's `lower()`, as the indexes are.
fn prefix_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The contact as Loops shows it, plus what Roster knows besides.
pub fn contact_details(contact: &Contact) -> Value {
    let mut shown = contact.to_json();
    let extra = json!({
        "createdAt": contact.created_at,
        "updatedAt": contact.updated_at,
        "unsubscribedAt": contact.unsubscribed_at,
        "graduatedAt": contact.graduated_at,
        "waitlistStatus": contact.waitlist_status,
        "waitlistJoinedAt": contact.waitlist_joined_at,
        "properties": contact.properties,
    });
    if let (Some(shown), Value::Object(extra)) = (shown.as_object_mut(), extra) {
        shown.extend(extra);
    }
    shown
}

/// Events, runs and emails shown per contact, newest first.
const TIMELINE_LIMIT: i64 = 100;

/// One contact with its timeline.
#[utoipa::path(tag = "Roster", params(("id" = Uuid, Path, description = "The contact's ID")),
    responses((status = 200, body = crate::api::openapi::ContactTimeline),
              (status = 404, body = crate::api::openapi::ErrorBody)))]
#[get("/v1/contacts/{id}")]
pub async fn contact_timeline(
    id: web::Path<Uuid>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = pool.acquire().await?;
    let Some(contact) = find_contact_by_id(&mut conn, *id).await? else {
        return Err(ApiError::not_found("Contact not found."));
    };
    Ok(HttpResponse::Ok().json(timeline(&mut conn, &workflows, &contact).await?))
}

/// A contact with its timeline: `contact` (with Roster's fields), `events` (Clerk and
/// API, newest first), `runs` (each step with its status and email) and `emails`.
/// Shared by the API and the dashboard.
pub async fn timeline(
    conn: &mut PgConnection,
    workflows: &Workflows,
    contact: &Contact,
) -> sqlx::Result<Value> {
    let subjects: Vec<String> = [contact.user_id.clone(), contact.waitlist_entry_id.clone()]
        .into_iter()
        .flatten()
        .collect();
    let clerk_events = sqlx::query!(
        "select id, svix_id, event_type, occurred_at from clerk_events
         where subject_id = any($1) order by occurred_at desc, id desc limit $2",
        &subjects,
        TIMELINE_LIMIT
    )
    .fetch_all(&mut *conn)
    .await?;
    let api_events = sqlx::query!(
        "select id, event_name, properties, created_at from api_events
         where contact_id = $1 order by id desc limit $2",
        contact.id,
        TIMELINE_LIMIT
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, Value)> = clerk_events
        .iter()
        .map(|e| {
            let shown = json!({ "source": "clerk", "id": e.id, "svixId": e.svix_id, "type": e.event_type, "at": e.occurred_at });
            (e.occurred_at, shown)
        })
        .chain(api_events.iter().map(|e| {
            let shown = json!({ "source": "api", "id": e.id, "type": e.event_name, "properties": e.properties, "at": e.created_at });
            (e.created_at, shown)
        }))
        .collect();
    events.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let events: Vec<Value> = events.into_iter().map(|(_, shown)| shown).collect();

    let runs = sqlx::query!(
        "select id, workflow, trigger_event, state, current_step, exit_reason, created_at, finished_at, version
         from workflow_runs where contact_id = $1 order by id desc limit $2",
        contact.id,
        TIMELINE_LIMIT
    )
    .fetch_all(&mut *conn)
    .await?;
    let run_ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let deliveries = sqlx::query_as!(
        Delivery,
        "select d.id, d.run_id, r.workflow, r.contact_id, d.step, d.template, d.recipient, d.message_id,
                d.transactional, d.state, d.smtp_response, d.attempts, d.created_at, d.sent_at
         from email_deliveries d join workflow_runs r on r.id = d.run_id
         where d.run_id = any($1) order by d.id desc",
        &run_ids
    )
    .fetch_all(&mut *conn)
    .await?;
    // Each run shows the steps of the version it started on, read once per version.
    let mut known: Vec<(&str, Option<&str>, Option<Workflow>)> = Vec::new();
    let mut definitions = Vec::with_capacity(runs.len());
    for run in &runs {
        let key = (run.workflow.as_str(), run.version.as_deref());
        let definition = match known.iter().find(|(w, v, _)| (*w, *v) == key) {
            Some((_, _, definition)) => definition.clone(),
            None => {
                let definition = definition_for(conn, workflows, key.0, key.1).await?;
                known.push((key.0, key.1, definition.clone()));
                definition
            }
        };
        definitions.push(definition);
    }
    let runs: Vec<Value> = runs
        .iter()
        .zip(&definitions)
        .map(|(run, definition)| {
            let definition = definition.as_ref();
            let run_deliveries: Vec<&Delivery> =
                deliveries.iter().filter(|d| d.run_id == run.id).collect();
            json!({
                "id": run.id,
                "workflow": run.workflow,
                "trigger": run.trigger_event,
                "state": run.state,
                "currentStep": run.current_step,
                "exitReason": run.exit_reason,
                "createdAt": run.created_at,
                "finishedAt": run.finished_at,
                "steps": definition.map(|w| run_steps(w, &run.state, run.current_step, &run_deliveries)),
            })
        })
        .collect();
    Ok(json!({
        "contact": contact_details(contact),
        "events": events,
        "runs": runs,
        "emails": deliveries.iter().map(Delivery::to_json).collect::<Vec<_>>(),
    }))
}

/// Each step of a run's workflow with where the run is: done, current, exited here,
/// or pending; a send step with its email.
fn run_steps(
    workflow: &Workflow,
    state: &str,
    current: i32,
    deliveries: &[&Delivery],
) -> Vec<Value> {
    workflow
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let status = match (index.cmp(&current), state) {
                (std::cmp::Ordering::Less, _) => "done",
                (std::cmp::Ordering::Equal, "active") => "current",
                (std::cmp::Ordering::Equal, "exited") => "exited",
                (std::cmp::Ordering::Equal, _) => "done",
                (std::cmp::Ordering::Greater, _) => "pending",
            };
            let mut shown = match step {
                Step::Send { template } => json!({ "kind": "send", "template": template }),
                Step::Wait { duration } => json!({ "kind": "wait", "seconds": duration.as_secs(), "duration": describe_duration(*duration) }),
                Step::If { condition } => json!({ "kind": "if", "condition": condition }),
            };
            shown["index"] = json!(index);
            shown["status"] = json!(status);
            if let Some(delivery) = deliveries.iter().find(|d| d.step == index) {
                shown["email"] = delivery.to_json();
            }
            shown
        })
        .collect()
}

/// An email delivery with its run's workflow and contact.
#[derive(Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub run_id: Uuid,
    pub workflow: String,
    pub contact_id: Option<Uuid>,
    pub step: i32,
    pub template: String,
    pub recipient: String,
    pub message_id: String,
    pub transactional: bool,
    pub state: String,
    pub smtp_response: Option<String>,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Delivery {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "runId": self.run_id,
            "workflow": self.workflow,
            "contactId": self.contact_id,
            "step": self.step,
            "template": self.template,
            "recipient": self.recipient,
            "messageId": self.message_id,
            "transactional": self.transactional,
            "state": self.state,
            "smtpResponse": self.smtp_response,
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "sentAt": self.sent_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::properties::check_new_name;

    #[test]
    fn no_custom_property_can_shadow_a_field_of_the_contact_json() {
        let contact = Contact::new("ada@example.com", "API");
        let details = contact_details(&contact);
        for name in details.as_object().unwrap().keys() {
            assert!(
                check_new_name(name).is_err(),
                "{name} could be created as a custom property"
            );
        }
    }
}
