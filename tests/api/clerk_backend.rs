//! `roster clerk backfill` and `roster clerk reconcile` against a stand-in for Clerk's
//! Backend API (`clerk_api.rs`: Clerk cannot run here; the stand-in answers its
//! documented endpoints, paging, 429s and errors), run as the binary a user runs, on a
//! real PostgreSQL.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::clerk_api::{ClerkApi, SECRET_KEY, clerk_user, clerk_waitlist_entry};
use crate::helpers::{TestApp, database_url, fixture, roster, set, spawn_app};
use crate::monitoring::scrape;

/// 2025-01-01, when the stand-in's first user signed up; one a second after that.
const BASE_MS: i64 = 1_735_689_600_000;

fn user_id(i: i64) -> String {
    format!("user_{i:05}")
}

fn users(count: i64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            clerk_user(
                &user_id(i),
                &format!("u{i:05}@example.com"),
                "Listed",
                BASE_MS + i * 1000,
            )
        })
        .collect()
}

/// `roster clerk ARGS` on this test's database, reading the stand-in.
fn clerk_command(db: &PgConnectOptions, clerk: &ClerkApi, args: &[&str]) -> Command {
    let mut command = roster();
    command
        .arg("clerk")
        .args(args)
        .env("DATABASE_URL", database_url(db))
        .env("CLERK_SECRET_KEY", SECRET_KEY)
        .env("CLERK_API_URL", &clerk.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end, off the test's runtime (which serves the stand-in).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Runs `roster clerk ARGS` to its end; its output, after asserting it succeeded.
async fn clerk_ok(db: &PgConnectOptions, clerk: &ClerkApi, args: &[&str]) -> String {
    let output = output(clerk_command(db, clerk, args)).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "roster clerk {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn scalar(db: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

async fn next_offset(db: &PgPool) -> Option<i32> {
    sqlx::query_scalar("select next_offset from clerk_backfills where listing = 'users'")
        .fetch_optional(db)
        .await
        .unwrap()
}

/// A `user.deleted` of `id`, as Clerk sends it, at `ms`.
fn deletion(id: &str, ms: i64) -> Value {
    let mut event = fixture("user.deleted");
    set(&mut event, "/data/id", json!(id));
    set(&mut event, "/timestamp", json!(ms));
    event
}

/// A `user.updated` of listed user `i` with a newer version than the listing's.
fn newer_update(i: i64, first_name: &str) -> Value {
    let mut user = clerk_user(
        &user_id(i),
        &format!("u{i:05}@example.com"),
        first_name,
        BASE_MS + i * 1000,
    );
    user["updated_at"] = json!(BASE_MS + 100_000_000);
    json!({"object": "event", "type": "user.updated", "timestamp": BASE_MS + 100_000_001,
           "instance_id": "ins_2abcDEFghiJKLmnoPQRstuVWxyz", "data": user})
}

#[sqlx::test]
async fn backfill_pages_ten_thousand_users_through_a_429_and_resumes_after_kill_9(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db.clone()).await;
    let clerk = ClerkApi::start(
        users(10_000),
        vec![
            clerk_waitlist_entry("wle_waiting", "waiting@example.com", BASE_MS),
            // The waitlist entry of someone who has since signed up.
            clerk_waitlist_entry("wle_signed_up", "u00003@example.com", BASE_MS - 1000),
        ],
    )
    .await;
    // What webhooks told Roster before the backfill: user 7 was deleted, user 8 changed
    // after the version the listing has.
    let far_later = BASE_MS + 200_000_000;
    assert_eq!(app.deliver(&deletion(&user_id(7), far_later)).await.0, 200);
    assert_eq!(app.deliver(&newer_update(8, "Newer")).await.0, 200);

    clerk.rate_limit_at(&user_id(2500));
    clerk.hold_at(Some(&user_id(5000)));
    let mut backfill = clerk_command(&db, &clerk, &["backfill"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while next_offset(&app.db).await != Some(5000) {
        assert!(
            backfill.try_wait().unwrap().is_none(),
            "backfill ended early"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "backfill stuck"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed while it waits for page 11: nothing of its work is lost.
    backfill.kill().unwrap(); // SIGKILL
    backfill.wait().unwrap();
    assert_eq!(
        scalar(
            &app.db,
            "select count(*) from contacts where user_id is not null"
        )
        .await,
        5000
    );
    clerk.hold_at(None);
    // Meanwhile users already backfilled leave Clerk: the pages after do not shift.
    clerk.edit_users(|users| {
        users.retain(|u| !(100..=110).any(|i| u["id"] == user_id(i)));
    });

    let summary = clerk_ok(&db, &clerk, &["backfill"]).await;
    assert!(
        summary.contains(
            "users: 5000 listed (resumed at 5000): 5000 contacts created, 0 updated, 0 unchanged"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("waitlist entries: 2 listed: 1 contacts created"),
        "{summary}"
    );
    assert!(summary.contains("0 workflow runs started"), "{summary}");

    let served = clerk.served();
    let pages: Vec<(Option<String>, u16)> = served
        .iter()
        .filter(|s| s.path == "/v1/users")
        .map(|s| (s.first.clone(), s.status))
        .collect();
    // 20 pages of 500 users; the empty page after says there are no more.
    let mut expected: Vec<(Option<String>, u16)> = (0..20)
        .map(|page| (Some(user_id(page * 500)), 200))
        .collect();
    expected.insert(5, (Some(user_id(2500)), 429));
    expected.push((None, 200));
    assert_eq!(
        pages, expected,
        "each page once, 500 at a time, the 429 retried"
    );
    assert!(
        served
            .iter()
            .filter(|s| s.path != "/v1/users/count")
            .all(|s| s.limit == 500)
    );
    let limited = served.iter().position(|s| s.status == 429).unwrap();
    assert!(
        served[limited + 1].at - served[limited].at >= Duration::from_secs(1),
        "waited out Retry-After"
    );

    assert_eq!(app.count("contacts").await, 10_001);
    let deleted = app.contact_by_user_id(&user_id(7)).await.unwrap();
    assert!(!deleted.subscribed, "the deletion's tombstone holds");
    let newer = app.contact_by_user_id(&user_id(8)).await.unwrap();
    assert_eq!(
        newer.first_name.as_deref(),
        Some("Newer"),
        "never older over newer"
    );
    let listed = app.contact_by_user_id(&user_id(9999)).await.unwrap();
    assert_eq!(
        (
            listed.email.as_str(),
            listed.first_name.as_deref(),
            listed.subscribed
        ),
        ("u09999@example.com", Some("Listed"), true)
    );
    let signed_up = app.contact_by_user_id(&user_id(3)).await.unwrap();
    assert_eq!(
        signed_up.waitlist_entry_id.as_deref(),
        Some("wle_signed_up"),
        "one contact"
    );
    assert_eq!(app.count("workflow_runs").await, 0);

    // Run again: everything listed anew, nothing changes.
    let again = clerk_ok(&db, &clerk, &["backfill"]).await;
    assert!(
        again.contains("users: 9989 listed: 0 contacts created, 0 updated, 9989 unchanged"),
        "{again}"
    );
    assert_eq!(app.count("contacts").await, 10_001);
}

/// Three pages of users, backfilled; then what Clerk has and Roster has drift apart.
async fn backfilled(db: &PgConnectOptions) -> (TestApp, ClerkApi) {
    let app = spawn_app(db.clone()).await;
    let clerk = ClerkApi::start(users(1200), vec![]).await;
    clerk_ok(db, &clerk, &["backfill"]).await;
    assert_eq!(app.count("contacts").await, 1200);
    (app, clerk)
}

#[sqlx::test]
async fn reconcile_reports_planted_drift_and_fix_repairs_it(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, clerk) = backfilled(&db).await;
    // Missed deliveries: a sign-up, a deletion and a ban in Clerk; in Roster, a
    // contact lost and an address edited by hand.
    clerk.edit_users(|users| {
        users.push(clerk_user(
            "user_new",
            "new@example.com",
            "New",
            BASE_MS + 5_000_000,
        ));
        users.retain(|u| u["id"] != user_id(600));
        let banned = &mut users[10];
        banned["banned"] = json!(true);
        banned["updated_at"] = json!(BASE_MS + 6_000_000);
    });
    sqlx::query("delete from contacts where user_id = $1")
        .bind(user_id(1100))
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("update contacts set email = 'typo@example.com' where user_id = $1")
        .bind(user_id(20))
        .execute(&app.db)
        .await
        .unwrap();

    let report = clerk_ok(&db, &clerk, &["reconcile"]).await;
    for line in [
        "user_new: in Clerk, no contact",
        "user_01100: in Clerk, no contact",
        "user_00600: a contact, not in Clerk",
        "user_00010: differs: banned",
        "user_00020: differs: email",
        "drift: 2 in Clerk only, 1 in Roster only, 2 different; 0 fixed",
    ] {
        assert!(report.contains(line), "{line:?} in {report}");
    }
    let metrics = scrape(&app).await;
    for line in [
        r#"roster_clerk_drift{kind="missing_in_roster"} 2"#,
        r#"roster_clerk_drift{kind="missing_in_clerk"} 1"#,
        r#"roster_clerk_drift{kind="different"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(
        app.count("contacts").await,
        1199,
        "a report changes nothing"
    );

    let fixed = clerk_ok(&db, &clerk, &["reconcile", "--fix"]).await;
    assert!(fixed.contains("; 5 fixed"), "{fixed}");
    assert_eq!(
        app.contact_by_user_id("user_new").await.unwrap().email,
        "new@example.com"
    );
    assert!(app.contact_by_user_id(&user_id(1100)).await.is_some());
    assert!(
        !app.contact_by_user_id(&user_id(600))
            .await
            .unwrap()
            .subscribed
    );
    assert!(
        app.contact_by_user_id(&user_id(10))
            .await
            .unwrap()
            .clerk_banned
    );
    assert_eq!(
        app.contact_by_user_id(&user_id(20)).await.unwrap().email,
        "u00020@example.com"
    );

    let clean = clerk_ok(&db, &clerk, &["reconcile"]).await;
    assert!(
        clean.contains("drift: 0 in Clerk only, 0 in Roster only, 0 different; 0 fixed"),
        "{clean}"
    );
}

#[sqlx::test]
async fn reconcile_deletes_nothing_when_clerk_lists_few_of_the_users(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, clerk) = backfilled(&db).await;
    // As with the secret key of another instance: most users are not listed.
    clerk.edit_users(|users| users.truncate(100));
    let report = clerk_ok(&db, &clerk, &["reconcile", "--fix"]).await;
    assert!(
        report.contains("not deleted: 1100 contacts are more than 60"),
        "{report}"
    );
    assert!(
        report.contains("drift: 0 in Clerk only, 1100 in Roster only, 0 different; 0 fixed"),
        "{report}"
    );
    assert_eq!(
        scalar(&app.db, "select count(*) from contacts where subscribed").await,
        1200,
        "nobody unsubscribed"
    );
}

#[sqlx::test]
async fn backfill_retries_5xx_and_refuses_a_wrong_key_with_clerks_words(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db.clone()).await;
    let clerk = ClerkApi::start(users(3), vec![]).await;
    let mut wrong_key = clerk_command(&db, &clerk, &["backfill"]);
    wrong_key.env("CLERK_SECRET_KEY", "sk_test_wrong");
    let refused = output(wrong_key).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("You are not authorized to perform this request (authorization_invalid)"),
        "{stderr}"
    );
    let mut no_key = clerk_command(&db, &clerk, &["backfill"]);
    no_key.env_remove("CLERK_SECRET_KEY");
    let refused = output(no_key).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CLERK_SECRET_KEY is not set"),
        "{refused:?}"
    );
    assert_eq!(app.count("contacts").await, 0);

    clerk.unavailable_for(3);
    let summary = clerk_ok(&db, &clerk, &["backfill"]).await;
    assert!(
        summary.contains("users: 3 listed: 3 contacts created"),
        "{summary}"
    );
    let statuses: Vec<u16> = clerk.served().iter().map(|s| s.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 3);
}

#[sqlx::test]
async fn backfill_with_workflows_starts_each_persons_runs_once(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db.clone()).await;
    let clerk = ClerkApi::start(users(3), vec![]).await;
    let config =
        std::env::temp_dir().join(format!("roster-backfill-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &config,
        "[[workflows]]\nname = \"welcome\"\ntrigger = \"user.created\"\nsteps = [{ send = \"welcome\" }]\n",
    )
    .unwrap();
    for _ in 0..2 {
        let mut command = clerk_command(&db, &clerk, &["backfill", "--workflows"]);
        command
            .env("ROSTER_CONFIG", &config)
            .env(
                "ROSTER_TEMPLATES",
                concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            )
            .env("MAIL_FROM", "Acme <hello@acme.test>")
            .env(
                "ROSTER_UNSUBSCRIBE_SECRET",
                "test-unsubscribe-secret-0123456789",
            );
        let ran = output(command).await;
        assert!(ran.status.success(), "{ran:?}");
    }
    std::fs::remove_file(&config).unwrap();
    assert_eq!(
        scalar(
            &app.db,
            "select count(*) from workflow_runs where workflow = 'welcome'"
        )
        .await,
        3,
        "once per person, though the backfill ran twice"
    );
}

#[sqlx::test]
async fn a_scheduled_reconcile_is_begun_once_between_replicas(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let every = Duration::from_secs(24 * 60 * 60);
    let (a, b) = tokio::join!(
        roster::clerk::backend::reconcile::begin_if_due(&app.db, every),
        roster::clerk::backend::reconcile::begin_if_due(&app.db, every),
    );
    let begun = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert_eq!(begun, 1);
    assert!(
        roster::clerk::backend::reconcile::begin_if_due(&app.db, every)
            .await
            .unwrap()
            .is_none()
    );
}
