//! A contact's timeline: its Clerk and API events, its workflow runs with each step
//! where the run stands, and its emails; what the API's contact route and the
//! dashboard's contact page show.

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::contacts::Contact;
use crate::workflows::Workflows;
use crate::workflows::definition::{Step, Workflow, describe_duration};
use crate::workflows::deliveries::{Delivery, deliveries_of_runs};
use crate::workflows::versions::definition_for;

/// Events, runs and emails shown per contact, newest first.
const TIMELINE_LIMIT: i64 = 100;

/// A contact with its timeline: `contact` (with Roster's fields), `events` (Clerk and
/// API, newest first), `runs` (each step with its status and email) and `emails`.
pub async fn timeline(
    conn: &mut PgConnection,
    workflows: &Workflows,
    contact: &Contact,
) -> sqlx::Result<Value> {
    let events = events_of(conn, contact).await?;
    let runs = sqlx::query!(
        "select id, workflow, trigger_event, state, current_step, exit_reason, created_at, finished_at, version
         from workflow_runs where contact_id = $1 order by id desc limit $2",
        contact.id,
        TIMELINE_LIMIT
    )
    .fetch_all(&mut *conn)
    .await?;
    let run_ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let deliveries = deliveries_of_runs(conn, &run_ids).await?;
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
        "contact": contact.details(),
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

/// The contact's Clerk and API events, newest first.
async fn events_of(conn: &mut PgConnection, contact: &Contact) -> sqlx::Result<Vec<Value>> {
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
    Ok(events)
}
