//! `user.created`, `user.updated` and `user.deleted`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::facts::{UserFacts, write_user_facts};
use super::graduation;
use super::{Applied, CLERK_SOURCE, ContactChange, Mode, SyncError, expect_row};
use crate::clerk::envelope::UserData;
use crate::config::clerk::{DeletedUserAction, UserEventSettings};
use crate::contacts::Contact;
use crate::contacts::store::{self, NewContact};

/// By user ID, else by primary email (the waitlist graduation case), else a new contact.
///
/// An event older than the user's deletion (delivered after it) still applies its
/// fields beneath the tombstone, as it would have in order, but never resubscribes:
/// in unsubscribe mode the contact ends unsubscribed (created so, if the deletion
/// arrived first); in delete mode nothing is kept, and a waitlist contact this event
/// would have graduated goes too.
/// A `user.created` or `user.updated`: its data, the facts it carries, and the
/// settings of its type.
pub(super) struct UserEvent<'a> {
    pub user: &'a UserData,
    pub facts: &'a UserFacts,
    pub settings: &'a UserEventSettings,
}

pub(super) async fn upsert_user(
    conn: &mut PgConnection,
    event: &UserEvent<'_>,
    on_deletion: DeletedUserAction,
    version: DateTime<Utc>,
    mode: Mode,
) -> Result<Applied, SyncError> {
    let user = event.user;
    let email = user.primary_email();
    store::lock_person(conn, Some(&user.id), email).await?;
    if let Some(email) = email {
        record_address(conn, &user.id, email, version).await?;
    }
    let beneath = deleted_at(conn, &user.id)
        .await?
        .filter(|deleted| version <= *deleted);
    if let Some(deleted) = beneath {
        if on_deletion == DeletedUserAction::Delete {
            forget_beneath_deletion(conn, &user.id, email).await?;
            return Ok(Applied::new(ContactChange::Stale, None));
        }
        let mut applied = upsert_live_user(conn, event, email, version, mode).await?;
        if let Some(contact) = applied
            .contact
            .as_ref()
            .filter(|_| applied.change != ContactChange::Stale)
        {
            let unsubscribed = keep_unsubscribed(conn, contact.id, deleted).await?;
            applied.created_beneath_deletion = applied.change == ContactChange::Created;
            // The lifecycle of this person ended with the deletion.
            applied.change = ContactChange::Updated;
            applied.contact = Some(unsubscribed);
        }
        return Ok(applied);
    }
    upsert_live_user(conn, event, email, version, mode).await
}

/// In delete mode, an event older than the deletion keeps nothing: its address goes
/// on the tombstone (so a late waitlist event cannot bring the person back), and a
/// contact that is no user's with that address (a waitlist entry this event would
/// have graduated, and the deletion then removed) is deleted.
async fn forget_beneath_deletion(
    conn: &mut PgConnection,
    user_id: &str,
    email: Option<&str>,
) -> Result<(), SyncError> {
    let Some(email) = email else {
        return Ok(());
    };
    sqlx::query!(
        "update clerk_user_deletions set email = coalesce(email, $2) where user_id = $1",
        user_id,
        email
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "delete from contacts where lower(email) = lower($1) and user_id is null",
        email
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Unsubscribes contact `id` as of the deletion at `deleted`, if it is not already: what
/// a deletion does in unsubscribe mode, and what an older event beneath it keeps.
async fn keep_unsubscribed(
    conn: &mut PgConnection,
    id: Uuid,
    deleted: DateTime<Utc>,
) -> Result<Contact, SyncError> {
    let row = sqlx::query_as!(
        Contact,
        "update contacts set
             subscribed = false,
             unsubscribed_at = coalesce(unsubscribed_at, $2),
             updated_at = now()
         where id = $1
         returning *",
        id,
        deleted,
    )
    .fetch_optional(conn)
    .await?;
    expect_row(row)
}

/// The sync of a user event whose user is not deleted (or that is newer than the
/// deletion), the person's locks already held.
async fn upsert_live_user(
    conn: &mut PgConnection,
    event: &UserEvent<'_>,
    email: Option<&str>,
    version: DateTime<Utc>,
    mode: Mode,
) -> Result<Applied, SyncError> {
    let (user, settings) = (event.user, event.settings);
    let Some(email) = email else {
        return Ok(Applied::new(ContactChange::NoEmail, None));
    };

    let by_user_id = store::find_contact_by_user_id(conn, &user.id).await?;
    let applied = by_user_id.as_ref().and_then(|c| c.clerk_updated_at);
    if applied.is_some_and(|applied| mode.is_stale(applied, version)) {
        let Some(contact) = by_user_id else {
            return Ok(Applied::new(ContactChange::Stale, None));
        };
        // Older, it may still be the user's first event: the one that, in order, met
        // the waitlist contact.
        let merged = merge_late(conn, &contact, email, version).await?;
        let change = match merged {
            Some(_) => ContactChange::Updated,
            None => ContactChange::Stale,
        };
        let (contact, graduated) = graduation::refresh(conn, merged.unwrap_or(contact)).await?;
        return Ok(Applied::new(graduated_or(change, graduated), Some(contact)));
    }
    let moved_from = by_user_id
        .as_ref()
        .map(|c| c.email.as_str())
        .filter(|old| old.to_lowercase() != email.to_lowercase());
    if let Some(old) = moved_from {
        // A waitlist event for the old address waits until the move is done. Two users
        // swapping addresses at one instant can deadlock here: Postgres breaks it and
        // the loser answers 503, to be retried.
        store::lock_person(conn, None, Some(old)).await?;
    }
    // Only a new contact, or a changed address, needs to know who holds the address.
    let holder = match (&by_user_id, moved_from) {
        (Some(_), None) => None,
        _ => store::find_contact_by_email(conn, email).await?,
    };
    if let Some(other_user) = holder.as_ref().and_then(|h| h.user_id.as_deref())
        && deleted_at(conn, other_user).await?.is_none()
    {
        // Clerk has moved the address from that user to this one; this event can only
        // apply after that user's own update has freed it.
        tracing::warn!(user_id = %user.id, other_user_id = %other_user, "email still on another user's contact");
        return Err(SyncError::EmailHeldByAnotherUser);
    }

    let (id, change) = match (by_user_id, holder) {
        (Some(contact), Some(holder)) => {
            merge_contacts(conn, contact.id, holder.id).await?;
            (contact.id, ContactChange::Updated)
        }
        (Some(contact), None) => (contact.id, ContactChange::Updated),
        // A waitlist or API contact, or a deleted user's, becomes this user's (a waitlist
        // contact graduating, when `graduation::refresh` says so).
        (None, Some(holder)) => (holder.id, ContactChange::Updated),
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
            let contact = store::insert_contact(conn, &new).await?;
            let contact = write_user_facts(conn, contact.id, &user.id, event.facts).await?;
            return Ok(Applied::new(
                ContactChange::Created,
                Some(expect_row(contact)?),
            ));
        }
    };
    update_user_contact(conn, id, user, email, settings, version).await?;
    let contact = expect_row(write_user_facts(conn, id, &user.id, event.facts).await?)?;
    let (contact, graduated) = graduation::refresh(conn, contact).await?;
    Ok(Applied::new(graduated_or(change, graduated), Some(contact)))
}

/// `Graduated` when the event graduated the contact, else `change`.
fn graduated_or(change: ContactChange, graduated: bool) -> ContactChange {
    if graduated {
        ContactChange::Graduated
    } else {
        change
    }
}

/// Remembers that the user had `email` at `version` (see `clerk_user_addresses`).
async fn record_address(
    conn: &mut PgConnection,
    user_id: &str,
    email: &str,
    version: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into clerk_user_addresses (user_id, email, first_seen, last_seen)
         values ($1, lower($2), $3, $3)
         on conflict (email, user_id) do update set
             first_seen = least(clerk_user_addresses.first_seen, excluded.first_seen),
             last_seen = greatest(clerk_user_addresses.last_seen, excluded.last_seen)",
        user_id,
        email,
        version,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An event older than what the user's contact reflects, carrying an address the
/// contact has since left: had it arrived in order, the user would have met the
/// waitlist contact that holds that address (one that joined before it). That contact
/// is merged in now. Returns the contact after the merge, if there was one.
async fn merge_late(
    conn: &mut PgConnection,
    contact: &Contact,
    email: &str,
    version: DateTime<Utc>,
) -> Result<Option<Contact>, SyncError> {
    if contact.email.eq_ignore_ascii_case(email) {
        return Ok(None);
    }
    // `email` is the event's address: its lock is held since `upsert_user` began.
    let Some(holder) = store::find_contact_by_email(conn, email).await? else {
        return Ok(None);
    };
    if holder.user_id.is_some()
        || holder.waitlist_entry_id.is_none()
        || !graduation::joined_before(&holder, version)
    {
        return Ok(None);
    }
    merge_contacts(conn, contact.id, holder.id).await?;
    Ok(Some(expect_row(
        store::find_contact_by_id(conn, contact.id).await?,
    )?))
}

/// Writes a Clerk user's fields onto contact `id`. Names overwrite when `update_names`
/// is on and otherwise only fill empty ones.
async fn update_user_contact(
    conn: &mut PgConnection,
    id: Uuid,
    user: &UserData,
    email: &str,
    settings: &UserEventSettings,
    version: DateTime<Utc>,
) -> Result<Contact, SyncError> {
    let row = sqlx::query_as!(
        Contact,
        "update contacts set
             email = $2,
             first_name = case when $3 then $4 else coalesce(first_name, $4) end,
             last_name = case when $3 then $5 else coalesce(last_name, $5) end,
             user_group = coalesce($6, user_group),
             user_id = $7,
             clerk_updated_at = $8,
             updated_at = now()
         where id = $1
         returning *",
        id,
        email,
        settings.update_names,
        user.first_name,
        user.last_name,
        settings.user_group,
        user.id,
        version,
    )
    .fetch_optional(conn)
    .await?;
    expect_row(row)
}

/// Folds contact `absorbed` (which holds the address a user moved to) into `kept`, and
/// deletes it. Every opt-out survives: unsubscribed if either was.
async fn merge_contacts(
    conn: &mut PgConnection,
    kept: Uuid,
    absorbed: Uuid,
) -> Result<(), SyncError> {
    let result = sqlx::query!(
        "with absorbed as (delete from contacts where id = $2 returning *)
         update contacts c set
             subscribed = c.subscribed and absorbed.subscribed,
             unsubscribed_at = coalesce(c.unsubscribed_at, absorbed.unsubscribed_at),
             opt_in_status = coalesce(c.opt_in_status, absorbed.opt_in_status),
             first_name = coalesce(c.first_name, absorbed.first_name),
             last_name = coalesce(c.last_name, absorbed.last_name),
             user_group = coalesce(c.user_group, absorbed.user_group),
             mailing_lists = absorbed.mailing_lists || c.mailing_lists,
             properties = absorbed.properties || c.properties,
             waitlist_entry_id = coalesce(c.waitlist_entry_id, absorbed.waitlist_entry_id),
             waitlist_status = coalesce(c.waitlist_status, absorbed.waitlist_status),
             waitlist_joined_at = coalesce(c.waitlist_joined_at, absorbed.waitlist_joined_at),
             waitlist_updated_at = coalesce(c.waitlist_updated_at, absorbed.waitlist_updated_at),
             updated_at = now()
         from absorbed
         where c.id = $1",
        kept,
        absorbed,
    )
    .execute(conn)
    .await?;
    match result.rows_affected() {
        1 => Ok(()),
        _ => Err(SyncError::ContactChanged),
    }
}

/// When user `user_id` was deleted, if they were (their tombstone).
pub(super) async fn deleted_at(
    conn: &mut PgConnection,
    user_id: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select deleted_at from clerk_user_deletions where user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// Leaves a tombstone (with the address the user had, so that a late waitlist event
/// cannot bring the person back either), then unsubscribes or deletes the contact.
pub(super) async fn delete_user(
    conn: &mut PgConnection,
    user_id: &str,
    action: DeletedUserAction,
    deleted_at: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    store::lock_person(conn, Some(user_id), None).await?;
    let contact = store::find_contact_by_user_id(conn, user_id).await?;
    if let Some(contact) = &contact {
        // Writers that find the contact by address (waitlist events) wait for this one.
        store::lock_person(conn, None, Some(&contact.email)).await?;
    }
    sqlx::query!(
        "insert into clerk_user_deletions (user_id, deleted_at, email) values ($1, $2, $3)
         on conflict (user_id) do update set
             deleted_at = greatest(clerk_user_deletions.deleted_at, excluded.deleted_at),
             email = coalesce(excluded.email, clerk_user_deletions.email)",
        user_id,
        deleted_at,
        contact.as_ref().map(|c| c.email.as_str()),
    )
    .execute(&mut *conn)
    .await?;
    let Some(contact) = contact else {
        return Ok(Applied::new(ContactChange::NoContact, None));
    };
    match action {
        DeletedUserAction::Delete => {
            let row = sqlx::query_as!(
                Contact,
                "delete from contacts where id = $1 returning *",
                contact.id
            )
            .fetch_optional(conn)
            .await?;
            Ok(Applied::new(ContactChange::Deleted, Some(expect_row(row)?)))
        }
        DeletedUserAction::Unsubscribe => Ok(Applied::new(
            ContactChange::Unsubscribed,
            Some(keep_unsubscribed(conn, contact.id, deleted_at).await?),
        )),
    }
}
