//! Suppressed addresses: those that hard-bounced (a 5xx answer), never sent to again
//! until the suppression is lifted through the API. Kept lowercased.

use sqlx::PgConnection;

/// Which of `emails` are suppressed, as given: one query for a batch of sends.
pub async fn suppressed_among(
    pool: &sqlx::PgPool,
    emails: &[String],
) -> sqlx::Result<std::collections::HashSet<String>> {
    let suppressed = sqlx::query_scalar!(
        r#"select e as "email!" from unnest($1::text[]) as e
           where exists (select 1 from suppressions where email = lower(e))"#,
        emails
    )
    .fetch_all(pool)
    .await?;
    Ok(suppressed.into_iter().collect())
}

pub async fn is_suppressed(conn: &mut PgConnection, email: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        "select exists(select 1 from suppressions where email = lower($1)) as \"suppressed!\"",
        email
    )
    .fetch_one(conn)
    .await
}

/// Suppresses `email` with the SMTP answer that refused it; a second bounce keeps the
/// first reason.
pub async fn suppress(conn: &mut PgConnection, email: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into suppressions (email, reason) values (lower($1), $2) on conflict (email) do nothing",
        email,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Lifts the suppression; false when the address was not suppressed.
pub async fn lift(conn: &mut PgConnection, email: &str) -> sqlx::Result<bool> {
    let removed = sqlx::query!("delete from suppressions where email = lower($1)", email)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(removed > 0)
}
