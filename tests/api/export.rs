//! Export: the audience as CSV (everyone, a segment's, a list's), streamed by the API
//! and written by `roster export`, and read back by `roster import` without a change.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{API_KEY, TestApp, spawn_app_with_config};

const CONFIG: &str = r#"
[[lists]]
id = "news"
name = "Newsletter"

[[lists]]
id = "beta"
name = "Beta testers"
"#;

async fn audience(app: &TestApp) {
    for (name, kind) in [
        ("plan", "string"),
        ("seats", "number"),
        ("trial", "boolean"),
        ("renewsAt", "date"),
    ] {
        let (status, _) = app
            .api_post(
                "/v1/contacts/properties",
                json!({ "name": name, "type": kind }),
            )
            .await;
        assert_eq!(status, 200);
    }
    for contact in [
        json!({ "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace, Countess", "userGroup": "beta",
                "userId": "user_ada", "mailingLists": { "news": true, "beta": true }, "plan": "Pro \"annual\"",
                "seats": 12, "trial": false, "renewsAt": "2027-01-15", "notes": "line one\nline two\n" }),
        json!({ "email": "grace@example.com", "firstName": "Grace", "mailingLists": { "beta": true }, "seats": 2.5, "trial": true }),
        json!({ "email": "kat@example.com", "subscribed": false, "source": "import", "plan": "  padded " }),
    ] {
        let (status, body) = app.api_post("/v1/contacts/create", contact).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Every stored field of every contact, to compare before and after.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    sqlx::query_scalar("select to_jsonb(c) from contacts c order by email")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn export(app: &TestApp, query: &str) -> (u16, String) {
    let response = app
        .client
        .get(format!("{}/api/v1/contacts/export{query}", app.address))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
    }
    (status, response.text().await.unwrap())
}

fn emails(csv: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let mut emails: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    emails.sort();
    emails
}

#[sqlx::test]
async fn an_export_imported_again_changes_nothing(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, CONFIG).await;
    audience(&app).await;
    let (status, csv) = export(&app, "").await;
    assert_eq!(status, 200);
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "email,firstName,lastName,userId,userGroup,subscribed,source,notes,mailingLists,createdAt,plan,seats,trial,renewsAt"
    );
    assert_eq!(
        emails(&csv),
        ["ada@example.com", "grace@example.com", "kat@example.com"]
    );

    // A list since taken out of the config file stays on the contact, unexported.
    sqlx::query("update contacts set mailing_lists = mailing_lists || '{\"old\": true}' where email = 'grace@example.com'")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, csv) = export(&app, "").await;
    assert!(!csv.contains("old"), "{csv}");
    let before = snapshot(&app).await;
    let file = std::env::temp_dir().join(format!("roster-export-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, &csv).unwrap();
    let config: roster::config::ConfigFile = toml::from_str(CONFIG).unwrap();
    let summary =
        roster::import::import_csv(&app.db, &config, &file, &indicatif::ProgressBar::hidden())
            .await
            .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        (summary.rows, summary.created, summary.skipped.len()),
        (3, 0, 0),
        "{:?}",
        summary.skipped
    );
    assert!(summary.new_properties.is_empty());
    assert_eq!(snapshot(&app).await, before, "the import changed nothing");
}

#[sqlx::test]
async fn an_export_takes_a_segment_a_list_or_both(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, CONFIG).await;
    audience(&app).await;
    let filter = json!({ "match": "all", "conditions": [{ "property": "seats", "operator": "greaterThan", "value": 2 }] });
    let (_, created) = app
        .api(
            Method::POST,
            "/v1/audience-segments",
            Some(json!({ "name": "seats", "filter": filter })),
        )
        .await;
    let segment = created["id"].as_str().unwrap();
    for (query, expected) in [
        (
            format!("?segment={segment}"),
            vec!["ada@example.com", "grace@example.com"],
        ),
        ("?list=news".to_owned(), vec!["ada@example.com"]),
        (
            format!("?segment={segment}&list=beta"),
            vec!["ada@example.com", "grace@example.com"],
        ),
        (
            format!("?segment={segment}&list=news"),
            vec!["ada@example.com"],
        ),
    ] {
        let (status, csv) = export(&app, &query).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(emails(&csv), expected, "{query}");
    }
    for (query, path) in [
        ("?list=gone".to_owned(), "list"),
        ("?segment=".to_owned(), "segment"),
        ("?list=%20".to_owned(), "list"),
        ("?segment=not-an-id".to_owned(), "segment"),
        (format!("?segment={}", uuid::Uuid::now_v7()), "segment"),
    ] {
        let (status, body) = export(&app, &query).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["path"].clone()),
            (400, json!(path)),
            "{query}: {body}"
        );
    }
}

#[sqlx::test]
async fn an_export_pages_through_more_contacts_than_a_page(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app_with_config(db, CONFIG).await;
    sqlx::query(
        "insert into contacts (id, email, source) select gen_random_uuid(), 'c' || n || '@example.com', 'API'
         from generate_series(1, 2500) as n",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (status, csv) = export(&app, "").await;
    assert_eq!(status, 200);
    let exported = emails(&csv);
    assert_eq!(exported.len(), 2500);
    let mut unique = exported.clone();
    unique.dedup();
    assert_eq!(unique.len(), 2500, "no contact twice");
}
