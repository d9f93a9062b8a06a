//! The raw event log: every Clerk event accepted, once per `svix-id`, kept for lifecycle
//! analytics (`analytics`, over a `range`) and for replaying into contacts; `log` reads
//! it back.

pub mod analytics;
pub mod log;
pub mod range;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Stores one event; returns `false` when this `svix-id` was stored before (a duplicate
/// delivery), in which case nothing was written. The same statement adds the event to
/// its day's count (`clerk_event_counts`) and notes a lifecycle step seen for the first
/// time for its person (`clerk_event_firsts`), which analytics read, and puts it in the
/// outbox of each of `forward`'s destinations (`Forwarder::wake` then wakes the sending,
/// after the commit).
pub async fn insert_clerk_event(
    conn: &mut PgConnection,
    svix_id: &str,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    payload_json: &str,
    forward: &[String],
) -> sqlx::Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"with stored as (
               insert into clerk_events (svix_id, event_type, occurred_at, payload)
               values ($1, $2, $3, $4::text::jsonb)
               on conflict (svix_id) do nothing
               returning id, event_type, subject_id, occurred_at, payload #>> '{data,status}' as status
           ),
           firsts as (
               insert into clerk_event_firsts (kind, subject_id, first_at)
               select lifecycle_step(event_type, status), subject_id, occurred_at
               from stored
               where subject_id is not null and lifecycle_step(event_type, status) is not null
               on conflict (kind, subject_id) do update set first_at = excluded.first_at
                   where excluded.first_at < clerk_event_firsts.first_at
           ),
           counted as (
               insert into clerk_event_counts (day, event_type, shard, events)
               select (occurred_at at time zone 'UTC')::date, event_type, pg_backend_pid() % 16, 1
               from stored
               on conflict (day, event_type, shard) do update
                   set events = clerk_event_counts.events + 1
           ),
           outboxed as (
               insert into forward_outbox (destination, event_id)
               select d, id from stored, unnest($5::text[]) as d
           )
           select count(*) as "stored!" from stored"#,
        svix_id,
        event_type,
        occurred_at,
        payload_json,
        forward,
    )
    .fetch_one(conn)
    .await?;
    Ok(inserted == 1)
}
