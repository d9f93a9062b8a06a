//! `roster replay`: applies the stored raw event log to the contacts again, oldest
//! first, with today's settings (after a settings change or a fix). Each event is
//! applied in a transaction of its own under the same rules as a delivery, except that
//! an event as new as what the contact reflects is applied again; so a replay run twice
//! leaves the contacts as one run does. Workflows start only when asked, and then each
//! at most as a delivery would have started it (their entry rules hold).

use sqlx::PgPool;

use crate::clerk::envelope::Envelope;
use crate::clerk::sync::{ContactChange, ContactEvent, Mode, SyncError};
use crate::clerk::triggers::start_workflows;
use crate::config::clerk::ClerkSettings;
use crate::workflows::Workflows;

/// The event types that change contacts.
const CONTACT_EVENTS: [&str; 5] = [
    "user.created",
    "user.updated",
    "user.deleted",
    "waitlistEntry.created",
    "waitlistEntry.updated",
];

/// Events read per query.
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
        &CONTACT_EVENTS.map(String::from)
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
            &CONTACT_EVENTS.map(String::from),
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
    let contact_event = Envelope::parse(event.payload.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|envelope| {
            ContactEvent::from_envelope(&envelope, settings).map_err(|e| e.to_string())
        });
    let contact_event = match contact_event {
        Ok(Some(contact_event)) => contact_event,
        Ok(None) => {
            summary.disabled += 1;
            return Ok(());
        }
        Err(why) => {
            summary.conflicts.push((event.svix_id, why));
            return Ok(());
        }
    };
    let mut tx = pool.begin().await?;
    let applied = match contact_event
        .apply(&mut tx, event.occurred_at, Mode::Replay)
        .await
    {
        Ok(applied) => applied,
        Err(SyncError::Database(error)) => return Err(error.into()),
        Err(conflict) => {
            summary
                .conflicts
                .push((event.svix_id, conflict.to_string()));
            return Ok(());
        }
    };
    match applied.change {
        ContactChange::Stale | ContactChange::NoEmail | ContactChange::NoContact => {
            summary.unchanged += 1
        }
        _ => summary.changed += 1,
    }
    if let Some(workflows) = workflows {
        let started = start_workflows(
            &mut tx,
            workflows,
            &event.svix_id,
            &event.event_type,
            &event.payload,
            &applied,
        )
        .await?;
        summary.runs_started += u64::try_from(started).unwrap_or(0);
    }
    tx.commit().await?;
    Ok(())
}
