//! When a waitlist contact graduated, worked out from what is stored rather than from
//! the order events arrived in: in event-time order, a user's first event meets the
//! contact holding its address and takes it over.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{SyncError, expect_row};
use crate::contacts::Contact;
use crate::contacts::store;

/// Remembers waitlist entry `entry_id`'s address (see `clerk_waitlist_addresses`).
pub(super) async fn record_entry_address(
    conn: &mut PgConnection,
    entry_id: &str,
    email: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into clerk_waitlist_addresses (entry_id, email) values ($1, lower($2))
         on conflict (entry_id) do nothing",
        entry_id,
        email,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets `contact`'s `graduated_at` to what event-time order gives, now that its
/// user's addresses or its waitlist entry may have changed. A contact that is a user's
/// and has a waitlist entry graduated:
/// - when the user's first event carried the entry's address and came after the entry
///   joined: at that event's time;
/// - else, when Clerk marked the entry `completed` (a user who had the address
///   before joining the waitlist): when the entry was completed.
///
/// Returns the contact, and whether it graduated just now.
pub(super) async fn refresh(
    conn: &mut PgConnection,
    contact: Contact,
) -> Result<(Contact, bool), SyncError> {
    let (Some(user_id), Some(entry_id)) = (&contact.user_id, &contact.waitlist_entry_id) else {
        return Ok((contact, false));
    };
    // The user's addresses as their events left them: a user event running now (which
    // holds this lock) is waited for. A waitlist event takes it after the address's,
    // as `waitlist::graduated_by` does; a cycle with a user event is broken by
    // Postgres, and the loser answers 503, to be retried.
    store::lock_person(conn, Some(user_id), None).await?;
    let first = sqlx::query!(
        "select email, first_seen from clerk_user_addresses
         where user_id = $1 order by first_seen, email limit 1",
        user_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let entry_email = sqlx::query_scalar!(
        "select email from clerk_waitlist_addresses where entry_id = $1",
        entry_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let graduated_at = match first {
        Some(first)
            if Some(&first.email) == entry_email.as_ref()
                && joined_before(&contact, first.first_seen) =>
        {
            Some(first.first_seen)
        }
        _ if contact.waitlist_status.as_deref() == Some("completed") => contact.waitlist_updated_at,
        _ => None,
    };
    if graduated_at == contact.graduated_at {
        return Ok((contact, false));
    }
    let row = sqlx::query_as!(
        Contact,
        "update contacts set graduated_at = $2, updated_at = now() where id = $1 returning *",
        contact.id,
        graduated_at,
    )
    .fetch_optional(conn)
    .await?;
    let graduated_now = contact.graduated_at.is_none() && graduated_at.is_some();
    Ok((expect_row(row)?, graduated_now))
}

/// Whether waitlist contact `holder` joined before a user event at `version`: only then
/// would that event, delivered in order, have graduated it.
pub(super) fn joined_before(holder: &Contact, version: DateTime<Utc>) -> bool {
    holder
        .waitlist_joined_at
        .or(holder.waitlist_updated_at)
        .is_some_and(|joined| joined < version)
}
