//! Workflows end to end: Clerk webhooks start runs, the engine sends through a real SMTP
//! server on loopback, and each (run, step) sends at most one email.

use chrono::{Duration, Utc};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use roster::workflows::delivery::{NewDelivery, claim_sends};

use crate::helpers::{Delivery, TestApp, fixture, set, spawn_app_with_smtp};
use crate::smtp_server::Reply;

/// The workflows of roster.example.toml, so the shipped defaults are what is tested.
const EXAMPLE_CONFIG: &str = include_str!("../../roster.example.toml");

async fn run_state(app: &TestApp, workflow: &str) -> (String, Option<String>) {
    sqlx::query_as("select state, exit_reason from workflow_runs where workflow = $1")
        .bind(workflow)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

fn unsubscribe_url(data: &str) -> String {
    let line = data
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe: <"))
        .expect("header");
    line.trim_start_matches("List-Unsubscribe: <")
        .trim_end_matches('>')
        .to_owned()
}

#[sqlx::test]
async fn welcome_is_sent_on_user_created_with_unsubscribe_headers(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    app.run_jobs_at(Utc::now()).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let data = &messages[0].data;
    assert_eq!(messages[0].recipients, ["ada@example.com"]);
    assert!(data.contains("Subject: Welcome, Ada!"), "{data}");
    assert!(
        data.contains("To: \"Ada Lovelace\" <ada@example.com>")
            || data.contains("To: Ada Lovelace <ada@example.com>"),
        "{data}"
    );
    assert!(unsubscribe_url(data).starts_with(&format!("{}/unsubscribe/", app.address)));
    assert!(data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let (state, message_id): (String, String) =
        sqlx::query_as("select state, message_id from email_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(state, "sent");
    assert!(data.contains(&format!("Message-ID: {message_id}")));
}

#[sqlx::test]
async fn redelivered_webhook_sends_nothing_twice(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    let delivery = Delivery::of(&fixture("user.created"));
    app.send(&delivery).await;
    app.send(&delivery).await; // the same svix-id: a duplicate
    app.deliver(&fixture("user.created")).await; // the same event under a new svix-id
    app.run_jobs_at(Utc::now()).await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.subjects(), ["Welcome, Ada!"]);
}

#[sqlx::test]
async fn tips_follow_two_days_later(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    let now = Utc::now();
    app.run_jobs_at(now).await;
    app.run_jobs_at(now + Duration::days(1)).await;
    assert_eq!(smtp.subjects().len(), 1, "still waiting");
    app.run_jobs_at(now + Duration::days(2) + Duration::minutes(1))
        .await;
    assert_eq!(
        smtp.subjects(),
        [
            "Welcome, Ada!",
            "Three tips to get more out of your account"
        ]
    );
    assert_eq!(run_state(&app, "onboarding").await.0, "completed");
}

#[sqlx::test]
async fn one_click_unsubscribe_between_steps_stops_the_drip(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    let now = Utc::now();
    app.run_jobs_at(now).await;
    let url = unsubscribe_url(&smtp.messages()[0].data);

    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ada@example.com"));
    assert!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed,
        "GET changes nothing"
    );
    for _ in 0..2 {
        // RFC 8058 one-click, twice: the second changes nothing.
        let response = app
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(
        !app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed
    );

    app.run_jobs_at(now + Duration::days(3)).await;
    assert_eq!(smtp.subjects().len(), 1, "no tips after unsubscribing");
    assert_eq!(
        run_state(&app, "onboarding").await,
        ("exited".into(), Some("the contact unsubscribed".into()))
    );
}

#[sqlx::test]
async fn forged_unsubscribe_token_changes_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    app.run_jobs_at(Utc::now()).await;
    let url = unsubscribe_url(&smtp.messages()[0].data);
    // The contact's token is the path's last segment (before `?email=`).
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let forged = format!("{}A?{query}", &path[..path.len() - 1]);
    let forged = if forged == url {
        format!("{}B?{query}", &path[..path.len() - 1])
    } else {
        forged
    };
    let response = app.client.post(&forged).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed
    );
}

#[sqlx::test]
async fn waitlist_drip_ends_on_graduation(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("waitlistEntry.created")).await;
    let now = Utc::now();
    app.run_jobs_at(now).await;
    assert_eq!(smtp.subjects(), ["You're on the list"]);

    app.deliver(&fixture("user.created")).await; // graduates
    app.run_jobs_at(now + Duration::days(8)).await;
    assert!(
        !smtp
            .subjects()
            .iter()
            .any(|s| s.starts_with("Still on the list")),
        "{:?}",
        smtp.subjects()
    );
    let (state, reason) = run_state(&app, "waitlist").await;
    assert_eq!(state, "exited");
    assert_eq!(
        reason.as_deref(),
        Some("exit condition met: contact.userId")
    );
}

#[sqlx::test]
async fn goodbye_reaches_the_address_in_delete_mode(_: PgPoolOptions, db: PgConnectOptions) {
    let config = Box::leak(
        format!("{EXAMPLE_CONFIG}\n")
            .replace("action = \"unsubscribe\"", "action = \"delete\"")
            .into_boxed_str(),
    );
    let (app, smtp) = spawn_app_with_smtp(db, config).await;
    app.deliver(&fixture("user.created")).await;
    app.deliver(&fixture("user.deleted")).await;
    assert_eq!(app.count("contacts").await, 0, "deleted");
    app.run_jobs_at(Utc::now()).await;
    let goodbye = smtp
        .messages()
        .into_iter()
        .find(|m| m.data.contains("Subject: Your account has been deleted"))
        .expect("goodbye sent");
    assert_eq!(goodbye.recipients, ["ada@example.com"]);
    assert!(!goodbye.data.contains("List-Unsubscribe"), "transactional");
}

#[sqlx::test]
async fn transient_smtp_failure_is_retried_into_one_email(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    smtp.set_reply(Reply::Transient);
    let now = Utc::now();
    app.run_jobs_at(now).await;
    assert!(smtp.messages().is_empty());
    let (state, answer): (String, String) =
        sqlx::query_as("select state, smtp_response from email_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(state, "retrying");
    assert!(answer.contains("451"), "{answer}");

    smtp.set_reply(Reply::Accept);
    app.run_jobs_at(now + Duration::hours(1)).await;
    assert_eq!(smtp.subjects(), ["Welcome, Ada!"]);
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from email_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("sent", 2));
}

#[sqlx::test]
async fn permanent_smtp_failure_suppresses_the_address(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    smtp.set_reply(Reply::Permanent);
    app.run_jobs_at(Utc::now()).await;
    let (state, answer): (String, String) =
        sqlx::query_as("select state, smtp_response from email_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(answer.contains("550"));
    let suppressed: Vec<String> = sqlx::query_scalar("select email from suppressions")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(suppressed, ["ada@example.com"]);
    let (state, reason) = run_state(&app, "onboarding").await;
    assert_eq!(state, "exited");
    assert!(reason.unwrap().contains("550"));

    // A later (transactional) send to the address is skipped with the reason.
    smtp.set_reply(Reply::Accept);
    app.deliver(&fixture("user.deleted")).await;
    app.run_jobs_at(Utc::now()).await;
    assert!(smtp.messages().is_empty());
    assert_eq!(
        run_state(&app, "goodbye").await.1.as_deref(),
        Some("the address is suppressed after a hard bounce")
    );
}

#[sqlx::test]
async fn send_interrupted_by_a_crash_is_not_repeated(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    // What a worker killed between recording the delivery and SMTP's answer leaves.
    sqlx::query(
        "insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, attempts)
         select gen_random_uuid(), id, 0, 'welcome', 'ada@example.com', '<m@acme.test>', false, 1 from workflow_runs",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let now = Utc::now();
    app.run_jobs_at(now).await;
    assert!(smtp.messages().is_empty(), "not sent a second time");
    let state: String = sqlx::query_scalar("select state from email_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "unknown");
    app.run_jobs_at(now + Duration::days(2) + Duration::minutes(1))
        .await;
    assert_eq!(
        smtp.subjects(),
        ["Three tips to get more out of your account"],
        "the run goes on"
    );
}

#[sqlx::test]
async fn two_workers_never_send_the_same_step(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    for n in 0..20 {
        let mut event = fixture("user.created");
        set(&mut event, "/data/id", json!(format!("user_{n}")));
        set(
            &mut event,
            "/data/email_addresses/0/email_address",
            json!(format!("p{n}@example.com")),
        );
        assert_eq!(app.deliver(&event).await.0, 200);
    }
    let second = app.another_worker();
    let now = Utc::now();
    let (a, b) = tokio::join!(app.worker.run_due(now), second.run_due(now));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        40,
        "each run: the send step, then the wait step"
    );
    assert_eq!(smtp.messages().len(), 20);
}

#[sqlx::test]
async fn only_one_of_two_concurrent_attempts_claims_a_send(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    let run: uuid::Uuid = sqlx::query_scalar("select id from workflow_runs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let claim = || async {
        let mut conn = app.db.acquire().await.unwrap();
        let delivery = NewDelivery {
            run,
            step: 0,
            template: "welcome",
            recipient: "ada@example.com",
            message_id: "<m@acme.test>",
            transactional: false,
            subject: Some("Welcome"),
        };
        !claim_sends(&mut conn, &[delivery])
            .await
            .unwrap()
            .is_empty()
    };
    // Two copies of step 0 (a lease taken over while the first still runs).
    let (first, second) = tokio::join!(claim(), claim());
    assert!(first ^ second, "exactly one may send: {first} {second}");
    assert!(!claim().await, "nor a third, later");
    sqlx::query("update email_deliveries set state = 'retrying'")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(claim().await, "a transient failure may be sent again");
}

#[sqlx::test]
async fn unsubscribing_emits_contact_unsubscribed_once(_: PgPoolOptions, db: PgConnectOptions) {
    let config = Box::leak(
        format!(
            "{EXAMPLE_CONFIG}\n[[workflows]]\nname = \"feedback\"\ntrigger = \"contact.unsubscribed\"\n\
             entry = \"every_time\"\ntransactional = true\nsteps = [{{ send = \"goodbye\" }}]\n"
        )
        .into_boxed_str(),
    );
    let (app, smtp) = spawn_app_with_smtp(db, config).await;
    app.deliver(&fixture("user.created")).await;
    app.run_jobs_at(Utc::now()).await;
    let url = unsubscribe_url(&smtp.messages()[0].data);
    for _ in 0..2 {
        assert_eq!(app.client.post(&url).send().await.unwrap().status(), 200);
    }
    let runs: i64 =
        sqlx::query_scalar("select count(*) from workflow_runs where workflow = 'feedback'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(runs, 1);
}

#[sqlx::test]
async fn lifecycle_runs_see_one_event_shape_whatever_caused_them(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let config = Box::leak(
        format!(
            "{EXAMPLE_CONFIG}\n[[workflows]]\nname = \"feedback\"\ntrigger = \"contact.unsubscribed\"\n\
             entry = \"every_time\"\ntransactional = true\nsteps = [{{ send = \"goodbye\" }}]\n\
             [[workflows]]\nname = \"hello\"\ntrigger = \"contact.created\"\nsteps = [{{ wait = \"1d\" }}]\n"
        )
        .into_boxed_str(),
    );
    let (app, smtp) = spawn_app_with_smtp(db, config).await;
    let event = fixture("user.created");
    app.deliver(&event).await;
    app.run_jobs_at(Utc::now()).await;
    // By the link, then back through the API, then by the API.
    let url = unsubscribe_url(&smtp.messages()[0].data);
    assert_eq!(app.client.post(&url).send().await.unwrap().status(), 200);
    let email = event["data"]["email_addresses"][0]["email_address"].clone();
    for subscribed in [true, false] {
        let body = serde_json::json!({ "email": email, "subscribed": subscribed });
        let (status, _) = app
            .api(reqwest::Method::PUT, "/v1/contacts/update", Some(body))
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = app
        .api(
            reqwest::Method::POST,
            "/v1/contacts/create",
            Some(serde_json::json!({ "email": "new@example.com" })),
        )
        .await;
    assert_eq!(status, 200);

    let events: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "select workflow, event from workflow_runs where workflow in ('feedback', 'hello') order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let shapes: Vec<(&str, &str, &str, bool)> = events
        .iter()
        .map(|(workflow, event)| {
            (
                workflow.as_str(),
                event["type"].as_str().unwrap(),
                event["data"]["via"].as_str().unwrap(),
                event["data"]["cause"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("hello", "contact.created", "clerk", false),
            ("feedback", "contact.unsubscribed", "link", true),
            ("feedback", "contact.unsubscribed", "api", true),
            ("hello", "contact.created", "api", true),
        ]
    );
    // A Clerk cause is the delivery as stored.
    assert_eq!(events[0].1["data"]["cause"]["type"], "user.created");
    assert_eq!(
        events[0].1["data"]["cause"]["data"]["id"],
        event["data"]["id"]
    );
}

#[sqlx::test]
async fn smtp_failing_through_every_attempt_ends_the_run_with_the_reason(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    app.deliver(&fixture("user.created")).await;
    smtp.set_reply(Reply::Transient);
    let mut now = Utc::now();
    for _ in 0..10 {
        app.run_jobs_at(now).await;
        now += Duration::hours(2);
    }
    let (state, reason) = run_state(&app, "onboarding").await;
    assert_eq!(state, "exited");
    assert_eq!(
        reason.as_deref(),
        Some("SMTP kept failing; the last attempt gave up")
    );
    let delivery: String = sqlx::query_scalar("select state from email_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(delivery, "failed");
    assert!(smtp.messages().is_empty());
}

#[sqlx::test]
async fn a_name_with_line_breaks_still_gets_its_welcome_with_safe_headers(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    let mut event = fixture("user.created");
    set(
        &mut event,
        "/data/first_name",
        json!("Ada\r\nBcc: eve@evil.test"),
    );
    set(&mut event, "/data/last_name", json!("Love\r\nlace"));
    assert_eq!(app.deliver(&event).await.0, 200);
    app.run_jobs_at(Utc::now()).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "the welcome is sent, not skipped");
    assert_eq!(messages[0].recipients, ["ada@example.com"]);
    let data = &messages[0].data;
    let data = data.replace("\r\n", "\n");
    let headers = data.split("\n\n").next().unwrap();
    assert!(
        !headers.lines().any(|l| l.starts_with("Bcc:")),
        "no header injected: {data}"
    );
    assert!(
        smtp.subjects()[0].starts_with("Welcome, Ada Bcc: eve@evil.test"),
        "{data}"
    );
    let (state, _) = run_state(&app, "onboarding").await;
    assert_eq!(state, "active", "the run goes on to its next step");
}

#[sqlx::test]
async fn a_deletion_that_arrived_first_still_sends_its_goodbye(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE_CONFIG).await;
    assert_eq!(app.deliver(&fixture("user.deleted")).await.0, 200);
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    // A redelivery of either starts nothing twice.
    assert_eq!(app.deliver(&fixture("user.created")).await.0, 200);
    app.run_jobs_at(Utc::now()).await;
    let goodbye = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/goodbye/subject"
    ))
    .unwrap();
    let sent = smtp.subjects();
    assert_eq!(
        sent.iter().filter(|s| s.as_str() == goodbye.trim()).count(),
        1,
        "{sent:?}"
    );
    assert!(
        !sent.iter().any(|s| s.starts_with("Welcome")),
        "no marketing to a deleted user: {sent:?}"
    );
}
