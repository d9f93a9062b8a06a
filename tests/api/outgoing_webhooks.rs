//! Outgoing webhooks: Roster's events posted to `[[webhooks]]` endpoints (a receiver
//! on loopback), shaped as Loops' and signed as Standard Webhooks, verified here with
//! Svix's own library; retried with the same `webhook-id`; an endpoint failing for
//! days disabled, and enabled again from the dashboard.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::dashboard::logged_in;
use crate::helpers::{API_KEY, AppOptions, TestApp, fixture, set, spawn_app_with};
use crate::http_receiver::{HttpReceiver, Received};
use crate::smtp_server::SmtpServer;

const SECRET: &str = "whsec_b3V0Z29pbmctd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ==";
const POSTMARK_PASSWORD: &str = "postmark-webhook-password-0123456789";

/// An app whose endpoint at `receiver` takes `events`, with an onboarding drip.
async fn app(db: PgConnectOptions, receiver: &HttpReceiver, events: &[&str]) -> TestApp {
    let events = serde_json::to_string(events).unwrap();
    let config = format!(
        r#"
[[lists]]
id = "news"
name = "Newsletter"
description = "Product news"
public = true

[[workflows]]
name = "onboarding"
trigger = "user.created"
steps = [{{ send = "welcome" }}]

[relays.postmark]
username = "postmark"
password = "{POSTMARK_PASSWORD}"

[[webhooks]]
url = "{url}/hooks/roster"
secret = "{SECRET}"
events = {events}
"#,
        url = receiver.url
    );
    let options = AppOptions {
        config_toml: Box::leak(config.into_boxed_str()),
        smtp: Some(SmtpServer::start().await),
        ..AppOptions::default()
    };
    spawn_app_with(db, options).await
}

async fn sign_up(app: &TestApp, user_id: &str, email: &str) {
    let mut event = fixture("user.created");
    set(&mut event, "/data/id", json!(user_id));
    set(
        &mut event,
        "/data/email_addresses/0/email_address",
        json!(email),
    );
    assert_eq!(app.deliver(&event).await.0, 200);
}

/// Verifies a post as a receiver would, with Svix's library; its JSON body.
fn verified(post: &Received) -> Value {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = post
            .header(name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        headers.insert(name, value.parse().unwrap());
    }
    svix::webhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&post.body, &headers)
        .expect("the signature verifies");
    assert!(
        post.line.starts_with("POST /hooks/roster "),
        "{}",
        post.line
    );
    assert_eq!(post.header("content-type"), Some("application/json"));
    post.json()
}

fn events_of(posts: &[Received]) -> Vec<String> {
    posts
        .iter()
        .map(|post| verified(post)["eventName"].as_str().unwrap().to_owned())
        .collect()
}

async fn message_states(app: &TestApp) -> Vec<(String, String, i32)> {
    sqlx::query_as("select event, state, attempts from webhook_messages order by created_at, event")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[sqlx::test]
async fn contact_and_email_events_are_posted_signed_in_loops_shapes(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    let all = [
        "contact.created",
        "contact.deleted",
        "contact.unsubscribed",
        "contact.mailingList.subscribed",
        "contact.mailingList.unsubscribed",
        "loop.email.sent",
        "email.hardBounced",
    ];
    let app = app(db, &receiver, &all).await;
    sign_up(&app, "user_ada", "ada@example.com").await;
    app.run_jobs_at(Utc::now()).await; // the welcome, then the webhooks it caused
    app.run_jobs_at(Utc::now()).await;

    let posts = receiver.received();
    assert_eq!(events_of(&posts), ["contact.created", "loop.email.sent"]);
    let created = verified(&posts[0]);
    let contact_id = created["contactIdentity"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created["contactIdentity"],
        json!({"id": contact_id, "email": "ada@example.com", "userId": "user_ada"})
    );
    assert_eq!(created["webhookSchemaVersion"], "1.0.0");
    assert!(created["eventTime"].as_i64().unwrap() > Utc::now().timestamp() - 60);
    assert_eq!(created["contact"]["email"], "ada@example.com");
    assert_eq!(created["contact"]["subscribed"], true);

    let sent = verified(&posts[1]);
    assert_eq!(sent["loopId"], "onboarding", "{sent}");
    assert_eq!(sent["loopName"], "onboarding", "{sent}");
    assert_eq!(sent["email"]["emailMessageId"], "welcome", "{sent}");
    assert!(
        sent["email"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Welcome"),
        "{sent}"
    );
    let delivery_id = sent["email"]["id"].as_str().unwrap().to_owned();

    // A relay's hard bounce of that email.
    let relay_id: String = sqlx::query_scalar("select provider_message_id from email_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let bounce = json!({
        "RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
        "MessageID": relay_id, "Email": "ada@example.com",
        "BouncedAt": Utc::now().to_rfc3339(), "Details": "550 no such user",
        "Inactive": true, "MessageStream": "outbound"
    });
    let response = app
        .client
        .post(format!("{}/webhooks/email/postmark", app.address))
        .basic_auth("postmark", Some(POSTMARK_PASSWORD))
        .json(&bounce)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Lists joined and left, and the deletion, through Loops' API.
    let (status, _) = app
        .api_put(
            "/v1/contacts/update",
            json!({"email": "ada@example.com", "mailingLists": {"news": true}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api_put(
            "/v1/contacts/update",
            json!({"email": "ada@example.com", "mailingLists": {"news": false}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api_post("/v1/contacts/delete", json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(status, 200);
    app.run_jobs_at(Utc::now()).await;

    // Delivered concurrently, so in any order.
    let mut posts = receiver.received().split_off(2);
    posts.sort_by_key(|post| verified(post)["eventName"].as_str().unwrap().to_owned());
    assert_eq!(
        events_of(&posts),
        [
            "contact.deleted",
            "contact.mailingList.subscribed",
            "contact.mailingList.unsubscribed",
            "contact.unsubscribed",
            "email.hardBounced",
        ]
    );
    let bounced = verified(&posts[4]);
    assert_eq!(bounced["sourceType"], "loop", "{bounced}");
    assert_eq!(bounced["loopId"], "onboarding", "{bounced}");
    assert_eq!(bounced["email"]["id"], delivery_id.as_str(), "{bounced}");
    let joined = verified(&posts[1]);
    assert_eq!(
        joined["mailingList"],
        json!({"id": "news", "name": "Newsletter", "description": "Product news", "isPublic": true})
    );
    assert_eq!(
        verified(&posts[0])["contactIdentity"]["id"],
        contact_id.as_str()
    );
    // Every post is its own message, delivered once.
    let posts = receiver.received();
    let ids: std::collections::HashSet<_> = posts
        .iter()
        .map(|p| p.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), posts.len());
    assert!(
        message_states(&app)
            .await
            .iter()
            .all(|(_, state, attempts)| state == "delivered" && *attempts == 1)
    );
}

#[sqlx::test]
async fn an_endpoint_hears_only_the_events_it_takes(_: PgPoolOptions, db: PgConnectOptions) {
    let receiver = HttpReceiver::start().await;
    let app = app(db, &receiver, &["contact.deleted"]).await;
    sign_up(&app, "user_bo", "bo@example.com").await;
    app.run_jobs_at(Utc::now()).await;
    app.run_jobs_at(Utc::now()).await;
    assert!(receiver.received().is_empty());
    assert!(
        message_states(&app).await.is_empty(),
        "nothing written for no one"
    );
    let (status, _) = app
        .api_post("/v1/contacts/delete", json!({"email": "bo@example.com"}))
        .await;
    assert_eq!(status, 200);
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(events_of(&receiver.received()), ["contact.deleted"]);
}

#[sqlx::test]
async fn a_failing_endpoint_is_retried_with_the_same_webhook_id(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    let app = app(db, &receiver, &["contact.created"]).await;
    receiver.set_status(503);
    sign_up(&app, "user_cy", "cy@example.com").await;
    app.run_jobs_at(Utc::now()).await;
    app.run_jobs_at(Utc::now() + Duration::hours(2)).await;
    receiver.set_status(204);
    app.run_jobs_at(Utc::now() + Duration::hours(4)).await;
    app.run_jobs_at(Utc::now() + Duration::hours(6)).await;

    let posts = receiver.received();
    assert_eq!(
        posts.len(),
        3,
        "two failures, then the success, then nothing"
    );
    let ids: Vec<&str> = posts
        .iter()
        .map(|p| p.header("webhook-id").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.starts_with("msg_")),
        "{ids:?}"
    );
    for post in &posts {
        verified(post); // signed again at each attempt
    }
    assert_eq!(
        message_states(&app).await,
        [("contact.created".to_owned(), "delivered".to_owned(), 3)]
    );
    let failing: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("select failing_since from webhook_endpoints")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(failing, None, "a success clears the failure");
}

#[sqlx::test]
async fn an_endpoint_failing_for_days_is_disabled_until_enabled(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    let app = app(db, &receiver, &["contact.created"]).await;
    receiver.set_status(500);
    sign_up(&app, "user_di", "di@example.com").await;
    app.run_jobs_at(Utc::now()).await;
    // It has failed for six days (the retries in between are not replayed here).
    sqlx::query("update webhook_endpoints set failing_since = now() - interval '6 days'")
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs_at(Utc::now() + Duration::hours(2)).await;
    assert_eq!(
        message_states(&app).await,
        [("contact.created".to_owned(), "failed".to_owned(), 2)]
    );
    // Disabled: no more attempts, and new events are not written for it.
    app.run_jobs_at(Utc::now() + Duration::days(1)).await;
    assert_eq!(receiver.received().len(), 2);
    sign_up(&app, "user_ed", "ed@example.com").await;
    assert_eq!(message_states(&app).await.len(), 1);

    let (client, _) = logged_in(&app.address, API_KEY).await;
    let home = client
        .get(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    let home = home.text().await.unwrap();
    assert!(home.contains("failed for days and was disabled"), "{home}");
    let page = client
        .get(format!("{}/webhooks", app.address))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Disabled"), "{page}");
    assert!(page.contains("HTTP 500"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let url = format!("{}/hooks/roster", receiver.url);
    let enabled = client
        .post(format!("{}/webhooks/endpoints/enable", app.address))
        .form(&[("csrf", csrf.as_str()), ("url", url.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 303);

    receiver.set_status(200);
    sign_up(&app, "user_fi", "fi@example.com").await;
    app.run_jobs_at(Utc::now()).await;
    let last = receiver.received().pop().unwrap();
    assert_eq!(
        verified(&last)["contactIdentity"]["email"],
        "fi@example.com"
    );
}

#[test]
fn webhook_config_problems_are_named() {
    let path = std::env::temp_dir().join(format!("roster-webhooks-{}.toml", uuid::Uuid::new_v4()));
    let config = r#"
[[webhooks]]
url = "ftp://example.com"
secret = "not-a-secret"
events = ["contact.created", "contact.updated"]

[[webhooks]]
url = "ftp://example.com"
secret = "whsec_b3V0Z29pbmc="
events = []
"#;
    std::fs::write(&path, config).unwrap();
    let output = crate::helpers::roster()
        .arg("check")
        .env("ROSTER_CONFIG", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for problem in [
        "webhooks[0].url: not an http(s) URL",
        "webhooks[0].secret: not a signing secret",
        "webhooks[0].events: \"contact.updated\" is not one of",
        "webhooks[1].url: another entry has the same URL",
        "webhooks[1].events: name at least one event",
    ] {
        assert!(stderr.contains(problem), "{problem}: {stderr}");
    }
    assert!(!stderr.contains("not-a-secret"), "{stderr}");
    let _ = std::fs::remove_file(path);
}

#[sqlx::test]
async fn posts_written_before_a_restart_are_delivered_once_or_dropped_with_their_endpoint(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    // Written, then Roster stops before delivering (as after a kill -9, the job waits).
    let before = app(db.clone(), &receiver, &["contact.created"]).await;
    sign_up(&before, "user_gi", "gi@example.com").await;
    drop(before);
    // Restarted with the same config: delivered once, however often the queue runs.
    let after = app(db.clone(), &receiver, &["contact.created"]).await;
    for _ in 0..3 {
        after.run_jobs_at(Utc::now()).await;
    }
    assert_eq!(events_of(&receiver.received()), ["contact.created"]);
    sign_up(&after, "user_ha", "ha@example.com").await;
    drop(after);

    // The endpoint is removed from the config file before its post goes: dropped.
    let options = AppOptions {
        smtp: Some(SmtpServer::start().await),
        config_toml: "[[workflows]]\nname = \"onboarding\"\ntrigger = \"user.created\"\nsteps = [{ send = \"welcome\" }]\n",
        ..AppOptions::default()
    };
    let edited = spawn_app_with(db, options).await;
    edited.run_jobs_at(Utc::now()).await;
    assert_eq!(receiver.received().len(), 1);
    let states: Vec<(String, String)> = sqlx::query_as(
        "select state, coalesce(last_error, '') from webhook_messages order by created_at",
    )
    .fetch_all(&edited.db)
    .await
    .unwrap();
    assert_eq!(
        states,
        [
            ("delivered".to_owned(), String::new()),
            (
                "dropped".to_owned(),
                "the endpoint is no longer configured".to_owned()
            ),
        ]
    );
}
