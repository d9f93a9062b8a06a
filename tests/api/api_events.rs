//! Events and transactional sends through the Loops-compatible API: contacts found or
//! created, workflows started, emails sent through a real SMTP server, and
//! `Idempotency-Key` replaying, refusing and releasing.

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, spawn_app_with_smtp};

const EVENT_WORKFLOW: &str = r#"
[[workflows]]
name = "upgrade"
trigger = "planUpgraded"
entry = "every_time"
transactional = true
steps = [{ send = "welcome" }]
"#;

async fn send_event(app: &TestApp, body: Value, key: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    app.api_request(Method::POST, "/v1/events/send", Some(body), &headers)
        .await
}

#[sqlx::test]
async fn an_event_creates_the_contact_and_starts_its_workflow(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EVENT_WORKFLOW).await;
    let (status, body) = send_event(
        &app,
        json!({ "eventName": "planUpgraded", "email": "ada@example.com", "firstName": "Ada",
                "eventProperties": { "plan": "Pro", "seats": 3 } }),
        None,
    )
    .await;
    assert_eq!((status, body), (200, json!({ "success": true })));
    let contact = app
        .contact_by_email("ada@example.com")
        .await
        .expect("created");
    assert_eq!(contact.first_name.as_deref(), Some("Ada"));
    assert_eq!(contact.source, "API");
    let stored: (String, Value) = sqlx::query_as("select event_name, properties from api_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        stored,
        (
            "planUpgraded".to_owned(),
            json!({ "plan": "Pro", "seats": 3 })
        )
    );

    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 1, "the workflow sent its email");

    // The same event again (no key): every_time, so a second run and email.
    send_event(
        &app,
        json!({ "eventName": "planUpgraded", "email": "ada@example.com" }),
        None,
    )
    .await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(app.count("api_events").await, 2);
}

#[sqlx::test]
async fn bad_events_change_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, EVENT_WORKFLOW).await;
    for (body, path) in [
        (json!({ "email": "ada@example.com" }), Some("eventName")),
        (
            json!({ "eventName": "", "email": "ada@example.com" }),
            Some("eventName"),
        ),
        (json!({ "eventName": "x" }), None),
        (
            json!({ "eventName": "x", "userId": "u_404" }),
            Some("userId"),
        ),
        (
            json!({ "eventName": "x", "email": "ada@example.com", "eventProperties": { "nested": { "a": 1 } } }),
            Some("eventProperties.nested"),
        ),
        (
            json!({ "eventName": "x", "email": "ada@example.com", "eventProperties": [1] }),
            Some("eventProperties"),
        ),
        (json!([1, 2]), None),
        (
            json!({ "eventName": "user.created", "email": "ada@example.com" }),
            Some("eventName"),
        ),
        (
            json!({ "eventName": "contact.unsubscribed", "email": "ada@example.com" }),
            Some("eventName"),
        ),
    ] {
        let (status, answer) = send_event(&app, body.clone(), None).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["success"], false);
        if let Some(path) = path {
            assert_eq!(answer["path"], path, "{answer}");
        }
    }
    assert_eq!(app.count("contacts").await, 0);
    assert_eq!(app.count("api_events").await, 0);
}

#[sqlx::test]
async fn an_idempotency_key_replays_refuses_and_expires(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, EVENT_WORKFLOW).await;
    let body = json!({ "eventName": "planUpgraded", "email": "ada@example.com" });
    let first = send_event(&app, body.clone(), Some("key-1")).await;
    assert_eq!(first, (200, json!({ "success": true })));
    // Same key, same body: the stored answer, nothing done twice.
    assert_eq!(send_event(&app, body.clone(), Some("key-1")).await, first);
    assert_eq!(app.count("api_events").await, 1);
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 1);

    // Same key, another body: 409.
    let (status, answer) = send_event(
        &app,
        json!({ "eventName": "other", "email": "ada@example.com" }),
        Some("key-1"),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["success"], false);

    // A request still in flight with that key: 409.
    sqlx::query("insert into idempotency_keys (route, key, token, request_hash) values ('events/send', 'key-2', gen_random_uuid(), sha256($1))")
        .bind(serde_json::to_vec(&body).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let (status, answer) = send_event(&app, body.clone(), Some("key-2")).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("still being processed")
    );
    // A request in flight for over a minute died: its key is taken over, and the dead
    // request could no longer store an answer under it.
    sqlx::query(
        "update idempotency_keys set created_at = now() - interval '2 minutes' where key = 'key-2'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(send_event(&app, body.clone(), Some("key-2")).await.0, 200);
    assert_eq!(app.count("api_events").await, 2);

    // After 24 hours the key is free again.
    sqlx::query(
        "update idempotency_keys set created_at = now() - interval '25 hours' where key = 'key-1'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(send_event(&app, body.clone(), Some("key-1")).await.0, 200);
    assert_eq!(app.count("api_events").await, 3);

    // A key is at most 100 characters.
    let (status, answer) = send_event(&app, body, Some(&"k".repeat(101))).await;
    assert_eq!(status, 400);
    assert_eq!(answer["path"], "Idempotency-Key");
}

#[sqlx::test]
async fn a_refused_request_is_replayed_as_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, "").await;
    let body = json!({ "eventName": "x", "userId": "u_404" });
    let first = send_event(&app, body.clone(), Some("key-1")).await;
    assert_eq!(first.0, 400);
    // Stored, not just refused again: the second answer is the key's replay.
    let stored: (i16, Value) =
        sqlx::query_as("select status, response from idempotency_keys where key = 'key-1'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, (400, first.1.clone()));
    assert_eq!(send_event(&app, body, Some("key-1")).await, first);
}

async fn send_transactional(app: &TestApp, body: Value, key: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    app.api_request(Method::POST, "/v1/transactional", Some(body), &headers)
        .await
}

#[sqlx::test]
async fn a_transactional_email_is_sent_once_even_to_an_unsubscribed_contact(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, "").await;
    app.api_post(
        "/v1/contacts/create",
        json!({ "email": "ada@example.com", "firstName": "Ada", "subscribed": false }),
    )
    .await;
    let body = json!({ "transactionalId": "magic_link", "email": "ada@example.com",
                       "dataVariables": { "url": "https://app.example.com/magic/abc" } });
    assert_eq!(
        send_transactional(&app, body.clone(), Some("t-1")).await,
        (200, json!({ "success": true }))
    );
    assert_eq!(
        send_transactional(&app, body, Some("t-1")).await.0,
        200,
        "replayed"
    );
    app.run_jobs_at(Utc::now()).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0]
            .data
            .contains("https://app.example.com/magic/abc")
    );
    assert!(messages[0].data.contains("Sign in, Ada"));
    assert!(
        !messages[0].data.contains("List-Unsubscribe"),
        "transactional mail has no unsubscribe link"
    );
}

#[sqlx::test]
async fn a_transactional_email_to_a_stranger_adds_them_only_when_asked(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, "").await;
    let data = json!({ "url": "https://x.test/1" });
    send_transactional(&app, json!({ "transactionalId": "magic_link", "email": "bob@example.com", "dataVariables": data }), None).await;
    assert!(app.contact_by_email("bob@example.com").await.is_none());
    send_transactional(&app, json!({ "transactionalId": "magic_link", "email": "cy@example.com", "dataVariables": data, "addToAudience": true }), None).await;
    assert!(app.contact_by_email("cy@example.com").await.is_some());
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 2);
}

#[sqlx::test]
async fn a_transactional_email_to_a_suppressed_address_is_not_sent(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, "").await;
    sqlx::query("insert into suppressions (email, reason) values ('bob@example.com', '550 gone')")
        .execute(&app.db)
        .await
        .unwrap();
    let body = json!({ "transactionalId": "magic_link", "email": "Bob@example.com", "dataVariables": { "url": "https://x.test/1" } });
    assert_eq!(send_transactional(&app, body, None).await.0, 200);
    app.run_jobs_at(Utc::now()).await;
    assert!(smtp.messages().is_empty());
    let (status, deliveries) = app.api_get("/v1/email-deliveries?state=suppressed").await;
    assert_eq!(status, 200);
    assert_eq!(deliveries["data"].as_array().unwrap().len(), 1);
}

#[sqlx::test]
async fn a_bad_transactional_request_sends_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, "").await;
    let cases = [
        (
            json!({ "transactionalId": "nope", "email": "a@example.com" }),
            404,
            "transactionalId",
        ),
        (
            json!({ "transactionalId": "magic_link", "email": "a@example.com" }),
            400,
            "dataVariables",
        ),
        (
            json!({ "transactionalId": "magic_link", "email": "nope", "dataVariables": { "url": "u" } }),
            400,
            "email",
        ),
        (
            json!({ "transactionalId": "magic_link", "email": "a@example.com", "dataVariables": { "url": true } }),
            400,
            "dataVariables.url",
        ),
        (
            json!({ "transactionalId": "magic_link", "email": "a@example.com", "dataVariables": { "url": "u" },
                 "attachments": [{ "filename": "a.txt", "contentType": "text/plain", "data": "YQ==" }] }),
            400,
            "attachments",
        ),
    ];
    for (body, status, path) in cases {
        let (got, answer) = send_transactional(&app, body.clone(), None).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["success"], false);
        assert_eq!(answer["path"], path, "{answer}");
    }
    let (_, answer) = send_transactional(
        &app,
        json!({ "transactionalId": "magic_link", "email": "a@example.com" }),
        None,
    )
    .await;
    assert_eq!(answer["message"], "Missing required data variable(s): url");
    let (status, answer) = send_transactional(&app, json!({ "transactionalId": "magic_link", "email": "a@example.com", "dataVariables": {}, "surprise": 1 }), None).await;
    assert_eq!(status, 400, "unknown fields are refused");
    assert!(answer["message"].as_str().unwrap().contains("surprise"));
    app.run_jobs_at(Utc::now()).await;
    assert!(smtp.messages().is_empty());
    assert_eq!(app.count("workflow_runs").await, 0);
}

#[sqlx::test]
async fn transactional_templates_are_listed_with_their_data_variables(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = spawn_app_with_smtp(db, "").await;
    let (status, body) = app.api_get("/v1/transactional").await;
    assert_eq!(status, 200, "{body}");
    let magic = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "magic_link")
        .cloned()
        .unwrap();
    assert_eq!(magic["dataVariables"], json!(["minutes", "url"]));
    assert_eq!(body["pagination"]["nextCursor"], Value::Null);

    let (_, first) = app.api_get("/v1/transactional-emails?perPage=10").await;
    assert_eq!(first["pagination"]["perPage"], 10);
    let (status, _) = app.api_get("/v1/transactional?perPage=5").await;
    assert_eq!(status, 400);
}
