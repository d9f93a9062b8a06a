//! The forward outbox in SQL: a batch taken in event order and locked while it is
//! sent (so two workers never send the same rows at once), deleted once the
//! destination took it; the jobs that wake the sending; and the backfill of
//! `roster forward --since`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{BATCH, Destination, FORWARD_JOB, MAX_REQUEST_BYTES, Refusal, event_row};
use crate::jobs::queue::{NewJob, rearm_job};
use crate::monitoring;

/// Attempts a forward job gets: a destination away for a few hours is retried through,
/// and the next event wakes the job again after that.
pub const ATTEMPTS: i32 = 20;

/// A stored event waiting in the outbox.
#[derive(Debug)]
pub struct OutboxEvent {
    pub id: i64,
    pub svix_id: String,
    pub event_type: String,
    pub subject_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// What `send_batch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many events went, and left the outbox.
    Sent(usize),
    /// The outbox is empty.
    Empty,
    /// Every waiting row is being sent by another sender (a run whose lease ran out,
    /// `roster forward`): they are not this run's to send, but may come back.
    Locked,
}

/// Sends the next batch of `destination`'s outbox, oldest first (up to `BATCH` events
/// and `MAX_REQUEST_BYTES`), and deletes it once accepted.
pub async fn send_batch(pool: &PgPool, destination: &Destination) -> Result<Batch, SendError> {
    let mut tx = pool.begin().await?;
    let events = sqlx::query_as!(
        OutboxEvent,
        "select e.id, e.svix_id, e.event_type, e.subject_id, e.occurred_at, e.received_at, e.payload
         from forward_outbox o join clerk_events e on e.id = o.event_id
         where o.destination = $1
         order by o.event_id
         limit $2
         for update of o skip locked",
        destination.name(),
        BATCH,
    )
    .fetch_all(&mut *tx)
    .await?;
    if events.is_empty() {
        let waiting = sqlx::query_scalar!(
            r#"select exists (select from forward_outbox where destination = $1) as "waiting!""#,
            destination.name(),
        )
        .fetch_one(&mut *tx)
        .await?;
        return Ok(if waiting { Batch::Locked } else { Batch::Empty });
    }
    // As many as fit in one request (the rest are unlocked at commit, for the next).
    let mut lines = String::new();
    let mut ids = Vec::with_capacity(events.len());
    for event in &events {
        let line = event_row(event).to_string();
        if !ids.is_empty() && lines.len() + line.len() + 1 > MAX_REQUEST_BYTES {
            break;
        }
        lines.push_str(&line);
        lines.push('\n');
        ids.push(event.id);
    }
    let quarantined = destination.post(lines).await?;
    // A delete lost in a crash only sends the batch again, which the svix-id dedupes.
    sqlx::query!(
        "delete from forward_outbox
         where destination = $1 and event_id = any($2)
           and (select set_config('synchronous_commit', 'off', true)) is not null",
        destination.name(),
        &ids,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let labels = [("destination", destination.name().to_owned())];
    metrics::counter!(monitoring::FORWARDED_EVENTS, &labels).increment(ids.len() as u64);
    if quarantined > 0 {
        metrics::counter!(monitoring::FORWARD_QUARANTINED, &labels).increment(quarantined);
        tracing::warn!(
            destination = destination.name(),
            quarantined,
            "the destination quarantined forwarded events: its data source's schema refused them"
        );
    }
    Ok(Batch::Sent(ids.len()))
}

/// Asks for a run of `destination`'s forward job (one per destination) at `run_at`:
/// many asks before it starts give one run, and an ask while it runs gives one more
/// after it (`rearm_job`), so every event committed before the ask is sent.
pub async fn wake(pool: &PgPool, destination: &str, run_at: DateTime<Utc>) -> sqlx::Result<()> {
    let payload = serde_json::json!({ "destination": destination });
    let job = NewJob {
        kind: FORWARD_JOB,
        key: Some(destination),
        payload: &payload,
        run_at,
        max_attempts: ATTEMPTS,
    };
    rearm_job(&mut *pool.acquire().await?, &job).await
}

/// Puts every stored event that happened since `since` in the outbox of each of
/// `destinations` (those already there stay once), and wakes the sending. Returns how
/// many rows each destination's outbox holds now.
pub async fn backfill(
    pool: &PgPool,
    destinations: &[String],
    since: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query!(
        "insert into forward_outbox (destination, event_id)
         select d, e.id from clerk_events e, unnest($1::text[]) as d
         where e.occurred_at >= $2
         on conflict do nothing",
        destinations,
        since,
    )
    .execute(pool)
    .await?;
    for destination in destinations {
        wake(pool, destination, Utc::now()).await?;
    }
    pending(pool, destinations).await
}

/// How many events wait in the outboxes of `destinations`.
pub async fn pending(pool: &PgPool, destinations: &[String]) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from forward_outbox where destination = any($1)"#,
        destinations
    )
    .fetch_one(pool)
    .await
}

/// What waits in one destination's outbox.
pub struct Lag {
    pub destination: String,
    pub pending: i64,
    /// How long ago the oldest waiting event was received; 0 when none waits.
    pub lag_seconds: f64,
}

/// The outbox of each destination in `configured`, and of any other that still holds
/// events (one removed from the config file); an empty one has no lag.
pub async fn lag(pool: &PgPool, configured: &[String]) -> sqlx::Result<Vec<Lag>> {
    sqlx::query_as!(
        Lag,
        r#"select d as "destination!",
                  (select count(*) from forward_outbox o where o.destination = d) as "pending!",
                  coalesce((select extract(epoch from now() - min(e.received_at))::float8
                            from forward_outbox o join clerk_events e on e.id = o.event_id
                            where o.destination = d), 0) as "lag_seconds!"
           from unnest(array['tinybird', 'clickhouse']) as d
           where d = any($1) or exists (select from forward_outbox o where o.destination = d)"#,
        configured,
    )
    .fetch_all(pool)
    .await
}
