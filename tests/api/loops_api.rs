//! The Loops-compatible API: every route, with Loops' bodies, status codes and error
//! shape, against a real database.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, spawn_app, spawn_app_with_config};

const LISTS: &str = r#"
team_name = "Acme"

[[lists]]
id = "news"
name = "Newsletter"
description = "Monthly product news"
public = true

[[lists]]
id = "beta"
name = "Beta testers"
"#;

async fn find(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.api_get(&format!("/v1/contacts/find?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("an array").clone()
}

#[sqlx::test]
async fn every_route_refuses_a_missing_or_wrong_key(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    for (method, path) in [
        (Method::GET, "/api/v1/api-key"),
        (Method::POST, "/api/v1/contacts/create"),
        (Method::GET, "/api/v1/contacts/find?email=a@b.co"),
        (Method::POST, "/api/v1/events/send"),
        (Method::GET, "/api/v1/contacts"),
        (Method::GET, "/api/v1/analytics/growth"),
    ] {
        for key in [None, Some("wrong-key")] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body,
                json!({ "success": false, "message": "Invalid API key", "error": "Invalid API key" })
            );
        }
    }
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn api_key_answers_the_team_name(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, LISTS).await;
    let (status, body) = app.api_get("/v1/api-key").await;
    assert_eq!(
        (status, body),
        (200, json!({ "success": true, "teamName": "Acme" }))
    );
}

#[sqlx::test]
async fn create_then_find_by_email_or_user_id(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, LISTS).await;
    let (status, body) = app
        .api_post(
            "/v1/contacts/create",
            json!({
                "email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace",
                "userGroup": "Founders", "userId": "u_1", "mailingLists": { "news": true },
                "unknownThing": "ignored, as Loops ignores it",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let id = body["id"].as_str().unwrap().to_owned();

    let found = find(&app, "email=ada%40example.com").await;
    assert_eq!(
        found,
        vec![json!({
            "id": id, "email": "Ada@Example.com", "firstName": "Ada", "lastName": "Lovelace",
            "source": "API", "subscribed": true, "userGroup": "Founders", "userId": "u_1",
            "mailingLists": { "news": true }, "optInStatus": null,
        })]
    );
    assert_eq!(find(&app, "userId=u_1").await, found);
    assert!(find(&app, "email=nobody%40example.com").await.is_empty());

    let (status, body) = app
        .api_get("/v1/contacts/find?email=a%40b.co&userId=u_1")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["success"], false);
    let (status, _) = app.api_get("/v1/contacts/find").await;
    assert_eq!(status, 400);
}

#[sqlx::test]
async fn create_refuses_a_taken_email_or_user_id_and_bad_fields(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, LISTS).await;
    let (status, _) = app
        .api_post(
            "/v1/contacts/create",
            json!({ "email": "ada@example.com", "userId": "u_1" }),
        )
        .await;
    assert_eq!(status, 200);
    for body in [
        json!({ "email": "ADA@example.com" }),
        json!({ "email": "other@example.com", "userId": "u_1" }),
    ] {
        let (status, answer) = app.api_post("/v1/contacts/create", body).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["success"], false);
        assert!(answer["message"].as_str().unwrap().contains("already"));
    }
    for (body, path) in [
        (json!({}), "email"),
        (json!({ "email": "not an address" }), "email"),
        (
            json!({ "email": "b@example.com", "subscribed": "yes" }),
            "subscribed",
        ),
        (
            json!({ "email": "b@example.com", "firstName": 7 }),
            "firstName",
        ),
        (
            json!({ "email": "b@example.com", "mailingLists": { "nope": true } }),
            "mailingLists.nope",
        ),
        (
            json!({ "email": "b@example.com", "mailingLists": { "news": "yes" } }),
            "mailingLists.news",
        ),
        (
            json!({ "email": "b@example.com", "firstName": "x".repeat(501) }),
            "firstName",
        ),
    ] {
        let (status, answer) = app.api_post("/v1/contacts/create", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["success"], false);
        assert_eq!(answer["path"], path, "{answer}");
    }
    let response = app
        .client
        .post(format!("{}/api/v1/contacts/create", app.address))
        .bearer_auth(crate::helpers::API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["success"], false);
    assert_eq!(app.count("contacts").await, 1);
}

#[sqlx::test]
async fn update_matches_user_id_then_email_and_creates_when_missing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, LISTS).await;
    // Missing: created.
    let (status, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "email": "ada@example.com", "firstName": "Ada" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].clone();
    // Found by email: the userId is set.
    let (_, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "email": "ada@example.com", "userId": "u_1" }),
        )
        .await;
    assert_eq!(body["id"], id);
    // Found by userId: the email changes.
    let (_, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "userId": "u_1", "email": "ada@new.example.com" }),
        )
        .await;
    assert_eq!(body["id"], id);
    let contact = &find(&app, "userId=u_1").await[0];
    assert_eq!(contact["email"], "ada@new.example.com");
    assert_eq!(contact["firstName"], "Ada");

    // Unsubscribe, then `subscribed: true` re-subscribes; null clears a field.
    app.api_put(
        "/v1/contacts/update",
        json!({ "userId": "u_1", "subscribed": false }),
    )
    .await;
    assert_eq!(find(&app, "userId=u_1").await[0]["subscribed"], false);
    app.api_put(
        "/v1/contacts/update",
        json!({ "userId": "u_1", "subscribed": true, "firstName": null }),
    )
    .await;
    let contact = &find(&app, "userId=u_1").await[0];
    assert_eq!(contact["subscribed"], true);
    assert_eq!(contact["firstName"], Value::Null);

    // Mailing lists: on, then off again.
    app.api_put(
        "/v1/contacts/update",
        json!({ "userId": "u_1", "mailingLists": { "news": true, "beta": true } }),
    )
    .await;
    app.api_put(
        "/v1/contacts/update",
        json!({ "userId": "u_1", "mailingLists": { "beta": false } }),
    )
    .await;
    assert_eq!(
        find(&app, "userId=u_1").await[0]["mailingLists"],
        json!({ "news": true })
    );

    // A userId nobody has, without an email: nothing to create.
    let (status, body) = app
        .api_put("/v1/contacts/update", json!({ "userId": "u_404" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["path"], "userId");
    // An address another contact has.
    app.api_post("/v1/contacts/create", json!({ "email": "bob@example.com" }))
        .await;
    let (status, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "userId": "u_1", "email": "BOB@example.com" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "email");
    let (status, _) = app
        .api_put("/v1/contacts/update", json!({ "firstName": "x" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(app.count("contacts").await, 2);
}

#[sqlx::test]
async fn custom_properties_are_created_listed_typed_and_cleared(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let (status, body) = app
        .api_post(
            "/v1/contacts/properties",
            json!({ "name": "planName", "type": "string" }),
        )
        .await;
    assert_eq!((status, body), (200, json!({ "success": true })));
    app.api_post(
        "/v1/contacts/properties",
        json!({ "name": "seats", "type": "number" }),
    )
    .await;
    app.api_post(
        "/v1/contacts/properties",
        json!({ "name": "trialEndsAt", "type": "date" }),
    )
    .await;
    for (body, message) in [
        (
            json!({ "name": "planName", "type": "string" }),
            "Property already exists.",
        ),
        (
            json!({ "name": "email", "type": "string" }),
            "Property already exists.",
        ),
        (
            json!({ "name": "listId", "type": "string" }),
            "`listId` is a reserved name.",
        ),
        (json!({ "name": "Plan name", "type": "string" }), ""),
        (json!({ "name": "plan", "type": "list" }), ""),
    ] {
        let (status, answer) = app.api_post("/v1/contacts/properties", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        if !message.is_empty() {
            assert_eq!(answer["message"], message);
        }
    }
    let (status, answer) = app
        .api_post(
            "/v1/contacts/properties",
            json!({ "name": "x", "type": "string", "extra": 1 }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");

    let (_, custom) = app.api_get("/v1/contacts/properties?list=custom").await;
    assert_eq!(
        custom,
        json!([
            { "key": "planName", "label": "Plan Name", "type": "string" },
            { "key": "seats", "label": "Seats", "type": "number" },
            { "key": "trialEndsAt", "label": "Trial Ends At", "type": "date" },
        ])
    );
    let (_, all) = app.api_get("/v1/contacts/properties").await;
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "firstName",
            "lastName",
            "email",
            "notes",
            "source",
            "userGroup",
            "userId",
            "subscribed",
            "createdAt",
            "planName",
            "seats",
            "trialEndsAt"
        ]
    );

    let (status, body) = app
        .api_put("/v1/contacts/update", json!({ "email": "ada@example.com", "planName": "Pro", "seats": 3, "trialEndsAt": 1705486871000_i64 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let contact = &find(&app, "email=ada%40example.com").await[0];
    assert_eq!(contact["planName"], "Pro");
    assert_eq!(contact["seats"], 3);
    assert_eq!(contact["trialEndsAt"], "2024-01-17T10:21:11.000Z");

    let (status, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "email": "ada@example.com", "seats": "three" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["path"], "seats");
    assert_eq!(
        find(&app, "email=ada%40example.com").await[0]["seats"],
        3,
        "nothing changed"
    );

    app.api_put(
        "/v1/contacts/update",
        json!({ "email": "ada@example.com", "seats": null }),
    )
    .await;
    assert!(
        find(&app, "email=ada%40example.com").await[0]
            .get("seats")
            .is_none()
    );
}

#[sqlx::test]
async fn lists_come_from_the_config_file(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, LISTS).await;
    let (status, body) = app.api_get("/v1/lists").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            { "id": "news", "name": "Newsletter", "description": "Monthly product news", "isPublic": true },
            { "id": "beta", "name": "Beta testers", "description": null, "isPublic": false },
        ])
    );
}

#[sqlx::test]
async fn delete_removes_the_contact_and_404s_after(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post(
        "/v1/contacts/create",
        json!({ "email": "ada@example.com", "userId": "u_1" }),
    )
    .await;
    let (status, body) = app
        .api_post("/v1/contacts/delete", json!({ "userId": "u_1" }))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({ "success": true, "message": "Contact deleted." })
        )
    );
    let (status, body) = app
        .api_post("/v1/contacts/delete", json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "success": false, "message": "Contact not found." })
        )
    );
    app.api_post(
        "/v1/contacts/create",
        json!({ "email": "bob@example.com", "userId": "u_2" }),
    )
    .await;
    let (status, _) = app
        .api_post(
            "/v1/contacts/delete",
            json!({ "email": "bob@example.com", "userId": "u_2" }),
        )
        .await;
    assert_eq!(status, 400, "both keys at once");
    assert_eq!(app.count("contacts").await, 1, "bob is still there");
}

#[sqlx::test]
async fn suppression_is_reported_and_lifted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post(
        "/v1/contacts/create",
        json!({ "email": "Ada@example.com", "userId": "u_1" }),
    )
    .await;
    let (status, body) = app.api_get("/v1/contacts/suppression?userId=u_1").await;
    assert_eq!(status, 200);
    assert_eq!(body["isSuppressed"], false);
    assert_eq!(body["contact"]["email"], "Ada@example.com");

    sqlx::query(
        "insert into suppressions (email, reason) values ('ada@example.com', '550 no such user')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (_, body) = app
        .api_get("/v1/contacts/suppression?email=ada%40example.com")
        .await;
    assert_eq!(body["isSuppressed"], true);

    let (status, body) = app
        .api(
            Method::DELETE,
            "/v1/contacts/suppression?email=ada%40example.com",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Email removed from suppression list.");
    let (status, _) = app
        .api(
            Method::DELETE,
            "/v1/contacts/suppression?email=ada%40example.com",
            None,
        )
        .await;
    assert_eq!(status, 400, "not suppressed any more");
    let (status, _) = app
        .api_get("/v1/contacts/suppression?email=nobody%40example.com")
        .await;
    assert_eq!(status, 404);
}

#[sqlx::test]
async fn an_unknown_api_route_is_a_404_in_loops_shape(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let (status, body) = app.api_get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["success"], false);
}

#[sqlx::test]
async fn the_openapi_document_covers_both_apis(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let document: Value = app
        .client
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/contacts/create",
        "/v1/contacts/update",
        "/v1/events/send",
        "/v1/transactional",
        "/v1/contacts",
        "/v1/contacts/{id}",
        "/v1/events",
        "/v1/jobs/{id}/replay",
        "/v1/analytics/growth",
        "/v1/analytics/waitlist",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
}

#[sqlx::test]
async fn update_never_replaces_a_contacts_user_id(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    app.api_post(
        "/v1/contacts/create",
        json!({ "email": "ada@example.com", "userId": "u_1" }),
    )
    .await;
    let (status, body) = app
        .api_put(
            "/v1/contacts/update",
            json!({ "email": "ada@example.com", "userId": "u_2" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["path"], "userId");
    assert_eq!(
        find(&app, "email=ada%40example.com").await[0]["userId"],
        "u_1"
    );
}

#[sqlx::test]
async fn bodies_over_1_mib_are_refused_in_loops_shape(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let big = json!({ "email": "ada@example.com", "firstName": "x".repeat(1024 * 1024) });
    for path in [
        "/v1/contacts/create",
        "/v1/events/send",
        "/v1/transactional",
    ] {
        let (status, body) = app.api_post(path, big.clone()).await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(body["success"], false, "{path}: {body}");
    }
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn the_bearer_scheme_is_case_insensitive(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let response = app
        .client
        .get(format!("{}/api/v1/api-key", app.address))
        .header(
            "authorization",
            format!("bearer {}", crate::helpers::API_KEY),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[sqlx::test]
async fn failed_keys_are_throttled_per_address_with_retry_after(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let url = format!("{}/api/v1/api-key", app.address);
    let with_key = |key: &str| app.client.get(&url).bearer_auth(key).send();
    for _ in 0..10 {
        assert_eq!(with_key("wrong-key").await.unwrap().status(), 401);
    }
    let throttled = with_key("wrong-key").await.unwrap();
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["success"], false);
    // While throttled, even the right key is not looked at: guessing gains nothing.
    assert_eq!(
        with_key(crate::helpers::API_KEY).await.unwrap().status(),
        429
    );
}
