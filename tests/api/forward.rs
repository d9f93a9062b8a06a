//! Forwarding stored Clerk events to Tinybird's Events API, through the stand-in in
//! `tinybird.rs` (Tinybird cannot run here): each verified, deduplicated event reaches
//! the data source once after merge, through redeliveries, 429s, 5xx answers and a
//! batch sent twice; `roster forward --since` backfills idempotently.

use chrono::{Duration, Utc};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use roster::config::forward::ForwardSettings;
use roster::forward::{Forwarder, backfill};

use crate::helpers::{Delivery, TestApp, fixture, set, spawn_app_with_config};
use crate::tinybird::Tinybird;

const TOKEN: &str = "p.test-append-token";

fn config(tinybird: &Tinybird) -> &'static str {
    Box::leak(
        format!(
            "[forward.tinybird]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\ndatasource = \"clerk_events\"\n",
            tinybird.url
        )
        .into_boxed_str(),
    )
}

/// Delivers `n` user.created events, each twice (Svix retries); returns their svix-ids.
async fn deliver_users(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut event = fixture("user.created");
        set(&mut event, "/data/id", json!(format!("user_fwd_{i}")));
        let email = format!("f{i}@example.com");
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(email),
        );
        let delivery = crate::helpers::Delivery::of(&event);
        for _ in 0..2 {
            assert_eq!(app.send(&delivery).await.status(), 200);
        }
        ids.push(delivery.id.clone());
    }
    ids
}

/// Events waiting in the outboxes.
pub async fn outbox(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from forward_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// What a crash after `destination` took every event, and before their rows left the
/// outbox, leaves: the rows back, and the crashed job due again (its lease ended).
pub async fn crash_after_the_destination_took_everything(app: &TestApp, destination: &str) {
    sqlx::query(
        "insert into forward_outbox (destination, event_id) select $1, id from clerk_events",
    )
    .bind(destination)
    .execute(&app.db)
    .await
    .unwrap();
    roster::forward::outbox::wake(&app.db, destination, Utc::now())
        .await
        .unwrap();
}

/// Runs the worker at later and later times, as the clock moves past retries, until
/// the outboxes are empty.
pub async fn drain(app: &TestApp) {
    let now = Utc::now();
    for minutes in [0, 1, 5, 30, 120, 600] {
        app.run_jobs_at(now + Duration::seconds(2) + Duration::minutes(minutes))
            .await;
        if outbox(app).await == 0 {
            return;
        }
    }
}

#[sqlx::test]
async fn each_event_reaches_tinybird_once_through_429s_and_5xx(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let tinybird = Tinybird::start(TOKEN).await;
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    let ids = deliver_users(&app, 30).await;
    assert_eq!(
        outbox(&app).await,
        30,
        "one row per stored event, not per delivery"
    );
    tinybird.refuse(&[429, 503, 500]);
    drain(&app).await;
    assert_eq!(outbox(&app).await, 0, "all sent");
    assert!(tinybird.requests() >= 4, "the refusals were retried");
    assert!(tinybird.every_request_waited(), "wait=true on every append");
    let rows = tinybird.deduplicated("clerk_events");
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), expected);
    // Each row is the stored event: verified, deduplicated and redacted as Roster keeps it.
    let (svix_id, stored_payload, occurred_at): (String, serde_json::Value, chrono::DateTime<Utc>) =
        sqlx::query_as("select svix_id, payload, occurred_at from clerk_events order by id limit 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let row = &rows[&svix_id];
    assert_eq!(row["event_type"], "user.created");
    assert_eq!(row["subject_id"], "user_fwd_0");
    assert_eq!(row["occurred_at_ms"], occurred_at.timestamp_millis());
    let payload: serde_json::Value =
        serde_json::from_str(row["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, stored_payload);

    // Events of a later second ask the same job again: the queue keeps one per
    // destination, not one per second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut later = fixture("user.created");
    set(&mut later, "/data/id", json!("user_fwd_later"));
    assert_eq!(app.send(&Delivery::of(&later)).await.status(), 200);
    drain(&app).await;
    assert_eq!(tinybird.deduplicated("clerk_events").len(), 31);
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs where kind = 'forward.events'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
}

#[sqlx::test]
async fn a_batch_sent_again_and_a_backfill_count_once(_: PgPoolOptions, db: PgConnectOptions) {
    let tinybird = Tinybird::start(TOKEN).await;
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    deliver_users(&app, 12).await;
    drain(&app).await;
    assert_eq!(tinybird.rows("clerk_events").len(), 12);
    crash_after_the_destination_took_everything(&app, "tinybird").await;
    drain(&app).await;
    assert_eq!(
        tinybird.rows("clerk_events").len(),
        24,
        "sent again: at least once"
    );
    assert_eq!(
        tinybird.deduplicated("clerk_events").len(),
        12,
        "counted once"
    );
    // `roster forward --since`, twice.
    let settings: ForwardSettings = toml::from_str(&format!(
        "[tinybird]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\ndatasource = \"clerk_events\"\n",
        tinybird.url
    ))
    .unwrap();
    let forwarder = Forwarder::new(&settings).unwrap();
    // The fixtures' events happened in the past; all of them are since 2000.
    let since = "2000-01-01T00:00:00Z".parse().unwrap();
    for _ in 0..2 {
        let progress = indicatif::ProgressBar::hidden();
        let done = backfill(&app.db, &forwarder, since, &progress)
            .await
            .unwrap();
        assert_eq!(done.forwarded, 12);
    }
    assert_eq!(tinybird.deduplicated("clerk_events").len(), 12);
    assert_eq!(outbox(&app).await, 0);
    // Nothing before `since`.
    let later = Utc::now() + Duration::days(1);
    let done = backfill(
        &app.db,
        &forwarder,
        later,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(done.forwarded, 0);
}

#[sqlx::test]
async fn a_wrong_token_keeps_the_events_and_counts_the_failure(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let tinybird = Tinybird::start("p.another-token").await;
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    deliver_users(&app, 3).await;
    app.run_jobs_at(Utc::now() + Duration::seconds(2)).await;
    assert_eq!(outbox(&app).await, 3, "kept for when the token is fixed");
    assert!(tinybird.rows("clerk_events").is_empty());
    let error: String = sqlx::query_scalar(
        "select last_error from jobs where kind = 'forward.events' and last_error is not null limit 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(error.contains("tinybird answered 403"), "{error}");
    assert!(
        !error.contains("another-token") && !error.contains(TOKEN),
        "{error}"
    );
    let text = crate::monitoring::scrape(&app).await;
    assert!(
        text.contains("roster_forward_pending{destination=\"tinybird\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("roster_forward_failures_total{destination=\"tinybird\"}"),
        "{text}"
    );
}

#[sqlx::test]
async fn large_events_go_in_requests_tinybird_takes(_: PgPoolOptions, db: PgConnectOptions) {
    let tinybird = Tinybird::start(TOKEN).await;
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    // Webhooks near the 1 MiB limit, all quotes: each doubles once escaped as the row's
    // payload, and 24 of them make some 38 MB, beyond what one request may carry.
    let mut ids = Vec::new();
    for i in 0..24 {
        let mut event = fixture("user.created");
        set(&mut event, "/data/id", json!(format!("user_big_{i}")));
        let email = format!("big{i}@example.com");
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(email),
        );
        set(
            &mut event,
            "/data/unsafe_metadata",
            json!({ "notes": "\"".repeat(400_000) }),
        );
        let delivery = Delivery::of(&event);
        assert_eq!(app.send(&delivery).await.status(), 200);
        ids.push(delivery.id.clone());
    }
    drain(&app).await;
    assert_eq!(outbox(&app).await, 0, "no request refused as too large");
    assert!(tinybird.requests() >= 5, "{} requests", tinybird.requests());
    let mut expected = ids;
    expected.sort();
    let rows = tinybird.deduplicated("clerk_events");
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), expected);
}

#[sqlx::test]
async fn rows_tinybird_quarantines_are_counted_not_sent_forever(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let tinybird = Tinybird::start(TOKEN).await;
    // A data source with a column Roster does not send: every row is quarantined.
    tinybird.add_column("plan");
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    deliver_users(&app, 5).await;
    drain(&app).await;
    assert_eq!(outbox(&app).await, 0, "taken (into the quarantine)");
    assert!(tinybird.rows("clerk_events").is_empty());
    let text = crate::monitoring::scrape(&app).await;
    assert!(
        text.contains("roster_forward_quarantined_total{destination=\"tinybird\"} 5"),
        "{text}"
    );
}

#[sqlx::test]
async fn rows_another_sender_holds_are_looked_at_again(_: PgPoolOptions, db: PgConnectOptions) {
    let tinybird = Tinybird::start(TOKEN).await;
    let app = spawn_app_with_config(db, config(&tinybird)).await;
    deliver_users(&app, 3).await;
    // Another sender (`roster forward`, or a run whose lease ran out) holds every row
    // while the job runs, and then fails.
    let mut other = app.db.begin().await.unwrap();
    sqlx::query("select from forward_outbox for update")
        .execute(&mut *other)
        .await
        .unwrap();
    let now = Utc::now();
    app.run_jobs_at(now + Duration::seconds(2)).await;
    assert_eq!(tinybird.requests(), 0);
    other.rollback().await.unwrap();
    // No event comes to ask for a run: the job looks again by itself.
    app.run_jobs_at(now + Duration::seconds(10)).await;
    assert_eq!(outbox(&app).await, 0);
    assert_eq!(tinybird.deduplicated("clerk_events").len(), 3);
}
