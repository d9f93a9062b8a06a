//! The durable job queue in PostgreSQL: enqueue inside the transaction that causes the
//! work, claim under a lease with `FOR UPDATE SKIP LOCKED`, retry with capped
//! exponential backoff and jitter, and keep the last error of a dead job.

pub mod queue;
pub mod retry;
pub mod state;
pub mod worker;

use chrono::{DateTime, Utc};

/// The channel `enqueue_job` notifies, so idle workers wake at once.
pub const NOTIFY_CHANNEL: &str = "roster_jobs";

/// A claimed job, as its handler sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// This run's attempt number, from 1.
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
}
