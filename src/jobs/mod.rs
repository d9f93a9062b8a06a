//! The durable job queue in PostgreSQL: enqueue inside the transaction that causes the
//! work, claim under a lease with `FOR UPDATE SKIP LOCKED`, retry with capped
//! exponential backoff and jitter, and keep the last error of a dead job.
//!
//! Bulk jobs (a campaign's sends) wait behind every other due job, and start only as
//! the handler's `bulk_room` allows, so a broadcast never holds up a welcome email.

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
    pub bulk: bool,
}

/// A handler's answer for a job that may not run yet (the send budget is spent): it is
/// scheduled again `after` from now by the database's clock, and the attempt does not
/// count.
#[derive(Debug, thiserror::Error)]
#[error("deferred for {after:?}")]
pub struct Deferred {
    pub after: std::time::Duration,
}

/// How many bulk jobs may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRoom {
    Unlimited,
    /// This many (at least one) may start before `until`; the worker asks again then,
    /// once those have taken their share.
    Now {
        count: usize,
        until: DateTime<Utc>,
    },
    /// None before this time.
    From(DateTime<Utc>),
}
