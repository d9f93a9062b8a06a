//! The Clerk sync rules (README, "Sync rules"): which contact an event is about, whether it is
//! newer than what the contact reflects, and what it changes. Runs inside the webhook's
//! transaction, after the event is stored.
//!
//! Writers serialise on the person: the Clerk user ID first, then email addresses (see
//! `contacts::store::lock_person`), and read only after their locks are held.

pub mod billing;
pub mod facts;
mod graduation;
mod users;
mod waitlist;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::envelope::{DeletedUserData, Envelope, EnvelopeError, UserData, WaitlistEntryData};
use crate::config::clerk::{
    ClerkSettings, DeletedUserAction, UserEventSettings, WaitlistEventSettings,
};
use crate::contacts::Contact;
use crate::contacts::lifecycle::LifecycleEvent;
use facts::UserFacts;

/// `source` of every contact Clerk creates.
const CLERK_SOURCE: &str = "Clerk";

/// An event that changes contacts, with the settings that govern it.
#[derive(Debug)]
pub enum ContactEvent<'a> {
    /// With the facts it carries, and what a deletion of the user does, for events
    /// older than one.
    UserUpserted(
        Box<UserData>,
        UserFacts,
        &'a UserEventSettings,
        DeletedUserAction,
    ),
    UserDeleted(DeletedUserData, DeletedUserAction),
    WaitlistEntry(WaitlistEntryData, &'a WaitlistEventSettings),
}

/// What an event did to the contacts table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactChange {
    Created,
    Updated,
    /// A waitlist contact became a Clerk user.
    Graduated,
    Unsubscribed,
    Deleted,
    /// Older than what the contact already reflects, or than the person's deletion.
    Stale,
    /// The event carries no email address, so there is no contact to keep.
    NoEmail,
    /// A deletion for a user Roster has no contact for.
    NoContact,
}

impl ContactChange {
    /// The lifecycle event Roster emits for this change, which workflows can trigger on.
    pub fn lifecycle_event(self) -> Option<LifecycleEvent> {
        match self {
            Self::Created => Some(LifecycleEvent::Created),
            Self::Graduated => Some(LifecycleEvent::Graduated),
            Self::Unsubscribed => Some(LifecycleEvent::Unsubscribed),
            _ => None,
        }
    }
}

/// How an event's version is compared with what the contact already reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A delivery: it must be newer, so a retried or replayed delivery changes nothing.
    Live,
    /// `roster replay`: the stored log is applied again, so an event as new as what
    /// the contact reflects is applied again (with today's settings).
    Replay,
}

impl Mode {
    /// Whether an event at `version` is stale when `applied` is already reflected.
    fn is_stale(self, applied: DateTime<Utc>, version: DateTime<Utc>) -> bool {
        match self {
            Self::Live => applied >= version,
            Self::Replay => applied > version,
        }
    }
}

/// What applying an event did, and the contact it is about: as it is now, or, for a
/// deletion, as it was (a goodbye workflow still needs its address).
#[derive(Debug)]
pub struct Applied {
    pub change: ContactChange,
    pub contact: Option<Contact>,
    /// The contact was created by an event older than the user's deletion, which
    /// arrived first: the deletion's own workflows (a goodbye) can start now that
    /// there is an address.
    pub created_beneath_deletion: bool,
}

impl Applied {
    fn new(change: ContactChange, contact: Option<Contact>) -> Self {
        Self {
            change,
            contact,
            created_beneath_deletion: false,
        }
    }
}

/// Why an event cannot be applied now. Each is cured by time, so the delivery is
/// answered 503 and Svix retries it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Clerk gave this user an address that Roster still has on another live user's
    /// contact: that user's own update, which frees it, has not arrived yet.
    #[error("the email address still belongs to another user's contact")]
    EmailHeldByAnotherUser,
    /// The row looked up was gone when written: a concurrent change won.
    #[error("the contact changed while the event was applied")]
    ContactChanged,
}

impl<'a> ContactEvent<'a> {
    /// The contact change this envelope asks for: `None` when the event type changes no
    /// contact or is turned off in the settings.
    pub fn from_envelope(
        envelope: &Envelope<'_>,
        settings: &'a ClerkSettings,
    ) -> Result<Option<Self>, EnvelopeError> {
        let user = |user_settings| -> Result<Self, EnvelopeError> {
            let user: Box<UserData> = Box::new(envelope.data()?);
            let facts = UserFacts::of(&user, &settings.properties);
            Ok(Self::UserUpserted(
                user,
                facts,
                user_settings,
                settings.user_deleted.action,
            ))
        };
        let event = match envelope.event_type.as_ref() {
            "user.created" if settings.user_created.enabled => user(&settings.user_created)?,
            "user.updated" if settings.user_updated.enabled => user(&settings.user_updated)?,
            "user.deleted" if settings.user_deleted.enabled => {
                Self::UserDeleted(envelope.data()?, settings.user_deleted.action)
            }
            "waitlistEntry.created" if settings.waitlist_entry_created.enabled => {
                Self::WaitlistEntry(envelope.data()?, &settings.waitlist_entry_created)
            }
            "waitlistEntry.updated" if settings.waitlist_entry_updated.enabled => {
                Self::WaitlistEntry(envelope.data()?, &settings.waitlist_entry_updated)
            }
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    /// Applies the event. `occurred_at` is the envelope time, used as the version of
    /// deletions and of events whose `data.updated_at` is missing.
    pub async fn apply(
        &self,
        conn: &mut PgConnection,
        occurred_at: DateTime<Utc>,
        mode: Mode,
    ) -> Result<Applied, SyncError> {
        match self {
            Self::UserUpserted(user, facts, settings, on_deletion) => {
                let version = user.updated_at.unwrap_or(occurred_at);
                let user = users::UserEvent {
                    user,
                    facts,
                    settings,
                };
                users::upsert_user(conn, &user, *on_deletion, version, mode).await
            }
            Self::UserDeleted(user, action) => {
                users::delete_user(conn, &user.id, *action, occurred_at).await
            }
            Self::WaitlistEntry(entry, settings) => {
                let version = entry.updated_at.unwrap_or(occurred_at);
                waitlist::upsert_waitlist_entry(conn, entry, settings, version, mode).await
            }
        }
    }
}

/// The written row, or `ContactChanged` when the write found no row.
fn expect_row(row: Option<Contact>) -> Result<Contact, SyncError> {
    row.ok_or(SyncError::ContactChanged)
}
