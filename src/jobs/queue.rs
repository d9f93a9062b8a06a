//! SQL on the jobs table. Workers pass `now` in, so tests can ask "what is due in two
//! days" without waiting two days.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::state::JobState;
use super::{Job, NOTIFY_CHANNEL, retry};
use crate::input::InputError;
use crate::page::{Page, PageQuery, page_of};

/// A job to add.
#[derive(Debug)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    /// Idempotency key: a second job with the same kind and key is not added.
    pub key: Option<&'a str>,
    pub payload: &'a serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i32,
}

/// Adds a job in the caller's transaction and wakes the workers when it commits.
/// Returns the job's ID, or `None` when its key was enqueued before.
pub async fn enqueue_job(conn: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<Option<i64>> {
    let id = sqlx::query_scalar!(
        "insert into jobs (kind, key, payload, run_at, max_attempts)
         values ($1, $2, $3, $4, $5)
         on conflict (kind, key) do nothing
         returning id",
        job.kind,
        job.key,
        job.payload,
        job.run_at,
        job.max_attempts,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        wake_workers(conn).await?;
    }
    Ok(id)
}

/// Wakes the workers when the caller's transaction commits, and only then: a
/// rolled-back job wakes nobody.
async fn wake_workers(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("select pg_notify($1, '')", NOTIFY_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Asks for a run of the keyed job `job` at `job.run_at` or later, one that sees
/// everything committed before the ask: added if its key is new; scheduled again, with
/// fresh attempts, if it is done or dead; put off to `job.run_at` if it is scheduled
/// sooner (a later run, after a backoff or deferral, stays as it is); and run once
/// more after it finishes, at `job.run_at` at the earliest, if it is running now. Many
/// asks before a run starts give that one run.
pub async fn rearm_job(conn: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<()> {
    let state = sqlx::query_scalar!(
        "insert into jobs (kind, key, payload, run_at, max_attempts)
         values ($1, $2, $3, $4, $5)
         on conflict (kind, key) do update set
             state = case when jobs.state = 'running' then 'running' else 'scheduled' end,
             run_at = case when jobs.state in ('done', 'dead') then excluded.run_at
                           else greatest(jobs.run_at, excluded.run_at) end,
             attempts = case when jobs.state in ('done', 'dead') then 0 else jobs.attempts end,
             finished_at = null,
             rearmed = jobs.state = 'running'
         returning state",
        job.kind,
        job.key,
        job.payload,
        job.run_at,
        job.max_attempts,
    )
    .fetch_one(&mut *conn)
    .await?;
    if state == "scheduled" {
        wake_workers(conn).await?;
    }
    Ok(())
}

/// Claims up to `limit` jobs due at `now`, oldest first: running ones whose lease has
/// expired (their worker died), then scheduled ones, then at most `bulk_limit` bulk
/// ones. Each gets `lease` to finish.
pub async fn claim_jobs(
    pool: &PgPool,
    worker: Uuid,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
    bulk_limit: i64,
) -> sqlx::Result<Vec<Job>> {
    let locked_until = now + lease;
    // One index scan per kind rather than an OR, so each reads only due rows whatever
    // the number of future timers.
    sqlx::query_as!(
        Job,
        "with expired as (
             select id from jobs
             where state = 'running' and locked_until <= $1 and run_at <= $1
             order by locked_until limit $4
             for update skip locked
         ), due as (
             select id from jobs
             where state = 'scheduled' and not bulk and run_at <= $1
             order by run_at limit $4
             for update skip locked
         ), due_bulk as (
             select id from jobs
             where state = 'scheduled' and bulk and run_at <= $1
             order by run_at limit least($4, $5)
             for update skip locked
         ), claimed as (
             -- A job whose worker died on its last attempt is dead, not run again
             -- (unless it was asked for again meanwhile: then it starts afresh).
             update jobs set
                 state = case when attempts >= max_attempts and not rearmed
                              then 'dead' else 'running' end,
                 attempts = case when attempts >= max_attempts and rearmed then 1
                                 else attempts + 1 end,
                 rearmed = false,
                 locked_by = $2,
                 locked_until = $3,
                 last_error = case when attempts >= max_attempts and not rearmed
                                   then 'its worker stopped during the last attempt'
                                   else last_error end,
                 finished_at = case when attempts >= max_attempts and not rearmed
                                    then now() end
             where id in (
                 select id from (
                     select id, 1 as rank from expired
                     union all select id, 2 from due
                     union all select id, 3 from due_bulk
                 ) as claimable
                 order by rank limit $4
             )
             returning id, kind, payload, attempts, max_attempts, run_at, bulk, state
         )
         select id as \"id!\", kind as \"kind!\", payload as \"payload!\", attempts as \"attempts!\",
                max_attempts as \"max_attempts!\", run_at as \"run_at!\", bulk as \"bulk!\"
         from claimed where state = 'running'",
        now,
        worker,
        locked_until,
        limit,
        bulk_limit,
    )
    .fetch_all(pool)
    .await
}

/// Extends this worker's lease on its running jobs `job_ids` to `lease` from now (never
/// shortening one a test clock set later). Returns how many it still holds.
pub async fn renew_leases(
    pool: &PgPool,
    job_ids: &[i64],
    worker: Uuid,
    lease: Duration,
) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "update jobs set locked_until = greatest(locked_until, now() + make_interval(secs => $3))
         where id = any($1) and locked_by = $2 and state = 'running'
           and (select set_config('synchronous_commit', 'off', true)) is not null",
        job_ids,
        worker,
        lease.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Marks the jobs `job_ids` done, in one statement (one re-armed while it ran is due
/// again at the time it was asked for, or now, with fresh attempts). Returns how many this worker still held (one whose
/// lease expired was claimed by another worker and is left alone).
///
/// Committed without waiting for the WAL flush: a completion lost in a crash only
/// means the job runs again, which jobs must survive anyway (they run at least once).
pub async fn complete_jobs(pool: &PgPool, job_ids: &[i64], worker: Uuid) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "update jobs set
             state = case when rearmed then 'scheduled' else 'done' end,
             run_at = case when rearmed then greatest(run_at, now()) else run_at end,
             attempts = case when rearmed then 0 else attempts end,
             finished_at = case when rearmed then null else now() end,
             rearmed = false,
             locked_by = null,
             locked_until = null
         where id = any($1) and locked_by = $2 and state = 'running'
           and (select set_config('synchronous_commit', 'off', true)) is not null",
        job_ids,
        worker,
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedJob {
    /// Scheduled again after a backoff.
    Retrying,
    /// Out of attempts: kept, with its error, for a person to look at or replay.
    Dead,
    /// This worker no longer held the job; nothing was changed.
    NotHeld,
}

/// Records a failed attempt: scheduled again after `retry::backoff`, or dead after the
/// last attempt. The error is kept either way.
pub async fn fail_job(
    pool: &PgPool,
    job: &Job,
    worker: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<FailedJob> {
    let last = job.attempts >= job.max_attempts;
    let retry_at = now + retry::backoff(job.attempts);
    // Out of attempts, it is dead, unless it was asked for again while it ran
    // (`rearm_job`): then it starts afresh, as a dead job asked for does.
    let state = sqlx::query_scalar!(
        "update jobs set
             state = case when $3 and not rearmed then 'dead' else 'scheduled' end,
             run_at = case when not $3 then greatest(run_at, $4)
                           when rearmed then greatest(run_at, now())
                           else run_at end,
             attempts = case when $3 and rearmed then 0 else attempts end,
             finished_at = case when $3 and not rearmed then now() end,
             last_error = $5,
             rearmed = false,
             locked_by = null,
             locked_until = null
         where id = $1 and locked_by = $2 and state = 'running'
         returning state",
        job.id,
        worker,
        last,
        retry_at,
        error,
    )
    .fetch_optional(pool)
    .await?;
    Ok(match state.as_deref() {
        None => FailedJob::NotHeld,
        Some("dead") => FailedJob::Dead,
        Some(_) => FailedJob::Retrying,
    })
}

/// Puts a running job back in the queue, due `after` from now by the database's
/// clock, giving back its attempt (a handler's `Deferred`). `false` when this worker
/// no longer holds it.
pub async fn defer_job(
    pool: &PgPool,
    job_id: i64,
    worker: Uuid,
    after: Duration,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "update jobs set state = 'scheduled', attempts = attempts - 1,
             run_at = case when rearmed then greatest(run_at, clock_timestamp() + make_interval(secs => $3))
                           else clock_timestamp() + make_interval(secs => $3) end,
             rearmed = false, locked_by = null, locked_until = null
         where id = $1 and locked_by = $2 and state = 'running'",
        job_id,
        worker,
        after.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// When the next job falls due (a scheduled run or an expiring lease), if any. Bulk
/// jobs count from `bulk_from` at the earliest, and not at all when it is `None`.
pub async fn next_due_at(
    pool: &PgPool,
    bulk_from: Option<DateTime<Utc>>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"select least(
               (select min(run_at) from jobs where state = 'scheduled' and not bulk),
               (select min(greatest(locked_until, run_at)) from jobs where state = 'running'),
               (select greatest(run_at, $1) from jobs
                where state = 'scheduled' and bulk and $1 is not null order by run_at limit 1)
           ) as "due_at""#,
        bulk_from,
    )
    .fetch_one(pool)
    .await
}

/// What asking to replay a job did.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// It was dead, and is scheduled now with fresh attempts.
    Replayed,
    NotFound,
    /// Only dead jobs are replayed; this one is in this state.
    NotDead(JobState),
}

/// Puts a dead job back in the queue, due now, with fresh attempts.
pub async fn replay_dead_job(conn: &mut PgConnection, job_id: i64) -> sqlx::Result<Replay> {
    let replayed = sqlx::query!(
        "update jobs set state = 'scheduled', attempts = 0, run_at = now(), finished_at = null,
             locked_by = null, locked_until = null
         where id = $1 and state = 'dead'",
        job_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if replayed == 1 {
        wake_workers(&mut *conn).await?;
        return Ok(Replay::Replayed);
    }
    let state = sqlx::query_scalar!(
        r#"select state as "state: JobState" from jobs where id = $1"#,
        job_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(state.map_or(Replay::NotFound, Replay::NotDead))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct JobFilters {
    /// scheduled, running, done or dead.
    pub state: Option<String>,
}

/// A page of jobs, newest first.
pub async fn list_jobs(
    pool: &PgPool,
    filters: &JobFilters,
    paging: &PageQuery,
) -> Result<Page<Value>, InputError> {
    let state = filters
        .state
        .as_deref()
        .map(|state| JobState::parse("state", state))
        .transpose()?;
    let limit = paging.limit()?;
    let cursor = paging.cursor(|c| c.parse::<i64>().ok())?;
    let rows = sqlx::query!(
        "select id, kind, payload, state, run_at, attempts, max_attempts, last_error, created_at, finished_at
         from jobs
         where ($1::text is null or state = $1) and ($2::bigint is null or id < $2)
         order by id desc limit $3",
        state.map(JobState::as_str),
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(page_of(
        rows,
        limit,
        |j| j.id.to_string(),
        |j| {
            json!({
                "id": j.id, "kind": j.kind, "payload": j.payload, "state": j.state,
                "runAt": j.run_at, "attempts": j.attempts, "maxAttempts": j.max_attempts,
                "lastError": j.last_error, "createdAt": j.created_at, "finishedAt": j.finished_at,
            })
        },
    ))
}
