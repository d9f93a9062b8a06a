//! The workflows a Clerk delivery starts: those on its own event type, for the contact
//! of the user it names, and those on the lifecycle event its contact change emits
//! (`contact.created`, ...), in the caller's transaction (the webhook's, or a
//! replay's); and the webhook endpoints it notifies.

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::subject::Subject;
use super::sync::{Applied, ContactChange};
use crate::contacts::lifecycle::Via;
use crate::contacts::{Contact, store};
use crate::webhooks::news::{ContactNews, contact_news};
use crate::workflows::Workflows;
use crate::workflows::runs::{
    ClerkCause, TriggerEvent, record_unstarted_runs, start_lifecycle_runs, start_runs,
};

/// Starts the workflows on `event_type` for the contact of the user the event names:
/// `known` when applying the event found it, else looked up by `Subject`. With no
/// contact, each workflow's run log says why none started. Returns how many started.
pub async fn start_event_workflows(
    tx: &mut PgConnection,
    workflows: &Workflows,
    svix_id: &str,
    event_type: &str,
    payload: &str,
    known: Option<&Contact>,
) -> sqlx::Result<usize> {
    if workflows.triggered_by(event_type).next().is_none() {
        return Ok(0); // the common case: no JSON tree to build
    }
    let envelope: Value = serde_json::from_str(payload).unwrap_or_default();
    let subject = Subject::of(event_type, &envelope["data"]);
    let found = match (known, &subject) {
        (Some(_), _) | (None, None) => None,
        (None, Some(Subject::User(user_id))) => store::find_contact_by_user_id(tx, user_id).await?,
        (None, Some(Subject::Email(email))) => store::find_contact_by_email(tx, email).await?,
    };
    let trigger = TriggerEvent {
        name: event_type,
        key: svix_id,
        data: &envelope,
    };
    if let Some(contact) = known.or(found.as_ref()) {
        return start_runs(tx, workflows, &trigger, contact, Utc::now()).await;
    }
    let reason = match &subject {
        Some(Subject::User(user_id)) => format!("no contact: Clerk user {user_id} has none"),
        Some(Subject::Email(_)) => "no contact: the event's address is on no contact".to_owned(),
        None => "no contact: the event names no user".to_owned(),
    };
    let named = subject.as_ref().map_or_else(|| json!({}), Subject::to_json);
    record_unstarted_runs(tx, workflows, &trigger, &named, &reason).await?;
    Ok(0)
}

/// Starts the workflows this event triggers, and those of the lifecycle event its
/// contact change emits (`contact.created`, ...), in the caller's transaction (the
/// webhook's, or a replay's); returns how many runs started.
pub async fn start_workflows(
    tx: &mut PgConnection,
    workflows: &Workflows,
    svix_id: &str,
    event_type: &str,
    payload: &str,
    applied: &Applied,
) -> sqlx::Result<usize> {
    let Some(contact) = &applied.contact else {
        // No contact to start them for (a user without an address): said so.
        return start_event_workflows(tx, workflows, svix_id, event_type, payload, None).await;
    };
    let news: &[ContactNews] = match applied.change {
        ContactChange::Created => &[ContactNews::Created],
        ContactChange::Unsubscribed => &[ContactNews::Unsubscribed],
        // As Loops does: a deleted contact is also reported unsubscribed.
        ContactChange::Deleted => &[ContactNews::Deleted, ContactNews::Unsubscribed],
        _ => &[],
    };
    contact_news(tx, workflows.webhooks(), contact, news).await?;
    let mut started = 0;
    if applied.created_beneath_deletion
        && workflows.triggered_by("user.deleted").next().is_some()
        && let Some(user_id) = &contact.user_id
        && let Some(deletion) = stored_deletion(tx, user_id).await?
    {
        // The deletion arrived first, when there was no contact to start its
        // workflows for (a goodbye); there is one now.
        let data: serde_json::Value = serde_json::from_str(&deletion.payload).unwrap_or_default();
        let trigger = TriggerEvent {
            name: "user.deleted",
            key: &deletion.svix_id,
            data: &data,
        };
        started += start_runs(tx, workflows, &trigger, contact, Utc::now()).await?;
    }
    let lifecycle = applied
        .change
        .lifecycle_event()
        .filter(|event| workflows.triggered_by(event.name()).next().is_some());
    let own = workflows.triggered_by(event_type).next().is_some();
    if lifecycle.is_none() && !own {
        return Ok(started); // the common case: no JSON tree to build
    }
    let data: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    if own {
        let trigger = TriggerEvent {
            name: event_type,
            key: svix_id,
            data: &data,
        };
        started += start_runs(tx, workflows, &trigger, contact, Utc::now()).await?;
    }
    if let Some(event) = lifecycle {
        let cause = ClerkCause {
            svix_id,
            payload: &data,
        };
        started +=
            start_lifecycle_runs(tx, workflows, event, Via::Clerk, Some(cause), contact).await?;
    }
    Ok(started)
}

struct StoredDeletion {
    svix_id: String,
    payload: String,
}

/// The stored `user.deleted` of `user_id`, the latest if several.
async fn stored_deletion(
    tx: &mut PgConnection,
    user_id: &str,
) -> sqlx::Result<Option<StoredDeletion>> {
    sqlx::query_as!(
        StoredDeletion,
        r#"select svix_id, payload::text as "payload!" from clerk_events
           where subject_id = $1 and event_type = 'user.deleted'
           order by occurred_at desc limit 1"#,
        user_id
    )
    .fetch_optional(tx)
    .await
}
