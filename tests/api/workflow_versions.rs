//! A run keeps the definition it started with: the config file edited while runs wait
//! (steps reordered, inserted, removed, templates changed, the workflow removed) sends
//! no step twice and skips none.

use chrono::{Duration, Utc};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{AppOptions, TestApp, fixture, set, spawn_app_with};
use crate::smtp_server::SmtpServer;

const ORIGINAL: &str = r#"
[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{ send = "welcome" }, { wait = "4s" }, { send = "tips" }]
"#;

async fn app(db: &PgConnectOptions, config_toml: &'static str, smtp: &SmtpServer) -> TestApp {
    let options = AppOptions {
        config_toml,
        smtp: Some(smtp.clone()),
        ..AppOptions::default()
    };
    spawn_app_with(db.clone(), options).await
}

fn templates_sent(smtp: &SmtpServer, to: &str) -> Vec<String> {
    smtp.messages()
        .iter()
        .filter(|m| m.recipients == [to])
        .filter_map(|m| {
            m.data.lines().find_map(|l| {
                let subject = l.strip_prefix("Subject: ")?;
                Some(if subject.starts_with("Welcome") {
                    "welcome".to_owned()
                } else {
                    subject.to_owned()
                })
            })
        })
        .collect()
}

/// Five users get the welcome under `ORIGINAL`; Roster restarts with `edited`; their
/// runs finish. Returns each user's emails in order.
async fn edit_under_waiting_runs(db: PgConnectOptions, edited: &'static str) -> Vec<Vec<String>> {
    let smtp = SmtpServer::start().await;
    let before = app(&db, ORIGINAL, &smtp).await;
    for n in 0..5 {
        let mut event = fixture("user.created");
        set(&mut event, "/data/id", json!(format!("user_{n}")));
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(format!("user{n}@example.com")),
        );
        assert_eq!(before.deliver(&event).await.0, 200);
    }
    before.run_jobs_at(Utc::now()).await;
    drop(before);
    let after = app(&db, edited, &smtp).await;
    after.run_jobs_at(Utc::now() + Duration::seconds(5)).await;
    after.run_jobs_at(Utc::now() + Duration::seconds(10)).await;
    let (_, runs) = after.api_get("/v1/workflow-runs?state=completed").await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 5, "{runs}");
    (0..5)
        .map(|n| templates_sent(&smtp, &format!("user{n}@example.com")))
        .collect()
}

fn tips_subject() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/tips/subject"
    ))
    .unwrap()
    .trim()
    .to_owned()
}

#[sqlx::test]
async fn reordered_steps_apply_to_new_runs_only(_: PgPoolOptions, db: PgConnectOptions) {
    let edited = r#"
[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{ send = "tips" }, { wait = "4s" }, { send = "welcome" }]
"#;
    for sent in edit_under_waiting_runs(db, edited).await {
        assert_eq!(sent, ["welcome".to_owned(), tips_subject()]);
    }
}

#[sqlx::test]
async fn inserted_removed_and_changed_steps_apply_to_new_runs_only(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let edited = r#"
[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{ send = "magic_link" }, { send = "welcome" }, { wait = "1s" }]
"#;
    for sent in edit_under_waiting_runs(db, edited).await {
        assert_eq!(sent, ["welcome".to_owned(), tips_subject()]);
    }
}

#[sqlx::test]
async fn runs_of_a_removed_workflow_finish_on_their_version(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    for sent in edit_under_waiting_runs(db, "").await {
        assert_eq!(sent, ["welcome".to_owned(), tips_subject()]);
    }
}

#[sqlx::test]
async fn a_new_run_after_the_edit_follows_the_new_file(_: PgPoolOptions, db: PgConnectOptions) {
    let smtp = SmtpServer::start().await;
    let edited = r#"
[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{ send = "tips" }]
"#;
    let before = app(&db, ORIGINAL, &smtp).await;
    drop(before);
    let after = app(&db, edited, &smtp).await;
    assert_eq!(after.deliver(&fixture("user.created")).await.0, 200);
    after.run_jobs_at(Utc::now()).await;
    assert_eq!(templates_sent(&smtp, "ada@example.com"), [tips_subject()]);
    let versions: i64 = sqlx::query_scalar("select count(*) from workflow_versions")
        .fetch_one(&after.db)
        .await
        .unwrap();
    assert_eq!(versions, 1, "a version is stored with its first run");
}
