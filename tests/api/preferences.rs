//! The unsubscribe link's preference page: the public mailing lists with checkboxes,
//! and "unsubscribe from everything"; per-list choices are kept and honoured by
//! campaigns to a list, even one already sending.

use chrono::Utc;
use reqwest::redirect::Policy;
use roster::email::unsubscribe::UnsubscribeKey;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, spawn_app_with_smtp};
use crate::smtp_server::SmtpServer;

const CONFIG: &str = r#"
[[lists]]
id = "news"
name = "Newsletter"
description = "Product news, once a month"
public = true

[[lists]]
id = "beta"
name = "Beta <testers>"
public = true

[[lists]]
id = "staff"
name = "Staff only"
public = false
"#;

/// A contact on `lists`; its preference page's URL.
async fn contact(app: &TestApp, email: &str, lists: Value) -> String {
    let body = json!({ "email": email, "mailingLists": lists });
    let (status, created) = app.api_post("/v1/contacts/create", body).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().parse().unwrap();
    let key = UnsubscribeKey::new("test-unsubscribe-secret-0123456789".to_owned().into());
    format!("{}/unsubscribe/{}", app.address, key.token(id))
}

async fn lists_of(app: &TestApp, email: &str) -> Value {
    app.contact_by_email(email).await.unwrap().mailing_lists
}

/// Posts the preference page's form at `url` (as a browser, not following the 303).
async fn save_preferences(url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/preferences"))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_page_shows_the_public_lists_and_saves_the_choices(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, _smtp) = spawn_app_with_smtp(db, CONFIG).await;
    let url = contact(
        &app,
        "ada@example.com",
        json!({"news": true, "staff": true}),
    )
    .await;

    let page = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("ada@example.com"), "{page}");
    assert!(
        page.contains(r#"name="list" value="news" checked> Newsletter"#),
        "{page}"
    );
    assert!(
        page.contains(r#"name="list" value="beta"> Beta &lt;testers&gt;"#),
        "{page}"
    );
    assert!(page.contains("Product news, once a month"), "{page}");
    assert!(
        !page.contains("Staff only"),
        "private lists are not shown: {page}"
    );
    assert!(page.contains("Unsubscribe from everything"), "{page}");
    let token = url.rsplit('/').next().unwrap();
    assert!(
        page.contains(&format!(r#"action="{token}/preferences""#)),
        "{page}"
    );
    assert!(page.contains(&format!(r#"action="{token}""#)), "{page}");

    // Leave news, join beta; a list that is not public cannot be touched from here.
    let saved = save_preferences(&url, &[("list", "beta"), ("list", "staff")]).await;
    assert_eq!(saved.status(), 303);
    let location = saved.headers()["location"].to_str().unwrap();
    assert_eq!(location, format!("../{token}?saved=1"));
    assert_eq!(
        lists_of(&app, "ada@example.com").await,
        json!({"beta": true, "staff": true})
    );
    let shown = app
        .client
        .get(format!("{url}?saved=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("Your preferences are saved."), "{shown}");
    assert!(shown.contains(r#"value="news">"#), "{shown}");
    assert!(
        app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed
    );

    // Nothing checked: off every public list, still subscribed to other email.
    let saved = save_preferences(&url, &[("x", "y")]).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(
        lists_of(&app, "ada@example.com").await,
        json!({"staff": true})
    );

    // A forged token changes nothing: one character of its MAC changed (one in the
    // middle, which all its six bits are of, never the one it already is).
    let mut forged = token.as_bytes().to_vec();
    forged[24] = if forged[24] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{}/unsubscribe/{}/preferences",
        app.address,
        String::from_utf8(forged).unwrap()
    );
    let refused = app
        .client
        .post(forged)
        .form(&[("list", "news")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(
        lists_of(&app, "ada@example.com").await,
        json!({"staff": true})
    );

    // "Unsubscribe from everything" (the RFC 8058 one-click target too).
    let everything = app.client.post(&url).send().await.unwrap();
    assert_eq!(everything.status(), 200);
    assert!(
        !app.contact_by_email("ada@example.com")
            .await
            .unwrap()
            .subscribed
    );
    let page = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("You are unsubscribed"), "{page}");
}

fn recipients(smtp: &SmtpServer) -> Vec<String> {
    let mut all: Vec<String> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect();
    all.sort();
    all
}

#[sqlx::test]
async fn leaving_a_list_stops_a_campaign_to_it_already_sending(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, CONFIG).await;
    let ada = contact(&app, "ada@example.com", json!({"news": true})).await;
    contact(&app, "grace@example.com", json!({"news": true})).await;
    let body = json!({ "name": "Launch", "template": "tips", "mailingListId": "news",
                       "scheduling": { "method": "now" } });
    let (status, created) = app.api_post("/v1/campaigns", body).await;
    assert_eq!(status, 200, "{created}");
    // The campaign starts; its sends wait.
    sqlx::query("update jobs set run_at = now() + interval '1 hour' where kind = 'workflow.step'")
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs_at(Utc::now()).await;
    sqlx::query("update jobs set run_at = now() + interval '1 hour' where kind = 'workflow.step'")
        .execute(&app.db)
        .await
        .unwrap();

    // Ada leaves the list before her email goes.
    let saved = save_preferences(&ada, &[("x", "")]).await;
    assert_eq!(saved.status(), 303);
    app.run_jobs_at(Utc::now() + chrono::Duration::hours(2))
        .await;
    assert_eq!(recipients(&smtp), ["grace@example.com"]);
    let reason: Option<String> = sqlx::query_scalar(
        "select r.exit_reason from workflow_runs r join contacts c on c.id = r.contact_id
         where c.email = 'ada@example.com' and r.workflow = 'campaign'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("the contact left the mailing list"));
}
