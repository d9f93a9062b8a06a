//! Forwarding: every stored Clerk event (verified, deduplicated, redacted) also goes,
//! in batches, to Tinybird's Events API and/or a ClickHouse HTTP endpoint, so that
//! analytics at scale run on a column store with the figures Roster's own give.
//!
//! The event's transaction writes one `forward_outbox` row per destination; after its
//! commit, `Forwarder::wake` asks for a run of the destination's `FORWARD_JOB` (one job
//! per destination, re-armed: `outbox::wake`) at the end of that second, at most once
//! a second per process and outside the transaction, so concurrent webhooks never wait
//! on each other. The job sends the outbox in order, 1,000 events (at most 8 MiB) a
//! request, and deletes what the destination accepted; asked for while it runs, it runs
//! once more after. Delivery is at least once: a crash after the destination's answer sends that
//! batch again, and downstream the svix-id is the dedupe key (a ReplacingMergeTree;
//! Tinybird's data source in `analytics/tinybird/`). A 429 waits as the destination
//! says; a 5xx or an unreachable destination is retried by the job queue with backoff.

mod destination;
pub mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

pub use destination::{Destination, Refusal};
pub use outbox::Batch;

use crate::clerk::envelope::UserData;
use crate::config::forward::ForwardSettings;
use crate::jobs::{Deferred, Job};
use crate::monitoring;

/// The job that sends one destination's outbox: `{"destination": "tinybird"}`.
pub const FORWARD_JOB: &str = "forward.events";
/// How long one run of a forward job sends before it hands over to the next.
const RUN_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// When a run that found every waiting row held by another sender looks again.
const LOCKED_RETRY: chrono::Duration = chrono::Duration::seconds(5);
/// Events per request, at most.
pub const BATCH: i64 = 1000;
/// Bytes per request, at most (but always one event): under the 10 MB a request that
/// Tinybird's Events API takes on every plan. An event is at most a 1 MiB webhook body,
/// about 2 MiB once escaped as the row's `payload`.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// The destinations `[forward.*]` configures (they share one HTTP client).
#[derive(Clone, Default)]
pub struct Forwarder {
    destinations: Vec<Destination>,
    /// Their names, as the outbox keeps them.
    names: Vec<String>,
    /// The last second this process added each one's job for.
    woken: Arc<Vec<AtomicI64>>,
}

impl Forwarder {
    pub fn new(settings: &ForwardSettings) -> anyhow::Result<Self> {
        let destinations = Destination::all(settings)?;
        let names: Vec<String> = destinations.iter().map(|d| d.name().to_owned()).collect();
        let woken = Arc::new(names.iter().map(|_| AtomicI64::new(0)).collect());
        Ok(Self {
            destinations,
            names,
            woken,
        })
    }

    /// After an event's commit: a run of each destination's job at the end of this
    /// second, asked for at most once a second by this process (a replica asks for the
    /// same job). A failure is logged: the event waits in the outbox for the next
    /// event's ask, or `roster serve`'s at start.
    pub async fn wake(&self, pool: &PgPool) {
        let now = chrono::Utc::now();
        let second = now.timestamp();
        for (name, woken) in self.names.iter().zip(self.woken.iter()) {
            if woken.swap(second, Ordering::Relaxed) == second {
                continue;
            }
            let run_at = chrono::DateTime::from_timestamp(second + 1, 0).unwrap_or(now);
            if let Err(error) = outbox::wake(pool, name, run_at).await {
                woken.store(0, Ordering::Relaxed);
                let error = crate::telemetry::error_chain(&error);
                tracing::warn!(destination = %name, error, "cannot wake the forwarding");
            }
        }
    }

    /// The names of the configured destinations, as the outbox keeps them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn get(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.name() == name)
    }

    /// Runs a `FORWARD_JOB`: sends the destination's outbox until it is empty, for
    /// `RUN_TIME` at most (then it asks for the next run, so that a steady stream never
    /// keeps one run going past its queue's time limit). Rows another sender holds are
    /// looked at again `LOCKED_RETRY` later. `Err` asks the queue to try again later; a
    /// 429 defers the job for as long as the destination asked.
    pub async fn run(&self, pool: &PgPool, job: &Job) -> anyhow::Result<()> {
        let name = job.payload["destination"].as_str().unwrap_or_default();
        let Some(destination) = self.get(name) else {
            // Removed from the config file: its rows wait for it to come back.
            tracing::warn!(
                destination = name,
                "events wait for a destination no longer configured"
            );
            return Ok(());
        };
        let started = std::time::Instant::now();
        loop {
            let again = match outbox::send_batch(pool, destination).await {
                Ok(Batch::Empty) => return Ok(()),
                Ok(Batch::Sent(_)) if started.elapsed() < RUN_TIME => continue,
                Ok(Batch::Sent(_)) => chrono::Duration::zero(),
                Ok(Batch::Locked) => LOCKED_RETRY,
                Err(error) => {
                    let labels = [("destination", name.to_owned())];
                    metrics::counter!(monitoring::FORWARD_FAILURES, &labels).increment(1);
                    return Err(match error {
                        outbox::SendError::Refused(Refusal::RateLimited(after)) => {
                            Deferred { after }.into()
                        }
                        other => anyhow::anyhow!("{other}"),
                    });
                }
            };
            outbox::wake(pool, name, chrono::Utc::now() + again).await?;
            return Ok(());
        }
    }
}

/// One event as it is forwarded, a line of NDJSON (Tinybird) or JSONEachRow
/// (ClickHouse): its svix-id (the dedupe key), type, subject, `data.status`, when it
/// happened and was received (UTC, `YYYY-MM-DD hh:mm:ss` as any ClickHouse's
/// `DateTime` parses it, and exactly, in milliseconds since 1970), what Roster's
/// contact sync reads of it (the person's address, `data.created_at`, and the version
/// it orders a subject's events by), and the payload as stored, as JSON text.
pub fn event_row(event: &outbox::OutboxEvent) -> Value {
    let time = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
    let data = &event.payload["data"];
    let occurred_at_ms = event.occurred_at.timestamp_millis();
    json!({
        "svix_id": event.svix_id,
        "event_type": event.event_type,
        "subject_id": event.subject_id.as_deref().unwrap_or_default(),
        // What a waitlist entry's lifecycle step turns on (`lifecycle_step` in SQL).
        "status": data["status"].as_str().unwrap_or_default(),
        "occurred_at": time(&event.occurred_at),
        "occurred_at_ms": occurred_at_ms,
        "received_at": time(&event.received_at),
        "received_at_ms": event.received_at.timestamp_millis(),
        "email": person_email(&event.event_type, data),
        "created_at_ms": data["created_at"].as_i64().unwrap_or_default(),
        // The version the sync compares (`SyncEvent::apply`).
        "updated_at_ms": data["updated_at"].as_i64().unwrap_or(occurred_at_ms),
        "payload": event.payload.to_string(),
    })
}

/// The address by which the contact sync finds the person an event is about,
/// lowercased: a user's primary address, a waitlist entry's address; empty for other
/// events (and a user without a primary address).
fn person_email(event_type: &str, data: &Value) -> String {
    let email = match event_type {
        "user.created" | "user.updated" => UserData::deserialize(data)
            .ok()
            .and_then(|user| user.primary_email().map(str::to_owned)),
        "waitlistEntry.created" | "waitlistEntry.updated" => {
            data["email_address"].as_str().map(|e| e.trim().to_owned())
        }
        _ => None,
    };
    email.unwrap_or_default().to_lowercase()
}

/// What `roster forward --since` did.
#[derive(Debug, Default)]
pub struct Backfilled {
    pub forwarded: u64,
}

/// `roster forward --since`: puts every event that happened since `since` in each
/// destination's outbox and sends them all now, in order, waiting out 429s and
/// retrying failures a few times; idempotent (the svix-id dedupes downstream). Events
/// it could not send stay in the outbox for `roster serve`.
pub async fn backfill(
    pool: &PgPool,
    forwarder: &Forwarder,
    since: chrono::DateTime<chrono::Utc>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Backfilled> {
    let names = forwarder.names();
    anyhow::ensure!(
        !names.is_empty(),
        "no destination to forward to: add [forward.tinybird] or [forward.clickhouse] to the config file"
    );
    let pending = outbox::backfill(pool, names, since).await?;
    progress.set_length(u64::try_from(pending).unwrap_or(0));
    let mut done = Backfilled::default();
    for destination in &forwarder.destinations {
        let mut failures = 0;
        loop {
            match outbox::send_batch(pool, destination).await {
                // What `roster serve` holds, it sends.
                Ok(Batch::Empty | Batch::Locked) => break,
                Ok(Batch::Sent(sent)) => {
                    failures = 0;
                    done.forwarded += sent as u64;
                    progress.inc(sent as u64);
                }
                Err(outbox::SendError::Refused(Refusal::RateLimited(after))) => {
                    tokio::time::sleep(after).await;
                }
                Err(error) if failures < BACKFILL_RETRIES => {
                    failures += 1;
                    let wait = crate::jobs::retry::backoff(failures);
                    let name = destination.name();
                    progress.println(format!("{name}: {error}; retrying in {wait:?}"));
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    // Handed to `roster serve`'s forward job, which retries with backoff.
                    outbox::wake(pool, destination.name(), chrono::Utc::now()).await?;
                    anyhow::bail!(
                        "{}: {error}; the events not sent stay in its outbox, which roster serve sends",
                        destination.name()
                    )
                }
            }
        }
    }
    progress.finish();
    Ok(done)
}

/// How often `backfill` retries a failing batch before it gives up.
const BACKFILL_RETRIES: i32 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_person_email_is_the_address_the_sync_matches_lowercased() {
        let user = json!({
            "id": "user_1",
            "primary_email_address_id": "idn_2",
            "email_addresses": [
                {"id": "idn_1", "email_address": "old@example.com"},
                {"id": "idn_2", "email_address": " New@Example.COM "},
            ],
        });
        assert_eq!(person_email("user.updated", &user), "new@example.com");
        let no_primary = json!({"id": "user_1", "email_addresses": []});
        assert_eq!(person_email("user.created", &no_primary), "");
        let entry = json!({"id": "wle_1", "email_address": " Ada@Example.com"});
        assert_eq!(
            person_email("waitlistEntry.created", &entry),
            "ada@example.com"
        );
        let session = json!({"id": "sess_1", "user_id": "user_1"});
        assert_eq!(person_email("session.created", &session), "");
        // An address on an event the sync does not match people by is not read.
        assert_eq!(person_email("email.created", &entry), "");
    }
}
