//! `waitlistEntry.created` and `waitlistEntry.updated`: the contact with that email,
//! created if missing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Applied, CLERK_SOURCE, ContactChange, Mode, SyncError, expect_row, graduation, users};
use crate::clerk::envelope::WaitlistEntryData;
use crate::config::clerk::WaitlistEventSettings;
use crate::contacts::Contact;
use crate::contacts::store::{self, NewContact};

pub(super) async fn upsert_waitlist_entry(
    conn: &mut PgConnection,
    entry: &WaitlistEntryData,
    settings: &WaitlistEventSettings,
    version: DateTime<Utc>,
    mode: Mode,
) -> Result<Applied, SyncError> {
    let email = entry.email_address.trim();
    if email.is_empty() {
        return Ok(Applied::new(ContactChange::NoEmail, None));
    }
    store::lock_person(conn, None, Some(email)).await?;
    graduation::record_entry_address(conn, &entry.id, email).await?;
    // The contact with the address, else the one of the user who had it after the
    // entry joined (in order, that user's event would have graduated the entry's
    // contact, which has moved with the user since).
    let found = match store::find_contact_by_email(conn, email).await? {
        Some(contact) => Some(contact),
        None => {
            match graduated_by(conn, email, entry.created_at.unwrap_or(version), version).await? {
                Graduate::Contact(contact) => Some(*contact),
                Graduate::Deleted => return Ok(Applied::new(ContactChange::Stale, None)),
                Graduate::Nobody => None,
            }
        }
    };
    let (id, change) = match found {
        Some(contact) => {
            if contact
                .waitlist_updated_at
                .is_some_and(|applied| mode.is_stale(applied, version))
            {
                return Ok(Applied::new(ContactChange::Stale, Some(contact)));
            }
            (contact.id, ContactChange::Updated)
        }
        None => {
            if deleted_at_of_address(conn, email)
                .await?
                .is_some_and(|deleted| version <= deleted)
            {
                // The person's account was deleted (and its contact with it) after this.
                return Ok(Applied::new(ContactChange::Stale, None));
            }
            let new = NewContact {
                email,
                source: CLERK_SOURCE,
                ..NewContact::default()
            };
            (
                store::insert_contact(conn, &new).await?.id,
                ContactChange::Created,
            )
        }
    };
    // The waitlist user group is for people who are not users yet; a graduate keeps the
    // group its user events gave it.
    let row = sqlx::query_as!(
        Contact,
        "update contacts set
             waitlist_entry_id = $2,
             waitlist_status = $3,
             waitlist_joined_at = coalesce($4, waitlist_joined_at),
             waitlist_updated_at = $5,
             user_group = case when user_id is null then coalesce($6, user_group) else user_group end,
             updated_at = now()
         where id = $1
         returning *",
        id,
        entry.id,
        entry.status,
        entry.created_at,
        version,
        settings.user_group,
    )
    .fetch_optional(&mut *conn)
    .await?;
    // The user whose contact this is may have graduated the entry (in order, their
    // first event met the entry's own contact), or Clerk completed it.
    let (contact, graduated) = graduation::refresh(conn, expect_row(row)?).await?;
    let change = if graduated {
        ContactChange::Graduated
    } else {
        change
    };
    Ok(Applied::new(change, Some(contact)))
}

/// Whose the waitlist contact for `email`, joined at `joined`, would be in event-time
/// order, when no contact holds the address now.
enum Graduate {
    /// The contact of a user who had the address after the entry joined.
    Contact(Box<Contact>),
    /// That user was deleted after this entry, and their contact with it.
    Deleted,
    /// No user had the address since: the entry is a contact of its own.
    Nobody,
}

async fn graduated_by(
    conn: &mut PgConnection,
    email: &str,
    joined: DateTime<Utc>,
    version: DateTime<Utc>,
) -> Result<Graduate, SyncError> {
    let user = sqlx::query_scalar!(
        "select user_id from clerk_user_addresses
         where email = lower($1) and last_seen > $2
         order by last_seen desc limit 1",
        email,
        joined,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = user else {
        return Ok(Graduate::Nobody);
    };
    store::lock_person(conn, Some(&user), None).await?;
    if let Some(contact) = store::find_contact_by_user_id(conn, &user).await? {
        return Ok(Graduate::Contact(Box::new(contact)));
    }
    // Joining again after the deletion is a new start.
    let deleted = users::deleted_at(conn, &user).await?;
    Ok(match deleted.filter(|deleted| version <= *deleted) {
        Some(_) => Graduate::Deleted,
        None => Graduate::Nobody,
    })
}

/// When the last Clerk user with this address was deleted, if one was.
async fn deleted_at_of_address(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select max(deleted_at) from clerk_user_deletions where lower(email) = lower($1)",
        email
    )
    .fetch_one(conn)
    .await
}
