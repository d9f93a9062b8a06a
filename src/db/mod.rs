//! The connection pool and the one place that decides whether a database error means
//! "try again later" (503, so Svix retries) or a bug (opaque 500).

pub mod storable_json;

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseSettings;

/// A connection idle this long is pinged before it is handed out. A busy connection
/// is reused within milliseconds and skips the round trip; one that sat through a
/// database restart (which takes longer than this) is found dead and replaced, so the
/// first request after the restart runs on a live connection.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// How to open connection pools. Each HTTP worker (actix-web runs one single-threaded
/// runtime per worker) opens a pool of its own: a sqlx connection's socket belongs to
/// the runtime that opened it, so one pool shared by all workers makes every database
/// reply wake two threads (about a quarter fewer webhooks per second, BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct Database {
    connect: PgConnectOptions,
    pool: PgPoolOptions,
    /// Connections each `pool(n)` call shares out among `n` pools: `serve` opens the HTTP
    /// workers' pools and the worker's pool from it, so up to twice this in all.
    max_connections: u32,
}

impl Database {
    pub fn new(connect: PgConnectOptions, pool: PgPoolOptions, max_connections: u32) -> Self {
        Self {
            // Roster's queries are short; PostgreSQL's JIT compiles a plan whose cost it
            // overestimates (an analytics query over many buckets) for longer than the
            // query then runs (240 ms of compiling for 75 ms of work, BENCHMARKS.md).
            connect: connect.options([("jit", "off")]),
            pool,
            max_connections,
        }
    }

    /// The production pools of the settings' `DATABASE_URL` (which must be set).
    pub fn open(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        Self::from_settings(settings.require_database_url()?, &settings.database)
    }

    /// The production pools for `DATABASE_URL`.
    pub fn from_settings(url: &SecretString, settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let connect = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))?;
        Ok(Self::new(
            connect,
            pool_options(settings),
            settings.max_connections,
        ))
    }

    /// A pool for one of `pools` users, with its share of the connections. It connects
    /// lazily, so the server starts while Postgres is down and `/readyz` tells when it
    /// is back.
    pub fn pool(&self, pools: usize) -> PgPool {
        let pools = u32::try_from(pools.max(1)).unwrap_or(u32::MAX);
        self.pool
            .clone()
            .max_connections((self.max_connections / pools).max(1))
            .connect_lazy_with(self.connect.clone())
    }
}

/// The production pool options: a connection that sat idle is checked before it is
/// handed out (`PING_AFTER_IDLE`); one in steady use is not, to spare the round trip.
pub fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_AFTER_IDLE {
                    return Ok(true);
                }
                // Dead (the server restarted while it sat idle): closed, never
                // handed out, and the pool gives a fresh connection instead.
                let alive = sqlx::Connection::ping(conn).await.is_ok();
                if !alive {
                    tracing::info!("an idle database connection was dead; replaced");
                }
                Ok(alive)
            })
        })
}

/// Applies the migrations in `migrations/`, embedded in the binary.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    use anyhow::Context;
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("cannot apply the database migrations (is DATABASE_URL reachable?)")
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

/// True when PostgreSQL refused a value itself (SQLSTATE class 22, data exception: a
/// `\u0000`, a number or date out of range; 54000: a value too large for an index):
/// the same input fails every time, so it is the sender's 400, never a 500 or a 503.
/// The edges check what they can first and name the field; this is the backstop.
pub fn is_bad_data(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("22") || code == "54000")
}
