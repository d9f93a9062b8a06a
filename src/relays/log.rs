//! Relay events as read back, newest first: what the dashboard's Emails page lists,
//! including those for messages Roster does not know.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A stored relay event, with the contact of the email it was matched to.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedEvent {
    pub provider: String,
    pub kind: String,
    pub provider_kind: String,
    pub recipient: String,
    pub reason: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Null when the event is about a message Roster did not send.
    pub delivery_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub template: Option<String>,
}

/// The newest `limit` events.
pub async fn recent_events(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<LoggedEvent>> {
    sqlx::query_as!(
        LoggedEvent,
        r#"select e.provider, e.kind, e.provider_kind, e.recipient, e.reason, e.occurred_at,
                  e.delivery_id, r.contact_id as "contact_id?", d.template as "template?"
           from email_events e
           left join email_deliveries d on d.id = e.delivery_id
           left join workflow_runs r on r.id = d.run_id
           order by e.received_at desc, e.id desc limit $1"#,
        limit
    )
    .fetch_all(pool)
    .await
}
