//! Input PostgreSQL could not store, from a signed webhook or an API client: each is a
//! 400 naming where it is at fault, nothing is stored, and nothing answers 500.

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{Delivery, TestApp, fixture, set, spawn_app};

/// Text that does not compress, so it really is that long in an index.
fn random_text(chars: usize) -> String {
    (0..chars)
        .map(|_| char::from(b'a' + fastrand::u8(0..26)))
        .collect()
}

async fn deliver_raw(app: &TestApp, body: String) -> (u16, Value) {
    let response = app.send(&Delivery::raw(body.into_bytes())).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test]
async fn signed_webhooks_with_unstorable_values_are_400_and_store_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let user = fixture("user.created").to_string();
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let bodies = [
        // A NUL, a time PostgreSQL cannot hold, a number no column holds, nesting too deep.
        user.replacen("\"Ada\"", "\"A\\u0000da\"", 1),
        {
            let mut event = fixture("user.created");
            set(
                &mut event,
                "/data/updated_at",
                json!(-8_000_000_000_000_000_i64),
            );
            event.to_string()
        },
        user.replacen("{", "{\"n\": 1e1000000,", 1),
        user.replacen("{", &format!("{{\"deep\": {deep},"), 1),
        {
            let mut event = fixture("user.created");
            set(&mut event, "/timestamp", json!(-8_000_000_000_000_000_i64));
            event.to_string()
        },
    ];
    for body in bodies {
        let (status, answer) = deliver_raw(&app, body.clone()).await;
        assert_eq!(status, 400, "{answer} for {}", &body[..body.len().min(120)]);
        assert!(answer["error"].is_string());
    }
    assert_eq!(app.count("clerk_events").await, 0);
    assert_eq!(app.count("contacts").await, 0);

    // An address too long for an index: refused too, not a 500.
    let mut event = fixture("user.created");
    set(
        &mut event,
        "/data/email_addresses/0/email_address",
        json!(format!("{}@example.com", random_text(8000))),
    );
    let (status, answer) = app.deliver(&event).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(app.count("clerk_events").await, 0);
}

#[sqlx::test]
async fn api_input_that_cannot_be_stored_is_400_naming_the_field(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let (status, body) = app
        .api_get("/v1/contacts/find?email=a%00b@example.com")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "email");
    let (status, body) = app.api_get("/v1/contacts?name=%00").await;
    assert_eq!(
        (status, body["path"].as_str()),
        (400, Some("name")),
        "{body}"
    );

    let (status, body) = app
        .api_post(
            "/v1/contacts/create",
            json!({ "email": "ada@example.com", "firstName": "A\u{0}da" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "firstName");
    let (status, body) = app
        .api_post(
            "/v1/events/send",
            json!({ "email": "ada@example.com", "eventName": "x", "eventProperties": { "plan": ["ok", "b\u{0}d"] } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "eventProperties.plan[1]");
    assert_eq!(app.count("contacts").await, 0);

    let long = format!("{}@example.com", random_text(8000));
    let (status, body) = app
        .api_post("/v1/contacts/create", json!({ "email": long }))
        .await;
    assert_eq!(
        (status, body["path"].as_str()),
        (400, Some("email")),
        "{body}"
    );
    let (status, body) = app
        .api_post(
            "/v1/contacts/create",
            json!({ "email": "ada@example.com", "userId": random_text(8000) }),
        )
        .await;
    assert_eq!(
        (status, body["path"].as_str()),
        (400, Some("userId")),
        "{body}"
    );
    assert_eq!(app.count("contacts").await, 0);

    for path in [
        "/v1/analytics/growth?from=-5000-01-01",
        "/v1/analytics/growth?to=99999-01-01",
        "/v1/events?from=-5000-01-01",
        "/v1/events?cursor=-999999999999999999_1",
    ] {
        let (status, body) = app.api_get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["path"].is_string(), "{path}: {body}");
    }
}

#[sqlx::test]
async fn events_of_any_depth_already_stored_are_listed(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    // Stored before the depth check existed: jsonb itself takes it.
    let deep = format!(
        "{{\"type\": \"user.updated\", \"data\": {{\"unsafe_metadata\": {}1{}}}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    sqlx::query(
        "insert into clerk_events (svix_id, event_type, occurred_at, payload)
         values ('msg_deep', 'user.updated', now(), $1::jsonb)",
    )
    .bind(&deep)
    .execute(&app.db)
    .await
    .unwrap();
    let response = app
        .client
        .get(format!("{}/api/v1/events", app.address))
        .bearer_auth(crate::helpers::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("msg_deep") && text.contains(&"[".repeat(300)));

    // And the dashboard's event pages.
    let (client, _) = crate::dashboard::logged_in(&app.address, crate::helpers::API_KEY).await;
    let id: i64 = sqlx::query_scalar("select id from clerk_events where svix_id = 'msg_deep'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for path in ["/events".to_owned(), format!("/events/{id}")] {
        let page = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
    }
}
