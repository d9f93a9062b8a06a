//! Segments: each operator and condition kind on a hand-built audience, faults that
//! name the condition, and the routes.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, spawn_app_with_config};

const CONFIG: &str = r#"
[[lists]]
id = "news"
name = "Newsletter"

[[lists]]
id = "beta"
name = "Beta testers"
"#;

/// Five contacts with known fields, custom properties and one sent email.
async fn audience(app: &TestApp) {
    for (name, kind) in [
        ("plan", "string"),
        ("seats", "number"),
        ("trial", "boolean"),
        ("renewsAt", "date"),
    ] {
        let body = json!({ "name": name, "type": kind });
        let (status, body) = app
            .api(Method::POST, "/v1/contacts/properties", Some(body))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let contacts = [
        json!({ "email": "ada@example.com", "firstName": "Ada", "userGroup": "beta", "userId": "user_ada",
                "mailingLists": { "news": true }, "plan": "Pro", "seats": 12, "trial": false,
                "renewsAt": "2027-01-15" }),
        json!({ "email": "grace@example.com", "firstName": "Grace", "userGroup": "Beta",
                "mailingLists": { "beta": true }, "plan": "free", "seats": 1, "trial": true }),
        json!({ "email": "alan@sample.org", "firstName": "Alan", "source": "import", "seats": 5 }),
        json!({ "email": "kat@example.com", "userId": "user_kat", "subscribed": false, "plan": "pro team" }),
        json!({ "email": "edsger@sample.org", "lastName": "Dijkstra", "userGroup": "" }),
    ];
    for contact in contacts {
        let (status, body) = app
            .api(Method::POST, "/v1/contacts/create", Some(contact))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    sqlx::query(
        "update contacts set created_at = now() - interval '90 days', waitlist_status = 'pending'
         where email in ('alan@sample.org', 'edsger@sample.org')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Ada received the welcome of onboarding ten days ago; Grace's failed.
    sqlx::query(
        "with runs as (
             insert into workflow_runs (id, workflow, entry_key, contact_id, contact, trigger_event)
             select gen_random_uuid(), 'onboarding', id::text, id, '{}', 'user.created'
             from contacts where email in ('ada@example.com', 'grace@example.com')
             returning id, contact_id)
         insert into email_deliveries (id, run_id, step, template, recipient, message_id, transactional, state, sent_at)
         select gen_random_uuid(), runs.id, 0, 'welcome', c.email, '<m@x>', false,
                case when c.email = 'ada@example.com' then 'sent' else 'failed' end, now() - interval '10 days'
         from runs join contacts c on c.id = runs.contact_id",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

/// Saves `filter` and answers the emails it matches (sorted) and its count.
pub async fn matching(app: &TestApp, filter: Value) -> Vec<String> {
    let body = json!({ "name": "test", "filter": filter });
    let (status, created) = app
        .api(Method::POST, "/v1/audience-segments", Some(body))
        .await;
    assert_eq!(status, 200, "{created} for {filter}");
    let id = created["id"].as_str().unwrap();
    let (status, segment) = app
        .api(Method::GET, &format!("/v1/audience-segments/{id}"), None)
        .await;
    assert_eq!(status, 200, "{segment}");
    let (status, page) = app
        .api(
            Method::GET,
            &format!("/v1/audience-segments/{id}/contacts"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let mut emails: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    assert_eq!(
        segment["count"],
        json!(emails.len()),
        "count and contacts agree for {filter}"
    );
    emails
}

pub fn one(property: &str, operator: &str, value: Value) -> Value {
    let mut condition = json!({ "property": property, "operator": operator });
    if !value.is_null() {
        condition["value"] = value;
    }
    json!({ "match": "all", "conditions": [condition] })
}

#[sqlx::test]
async fn each_operator_selects_what_it_says(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, CONFIG).await;
    audience(&app).await;
    // A number beyond f64's exact range, and a date value Roster would not store.
    sqlx::query(
        "update contacts set properties = properties || case email
             when 'grace@example.com' then '{\"seats\": 1234567890123456789}'::jsonb
             when 'kat@example.com' then '{\"renewsAt\": \"+33658-09-27T01:46:40.000Z\"}'::jsonb
             else '{}'::jsonb end",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let cases: Vec<(Value, &[&str])> = vec![
        (
            one("seats", "equals", json!(1234567890123456789u64)),
            &["grace@example.com"],
        ),
        (
            one("seats", "lessThan", json!(1234567890123456789u64)),
            &["ada@example.com", "alan@sample.org"],
        ),
        (one("renewsAt", "withinLastDays", json!(3650)), &[]),
        (
            one("renewsAt", "isNotEmpty", Value::Null),
            &["ada@example.com"],
        ),
        (
            one("userGroup", "equals", json!("BETA")),
            &["ada@example.com", "grace@example.com"],
        ),
        (
            one("userGroup", "notEquals", json!("beta")),
            &["alan@sample.org", "edsger@sample.org", "kat@example.com"],
        ),
        (
            one("email", "contains", json!("@sample")),
            &["alan@sample.org", "edsger@sample.org"],
        ),
        (
            one("plan", "startsWith", json!("pro")),
            &["ada@example.com", "kat@example.com"],
        ),
        (one("plan", "contains", json!("%")), &[]),
        (
            one("seats", "greaterThan", json!(4)),
            &["ada@example.com", "alan@sample.org", "grace@example.com"],
        ),
        (one("seats", "lessThan", json!(5)), &[]),
        (one("seats", "equals", json!(12)), &["ada@example.com"]),
        (one("trial", "equals", json!(true)), &["grace@example.com"]),
        (
            one("trial", "isEmpty", Value::Null),
            &["alan@sample.org", "edsger@sample.org", "kat@example.com"],
        ),
        (
            one("userGroup", "isEmpty", Value::Null),
            &["alan@sample.org", "edsger@sample.org", "kat@example.com"],
        ),
        (
            one("lastName", "isNotEmpty", Value::Null),
            &["edsger@sample.org"],
        ),
        (
            one("renewsAt", "after", json!("2027-01-01")),
            &["ada@example.com"],
        ),
        (one("renewsAt", "before", json!("2027-01-01")), &[]),
        (
            one("createdAt", "withinLastDays", json!(30)),
            &["ada@example.com", "grace@example.com", "kat@example.com"],
        ),
        (
            one("createdAt", "before", json!("2100-01-01")),
            &[
                "ada@example.com",
                "alan@sample.org",
                "edsger@sample.org",
                "grace@example.com",
                "kat@example.com",
            ],
        ),
        (
            one("subscribed", "equals", json!(false)),
            &["kat@example.com"],
        ),
        (
            one("isClerkUser", "equals", json!(true)),
            &["ada@example.com", "kat@example.com"],
        ),
        (
            one("waitlistStatus", "equals", json!("pending")),
            &["alan@sample.org", "edsger@sample.org"],
        ),
        (
            one("source", "equals", json!("import")),
            &["alan@sample.org"],
        ),
        (
            json!({ "match": "all", "conditions": [{ "mailingList": "news" }] }),
            &["ada@example.com"],
        ),
        (
            json!({ "match": "all", "conditions": [{ "mailingList": "beta", "negate": true }, { "property": "userGroup", "operator": "equals", "value": "beta" }] }),
            &["ada@example.com"],
        ),
        (
            json!({ "match": "all", "conditions": [{ "activity": "received", "template": "welcome" }] }),
            &["ada@example.com"],
        ),
        (
            json!({ "match": "all", "conditions": [{ "activity": "received", "workflow": "onboarding", "withinDays": 5 }] }),
            &[],
        ),
        (
            json!({ "match": "all", "conditions": [{ "activity": "received", "template": "welcome", "negate": true }, { "property": "isClerkUser", "operator": "equals", "value": true }] }),
            &["kat@example.com"],
        ),
        (
            json!({ "match": "any", "conditions": [
                { "property": "source", "operator": "equals", "value": "import" },
                { "match": "all", "conditions": [
                    { "property": "userGroup", "operator": "equals", "value": "beta" },
                    { "property": "trial", "operator": "equals", "value": true } ] } ] }),
            &["alan@sample.org", "grace@example.com"],
        ),
        (
            json!({ "match": "any", "conditions": [] }),
            &[
                "ada@example.com",
                "alan@sample.org",
                "edsger@sample.org",
                "grace@example.com",
                "kat@example.com",
            ],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(matching(&app, filter.clone()).await, expected, "{filter}");
    }
}

#[sqlx::test]
async fn a_bad_filter_is_a_400_naming_the_condition_and_saves_nothing(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app_with_config(db, CONFIG).await;
    let cases = [
        (
            one("favouriteColour", "equals", json!("red")),
            "filter.conditions[0].property",
        ),
        (
            one("createdAt", "equals", json!("2026-01-01")),
            "filter.conditions[0].operator",
        ),
        (
            one("subscribed", "equals", json!("yes")),
            "filter.conditions[0].value",
        ),
        (
            one("createdAt", "withinLastDays", json!(-3)),
            "filter.conditions[0].value",
        ),
        (
            one("email", "contains", json!("a\u{0}b")),
            "filter.conditions[0].value",
        ),
        (
            json!({ "match": "all", "conditions": [{ "mailingList": "gone" }] }),
            "filter.conditions[0].mailingList",
        ),
        (
            json!({ "match": "all", "conditions": [{ "activity": "forwarded", "template": "welcome" }] }),
            "filter.conditions[0].activity",
        ),
        (
            json!({ "match": "all", "conditions": [{ "wat": 1 }] }),
            "filter.conditions[0]",
        ),
        (json!({ "conditions": [] }), "filter.match"),
        (json!([]), "filter"),
    ];
    for (filter, path) in cases {
        let body = json!({ "name": "bad", "filter": filter });
        let (status, answer) = app
            .api(Method::POST, "/v1/audience-segments", Some(body))
            .await;
        assert_eq!(status, 400, "{filter}: {answer}");
        // NUL is refused at the edge, before the filter is read, naming its place.
        assert!(
            answer["path"]
                .as_str()
                .unwrap()
                .ends_with(path.rsplit('.').next().unwrap()),
            "{filter}: {answer}"
        );
        if !filter.to_string().contains("\\u0000") {
            assert_eq!(answer["path"], path, "{filter}: {answer}");
        }
    }
    let (status, answer) = app
        .api(
            Method::POST,
            "/v1/audience-segments",
            Some(json!({ "name": " ", "filter": one("email", "isEmpty", Value::Null) })),
        )
        .await;
    assert_eq!((status, answer["path"].clone()), (400, json!("name")));
    assert_eq!(app.count("audience_segments").await, 0);
}

#[sqlx::test]
async fn segments_are_listed_updated_and_deleted(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, CONFIG).await;
    audience(&app).await;
    let body = json!({ "name": "Beta", "filter": one("userGroup", "equals", json!("beta")) });
    let (_, created) = app
        .api(Method::POST, "/v1/audience-segments", Some(body))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/audience-segments/{id}");

    let update = json!({ "name": "Newsletter", "filter": { "match": "all", "conditions": [{ "mailingList": "news" }] } });
    let (status, _) = app.api(Method::POST, &path, Some(update)).await;
    assert_eq!(status, 200);
    let (_, segment) = app.api(Method::GET, &path, None).await;
    assert_eq!(
        (segment["name"].clone(), segment["count"].clone()),
        (json!("Newsletter"), json!(1))
    );
    let (_, list) = app
        .api(Method::GET, "/v1/audience-segments?limit=1", None)
        .await;
    assert_eq!(list["data"][0]["id"], json!(id));

    let (status, answer) = app
        .api(
            Method::POST,
            &path,
            Some(json!({ "filter": one("nope", "isEmpty", Value::Null) })),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (_, segment) = app.api(Method::GET, &path, None).await;
    assert_eq!(
        segment["name"], "Newsletter",
        "a refused update changes nothing"
    );

    let (status, _) = app.api(Method::DELETE, &path, None).await;
    assert_eq!(status, 200);
    for (method, path) in [
        (Method::GET, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::GET, format!("{path}/contacts")),
    ] {
        assert_eq!(app.api(method, &path, None).await.0, 404);
    }
}
