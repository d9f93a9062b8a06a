//! The worker: claims due jobs up to a concurrency limit, hands each claim batch to
//! the handler (which may batch their database work), and records the outcomes, the
//! completions in one statement. It wakes on NOTIFY, when a job finishes, or when the next
//! job falls due, and polls as the fallback. On shutdown it claims nothing more and
//! waits for the jobs in flight.
//!
//! A claimed job's lease is short and renewed while its handler runs, so the jobs of a
//! worker that died (kill -9, a lost machine) are taken again within a lease. A
//! handler that panics fails its attempt like an error, with the panic message kept
//! (a batch handler's panic, every attempt of its batch).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::join_all;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::queue::{
    FailedJob, claim_jobs, complete_jobs, defer_job, fail_job, next_due_at, renew_leases,
};
use super::{BulkRoom, Deferred, Job, NOTIFY_CHANNEL};
use crate::monitoring;
use crate::telemetry::error_chain;

/// Runs jobs. An `Err` is a failed attempt: retried with backoff, dead after the last;
/// a `Deferred` error puts the job back for later without counting the attempt.
pub trait JobHandler: Send + Sync + Sized + 'static {
    fn run(&self, job: &Job) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs the jobs of one claim batch: one result per job, in their order. By
    /// default each runs on its own, all at once, and a panic fails only its job; a
    /// handler overrides this to batch their database work.
    fn run_batch(&self, jobs: &[Job]) -> impl Future<Output = Vec<anyhow::Result<()>>> + Send {
        run_each(self, jobs)
    }

    /// How many bulk jobs may start now; asked before each claim.
    fn bulk_room(&self) -> impl Future<Output = anyhow::Result<BulkRoom>> + Send {
        async { Ok(BulkRoom::Unlimited) }
    }
}

/// Runs each of `jobs` with `handler.run`, all at once; a panic fails only its job.
pub async fn run_each<H: JobHandler>(handler: &H, jobs: &[Job]) -> Vec<anyhow::Result<()>> {
    join_all(jobs.iter().map(|job| async move {
        match AssertUnwindSafe(handler.run(job)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => Err(panicked(panic)),
        }
    }))
    .await
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs running at once. Bulk jobs take at most three quarters of them, so the
    /// others always find a free slot.
    pub concurrency: usize,
    /// How long a claimed job is this worker's without a renewal; after that another
    /// worker may take it. Renewed every third of it while the handler runs.
    pub lease: Duration,
    /// The longest one attempt may run; then it is stopped and counts as failed.
    pub max_run_time: Duration,
    /// The longest the worker sleeps without looking for due jobs.
    pub poll_interval: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            lease: Duration::from_secs(30),
            max_run_time: Duration::from_secs(5 * 60),
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
    /// A second worker on the same pool and handler (as another process would run),
    /// with its own ID and `options`.
    pub fn another(&self, options: WorkerOptions) -> Self {
        Self {
            pool: self.pool.clone(),
            handler: self.handler.clone(),
            id: Uuid::new_v4(),
            options,
        }
    }

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
    /// backoff after `now`. Tests call it with a clock of their own. It stops once a
    /// round only put jobs back (deferred), which that clock may find due at once.
    pub async fn run_due(&self, now: DateTime<Utc>) -> sqlx::Result<usize> {
        let mut ran = 0;
        loop {
            let slots = Slots::new(self.options.concurrency, 0, 0);
            let (limit, bulk_limit) = slots.limits(self.bulk_room().await);
            let jobs = claim_jobs(
                &self.pool,
                self.id,
                now,
                self.options.lease,
                limit,
                bulk_limit,
            )
            .await?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            ran += jobs.len();
            let finished = self.execute(jobs, now).await;
            if finished.deferred == finished.jobs {
                return Ok(ran);
            }
        }
    }

    /// Runs until `shutdown` is cancelled, then lets the jobs in flight finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        // One task per claim batch; the slots count its jobs.
        let mut running = JoinSet::new();
        let (mut running_jobs, mut running_bulk) = (0, 0);
        tracing::info!(worker = %self.id, "job worker started");
        // Claim in batches: when a quarter of the slots are free, or nothing runs. A
        // bulk job's finishing frees a bulk slot, so then it waits for a quarter of
        // those, unless a wake-up (a new job, a timer) is still unanswered.
        let batch = (self.options.concurrency / 4).max(1);
        let mut bulk_finished = false;
        let mut unanswered = true;
        // When the handler's last bulk room runs out: it is not asked again before.
        let mut bulk_asked_until: Option<DateTime<Utc>> = None;
        while !shutdown.is_cancelled() {
            let slots = Slots::new(self.options.concurrency, running_jobs, running_bulk);
            let usable = if bulk_finished && !unanswered {
                slots.free_bulk
            } else {
                slots.free
            };
            let mut drained = None;
            if usable >= batch || running.is_empty() {
                unanswered = false;
                let now = Utc::now();
                let room = match bulk_asked_until {
                    Some(until) if until > now => BulkRoom::From(until),
                    _ => self.bulk_room().await,
                };
                let (limit, bulk_limit) = slots.limits(room);
                match claim_jobs(
                    &self.pool,
                    self.id,
                    now,
                    self.options.lease,
                    limit,
                    bulk_limit,
                )
                .await
                {
                    Ok(jobs) => {
                        let claimed = jobs.len();
                        let claimed_bulk = jobs.iter().filter(|job| job.bulk).count();
                        bulk_asked_until = used_up_until(room, claimed_bulk);
                        if claimed > 0 {
                            running_jobs += claimed;
                            running_bulk += claimed_bulk;
                            running.spawn(self.execute(jobs, now));
                        }
                        if claimed < slots.free {
                            let after =
                                Slots::new(self.options.concurrency, running_jobs, running_bulk);
                            drained = Some(after.bulk_from(bulk_asked_until, now));
                        }
                    }
                    Err(error) => tracing::warn!(error = error_chain(&error), "cannot claim jobs"),
                }
            }
            // While due work remains (or slots are short), finishing jobs pace the
            // loop; only a claim that emptied the queue asks when the next job is due.
            let wait = match drained {
                Some(bulk_from) => self.time_to_next_due(bulk_from).await,
                None => self.options.poll_interval,
            };
            bulk_finished = false;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                Some(finished) = running.join_next(), if !running.is_empty() => {
                    // `execute` does not panic: its task always reports its batch.
                    if let Ok(finished) = finished {
                        running_jobs -= finished.jobs;
                        running_bulk -= finished.bulk;
                        bulk_finished = finished.bulk > 0;
                    }
                }
                notified = recv(&mut listener) => {
                    unanswered = true;
                    if let Err(error) = notified {
                        tracing::warn!(error = error_chain(&error), "job notifications lost; polling");
                        listener = None;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    unanswered = true;
                    if listener.is_none() {
                        listener = self.listen().await;
                    }
                }
            }
        }
        tracing::info!(worker = %self.id, in_flight = running_jobs, "job worker stopping");
        while running.join_next().await.is_some() {}
    }

    /// The handler's bulk room; none for now when it cannot tell (the database is away).
    async fn bulk_room(&self) -> BulkRoom {
        self.handler.bulk_room().await.unwrap_or_else(|error| {
            tracing::warn!(
                error = error_chain(error.as_ref()),
                "cannot read the bulk room"
            );
            BulkRoom::From(Utc::now() + self.options.poll_interval)
        })
    }

    /// A task that runs one claim batch and records the outcomes. If recording fails
    /// (database down), the leases run out and the jobs run again: jobs run at least
    /// once, and handlers make their side effects idempotent.
    fn execute(
        &self,
        jobs: Vec<Job>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Finished> + Send + 'static {
        let (pool, handler, worker) = (self.pool.clone(), self.handler.clone(), self.id);
        let (lease, max_run_time) = (self.options.lease, self.options.max_run_time);
        async move {
            let jobs = Arc::new(jobs);
            let outcomes =
                run_renewing_leases(&pool, handler, jobs.clone(), worker, lease, max_run_time)
                    .await;
            let deferred = outcomes
                .iter()
                .filter(|outcome| outcome.as_ref().is_err_and(|e| e.is::<Deferred>()))
                .count();
            if let Err(error) = record_outcomes(&pool, worker, &jobs, outcomes, now).await {
                tracing::error!(
                    jobs = jobs.len(),
                    error = error_chain(&error),
                    "cannot record the jobs' outcomes; they will run again"
                );
            }
            Finished {
                jobs: jobs.len(),
                bulk: jobs.iter().filter(|job| job.bulk).count(),
                deferred,
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(NOTIFY_CHANNEL).await.ok()?;
        Some(listener)
    }

    /// How long to sleep: until the next job falls due (bulk ones from `bulk_from`),
    /// at most the poll interval.
    async fn time_to_next_due(&self, bulk_from: Option<DateTime<Utc>>) -> Duration {
        let poll = self.options.poll_interval;
        match next_due_at(&self.pool, bulk_from).await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll),
            _ => poll,
        }
    }
}

/// When to ask the handler for bulk room again, after a claim that took `claimed_bulk`
/// bulk jobs with `room`: when the room opens, once it was used up; else at once.
fn used_up_until(room: BulkRoom, claimed_bulk: usize) -> Option<DateTime<Utc>> {
    match room {
        BulkRoom::Now { count, until } if claimed_bulk >= count => Some(until),
        BulkRoom::From(until) => Some(until),
        BulkRoom::Now { .. } | BulkRoom::Unlimited => None,
    }
}

/// What became of a claim batch the worker ran.
struct Finished {
    jobs: usize,
    /// Bulk jobs among them.
    bulk: usize,
    /// Jobs put back for later by the handler.
    deferred: usize,
}

/// A worker's slots at the time of a claim.
struct Slots {
    free: usize,
    /// How many more bulk jobs may run at once.
    free_bulk: usize,
}

impl Slots {
    fn new(concurrency: usize, running: usize, running_bulk: usize) -> Self {
        let bulk_share = (concurrency * 3 / 4).max(1);
        let free = concurrency.saturating_sub(running);
        Self {
            free,
            free_bulk: bulk_share.saturating_sub(running_bulk).min(free),
        }
    }

    /// The claim's limits: jobs in all, and bulk jobs among them.
    fn limits(&self, room: BulkRoom) -> (i64, i64) {
        let bulk = match room {
            BulkRoom::Unlimited => self.free_bulk,
            BulkRoom::Now { count, .. } => count.min(self.free_bulk),
            BulkRoom::From(_) => 0,
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        (count(self.free), count(bulk))
    }

    /// When bulk jobs may be claimed next, for `next_due_at`: now, when the
    /// handler's room opens again (`room_from`), or only once a running one finishes
    /// (`None`, as that wakes the worker anyway).
    fn bulk_from(
        &self,
        room_from: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if self.free_bulk == 0 {
            return None;
        }
        Some(room_from.map_or(now, |from| from.max(now)))
    }
}

/// Runs the handler on the batch in a task of its own (so a panic fails the attempts
/// instead of the worker), renewing the jobs' leases every third of a lease meanwhile.
/// The attempts stop as failed after `max_run_time`, or when a lease was lost (another
/// worker took a job over after a renewal could not reach the database in time).
async fn run_renewing_leases<H: JobHandler>(
    pool: &PgPool,
    handler: Arc<H>,
    jobs: Arc<Vec<Job>>,
    worker: Uuid,
    lease: Duration,
    max_run_time: Duration,
) -> Vec<anyhow::Result<()>> {
    let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    let mut task = tokio::spawn(async move { handler.run_batch(&jobs).await });
    let deadline = tokio::time::sleep(max_run_time);
    tokio::pin!(deadline);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + lease / 3, lease / 3);
    let all_fail = |error: String| {
        ids.iter()
            .map(|_| Err(anyhow::anyhow!("{error}")))
            .collect()
    };
    loop {
        tokio::select! {
            joined = &mut task => {
                return match joined {
                    Ok(outcomes) if outcomes.len() == ids.len() => outcomes,
                    Ok(outcomes) => all_fail(format!(
                        "the handler answered {} of {} jobs", outcomes.len(), ids.len()
                    )),
                    Err(error) if error.is_panic() => all_fail(panicked(error.into_panic()).to_string()),
                    Err(error) => all_fail(format!("the job's task was cancelled: {error}")),
                };
            }
            _ = &mut deadline => {
                task.abort();
                return all_fail(format!("the job ran longer than {max_run_time:?}"));
            }
            _ = renew.tick() => match renew_leases(pool, &ids, worker, lease).await {
                Ok(held) if held == ids.len() as u64 => {}
                Ok(_) => {
                    task.abort();
                    return all_fail("the job's lease was taken over by another worker".into());
                }
                // The database is away: the handler's own writes fail too. Keep going;
                // the next renewal may get through before the lease ends.
                Err(error) => tracing::warn!(jobs = ids.len(), error = error_chain(&error), "cannot renew the jobs' leases"),
            },
        }
    }
}

/// A failed attempt for a panic, with what it said when it said it with a string (as
/// `panic!` and `expect` do).
fn panicked(payload: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    let message = match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |m| (*m).to_owned()),
    };
    anyhow::anyhow!("the job panicked: {message}")
}

/// Marks the batch's finished jobs done in one statement, records each failed or
/// deferred attempt, and logs what became of them.
async fn record_outcomes(
    pool: &PgPool,
    worker: Uuid,
    jobs: &[Job],
    outcomes: Vec<anyhow::Result<()>>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut done = Vec::with_capacity(jobs.len());
    for (job, outcome) in jobs.iter().zip(outcomes) {
        match outcome {
            Ok(()) => done.push(job.id),
            Err(error) => record_failure(pool, worker, job, error, now).await?,
        }
    }
    if !done.is_empty() {
        let held = complete_jobs(pool, &done, worker).await?;
        if held < done.len() as u64 {
            let late = done.len() as u64 - held;
            tracing::warn!(
                jobs = late,
                "jobs finished after their lease was taken over"
            );
        }
    }
    Ok(())
}

/// Puts a deferred job back, or records the failed attempt.
async fn record_failure(
    pool: &PgPool,
    worker: Uuid,
    job: &Job,
    error: anyhow::Error,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if let Some(deferred) = error.downcast_ref::<Deferred>() {
        let lane = if job.bulk { "bulk" } else { "other" };
        metrics::counter!(monitoring::JOBS_DEFERRED, "lane" => lane).increment(1);
        defer_job(pool, job.id, worker, deferred.after).await?;
        return Ok(());
    }
    let error = error_chain(error.as_ref());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_jobs_take_at_most_three_quarters_of_the_slots() {
        let slots = Slots::new(32, 10, 10);
        assert_eq!((slots.free, slots.free_bulk), (22, 14));
        assert_eq!(slots.limits(BulkRoom::Unlimited), (22, 14));
        let until = Utc::now();
        assert_eq!(slots.limits(BulkRoom::Now { count: 3, until }), (22, 3));
        let later = Utc::now();
        assert_eq!(slots.limits(BulkRoom::From(later)), (22, 0));
        // Full of bulk jobs: the other quarter stays free for the rest.
        let full = Slots::new(32, 24, 24);
        assert_eq!(full.limits(BulkRoom::Unlimited), (8, 0));
        assert_eq!(Slots::new(1, 0, 0).limits(BulkRoom::Unlimited), (1, 1));
    }

    #[test]
    fn bulk_jobs_are_looked_for_again_when_they_can_be_claimed() {
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(2);
        let open = Slots::new(32, 0, 0);
        assert_eq!(open.bulk_from(None, now), Some(now));
        assert_eq!(open.bulk_from(Some(later), now), Some(later));
        // No bulk slot free: a finishing job wakes the worker, not the clock.
        let full = Slots::new(32, 24, 24);
        assert_eq!(full.bulk_from(None, now), None);
    }

    #[test]
    fn the_bulk_room_is_asked_again_once_it_opens_if_it_was_used_up() {
        let later = Utc::now() + chrono::Duration::milliseconds(50);
        let room = BulkRoom::Now {
            count: 2,
            until: later,
        };
        assert_eq!(used_up_until(room, 2), Some(later));
        assert_eq!(used_up_until(room, 1), None, "room left: ask at once");
        assert_eq!(used_up_until(BulkRoom::From(later), 0), Some(later));
        assert_eq!(used_up_until(BulkRoom::Unlimited, 24), None);
    }
}
