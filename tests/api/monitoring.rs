//! `GET /metrics`: Prometheus text with the webhook, job and email figures, after real
//! deliveries and a real send.

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Delivery, TestApp, fixture, spawn_app_with_smtp};

/// `/metrics` of `app`, after checking it answers in Prometheus' text format.
pub async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text format"
    );
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `name` and holds every label given.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    find_sample(text, name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{text}"))
}

fn find_sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.split([' ', '{']).next() == Some(name) && labels.iter().all(|l| line.contains(l))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// How much a counter grew between two scrapes. The recorder belongs to the process,
/// so the growth, not the value, is this test's; nextest runs each test in a process
/// of its own, where the growth is exact.
fn growth(before: &str, after: &str, name: &str, labels: &[&str]) -> f64 {
    sample(after, name, labels) - find_sample(before, name, labels).unwrap_or(0.0)
}

#[sqlx::test]
async fn metrics_count_webhooks_jobs_and_emails(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, include_str!("../../roster.example.toml")).await;
    let start = scrape(&app).await;
    let mut event = fixture("user.created");
    event["timestamp"] = serde_json::json!(Utc::now().timestamp_millis());
    assert_eq!(app.deliver(&event).await.0, 200);
    let mut forged = Delivery::of(&fixture("user.updated"));
    forged.signature = Some("v1,AAAA".into());
    assert_eq!(app.send(&forged).await.status(), 401);

    // The welcome step has waited a minute and a half.
    sqlx::query("update jobs set run_at = now() - interval '90 seconds'")
        .execute(&app.db)
        .await
        .unwrap();
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "roster_jobs_due", &[]),
        1.0,
        "the welcome step is due"
    );
    assert!(sample(&before, "roster_queue_lag_seconds", &[]) >= 90.0);
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 1);

    let after = scrape(&app).await;
    let processed = ["type=\"user.created\"", "outcome=\"processed\""];
    let grew = |name, labels| growth(&start, &after, name, labels);
    assert_eq!(grew("roster_webhooks_received_total", &processed), 1.0);
    let refused = ["type=\"unknown\"", "outcome=\"unauthorized\""];
    assert_eq!(grew("roster_webhooks_received_total", &refused), 1.0);
    assert_eq!(grew("roster_webhook_signature_failures_total", &[]), 1.0);
    assert_eq!(grew("roster_webhook_ingest_seconds_count", &[]), 1.0);
    assert_eq!(grew("roster_emails_total", &["outcome=\"sent\""]), 1.0);
    let welcome = ["workflow=\"onboarding\"", "template=\"welcome\""];
    assert_eq!(
        grew("roster_event_to_email_accepted_seconds_count", &welcome),
        1.0
    );
    assert_eq!(
        sample(&after, "roster_jobs_due", &[]),
        0.0,
        "the tips step waits two days"
    );
    assert_eq!(sample(&after, "roster_jobs_dead", &[]), 0.0);
    assert_eq!(sample(&after, "roster_database_up", &[]), 1.0);
}
