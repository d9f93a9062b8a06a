//! The durable job queue: due work runs once, failures back off and die, a dead
//! worker's job is taken over once, two workers never share a job, and shutdown waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use roster::jobs::Job;
use roster::jobs::queue::{NewJob, claim_jobs, complete_jobs, enqueue_job, rearm_job};
use roster::jobs::worker::{JobHandler, Worker, WorkerOptions};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::helpers::short_lived_connections;

/// Counts the attempts each job got; fails the first `failures` attempts of every job.
#[derive(Clone, Default)]
struct CountingHandler {
    attempts: Arc<Mutex<HashMap<i64, i32>>>,
    failures: i32,
    delay: Duration,
}

impl JobHandler for CountingHandler {
    async fn run(&self, job: &Job) -> anyhow::Result<()> {
        // Counted when the attempt starts, so a test can see a job in flight.
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let count = attempts.entry(job.id).or_default();
            *count += 1;
            *count
        };
        tokio::time::sleep(self.delay).await;
        anyhow::ensure!(
            attempt > self.failures,
            "attempt {attempt} fails on purpose"
        );
        Ok(())
    }
}

impl CountingHandler {
    fn attempts_of(&self, job: i64) -> i32 {
        self.attempts
            .lock()
            .unwrap()
            .get(&job)
            .copied()
            .unwrap_or(0)
    }
}

async fn pool(db: PgConnectOptions) -> PgPool {
    short_lived_connections()
        .max_connections(8)
        .connect_lazy_with(db)
}

async fn enqueue(
    pool: &PgPool,
    key: Option<&str>,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> Option<i64> {
    let mut conn = pool.acquire().await.unwrap();
    let payload = json!({ "hello": "world" });
    let job = NewJob {
        kind: "test",
        key,
        payload: &payload,
        run_at,
        max_attempts,
    };
    enqueue_job(&mut conn, &job).await.unwrap()
}

async fn state_of(pool: &PgPool, job: i64) -> (String, Option<String>) {
    sqlx::query_as("select state, last_error from jobs where id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn worker(pool: &PgPool, handler: &CountingHandler) -> Worker<CountingHandler> {
    let options = WorkerOptions {
        concurrency: 8,
        lease: Duration::from_secs(60),
        max_run_time: Duration::from_secs(60),
        poll_interval: Duration::from_secs(60),
    };
    Worker::new(pool.clone(), handler.clone(), options)
}

#[sqlx::test]
async fn timer_survives_a_restart_and_runs_once_when_due(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    let job = enqueue(&pool, None, now + chrono::Duration::days(2), 3)
        .await
        .unwrap();
    let handler = CountingHandler::default();
    let before_restart = worker(&pool, &handler);
    assert_eq!(before_restart.run_due(now).await.unwrap(), 0, "not due yet");
    drop(before_restart);
    // A new process: nothing of the timer lives in memory, only in the jobs table.
    let worker = worker(&pool, &handler);
    assert_eq!(
        worker
            .run_due(now + chrono::Duration::days(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        worker
            .run_due(now + chrono::Duration::days(3))
            .await
            .unwrap(),
        0,
        "done once"
    );
    assert_eq!(handler.attempts_of(job), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
}

#[sqlx::test]
async fn same_key_enqueues_one_job(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    assert!(enqueue(&pool, Some("run-1:step-0"), now, 3).await.is_some());
    assert!(enqueue(&pool, Some("run-1:step-0"), now, 3).await.is_none());
    let count: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test]
async fn failing_job_backs_off_then_dies_with_its_error(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    let job = enqueue(&pool, None, now, 3).await.unwrap();
    let handler = CountingHandler {
        failures: 10,
        ..Default::default()
    };
    let worker = worker(&pool, &handler);

    assert_eq!(worker.run_due(now).await.unwrap(), 1);
    let (state, error) = state_of(&pool, job).await;
    assert_eq!(state, "scheduled");
    assert!(error.unwrap().contains("attempt 1 fails"));
    let retry_at: DateTime<Utc> = sqlx::query_scalar("select run_at from jobs where id = $1")
        .bind(job)
        .fetch_one(&pool)
        .await
        .unwrap();
    let delay = retry_at - now;
    assert!(
        delay >= chrono::Duration::seconds(15) && delay <= chrono::Duration::seconds(31),
        "{delay}"
    );
    assert_eq!(
        worker.run_due(now).await.unwrap(),
        0,
        "not before the backoff"
    );

    // Each retry is due a backoff after the attempt that failed.
    let later = now + chrono::Duration::hours(2);
    assert_eq!(worker.run_due(later).await.unwrap(), 1, "attempt 2");
    assert_eq!(state_of(&pool, job).await.0, "scheduled");
    let last = later + chrono::Duration::hours(2);
    assert_eq!(
        worker.run_due(last).await.unwrap(),
        1,
        "attempt 3, the last"
    );
    let (state, error) = state_of(&pool, job).await;
    assert_eq!(state, "dead");
    assert!(error.unwrap().contains("attempt 3 fails"));
    assert_eq!(handler.attempts_of(job), 3);
    assert_eq!(
        worker
            .run_due(later + chrono::Duration::days(1))
            .await
            .unwrap(),
        0
    );
}

#[sqlx::test]
async fn job_of_a_dead_worker_is_picked_up_once(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    let job = enqueue(&pool, None, now, 3).await.unwrap();
    // A worker claims the job and dies without finishing it.
    let dead_worker = uuid::Uuid::new_v4();
    let claimed = claim_jobs(&pool, dead_worker, now, Duration::from_secs(60), 10, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    let handler = CountingHandler::default();
    let survivor = worker(&pool, &handler);
    assert_eq!(
        survivor
            .run_due(now + chrono::Duration::seconds(30))
            .await
            .unwrap(),
        0,
        "lease still held"
    );
    let after_lease = now + chrono::Duration::seconds(61);
    assert_eq!(survivor.run_due(after_lease).await.unwrap(), 1);
    assert_eq!(survivor.run_due(after_lease).await.unwrap(), 0);
    assert_eq!(handler.attempts_of(job), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
    assert_eq!(
        complete_jobs(&pool, &[job], dead_worker).await.unwrap(),
        0,
        "the late worker holds nothing"
    );
}

#[sqlx::test]
async fn two_workers_never_run_the_same_job(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    let mut jobs = Vec::new();
    for _ in 0..200 {
        jobs.push(enqueue(&pool, None, now, 3).await.unwrap());
    }
    let handler = CountingHandler {
        delay: Duration::from_millis(1),
        ..Default::default()
    };
    let (first, second) = (worker(&pool, &handler), worker(&pool, &handler));
    let (a, b) = tokio::join!(first.run_due(now), second.run_due(now));
    assert_eq!(a.unwrap() + b.unwrap(), 200);
    assert!(jobs.iter().all(|job| handler.attempts_of(*job) == 1));
}

#[sqlx::test]
async fn notify_wakes_the_worker_and_shutdown_waits_for_jobs_in_flight(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool(db).await;
    let handler = CountingHandler {
        delay: Duration::from_millis(300),
        ..Default::default()
    };
    // Polling only every minute: within the test, only NOTIFY can wake the worker.
    let worker = worker(&pool, &handler);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let job = enqueue(&pool, None, Utc::now(), 3).await.unwrap();
    let started = tokio::time::Instant::now();
    while handler.attempts_of(job) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the worker never woke"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shut down while a job is in flight (its handler sleeps 300 ms): it is finished
    // and recorded before `run` returns.
    let second = enqueue(&pool, None, Utc::now(), 3).await.unwrap();
    while handler.attempts_of(second) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(state_of(&pool, job).await.0, "done");
    assert_eq!(state_of(&pool, second).await.0, "done");
}

#[sqlx::test]
async fn job_whose_worker_dies_on_the_last_attempt_is_dead(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let now = Utc::now();
    let job = enqueue(&pool, None, now, 1).await.unwrap();
    let crashed = uuid::Uuid::new_v4();
    assert_eq!(
        claim_jobs(&pool, crashed, now, Duration::from_secs(60), 10, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let later = now + chrono::Duration::minutes(5);
    assert!(
        claim_jobs(
            &pool,
            uuid::Uuid::new_v4(),
            later,
            Duration::from_secs(60),
            10,
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
    let (state, error) = state_of(&pool, job).await;
    assert_eq!(state, "dead");
    assert!(error.unwrap().contains("last attempt"));
}

/// Panics on its first attempt, then succeeds.
#[derive(Clone, Default)]
struct PanickingHandler {
    attempts: Arc<Mutex<i32>>,
}

impl JobHandler for PanickingHandler {
    async fn run(&self, _: &Job) -> anyhow::Result<()> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            *attempts += 1;
            *attempts
        };
        if attempt == 1 {
            panic!("a bug in the handler");
        }
        Ok(())
    }
}

#[sqlx::test]
async fn a_panicking_job_fails_with_its_message_and_is_retried(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool(db).await;
    let now = Utc::now();
    let job = enqueue(&pool, None, now, 3).await.unwrap();
    let handler = PanickingHandler::default();
    let worker = Worker::new(pool.clone(), handler.clone(), WorkerOptions::default());
    assert_eq!(worker.run_due(now).await.unwrap(), 1);
    let (state, error) = state_of(&pool, job).await;
    assert_eq!(state, "scheduled", "retried, not left running");
    assert!(error.unwrap().contains("a bug in the handler"));
    assert_eq!(
        worker
            .run_due(now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(state_of(&pool, job).await.0, "done");
    assert_eq!(*handler.attempts.lock().unwrap(), 2);
}

#[sqlx::test]
async fn a_running_job_renews_its_short_lease(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = pool(db).await;
    let job = enqueue(&pool, None, Utc::now(), 3).await.unwrap();
    // Runs for four leases; without renewals the second worker would take it over.
    let slow = CountingHandler {
        delay: Duration::from_millis(2400),
        ..CountingHandler::default()
    };
    let options = WorkerOptions {
        concurrency: 8,
        lease: Duration::from_millis(600),
        max_run_time: Duration::from_secs(60),
        poll_interval: Duration::from_secs(60),
    };
    let first = Worker::new(pool.clone(), slow.clone(), options.clone());
    let second = Worker::new(pool.clone(), slow.clone(), options);
    let running = tokio::spawn(async move { first.run_due(Utc::now()).await.unwrap() });
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            second.run_due(Utc::now()).await.unwrap(),
            0,
            "the lease is renewed"
        );
    }
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(slow.attempts_of(job), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
}

/// Asks for a run of the keyed job `rearmed` (as forwarding does) and returns its ID.
async fn rearm(pool: &PgPool, run_at: DateTime<Utc>, max_attempts: i32) -> i64 {
    let payload = json!({});
    let job = NewJob {
        kind: "test",
        key: Some("rearmed"),
        payload: &payload,
        run_at,
        max_attempts,
    };
    rearm_job(&mut pool.acquire().await.unwrap(), &job)
        .await
        .unwrap();
    sqlx::query_scalar("select id from jobs where key = 'rearmed'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_keyed_job_asked_for_while_it_runs_runs_once_more_and_keeps_its_backoff(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool(db).await;
    let now = Utc::now();
    let handler = CountingHandler {
        delay: Duration::from_millis(300),
        ..CountingHandler::default()
    };
    let worker = worker(&pool, &handler);

    // Asked for twice before it starts: one run, no sooner than the later ask wants
    // (it must see what was committed before either).
    let job = rearm(&pool, now, 3).await;
    let second = now + chrono::Duration::seconds(1);
    assert_eq!(rearm(&pool, second, 3).await, job);
    assert_eq!(rearm(&pool, now, 3).await, job);
    assert_eq!(
        worker.run_due(now).await.unwrap(),
        0,
        "put off to the later ask"
    );
    assert_eq!(worker.run_due(second).await.unwrap(), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
    assert_eq!(worker.run_due(second).await.unwrap(), 0);

    // Asked for again once done: it runs again. Asked for while it runs: once more
    // after, however many times it was asked, at the time asked.
    rearm(&pool, now, 3).await;
    let running = {
        let worker = self::worker(&pool, &handler);
        tokio::spawn(async move { worker.run_due(now).await.unwrap() })
    };
    while handler.attempts_of(job) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let later = Utc::now() + chrono::Duration::seconds(10);
    for _ in 0..3 {
        rearm(&pool, later, 3).await;
    }
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(state_of(&pool, job).await.0, "scheduled");
    assert_eq!(
        worker.run_due(Utc::now()).await.unwrap(),
        0,
        "not before it was asked for"
    );
    assert_eq!(worker.run_due(later).await.unwrap(), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
    assert_eq!(handler.attempts_of(job), 3);

    // A failed run backs off, and being asked for does not cut the backoff short.
    let failing = CountingHandler {
        failures: 1,
        ..CountingHandler::default()
    };
    let failing_worker = self::worker(&pool, &failing);
    rearm(&pool, now, 3).await;
    assert_eq!(failing_worker.run_due(now).await.unwrap(), 1);
    let (state, error) = state_of(&pool, job).await;
    assert_eq!((state.as_str(), error.is_some()), ("scheduled", true));
    rearm(&pool, now, 3).await;
    let later = now + chrono::Duration::seconds(5);
    assert_eq!(
        failing_worker.run_due(later).await.unwrap(),
        0,
        "backing off"
    );
    let retry = now + chrono::Duration::minutes(1);
    assert_eq!(failing_worker.run_due(retry).await.unwrap(), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
}

#[sqlx::test]
async fn a_keyed_job_asked_for_during_its_last_failing_attempt_starts_afresh(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = pool(db).await;
    let now = Utc::now();
    let handler = CountingHandler {
        failures: 1,
        delay: Duration::from_millis(300),
        ..CountingHandler::default()
    };
    let job = rearm(&pool, now, 1).await;
    let running = {
        let worker = worker(&pool, &handler);
        tokio::spawn(async move { worker.run_due(now).await.unwrap() })
    };
    while handler.attempts_of(job) < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked_for = Utc::now() + chrono::Duration::seconds(3);
    rearm(&pool, asked_for, 1).await;
    assert_eq!(running.await.unwrap(), 1);
    let (state, error) = state_of(&pool, job).await;
    assert_eq!(
        (state.as_str(), error.is_some()),
        ("scheduled", true),
        "not dead"
    );
    let worker = worker(&pool, &handler);
    assert_eq!(
        worker.run_due(Utc::now()).await.unwrap(),
        0,
        "not before it was asked for"
    );
    assert_eq!(worker.run_due(asked_for).await.unwrap(), 1);
    assert_eq!(state_of(&pool, job).await.0, "done");
}
