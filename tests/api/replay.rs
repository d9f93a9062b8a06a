//! `roster replay`: the stored log applied again with new settings, idempotent, and
//! starting workflows only when asked and then only once.

use indicatif::ProgressBar;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use roster::config::ConfigFile;
use roster::replay::replay;
use roster::workflows::Workflows;

use crate::helpers::{fixture, set, spawn_app, spawn_app_with_config};

fn settings(toml: &str) -> ConfigFile {
    toml::from_str(toml).expect("valid config")
}

#[sqlx::test]
async fn replay_applies_new_settings_and_twice_is_once(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    let mut waiting = fixture("waitlistEntry.created");
    set(
        &mut waiting,
        "/data/email_address",
        json!("bob@example.com"),
    );
    assert_eq!(app.deliver(&waiting).await.0, 200);
    assert_eq!(app.deliver(&fixture("session.created")).await.0, 200);
    assert_eq!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .user_group,
        None
    );

    let config = settings(
        r#"
        [clerk.user_created]
        user_group = "Members"
        [clerk.waitlist_entry_created]
        user_group = "Waitlist"
        "#,
    );
    let first = replay(&app.db, &config.clerk, None, &ProgressBar::hidden())
        .await
        .unwrap();
    // The session is applied again too: it is the user's last sign-in.
    assert_eq!(
        (first.events, first.changed, first.disabled),
        (3, 3, 0),
        "{first:?}"
    );
    assert_eq!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .user_group
            .as_deref(),
        Some("Members")
    );
    assert_eq!(
        app.contact_by_email("bob@example.com")
            .await
            .unwrap()
            .user_group
            .as_deref(),
        Some("Waitlist")
    );

    let contacts_before: Vec<(String, Option<String>)> =
        sqlx::query_as("select email, user_group from contacts order by email")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let second = replay(&app.db, &config.clerk, None, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(second.events, 3);
    let contacts_after: Vec<(String, Option<String>)> =
        sqlx::query_as("select email, user_group from contacts order by email")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(contacts_before, contacts_after);
    assert_eq!(app.count("contacts").await, 2);

    // An event type turned off is skipped.
    let off = settings("[clerk.waitlist_entry_created]\nenabled = false");
    let third = replay(&app.db, &off.clerk, None, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(third.disabled, 1);
}

#[sqlx::test]
async fn replay_starts_workflows_only_when_asked_and_once(_: PgPoolOptions, db: PgConnectOptions) {
    let config_toml = include_str!("../../roster.example.toml");
    let app = spawn_app_with_config(db, config_toml).await;
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    // As if the runs had never been started (the workflow was added after the event).
    sqlx::query("delete from jobs")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("delete from workflow_runs")
        .execute(&app.db)
        .await
        .unwrap();

    let config = settings(config_toml);
    let without = replay(&app.db, &config.clerk, None, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(without.runs_started, 0);
    assert_eq!(app.count("workflow_runs").await, 0);

    let workflows = Workflows::new(
        roster::workflows::definition::check_workflows(&config.workflows, None).unwrap(),
    );
    let with = replay(
        &app.db,
        &config.clerk,
        Some(&workflows),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(with.runs_started, 1, "onboarding");
    let again = replay(
        &app.db,
        &config.clerk,
        Some(&workflows),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(again.runs_started, 0, "once per contact");
    assert_eq!(app.count("workflow_runs").await, 1);
}
