//! `roster replay`: applies the stored raw event log to the contacts again, oldest
//! first, with today's settings (after a settings change or a fix). Each event is
//! applied in a transaction of its own under the same rules as a delivery, except that
//! an event as new as what the contact reflects is applied again; so a replay run twice
//! leaves the contacts as one run does. Workflows start only when asked, and then each
//! at most as a delivery would have started it (their entry rules hold).

use sqlx::PgPool;

use crate::clerk::apply::{StoredEvent, SyncEvent, apply};
use crate::clerk::envelope::Envelope;
use crate::clerk::sync::facts::FACT_EVENTS;
use crate::clerk::sync::{ContactChange, Mode, SyncError};
use crate::config::clerk::ClerkSettings;
use crate::workflows::Workflows;

/// The event types that change contacts, and those that change Clerk facts.
fn applied_types() -> Vec<String> {
    [
        "user.created",
        "user.updated",
        "user.deleted",
        "waitlistEntry.created",
        "waitlistEntry.updated",
    ]
    .into_iter()
    .chain(FACT_EVENTS)
    .map(String::from)
    .collect()
}

const PAGE: i64 = 1000;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// Events that changed a contact (created, updated, graduated, unsubscribed,
    /// deleted it).
    pub changed: u64,
    /// Events the contacts already reflect, or that name no contact.
    pub unchanged: u64,
    /// Event types turned off in the settings.
    pub disabled: u64,
    /// Events that could not be applied (an address still on another user's contact,
    /// data that does not parse), with the reason.
    pub conflicts: Vec<(String, String)>,
    pub runs_started: u64,
}

/// Replays the log; `workflows` starts the workflows the events trigger.
pub async fn replay(
    pool: &PgPool,
    settings: &ClerkSettings,
    workflows: Option<&Workflows>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Summary> {
    let total: i64 = sqlx::query_scalar!(
        r#"select count(*) as "count!" from clerk_events where event_type = any($1)"#,
        &applied_types()
    )
    .fetch_one(pool)
    .await?;
    progress.set_length(u64::try_from(total).unwrap_or(0));
    let mut summary = Summary::default();
    let mut after: Option<(chrono::DateTime<chrono::Utc>, i64)> = None;
    loop {
        let (after_at, after_id) = after.unzip();
        let page = sqlx::query_as!(
            LoggedEvent,
            r#"select id, svix_id, event_type, occurred_at, payload::text as "payload!"
               from clerk_events
               where event_type = any($1)
                 and ($2::timestamptz is null or (occurred_at, id) > ($2, $3))
               order by occurred_at, id
               limit $4"#,
            &applied_types(),
            after_at,
            after_id,
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.occurred_at, last.id));
        for event in page {
            summary.events += 1;
            progress.inc(1);
            replay_one(pool, settings, workflows, event, &mut summary).await?;
        }
    }
    progress.finish_and_clear();
    Ok(summary)
}

/// One event of the log as replayed.
struct LoggedEvent {
    id: i64,
    svix_id: String,
    event_type: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    payload: String,
}

/// Applies one event again (and starts its workflows), in a transaction of its own,
/// counting what it did in `summary`.
async fn replay_one(
    pool: &PgPool,
    settings: &ClerkSettings,
    workflows: Option<&Workflows>,
    event: LoggedEvent,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    // A stored event whose data no longer parses (its type was off when it came,
    // so its data was never checked) is reported, not fatal.
    let envelope = match Envelope::parse(event.payload.as_bytes()) {
        Ok(envelope) => envelope,
        Err(why) => {
            summary.conflicts.push((event.svix_id, why.to_string()));
            return Ok(());
        }
    };
    let sync_event = match SyncEvent::from_envelope(&envelope, settings, event.occurred_at) {
        Ok(SyncEvent::Other) => {
            summary.disabled += 1;
            return Ok(());
        }
        Ok(sync_event) => sync_event,
        Err(why) => {
            summary.conflicts.push((event.svix_id, why.to_string()));
            return Ok(());
        }
    };
    let stored = StoredEvent {
        svix_id: &event.svix_id,
        event_type: &event.event_type,
        payload: &event.payload,
        occurred_at: event.occurred_at,
    };
    let mut tx = pool.begin().await?;
    let outcome = match apply(&mut tx, &sync_event, &stored, Mode::Replay, workflows).await {
        Ok(outcome) => outcome,
        Err(SyncError::Database(error)) => return Err(error.into()),
        Err(conflict) => {
            summary
                .conflicts
                .push((event.svix_id, conflict.to_string()));
            return Ok(());
        }
    };
    match outcome.change {
        Some(ContactChange::Stale | ContactChange::NoEmail | ContactChange::NoContact) => {
            summary.unchanged += 1
        }
        None if !outcome.facts_changed => summary.unchanged += 1,
        _ => summary.changed += 1,
    }
    summary.runs_started += u64::try_from(outcome.runs_started).unwrap_or(0);
    tx.commit().await?;
    Ok(())
}
