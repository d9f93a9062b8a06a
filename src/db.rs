//! The connection pool and the one place that decides whether a database error means
//! "try again later" (503, so Svix retries) or a bug (opaque 500).

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseSettings;

/// Builds the pool without connecting: the server starts even while Postgres is down,
/// and `/readyz` tells when it is back.
pub fn connect_lazy(url: &SecretString, settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
}

/// Applies the migrations in `migrations/`, embedded in the binary.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// True when the error says the database is unreachable, overloaded or asked us to retry
/// (connection failures, pool timeout, shutdown, serialization failure, deadlock).
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 40: transaction rollback (serialization,
            // deadlock); 53: insufficient resources; 57P0x: shutdown in progress.
            code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P")
        }),
        _ => false,
    }
}
