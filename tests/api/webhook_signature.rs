//! Svix signature verification: only correctly signed, fresh deliveries are stored.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Delivery, ROTATED_SECRET, fixture, spawn_app};

async fn assert_refused(app: &crate::helpers::TestApp, delivery: &Delivery, reason: &str) {
    let response = app.send(delivery).await;
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(reason),
        "{error:?} should mention {reason:?}"
    );
    assert_eq!(app.count("clerk_events").await, 0, "nothing stored");
    assert_eq!(app.count("contacts").await, 0, "no contact changed");
}

#[sqlx::test]
async fn valid_signature_is_processed(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let delivery = Delivery::of(&fixture("user.created"));
    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "processed");
    assert_eq!(body["svixId"], delivery.id.as_str());
    assert_eq!(body["contact"], "created");
}

#[sqlx::test]
async fn tampered_body_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.signature = Some(delivery.signature());
    delivery.body = String::from_utf8(delivery.body)
        .unwrap()
        .replace("Ada", "Eve")
        .into_bytes();
    assert_refused(&app, &delivery, "no signature matches").await;
}

#[sqlx::test]
async fn stale_timestamp_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.timestamp -= 6 * 60;
    assert_refused(&app, &delivery, "old").await;
}

#[sqlx::test]
async fn future_timestamp_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.timestamp += 6 * 60;
    assert_refused(&app, &delivery, "future").await;
}

#[sqlx::test]
async fn timestamp_within_tolerance_is_accepted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.timestamp -= 4 * 60;
    assert_eq!(app.send(&delivery).await.status().as_u16(), 200);
}

#[sqlx::test]
async fn missing_headers_are_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let response = app
        .client
        .post(format!("{}/webhooks/clerk", app.address))
        .body(serde_json::to_vec(&fixture("user.created")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("header is missing")
    );
    assert_eq!(app.count("clerk_events").await, 0);
}

#[sqlx::test]
async fn unknown_secret_is_refused(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.secret = "whsec_dW5rbm93bi1zZWNyZXQtbm90LWNvbmZpZ3VyZWQ=";
    assert_refused(&app, &delivery, "no signature matches").await;
}

#[sqlx::test]
async fn rotated_secret_is_accepted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.secret = ROTATED_SECRET;
    assert_eq!(app.send(&delivery).await.status().as_u16(), 200);
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn webhook_prefixed_headers_are_accepted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.header_prefix = "webhook";
    let response = app.send(&delivery).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(app.stored_payload(&delivery.id).await.is_some());
}

#[sqlx::test]
async fn signature_list_with_one_valid_entry_is_accepted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let mut delivery = Delivery::of(&fixture("user.created"));
    delivery.signature = Some(format!("v1,aW52YWxpZA== {}", delivery.signature()));
    assert_eq!(app.send(&delivery).await.status().as_u16(), 200);
}
