//! The Clerk sync rules (CONTRACT 3.1): which contact an event is about, whether it is
//! newer than what the contact reflects, and what it changes. Runs inside the webhook's
//! transaction, after the event is stored.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::envelope::{DeletedUserData, Envelope, EnvelopeError, UserData, WaitlistEntryData};
use super::settings::{ClerkSettings, DeletedUserAction, UserEventSettings, WaitlistEventSettings};
use crate::contacts::Contact;
use crate::contacts::store::{self, NewContact};

/// `source` of every contact Clerk creates.
const CLERK_SOURCE: &str = "Clerk";

/// An event that changes contacts, with the settings that govern it.
#[derive(Debug)]
pub enum ContactEvent<'a> {
    UserUpserted(UserData, &'a UserEventSettings),
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
    /// Older than what the contact already reflects, or than the user's deletion.
    Stale,
    /// The event carries no email address, so there is no contact to keep.
    NoEmail,
    /// A deletion for a user Roster has no contact for.
    NoContact,
}

impl<'a> ContactEvent<'a> {
    /// The contact change this envelope asks for: `None` when the event type changes no
    /// contact or is turned off in the settings.
    pub fn from_envelope(
        envelope: &Envelope<'_>,
        settings: &'a ClerkSettings,
    ) -> Result<Option<Self>, EnvelopeError> {
        let event = match envelope.event_type.as_ref() {
            "user.created" if settings.user_created.enabled => {
                Self::UserUpserted(envelope.data()?, &settings.user_created)
            }
            "user.updated" if settings.user_updated.enabled => {
                Self::UserUpserted(envelope.data()?, &settings.user_updated)
            }
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
    ) -> sqlx::Result<ContactChange> {
        match self {
            Self::UserUpserted(user, settings) => {
                let version = user.updated_at.unwrap_or(occurred_at);
                upsert_user(conn, user, settings, version).await
            }
            Self::UserDeleted(user, action) => {
                delete_user(conn, &user.id, *action, occurred_at).await
            }
            Self::WaitlistEntry(entry, settings) => {
                let version = entry.updated_at.unwrap_or(occurred_at);
                upsert_waitlist_entry(conn, entry, settings, version).await
            }
        }
    }
}

/// `user.created` / `user.updated`: by user ID, else by primary email, else a new contact.
async fn upsert_user(
    conn: &mut PgConnection,
    user: &UserData,
    settings: &UserEventSettings,
    version: DateTime<Utc>,
) -> sqlx::Result<ContactChange> {
    let email = user.primary_email();
    store::lock_person(conn, Some(&user.id), email).await?;
    if deleted_at(conn, &user.id)
        .await?
        .is_some_and(|deleted| version <= deleted)
    {
        return Ok(ContactChange::Stale);
    }
    let Some(email) = email else {
        return Ok(ContactChange::NoEmail);
    };

    let by_user_id = store::find_contact_by_user_id(conn, &user.id).await?;
    let applied = by_user_id.as_ref().and_then(|c| c.clerk_updated_at);
    if applied.is_some_and(|applied| applied >= version) {
        return Ok(ContactChange::Stale);
    }
    // Only a new contact, or a changed address, needs to know who holds the address.
    let holder = match &by_user_id {
        Some(contact) if contact.email.to_lowercase() == email.to_lowercase() => None,
        _ => store::find_contact_by_email(conn, email)
            .await?
            .filter(|holder| by_user_id.as_ref().is_none_or(|c| c.id != holder.id)),
    };
    let (id, change) = match (by_user_id, holder) {
        // The user's new primary email is held by another contact.
        (Some(contact), Some(holder)) => {
            if !take_email_from(conn, &contact, &holder).await? {
                tracing::warn!(
                    contact_id = %contact.id,
                    other_contact_id = %holder.id,
                    "primary email belongs to another Clerk user's contact; keeping the old email"
                );
                update_user_contact(conn, contact.id, user, None, settings, version, false).await?;
                return Ok(ContactChange::Updated);
            }
            (contact.id, ContactChange::Updated)
        }
        (Some(contact), None) => (contact.id, ContactChange::Updated),
        // The waitlist graduation case: a contact known by email becomes this user.
        (None, Some(contact)) => {
            let graduates = contact.user_id.is_none() && contact.waitlist_entry_id.is_some();
            let change = if graduates {
                ContactChange::Graduated
            } else {
                ContactChange::Updated
            };
            (contact.id, change)
        }
        (None, None) => {
            let new = NewContact {
                email,
                first_name: user.first_name.as_deref(),
                last_name: user.last_name.as_deref(),
                source: CLERK_SOURCE,
                user_group: settings.user_group.as_deref(),
                user_id: Some(&user.id),
                clerk_updated_at: Some(version),
            };
            store::insert_contact(conn, &new).await?;
            return Ok(ContactChange::Created);
        }
    };
    let graduated = change == ContactChange::Graduated;
    update_user_contact(conn, id, user, Some(email), settings, version, graduated).await?;
    Ok(change)
}

/// Writes a Clerk user's fields onto `contact`. Names overwrite when `update_names` is on
/// and otherwise only fill empty ones.
async fn update_user_contact(
    conn: &mut PgConnection,
    id: Uuid,
    user: &UserData,
    email: Option<&str>,
    settings: &UserEventSettings,
    version: DateTime<Utc>,
    graduated: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update contacts set
             email = coalesce($2, email),
             first_name = case when $3 then $4 else coalesce(first_name, $4) end,
             last_name = case when $3 then $5 else coalesce(last_name, $5) end,
             user_group = coalesce($6, user_group),
             user_id = $7,
             clerk_updated_at = $8,
             graduated_at = case when $9 then coalesce(graduated_at, $8) else graduated_at end,
             updated_at = now()
         where id = $1",
        id,
        email,
        settings.update_names,
        user.first_name,
        user.last_name,
        settings.user_group,
        user.id,
        version,
        graduated,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A user's new primary email is held by `other`. A contact that is no Clerk user (a
/// waitlist entry, an API contact) is merged into the user's contact; another user's
/// contact keeps it (Clerk's own update for that user will free it). Returns whether the
/// email is now free.
async fn take_email_from(
    conn: &mut PgConnection,
    contact: &Contact,
    other: &Contact,
) -> sqlx::Result<bool> {
    if other.user_id.is_some() {
        return Ok(false);
    }
    sqlx::query!(
        "with merged as (
             delete from contacts where id = $2
             returning waitlist_entry_id, waitlist_status, waitlist_joined_at, waitlist_updated_at
         )
         update contacts c set
             waitlist_entry_id = coalesce(c.waitlist_entry_id, merged.waitlist_entry_id),
             waitlist_status = coalesce(c.waitlist_status, merged.waitlist_status),
             waitlist_joined_at = coalesce(c.waitlist_joined_at, merged.waitlist_joined_at),
             waitlist_updated_at = coalesce(c.waitlist_updated_at, merged.waitlist_updated_at)
         from merged
         where c.id = $1",
        contact.id,
        other.id,
    )
    .execute(conn)
    .await?;
    Ok(true)
}

async fn deleted_at(conn: &mut PgConnection, user_id: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select deleted_at from clerk_user_deletions where user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// `user.deleted`: leaves a tombstone, then unsubscribes or deletes the contact.
async fn delete_user(
    conn: &mut PgConnection,
    user_id: &str,
    action: DeletedUserAction,
    deleted_at: DateTime<Utc>,
) -> sqlx::Result<ContactChange> {
    store::lock_person(conn, Some(user_id), None).await?;
    sqlx::query!(
        "insert into clerk_user_deletions (user_id, deleted_at) values ($1, $2)
         on conflict (user_id) do update
             set deleted_at = greatest(clerk_user_deletions.deleted_at, excluded.deleted_at)",
        user_id,
        deleted_at,
    )
    .execute(&mut *conn)
    .await?;
    let Some(contact) = store::find_contact_by_user_id(conn, user_id).await? else {
        return Ok(ContactChange::NoContact);
    };
    match action {
        DeletedUserAction::Delete => {
            store::delete_contact(conn, contact.id).await?;
            Ok(ContactChange::Deleted)
        }
        DeletedUserAction::Unsubscribe => {
            sqlx::query!(
                "update contacts set
                     subscribed = false,
                     unsubscribed_at = coalesce(unsubscribed_at, $2),
                     clerk_updated_at = greatest(clerk_updated_at, $2),
                     updated_at = now()
                 where id = $1",
                contact.id,
                deleted_at,
            )
            .execute(conn)
            .await?;
            Ok(ContactChange::Unsubscribed)
        }
    }
}

/// `waitlistEntry.created` / `.updated`: the contact with that email, created if missing.
async fn upsert_waitlist_entry(
    conn: &mut PgConnection,
    entry: &WaitlistEntryData,
    settings: &WaitlistEventSettings,
    version: DateTime<Utc>,
) -> sqlx::Result<ContactChange> {
    let email = entry.email_address.trim();
    if email.is_empty() {
        return Ok(ContactChange::NoEmail);
    }
    store::lock_person(conn, None, Some(email)).await?;
    let (id, change) = match store::find_contact_by_email(conn, email).await? {
        Some(contact)
            if contact
                .waitlist_updated_at
                .is_some_and(|applied| applied >= version) =>
        {
            return Ok(ContactChange::Stale);
        }
        Some(contact) => (contact.id, ContactChange::Updated),
        None => {
            let new = NewContact {
                email,
                source: CLERK_SOURCE,
                ..NewContact::default()
            };
            (
                store::insert_contact(conn, &new).await?,
                ContactChange::Created,
            )
        }
    };
    // The waitlist user group is for people who are not users yet; a graduate keeps the
    // group its user events gave it. A `completed` entry seen after the user's own event
    // (out of order) still records the graduation.
    sqlx::query!(
        "update contacts set
             waitlist_entry_id = $2,
             waitlist_status = $3,
             waitlist_joined_at = coalesce($4, waitlist_joined_at),
             waitlist_updated_at = $5,
             user_group = case when user_id is null then coalesce($6, user_group) else user_group end,
             graduated_at = case when user_id is not null and $3 = 'completed'
                                 then coalesce(graduated_at, clerk_updated_at)
                                 else graduated_at end,
             updated_at = now()
         where id = $1",
        id,
        entry.id,
        entry.status,
        entry.created_at,
        version,
        settings.user_group,
    )
    .execute(conn)
    .await?;
    Ok(change)
}
