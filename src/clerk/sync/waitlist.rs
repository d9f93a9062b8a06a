//! `waitlistEntry.created` and `waitlistEntry.updated`: the contact with that email,
//! created if missing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Applied, CLERK_SOURCE, ContactChange, Mode, SyncError, expect_row};
use crate::clerk::envelope::WaitlistEntryData;
use crate::clerk::settings::WaitlistEventSettings;
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
    let (id, change) = match store::find_contact_by_email(conn, email).await? {
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
    // group its user events gave it. A `completed` entry seen after the user's own event
    // (out of order) still records the graduation.
    let row = sqlx::query_as!(
        Contact,
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
         where id = $1
         returning *",
        id,
        entry.id,
        entry.status,
        entry.created_at,
        version,
        settings.user_group,
    )
    .fetch_optional(conn)
    .await?;
    Ok(Applied::new(change, Some(expect_row(row)?)))
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
