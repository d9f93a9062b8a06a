//! The API under failure and contention: the database down (503 in Loops' shape,
//! nothing written, the retry succeeds), simultaneous creates of one contact, and
//! simultaneous requests with one `Idempotency-Key`.

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db_proxy::DbProxy;
use crate::helpers::{AppOptions, spawn_app, spawn_app_with};

#[sqlx::test]
async fn database_down_answers_503_and_the_retry_succeeds(_: PgPoolOptions, db: PgConnectOptions) {
    let proxy = DbProxy::start(db.get_port()).await;
    let options = AppOptions {
        proxy: Some(proxy),
        ..AppOptions::default()
    };
    let app = spawn_app_with(db, options).await;
    let (status, _) = app
        .api_post("/v1/contacts/create", json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(status, 200, "works before the outage");

    proxy.cut();
    let event = json!({ "eventName": "planUpgraded", "email": "bob@example.com" });
    let headers = [("Idempotency-Key", "outage-1")];
    let (status, body) = app
        .api_request(
            Method::POST,
            "/v1/events/send",
            Some(event.clone()),
            &headers,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({ "success": false, "message": "The database is unavailable; retry later." })
    );
    let (status, _) = app
        .api_post("/v1/contacts/create", json!({ "email": "cy@example.com" }))
        .await;
    assert_eq!(status, 503);
    let (status, _) = app
        .api_get("/v1/contacts/find?email=ada%40example.com")
        .await;
    assert_eq!(status, 503);

    proxy.restore();
    let (status, body) = app
        .api_request(Method::POST, "/v1/events/send", Some(event), &headers)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "success": true })),
        "the retry with the same key runs"
    );
    assert_eq!(app.count("api_events").await, 1);
    assert_eq!(
        app.count("contacts").await,
        2,
        "ada, and bob from the event; not cy"
    );
}

#[sqlx::test]
async fn simultaneous_creates_of_one_contact_make_one(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let requests = (0..8).map(|i| {
        let email = if i % 2 == 0 {
            "ada@example.com"
        } else {
            "ADA@example.com"
        };
        app.api_post("/v1/contacts/create", json!({ "email": email }))
    });
    let mut statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn simultaneous_requests_with_one_key_run_once(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let event = json!({ "eventName": "planUpgraded", "email": "ada@example.com" });
    let headers = [("Idempotency-Key", "same-key")];
    let requests = (0..8).map(|_| {
        app.api_request(
            Method::POST,
            "/v1/events/send",
            Some(event.clone()),
            &headers,
        )
    });
    for (status, body) in futures::future::join_all(requests).await {
        assert!(status == 200 || status == 409, "{status} {body}");
        assert_eq!(body["success"], status == 200);
    }
    assert_eq!(app.count("api_events").await, 1);
}

#[sqlx::test]
async fn simultaneous_deletes_delete_once(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post("/v1/contacts/create", json!({ "email": "ada@example.com" }))
        .await;
    let requests =
        (0..4).map(|_| app.api_post("/v1/contacts/delete", json!({ "email": "ada@example.com" })));
    let mut statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 404, 404, 404]);
}
