//! The worker: claims due jobs up to a concurrency limit, runs each with the handler,
//! and records the outcome. It wakes on NOTIFY, when a job finishes, or when the next
//! job falls due, and polls as the fallback. On shutdown it claims nothing more and
//! waits for the jobs in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::queue::{FailedJob, claim_jobs, complete_job, fail_job, next_due_at};
use super::{Job, NOTIFY_CHANNEL};
use crate::monitoring;
use crate::telemetry::error_chain;

/// Runs jobs. An `Err` is a failed attempt: retried with backoff, dead after the last.
pub trait JobHandler: Send + Sync + 'static {
    fn run(&self, job: &Job) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs running at once.
    pub concurrency: usize,
    /// How long a claimed job is this worker's; after that another worker may take it.
    pub lease: Duration,
    /// The longest the worker sleeps without looking for due jobs.
    pub poll_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 32,
            lease: Duration::from_secs(5 * 60),
            poll_interval: Duration::from_secs(5),
        }
    }
}

pub struct Worker<H> {
    pool: PgPool,
    handler: Arc<H>,
    id: Uuid,
    options: WorkerOptions,
}

impl<H: JobHandler> Worker<H> {
    pub fn new(pool: PgPool, handler: H, options: WorkerOptions) -> Self {
        Self {
            pool,
            handler: Arc::new(handler),
            id: Uuid::new_v4(),
            options,
        }
    }

    /// This worker's identity in `jobs.locked_by`.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Runs every job due at `now` and waits for them; a failed attempt is due again a
    /// backoff after `now`. Tests call it with a clock of their own.
    pub async fn run_due(&self, now: DateTime<Utc>) -> sqlx::Result<usize> {
        let mut ran = 0;
        loop {
            let limit = i64::try_from(self.options.concurrency).unwrap_or(i64::MAX);
            let jobs = claim_jobs(&self.pool, self.id, now, self.options.lease, limit).await?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            ran += jobs.len();
            let mut running = JoinSet::new();
            for job in jobs {
                running.spawn(self.execute(job, now));
            }
            while running.join_next().await.is_some() {}
        }
    }

    /// Runs until `shutdown` is cancelled, then lets the jobs in flight finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        let mut running = JoinSet::new();
        tracing::info!(worker = %self.id, "job worker started");
        // Claim in batches: when a quarter of the slots are free, or nothing runs.
        let batch = (self.options.concurrency / 4).max(1);
        while !shutdown.is_cancelled() {
            let free = self.options.concurrency.saturating_sub(running.len());
            let mut queue_drained = false;
            if free >= batch || running.is_empty() {
                let now = Utc::now();
                let limit = i64::try_from(free).unwrap_or(i64::MAX);
                match claim_jobs(&self.pool, self.id, now, self.options.lease, limit).await {
                    Ok(jobs) => {
                        queue_drained = jobs.len() < free;
                        for job in jobs {
                            running.spawn(self.execute(job, now));
                        }
                    }
                    Err(error) => tracing::warn!(error = %error, "cannot claim jobs"),
                }
            }
            // While due work remains (or slots are short), finishing jobs pace the
            // loop; only a claim that emptied the queue asks when the next job is due.
            let wait = if queue_drained {
                self.time_to_next_due().await
            } else {
                self.options.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                notified = recv(&mut listener) => {
                    if let Err(error) = notified {
                        tracing::warn!(error = %error, "job notifications lost; polling");
                        listener = None;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    if listener.is_none() {
                        listener = self.listen().await;
                    }
                }
            }
        }
        tracing::info!(worker = %self.id, in_flight = running.len(), "job worker stopping");
        while running.join_next().await.is_some() {}
    }

    /// A task that runs one job and records the outcome. If recording fails (database
    /// down), the lease runs out and the job runs again: jobs run at least once, and
    /// handlers make their side effects idempotent.
    fn execute(&self, job: Job, now: DateTime<Utc>) -> impl Future<Output = ()> + Send + 'static {
        let (pool, handler, worker) = (self.pool.clone(), self.handler.clone(), self.id);
        // A handler that outlives its lease would share the job with the worker that
        // takes it over: it is stopped first, and the attempt counts as failed.
        let deadline = self.options.lease.mul_f64(0.9);
        async move {
            let outcome = match tokio::time::timeout(deadline, handler.run(&job)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(anyhow::anyhow!(
                    "the job ran out of its lease ({deadline:?})"
                )),
            };
            if let Err(error) = record_outcome(&pool, worker, &job, outcome, now).await {
                tracing::error!(job = job.id, error = %error, "cannot record the job's outcome; it will run again");
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(NOTIFY_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// How long to sleep: until the next job falls due, at most the poll interval.
    async fn time_to_next_due(&self) -> Duration {
        let poll = self.options.poll_interval;
        match next_due_at(&self.pool).await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll),
            _ => poll,
        }
    }
}

/// Marks the job done or records the failed attempt, and logs what became of it.
async fn record_outcome(
    pool: &PgPool,
    worker: Uuid,
    job: &Job,
    outcome: anyhow::Result<()>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let error = match outcome {
        Ok(()) => {
            if !complete_job(pool, job.id, worker).await? {
                tracing::warn!(job = job.id, "job finished after its lease was taken over");
            }
            return Ok(());
        }
        Err(error) => error_chain(error.as_ref()),
    };
    let (id, kind, attempt) = (job.id, &job.kind, job.attempts);
    match fail_job(pool, job, worker, &error, now.max(Utc::now())).await? {
        FailedJob::Retrying => {
            metrics::counter!(monitoring::JOBS_RETRIED, "kind" => kind.clone()).increment(1);
            tracing::warn!(job = id, kind, attempt, error, "job failed; will retry")
        }
        FailedJob::Dead => tracing::error!(job = id, kind, attempt, error, "job is dead"),
        FailedJob::NotHeld => {}
    }
    Ok(())
}

/// The next notification, or never without a listener.
async fn recv(listener: &mut Option<PgListener>) -> sqlx::Result<()> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
