//! What one verified, stored Clerk event does, in the caller's transaction: its contact
//! change or its Clerk fact, then (when asked) the workflows it starts. The webhook,
//! `roster replay` and the dashboard's test event all go through here.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::envelope::{Envelope, EnvelopeError};
use super::sync::facts::FactEvent;
use super::sync::{ContactChange, ContactEvent, Mode, SyncError};
use super::triggers::{start_event_workflows, start_workflows};
use crate::config::clerk::ClerkSettings;
use crate::workflows::Workflows;

/// What an event asks of Roster's state, read from its envelope before any write.
#[derive(Debug)]
pub enum SyncEvent<'a> {
    /// A user or waitlist event (one of the five contact events, when turned on).
    Contact(ContactEvent<'a>),
    /// A session, membership, organization or Clerk Billing event that changes a fact.
    Fact(FactEvent),
    /// Any other type: kept in the log, and a trigger.
    Other,
}

impl<'a> SyncEvent<'a> {
    pub fn from_envelope(
        envelope: &Envelope<'_>,
        settings: &'a ClerkSettings,
        occurred_at: DateTime<Utc>,
    ) -> Result<Self, EnvelopeError> {
        if let Some(event) = ContactEvent::from_envelope(envelope, settings)? {
            return Ok(Self::Contact(event));
        }
        Ok(match FactEvent::from_envelope(envelope, occurred_at)? {
            Some(fact) => Self::Fact(fact),
            None => Self::Other,
        })
    }
}

/// What applying an event did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The contact change of a contact event.
    pub change: Option<ContactChange>,
    /// Whether a fact event changed what a contact shows.
    pub facts_changed: bool,
    pub runs_started: usize,
}

/// The stored event whose effects `apply` writes.
pub struct StoredEvent<'a> {
    pub svix_id: &'a str,
    pub event_type: &'a str,
    /// The JSON as stored: secrets removed.
    pub payload: &'a str,
    pub occurred_at: DateTime<Utc>,
}

/// Applies `event` and, with `workflows`, starts the workflows it triggers.
pub async fn apply(
    tx: &mut PgConnection,
    event: &SyncEvent<'_>,
    stored: &StoredEvent<'_>,
    mode: Mode,
    workflows: Option<&Workflows>,
) -> Result<Outcome, SyncError> {
    let mut outcome = Outcome::default();
    let (svix_id, event_type, payload) = (stored.svix_id, stored.event_type, stored.payload);
    match event {
        SyncEvent::Contact(contact_event) => {
            let applied = contact_event.apply(tx, stored.occurred_at, mode).await?;
            outcome.change = Some(applied.change);
            if let Some(workflows) = workflows {
                outcome.runs_started =
                    start_workflows(tx, workflows, svix_id, event_type, payload, &applied).await?;
            }
        }
        SyncEvent::Fact(fact) => {
            let contacts = fact.apply(tx).await?;
            outcome.facts_changed = !contacts.is_empty();
            if let Some(workflows) = workflows {
                let known = contacts.first().filter(|_| fact.user_id().is_some());
                outcome.runs_started =
                    start_event_workflows(tx, workflows, svix_id, event_type, payload, known)
                        .await?;
            }
        }
        SyncEvent::Other => {
            if let Some(workflows) = workflows {
                outcome.runs_started =
                    start_event_workflows(tx, workflows, svix_id, event_type, payload, None)
                        .await?;
            }
        }
    }
    Ok(outcome)
}
