//! Throttled sending (`[sending] rate`): the rate holds for all email and across
//! workers, measured from the SMTP server's receive times; email that is not bulk goes
//! ahead of a running campaign; a send with no slot soon enough waits in the queue
//! without spending an attempt.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, spawn_app_with_smtp};
use crate::smtp_server::SmtpServer;

/// Ten a second: one email every 100 ms.
const TEN_A_SECOND: &str = r#"
[sending]
rate = "10/s"
"#;

/// `count` subscribed contacts, `person0@example.com` on.
async fn contacts(app: &TestApp, count: usize) {
    for i in 0..count {
        let body = json!({ "email": format!("person{i}@example.com") });
        let (status, answer) = app.api_post("/v1/contacts/create", body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

/// Starts a campaign of `tips` to every subscribed contact, now.
async fn campaign_to_all(app: &TestApp) {
    let body = json!({ "name": "Launch", "template": "tips", "scheduling": { "method": "now" } });
    let (status, created) = app.api_post("/v1/campaigns", body).await;
    assert_eq!(status, 200, "{created}");
}

async fn transactional(app: &TestApp, email: &str) {
    let body = json!({ "transactionalId": "magic_link", "email": email,
                       "dataVariables": { "url": "https://app.example.com/magic/abc" } });
    let (status, answer) = app.api_post("/v1/transactional", body).await;
    assert_eq!(status, 200, "{answer}");
}

/// Runs two workers on the real clock (as two replicas would) until `count` emails
/// have arrived, then stops them.
async fn drain_with_two_workers(app: &TestApp, smtp: &SmtpServer, count: usize) {
    let shutdown = CancellationToken::new();
    let workers = [app.another_worker(), app.another_worker()]
        .map(|worker| tokio::spawn(worker.run(shutdown.clone())));
    let deadline = Instant::now() + Duration::from_secs(60);
    while smtp.messages().len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} arrived",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[sqlx::test]
async fn the_rate_holds_for_all_email_across_two_workers(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, TEN_A_SECOND).await;
    contacts(&app, 20).await;
    campaign_to_all(&app).await;
    for i in 0..5 {
        transactional(&app, &format!("reader{i}@example.com")).await;
    }
    drain_with_two_workers(&app, &smtp, 25).await;

    let messages = smtp.messages();
    let recipients: std::collections::HashSet<_> =
        messages.iter().map(|m| m.recipients.clone()).collect();
    assert_eq!(
        (messages.len(), recipients.len()),
        (25, 25),
        "one email each, none twice"
    );
    let mut times: Vec<Instant> = messages.iter().map(|m| m.received_at).collect();
    times.sort();
    // Spaced 100 ms apart from their slots: 24 gaps take at least 2.4 s, less what a
    // busy machine may delay the first one by.
    let spread = times[24] - times[0];
    assert!(
        spread >= Duration::from_millis(2_000),
        "25 emails in {spread:?}"
    );
    // No second holds much more than ten: a send held up can only arrive late, and
    // late ones bunch up only by what the machine delayed them (here up to 500 ms).
    let busiest = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && **t - *start < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 15, "{busiest} emails within one second");
}

#[sqlx::test]
async fn a_transactional_email_goes_ahead_of_a_running_campaign(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, TEN_A_SECOND).await;
    contacts(&app, 40).await;
    campaign_to_all(&app).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(app.another_worker().run(shutdown.clone()));
    let started = Instant::now();
    while smtp.messages().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the campaign did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = Instant::now();
    let before = smtp.messages().len();
    transactional(&app, "reader@example.com").await;
    let position = loop {
        let messages = smtp.messages();
        if let Some(at) = messages
            .iter()
            .position(|m| m.recipients == ["reader@example.com"])
        {
            break at;
        }
        assert!(asked.elapsed() < Duration::from_secs(30), "never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let waited = smtp.messages()[position].received_at - asked;
    shutdown.cancel();
    worker.await.unwrap();
    // Behind at most the campaign's sends already holding a slot, never its backlog.
    assert!(
        position <= before + 3,
        "arrived {position}th, {before} had arrived when it was asked for"
    );
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
}

#[sqlx::test]
async fn a_send_with_no_slot_soon_waits_in_the_queue_without_spending_an_attempt(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, "[sending]\nrate = \"1/m\"\n").await;
    contacts(&app, 3).await;
    transactional(&app, "first@example.com").await;
    transactional(&app, "second@example.com").await;
    campaign_to_all(&app).await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 1, "one a minute");

    let waiting: Vec<(String, bool, i32, f64)> = sqlx::query_as(
        "select state, bulk, attempts, extract(epoch from run_at - now())::float8
         from jobs where kind = 'workflow.step' and state <> 'done' order by bulk, id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(waiting.len(), 4, "{waiting:?}");
    let (state, bulk, attempts, due_in) = &waiting[0];
    assert_eq!((state.as_str(), *bulk, *attempts), ("scheduled", false, 0));
    // Due when its slot, a minute after the first, comes within its 10 s horizon.
    assert!((40.0..=51.0).contains(due_in), "due in {due_in} s");
    for (state, bulk, attempts, _) in &waiting[1..] {
        // Never claimed: no slot was near.
        assert_eq!((state.as_str(), *bulk, *attempts), ("scheduled", true, 0));
    }
}
