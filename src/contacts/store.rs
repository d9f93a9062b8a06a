//! SQL on the contacts table shared by every writer. Writers serialise on a key
//! (`lock_email`, `lock_user_id`) before they look a contact up and write it, so two
//! deliveries about one person never race into a unique violation.

use sqlx::PgConnection;
use uuid::Uuid;

use super::Contact;

/// Takes the transaction-scoped lock for an email address (case-insensitive).
pub async fn lock_email(conn: &mut PgConnection, email: &str) -> sqlx::Result<()> {
    let key = format!("email:{}", email.to_lowercase());
    lock_key(conn, &key).await
}

/// Takes the transaction-scoped lock for a Clerk user ID.
pub async fn lock_user_id(conn: &mut PgConnection, user_id: &str) -> sqlx::Result<()> {
    lock_key(conn, &format!("user:{user_id}")).await
}

async fn lock_key(conn: &mut PgConnection, key: &str) -> sqlx::Result<()> {
    // Released at commit or rollback; never held across anything but this transaction.
    sqlx::query!("select pg_advisory_xact_lock(hashtextextended($1, 0))", key)
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
}

/// Inserts a contact; the caller holds the email lock (and the user lock, with a user ID).
pub async fn insert_contact(conn: &mut PgConnection, new: &NewContact<'_>) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into contacts (id, email, first_name, last_name, source, user_group, user_id)
         values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        new.email,
        new.first_name,
        new.last_name,
        new.source,
        new.user_group,
        new.user_id,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn delete_contact(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from contacts where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}
