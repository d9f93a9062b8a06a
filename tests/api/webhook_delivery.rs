//! What happens to a verified delivery: stored once, refused whole when malformed, and
//! never acknowledged unless stored.

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db_proxy::DbProxy;
use crate::helpers::{
    AppOptions, Delivery, fixture, short_lived_connections, spawn_app, spawn_app_with,
};

#[sqlx::test]
async fn duplicate_svix_id_is_acknowledged_and_stored_once(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let delivery = Delivery::of(&fixture("user.created"));
    assert_eq!(app.send(&delivery).await.status().as_u16(), 200);

    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    assert_eq!(body["svixId"], delivery.id.as_str());
    assert_eq!(app.count("clerk_events").await, 1);
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn duplicate_svix_id_with_another_body_changes_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let first = Delivery::of(&fixture("user.created"));
    app.send(&first).await;
    let mut replay = Delivery::of(&fixture("user.updated"));
    replay.id = first.id.clone();
    let response = app.send(&replay).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    let contact = app
        .contact_by_user_id("user_2q8XfA1bC3dE4fG5hI6jK7lM8nO")
        .await
        .unwrap();
    assert_eq!(contact.first_name.as_deref(), Some("Ada"));
}

async fn assert_bad_request(body: &[u8], db: PgConnectOptions) -> String {
    let app = spawn_app(db).await;
    let response = app.send(&Delivery::raw(body.to_vec())).await;
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(app.count("clerk_events").await, 0, "nothing stored");
    answer["error"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn malformed_json_is_a_bad_request(_: PgPoolOptions, db: PgConnectOptions) {
    let error = assert_bad_request(b"{\"type\": \"user.created\", \"data\": {", db).await;
    assert_eq!(error, "the body is not valid JSON");
}

#[sqlx::test]
async fn json_array_is_not_an_event(_: PgPoolOptions, db: PgConnectOptions) {
    let error = assert_bad_request(b"[1, 2, 3]", db).await;
    assert!(error.contains("not a Clerk event"), "{error}");
}

#[sqlx::test]
async fn object_without_type_is_not_an_event(_: PgPoolOptions, db: PgConnectOptions) {
    let error = assert_bad_request(br#"{"data": {"id": "user_1"}}"#, db).await;
    assert!(error.contains("`type` is missing"), "{error}");
}

#[sqlx::test]
async fn event_without_data_object_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let error = assert_bad_request(br#"{"type": "user.created", "data": "x"}"#, db).await;
    assert!(error.contains("`data` is not an object"), "{error}");
}

#[sqlx::test]
async fn user_event_with_malformed_data_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let body = json!({"object": "event", "type": "user.created", "timestamp": 1, "data": {"first_name": "x"}});
    let error = assert_bad_request(body.to_string().as_bytes(), db).await;
    assert!(error.contains("user.created"), "{error}");
}

#[sqlx::test]
async fn body_over_one_mebibyte_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut event = fixture("user.created");
    event["data"]["unsafe_metadata"]["blob"] = json!("x".repeat(1024 * 1024));
    let response = app.send(&Delivery::of(&event)).await;
    assert_eq!(response.status().as_u16(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "the body is larger than 1 MiB");
    assert_eq!(app.count("clerk_events").await, 0);
}

#[sqlx::test]
async fn other_event_types_are_stored_and_ignored(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let delivery = Delivery::of(&fixture("session.created"));
    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ignored");
    assert_eq!(body["type"], "session.created");
    let stored = app.stored_payload(&delivery.id).await.expect("stored");
    assert_eq!(stored["data"]["id"], "sess_2q9AaBbCcDdEeFfGgHhIiJjKkLl");
    let (event_type, occurred_at): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("select event_type, occurred_at from clerk_events where svix_id = $1")
            .bind(&delivery.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(event_type, "session.created");
    assert_eq!(occurred_at.timestamp_millis(), 1767312000100);
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn otp_code_and_message_bodies_are_not_stored(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let delivery = Delivery::of(&fixture("email.created"));
    assert_eq!(app.send(&delivery).await.status().as_u16(), 200);
    let stored = app.stored_payload(&delivery.id).await.unwrap();
    let text = stored.to_string();
    assert!(!text.contains("123456"), "the code leaked: {text}");
    assert!(stored["data"].get("body").is_none());
    assert!(stored["data"].get("body_plain").is_none());
    assert!(stored["data"]["data"].get("otp_code").is_none());
    assert_eq!(stored["data"]["to_email_address"], "ada@example.com");
}

#[sqlx::test]
async fn database_down_answers_503_and_the_retry_succeeds(_: PgPoolOptions, db: PgConnectOptions) {
    let proxy = DbProxy::start(db.get_port()).await;
    let options = AppOptions {
        proxy: Some(proxy),
        ..AppOptions::default()
    };
    let app = spawn_app_with(db, options).await;
    // The app works through the proxy before the outage.
    assert_eq!(app.deliver(&fixture("waitlistEntry.created")).await.0, 200);

    proxy.cut();
    let delivery = Delivery::of(&fixture("user.created"));
    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "the database is unavailable, retry later");
    assert!(
        app.stored_payload(&delivery.id).await.is_none(),
        "not stored"
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    proxy.restore();
    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "processed");
    assert_eq!(body["contact"], "graduated");
    assert_eq!(app.count("clerk_events").await, 2);
}

#[sqlx::test]
async fn exhausted_pool_answers_503(_: PgPoolOptions, db: PgConnectOptions) {
    let options = AppOptions {
        max_connections: Some(1),
        ..AppOptions::default()
    };
    let app = spawn_app_with(db, options).await;
    // Hold the user's lock, so the first delivery keeps the app's only connection busy.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind("user:user_2q8XfA1bC3dE4fG5hI6jK7lM8nO")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let first = Delivery::of(&fixture("user.created"));
    let second = Delivery::of(&fixture("session.created"));
    let (first_response, second_response) = tokio::join!(app.send(&first), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let response = app.send(&second).await;
        blocker.rollback().await.unwrap();
        response
    });
    assert_eq!(
        second_response.status().as_u16(),
        503,
        "no connection within the timeout"
    );
    assert_eq!(
        first_response.status().as_u16(),
        200,
        "the blocked delivery completes"
    );
    assert!(app.stored_payload(&second.id).await.is_none());
    assert_eq!(app.deliver(&fixture("session.created")).await.0, 200);
}

#[sqlx::test]
async fn no_configured_secret_refuses_every_delivery(_: PgPoolOptions, db: PgConnectOptions) {
    use roster::config::Settings;
    use roster::db::Database;
    use roster::startup::Application;
    let settings =
        Settings::from_lookup(|name| (name == "ROSTER_ADDR").then(|| "127.0.0.1:0".into()))
            .unwrap();
    let database = Database::new(db, short_lived_connections(), 2);
    let pool = database.pool(1);
    let outbox = std::env::temp_dir().join(format!("roster-test-outbox-{}", uuid::Uuid::new_v4()));
    let app = Application::build(&settings, database, &outbox).unwrap();
    let address = format!("http://127.0.0.1:{}/webhooks/clerk", app.port());
    tokio::spawn(app.run_until_stopped());
    let delivery = Delivery::of(&fixture("user.created"));
    let response = reqwest::Client::new()
        .post(address)
        .header("svix-id", &delivery.id)
        .header("svix-timestamp", delivery.timestamp.to_string())
        .header("svix-signature", delivery.signature())
        .body(delivery.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("CLERK_WEBHOOK_SECRET")
    );
    let stored: i64 = sqlx::query_scalar("select count(*) from clerk_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test]
async fn nul_escape_that_jsonb_refuses_is_a_bad_request(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut event = fixture("session.created");
    event["data"]["client_id"] = json!("nul\u{0}byte");
    let response = app.send(&Delivery::of(&event)).await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(app.count("clerk_events").await, 0);
}
