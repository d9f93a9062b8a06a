//! The raw event log: every Clerk event accepted, once per `svix-id`, kept for lifecycle
//! analytics and for replaying into contacts.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Stores one event; returns `false` when this `svix-id` was stored before (a duplicate
/// delivery), in which case nothing was written.
pub async fn insert_clerk_event(
    conn: &mut PgConnection,
    svix_id: &str,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    payload_json: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "insert into clerk_events (svix_id, event_type, occurred_at, payload)
         values ($1, $2, $3, $4::text::jsonb)
         on conflict (svix_id) do nothing",
        svix_id,
        event_type,
        occurred_at,
        payload_json,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
