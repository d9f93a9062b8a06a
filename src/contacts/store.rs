//! The contact look-ups and writes that `contacts::write` and the Clerk sync share (the
//! sync also writes targeted fields itself, in `clerk/sync/`). Writers serialise on the person
//! (`lock_person`) before they look a contact up and write it, so two deliveries about
//! one person never race into a unique violation.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Contact;

/// Takes the transaction-scoped locks for a person: their Clerk user ID and their email
/// address (case-insensitive), either of which may be absent. One statement, user before
/// email, so writers never wait on each other in a cycle.
pub async fn lock_person(
    conn: &mut PgConnection,
    user_id: Option<&str>,
    email: Option<&str>,
) -> sqlx::Result<()> {
    // A null key skips its lock: the functions are strict. The address is lowered by
    // Postgres, as the unique index on contacts lowers it. Released at commit/rollback.
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('user:' || $1, 0)),
                pg_advisory_xact_lock(hashtextextended('email:' || lower($2), 0))",
        user_id,
        email,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_contact_by_user_id(
    conn: &mut PgConnection,
    user_id: &str,
) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(
        Contact,
        "select * from contacts where user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn find_contact_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(
        Contact,
        "select * from contacts where lower(email) = lower($1)",
        email
    )
    .fetch_optional(conn)
    .await
}

/// The fields a new contact starts with; everything else takes its default.
#[derive(Debug, Default)]
pub struct NewContact<'a> {
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub source: &'a str,
    pub user_group: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub clerk_updated_at: Option<DateTime<Utc>>,
}

/// Inserts a contact; the caller holds the email lock (and the user lock, with a user ID).
pub async fn insert_contact(
    conn: &mut PgConnection,
    new: &NewContact<'_>,
) -> sqlx::Result<Contact> {
    sqlx::query_as!(
        Contact,
        "insert into contacts
             (id, email, first_name, last_name, source, user_group, user_id, clerk_updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning *",
        Uuid::now_v7(),
        new.email,
        new.first_name,
        new.last_name,
        new.source,
        new.user_group,
        new.user_id,
        new.clerk_updated_at,
    )
    .fetch_one(conn)
    .await
}

pub async fn find_contact_by_id(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(Contact, "select * from contacts where id = $1", id)
        .fetch_optional(conn)
        .await
}

/// The contacts with these IDs (those that exist), in one query.
pub async fn find_contacts_by_id(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Contact>> {
    sqlx::query_as!(Contact, "select * from contacts where id = any($1)", ids)
        .fetch_all(conn)
        .await
}

/// The contact, locked until the transaction ends: read it this way before writing
/// back fields computed from it.
pub async fn find_contact_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(
        Contact,
        "select * from contacts where id = $1 for update",
        id
    )
    .fetch_optional(conn)
    .await
}

/// Writes every field the API can change of a contact, inserting it if it is new. The
/// caller holds the person's locks.
pub async fn save_contact(conn: &mut PgConnection, contact: &Contact) -> sqlx::Result<Contact> {
    sqlx::query_as!(
        Contact,
        "insert into contacts
             (id, email, first_name, last_name, source, subscribed, user_group, user_id,
              mailing_lists, properties, unsubscribed_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (id) do update set
             email = excluded.email, first_name = excluded.first_name,
             last_name = excluded.last_name, source = excluded.source,
             subscribed = excluded.subscribed, user_group = excluded.user_group,
             user_id = excluded.user_id, mailing_lists = excluded.mailing_lists,
             properties = excluded.properties, unsubscribed_at = excluded.unsubscribed_at,
             updated_at = now()
         returning *",
        contact.id,
        contact.email,
        contact.first_name,
        contact.last_name,
        contact.source,
        contact.subscribed,
        contact.user_group,
        contact.user_id,
        contact.mailing_lists,
        contact.properties,
        contact.unsubscribed_at,
    )
    .fetch_one(conn)
    .await
}

pub async fn delete_contact(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from contacts where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}
