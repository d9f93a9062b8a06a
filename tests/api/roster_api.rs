//! Roster's own API: the audience list with search, filters and cursor pagination, a
//! contact's timeline, the raw event log, runs, deliveries and jobs.

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, fixture, set, spawn_app, spawn_app_with_smtp};

fn emails(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn create(app: &TestApp, body: Value) {
    let (status, answer) = app.api_post("/v1/contacts/create", body).await;
    assert_eq!(status, 200, "{answer}");
}

#[sqlx::test]
async fn pages_of_contacts_are_stable_while_contacts_are_added(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    for name in ["a", "b", "c", "d", "e"] {
        create(&app, json!({ "email": format!("{name}@example.com") })).await;
    }
    let (_, first) = app.api_get("/v1/contacts?limit=2").await;
    assert_eq!(emails(&first), ["e@example.com", "d@example.com"]);
    create(&app, json!({ "email": "f@example.com" })).await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = app
        .api_get(&format!("/v1/contacts?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(emails(&second), ["c@example.com", "b@example.com"]);
    let cursor = second["nextCursor"].as_str().unwrap();
    let (_, third) = app
        .api_get(&format!("/v1/contacts?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(emails(&third), ["a@example.com"]);
    assert_eq!(third["nextCursor"], Value::Null);

    for query in ["limit=0", "limit=201", "cursor=garbage", "subscribed=maybe"] {
        let (status, body) = app.api_get(&format!("/v1/contacts?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false);
    }
}

#[sqlx::test]
async fn contacts_are_searched_and_filtered(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    create(&app, json!({ "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "userGroup": "Founders" })).await;
    create(&app, json!({ "email": "a_b@example.com", "firstName": "Grace", "lastName": "Hopper", "subscribed": false })).await;
    create(
        &app,
        json!({ "email": "abc@example.com", "firstName": "Alan", "lastName": "Turing" }),
    )
    .await;
    let mut waitlisted = fixture("waitlistEntry.created");
    set(
        &mut waitlisted,
        "/data/email_address",
        json!("wendy@example.com"),
    );
    assert_eq!(app.deliver(&waitlisted).await.0, 200);

    let search = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.api_get(&format!("/v1/contacts?{query}")).await;
            assert_eq!(status, 200, "{page}");
            let mut found = emails(&page);
            found.sort();
            found
        }
    };
    assert_eq!(search("email=AD").await, ["ada@example.com"]);
    assert_eq!(
        search("email=a_").await,
        ["a_b@example.com"],
        "_ is taken literally"
    );
    assert_eq!(search("name=love").await, ["ada@example.com"]);
    assert_eq!(search("name=grace%20hop").await, ["a_b@example.com"]);
    assert_eq!(
        search("name=a").await,
        ["abc@example.com", "ada@example.com"]
    );
    assert_eq!(search("userGroup=Founders").await, ["ada@example.com"]);
    assert_eq!(search("subscribed=false").await, ["a_b@example.com"]);
    assert_eq!(search("source=Clerk").await, ["wendy@example.com"]);
    assert_eq!(
        search("waitlistStatus=pending").await,
        ["wendy@example.com"]
    );
    assert_eq!(
        search("source=API&email=a&subscribed=true").await,
        ["abc@example.com", "ada@example.com"]
    );
}

#[sqlx::test]
async fn a_contact_shows_its_timeline(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, include_str!("../../roster.example.toml")).await;
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    app.api_post("/v1/events/send", json!({ "eventName": "invitedTeammate", "email": "ada@example.com", "eventProperties": { "count": 2 } }))
        .await;
    app.run_jobs_at(Utc::now()).await;
    let contact = app.contact_by_email("ada@example.com").await.unwrap();

    let (status, timeline) = app.api_get(&format!("/v1/contacts/{}", contact.id)).await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(timeline["contact"]["email"], "ada@example.com");
    assert_eq!(timeline["contact"]["userGroup"], "Users");
    let events: Vec<(&str, &str)> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["source"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert!(events.contains(&("clerk", "user.created")), "{events:?}");
    assert!(events.contains(&("api", "invitedTeammate")), "{events:?}");

    let onboarding = timeline["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workflow"] == "onboarding")
        .unwrap();
    assert_eq!(onboarding["state"], "active");
    let steps = onboarding["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "send");
    assert_eq!(steps[0]["status"], "done");
    assert_eq!(steps[0]["email"]["state"], "sent");
    assert_eq!(steps[1]["kind"], "wait");
    assert_eq!(
        steps[1]["status"], "done",
        "the wait scheduled the next step"
    );
    assert_eq!(steps[2]["template"], "tips");
    assert_eq!(steps[2]["status"], "current");
    let emails = timeline["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["template"], "welcome");
    assert_eq!(emails[0]["state"], "sent");

    let (status, _) = app
        .api_get(&format!("/v1/contacts/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.api_get("/v1/contacts/not-a-uuid").await;
    assert_eq!(status, 404);
}

#[sqlx::test]
async fn the_event_log_filters_by_type_and_time(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let at = |event: &str, ms: i64| {
        let mut event = fixture(event);
        set(&mut event, "/timestamp", json!(ms));
        event
    };
    let day = 86_400_000;
    let start = 1_767_225_600_000; // 2026-01-01
    for event in [
        at("user.created", start),
        at("session.created", start + day),
        at("session.created", start + 2 * day),
        at("email.created", start + 3 * day),
    ] {
        assert_eq!(app.deliver(&event).await.0, 200);
    }
    let types = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = app.api_get("/v1/events").await;
    assert_eq!(
        types(&all),
        [
            "email.created",
            "session.created",
            "session.created",
            "user.created"
        ]
    );
    assert!(
        all["data"][0]["payload"]["data"].is_object(),
        "the stored payload is shown"
    );
    let (_, sessions) = app.api_get("/v1/events?type=session.created").await;
    assert_eq!(types(&sessions), ["session.created", "session.created"]);
    let (_, window) = app
        .api_get("/v1/events?from=2026-01-02&to=2026-01-04")
        .await;
    assert_eq!(types(&window), ["session.created", "session.created"]);
    let (_, page) = app.api_get("/v1/events?limit=3").await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, rest) = app
        .api_get(&format!("/v1/events?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(types(&rest), ["user.created"]);
    let (status, _) = app.api_get("/v1/events?from=soon").await;
    assert_eq!(status, 400);
}

#[sqlx::test]
async fn runs_and_deliveries_filter_by_state(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, include_str!("../../roster.example.toml")).await;
    app.deliver(&fixture("user.created")).await;
    app.run_jobs_at(Utc::now()).await;
    let (_, active) = app.api_get("/v1/workflow-runs?state=active").await;
    assert_eq!(active["data"].as_array().unwrap().len(), 1);
    assert_eq!(active["data"][0]["workflow"], "onboarding");
    let (_, exited) = app.api_get("/v1/workflow-runs?state=exited").await;
    assert!(exited["data"].as_array().unwrap().is_empty());
    let (_, sent) = app.api_get("/v1/email-deliveries?state=sent").await;
    assert_eq!(sent["data"][0]["template"], "welcome");
    assert_eq!(sent["data"][0]["workflow"], "onboarding");
    let (_, failed) = app.api_get("/v1/email-deliveries?state=failed").await;
    assert!(failed["data"].as_array().unwrap().is_empty());
    let (status, _) = app.api_get("/v1/email-deliveries?state=lost").await;
    assert_eq!(status, 400);
    let (_, scheduled) = app.api_get("/v1/jobs?state=scheduled").await;
    assert_eq!(
        scheduled["data"].as_array().unwrap().len(),
        1,
        "the tips step waits"
    );
}

#[sqlx::test]
async fn a_dead_job_is_replayed_once(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let id: i64 = sqlx::query_scalar(
        "insert into jobs (kind, payload, state, attempts, last_error, finished_at)
         values ('workflow.step', $1, 'dead', 8, 'database went away', now()) returning id",
    )
    .bind(json!({ "run": uuid::Uuid::now_v7(), "step": 0 }))
    .fetch_one(&app.db)
    .await
    .unwrap();
    let (_, dead) = app.api_get("/v1/jobs?state=dead").await;
    assert_eq!(dead["data"][0]["lastError"], "database went away");

    let (status, body) = app
        .api_post(&format!("/v1/jobs/{id}/replay"), json!({}))
        .await;
    assert_eq!((status, body), (200, json!({ "success": true })));
    let (status, body) = app
        .api_post(&format!("/v1/jobs/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app.api_post("/v1/jobs/999999/replay", json!({})).await;
    assert_eq!(status, 404);

    assert_eq!(app.run_jobs_at(Utc::now()).await, 1);
    let state: String = sqlx::query_scalar("select state from jobs where id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "done");
}
