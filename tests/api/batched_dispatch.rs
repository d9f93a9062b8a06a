//! Batched dispatch: the worker hands the engine a claim batch of sends, which it
//! claims in one statement and one durable commit, sends over the SMTP pool, and
//! records in one transaction, with the jobs completed in one statement. Every send of
//! a batch keeps the guarantees it had alone.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, fixture, set, spawn_app_with_smtp};

const EXAMPLE_CONFIG: &str = include_str!("../../roster.example.toml");

/// Signs up `n` users, `p0@example.com` on: each gets a welcome run due now.
async fn sign_up(app: &TestApp, n: usize) {
    for i in 0..n {
        let mut event = fixture("user.created");
        set(&mut event, "/data/id", json!(format!("user_{i}")));
        let email = format!("p{i}@example.com");
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(email),
        );
        assert_eq!(app.deliver(&event).await.0, 200);
    }
}

/// How many transactions last wrote the rows selected: `query` counts their `xmin`s.
async fn writers(app: &TestApp, query: &'static str) -> i64 {
    sqlx::query_scalar(query).fetch_one(&app.db).await.unwrap()
}

#[sqlx::test]
async fn a_claim_batch_is_claimed_recorded_and_completed_in_one_statement_each(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    sign_up(&app, 12).await;
    // SMTP answers slowly, so the claims can be looked at before the outcomes.
    smtp.set_delay(Duration::from_millis(1500));
    let worker = app.another_worker();
    let now = Utc::now();
    let draining = tokio::spawn(async move { worker.run_due(now).await.unwrap() });
    let sending = "select count(distinct xmin::text) from email_deliveries where state = 'sending'";
    let mut claimed = 0;
    for _ in 0..100 {
        claimed = sqlx::query_scalar::<_, i64>(
            "select count(*) from email_deliveries where state = 'sending'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        if claimed == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(claimed, 12, "the batch's sends are all claimed before SMTP");
    assert_eq!(writers(&app, sending).await, 1, "in one transaction");
    draining.await.unwrap();
    assert_eq!(smtp.messages().len(), 12);
    let sent = "select count(distinct xmin::text) from email_deliveries where state = 'sent'";
    assert_eq!(writers(&app, sent).await, 1, "the outcomes in one");
    let done =
        "select count(distinct xmin::text) from jobs where state = 'done' and key like '%:0'";
    assert_eq!(writers(&app, done).await, 1, "the completions in one");
}

/// What a run's send step meets when its batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disorder {
    None,
    Unsubscribed,
    Suppressed,
    /// An earlier attempt died between its claim and SMTP's answer.
    DiedWhileSending,
    /// An earlier attempt sent it, and died before moving the run on.
    SentBefore,
    /// An earlier attempt met a transient failure: this one sends.
    RetryingBefore,
    /// The run ended while its step waited (a cancelled campaign, an exit).
    RunExited,
}

const DISORDERS: [Disorder; 7] = [
    Disorder::None,
    Disorder::Unsubscribed,
    Disorder::Suppressed,
    Disorder::DiedWhileSending,
    Disorder::SentBefore,
    Disorder::RetryingBefore,
    Disorder::RunExited,
];

/// The state each (run, step 0) should reach: whether an email goes out, the delivery
/// row's state, and the run's state and step after (moved on, the run waits at step 2
/// for its tips).
fn expected(disorder: Disorder) -> (bool, Option<&'static str>, &'static str, i32) {
    match disorder {
        Disorder::None | Disorder::RetryingBefore => (true, Some("sent"), "active", 2),
        Disorder::Unsubscribed => (false, None, "exited", 0),
        Disorder::Suppressed => (false, Some("suppressed"), "exited", 0),
        Disorder::DiedWhileSending => (false, Some("unknown"), "active", 2),
        Disorder::SentBefore => (false, Some("sent"), "active", 2),
        Disorder::RunExited => (false, None, "exited", 0),
    }
}

async fn arrange(app: &TestApp, email: &str, disorder: Disorder) {
    let earlier = "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts, state)
         select gen_random_uuid(), r.id, 0, 'welcome', $1, '<m@acme.test>', false, 1, $2
         from workflow_runs r join contacts c on c.id = r.contact_id where c.email = $1";
    let (sql, state) = match disorder {
        Disorder::None => return,
        Disorder::Unsubscribed => (
            "update contacts set subscribed = false where email = $1",
            "",
        ),
        Disorder::Suppressed => (
            "insert into suppressions (email, reason) values ($1, '550 no such user')",
            "",
        ),
        Disorder::DiedWhileSending => (earlier, "sending"),
        Disorder::SentBefore => (earlier, "sent"),
        Disorder::RetryingBefore => (earlier, "retrying"),
        Disorder::RunExited => (
            "update workflow_runs set state = 'exited', exit_reason = 'ended'
             where contact_id = (select id from contacts where email = $1)",
            "",
        ),
    };
    let query = sqlx::query(sql).bind(email);
    let query = if state.is_empty() {
        query
    } else {
        query.bind(state)
    };
    query.execute(&app.db).await.unwrap();
}

/// A small deterministic generator, so a failing seed can be run again.
fn next(seed: &mut u64) -> usize {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

#[sqlx::test]
async fn every_send_of_a_batch_reaches_the_state_it_would_alone(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    let runs = 40;
    sign_up(&app, runs).await;
    let mut seed = 14;
    let disorders: Vec<Disorder> = (0..runs)
        .map(|_| DISORDERS[next(&mut seed) % DISORDERS.len()])
        .collect();
    for (i, disorder) in disorders.iter().enumerate() {
        arrange(&app, &format!("p{i}@example.com"), *disorder).await;
    }
    // Two workers drain the queue at once: batches meet and interleave.
    let second = app.another_worker();
    let now = Utc::now();
    let (a, b) = tokio::join!(app.worker.run_due(now), second.run_due(now));
    a.unwrap();
    b.unwrap();

    let received: BTreeSet<String> = smtp
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    assert_eq!(smtp.messages().len(), received.len(), "no address twice");
    for (i, disorder) in disorders.iter().enumerate() {
        let email = format!("p{i}@example.com");
        let (sends, delivery, run_state, step) = expected(*disorder);
        let (actual_delivery, actual_state, actual_step): (Option<String>, String, i32) =
            sqlx::query_as(
                "select d.state, r.state, r.current_step
                 from workflow_runs r join contacts c on c.id = r.contact_id
                 left join email_deliveries d on d.run_id = r.id and d.step = 0
                 where c.email = $1 and r.workflow = 'onboarding'",
            )
            .bind(&email)
            .fetch_one(&app.db)
            .await
            .unwrap();
        let sent = received.iter().any(|to| to.contains(&email));
        assert_eq!(
            (
                sent,
                actual_delivery.as_deref(),
                actual_state.as_str(),
                actual_step
            ),
            (sends, delivery, run_state, step),
            "{email} after {disorder:?}"
        );
    }
    let open: i64 =
        sqlx::query_scalar("select count(*) from jobs where key like '%:0' and state <> 'done'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(open, 0, "every step job done");
}
