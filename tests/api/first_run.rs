//! A first run without Clerk: `roster send-test-event` signs a sample Clerk event with
//! the configured secret and posts it to the running Roster; the empty audience page
//! stores the same. The contact appears, its workflow starts, the email reaches a real
//! SMTP server on loopback.

use std::process::Output;

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::dashboard::{csrf, logged_in};
use crate::helpers::{API_KEY, SECRET, TestApp, roster, spawn_app, spawn_app_with_smtp};
use crate::smtp_server::SmtpServer;

const EXAMPLE: &str = include_str!("../../roster.example.toml");

/// `roster send-test-event ARGS` posting to `app`, signed with the test secret.
async fn send_test_event(app: &TestApp, args: &[&str], secret: Option<&str>) -> Output {
    let mut command = roster();
    command
        .arg("send-test-event")
        .args(args)
        .args(["--url", &format!("{}/webhooks/clerk", app.address)]);
    if let Some(secret) = secret {
        command.env("CLERK_WEBHOOK_SECRET", secret);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn recipients(smtp: &SmtpServer) -> Vec<String> {
    smtp.messages()
        .iter()
        .flat_map(|m| m.recipients.clone())
        .collect()
}

#[sqlx::test]
async fn send_test_event_shows_a_contact_a_workflow_and_its_email_without_clerk(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, EXAMPLE).await;
    let sent = send_test_event(
        &app,
        &["user.created", "--email", "grace@example.com"],
        Some(SECRET),
    )
    .await;
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "{sent:?}");
    assert!(
        stdout.contains("user.created for grace@example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("200 OK"), "{stdout}");
    let contact = app.contact_by_email("grace@example.com").await.unwrap();
    assert!(contact.user_id.as_deref().unwrap().starts_with("user_test"));
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(recipients(&smtp), ["grace@example.com"], "the welcome");

    // The same address is the same user: a sign-in lands on the same contact.
    let signed_in = send_test_event(
        &app,
        &["session.created", "--email", "grace@example.com"],
        Some(SECRET),
    )
    .await;
    assert!(signed_in.status.success(), "{signed_in:?}");
    let contact = app.contact_by_email("grace@example.com").await.unwrap();
    assert!(contact.clerk_last_sign_in_at.is_some());
    assert_eq!(app.count("contacts").await, 1);

    // A trial ending in 3 days: the example workflow sends its email now.
    let trial = send_test_event(
        &app,
        &[
            "subscriptionItem.freeTrialEnding",
            "--email",
            "grace@example.com",
        ],
        Some(SECRET),
    )
    .await;
    assert!(trial.status.success(), "{trial:?}");
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(recipients(&smtp).len(), 2, "the trial ending email");
    // Billing facts come from the subscription's events.
    let subscribed = send_test_event(
        &app,
        &["subscription.active", "--email", "grace@example.com"],
        Some(SECRET),
    )
    .await;
    assert!(subscribed.status.success(), "{subscribed:?}");
    let contact = app.contact_by_email("grace@example.com").await.unwrap();
    assert_eq!(contact.clerk_subscription_status.as_deref(), Some("active"));
}

#[sqlx::test]
async fn send_test_event_refuses_an_unknown_type_a_bad_address_and_a_missing_secret(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let app = spawn_app(db).await;
    let unknown = send_test_event(&app, &["user.exploded"], Some(SECRET)).await;
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains(
            "there is no sample user.exploded event; there are: user.created, user.updated"
        ),
        "{stderr}"
    );
    let bad_address = send_test_event(
        &app,
        &["user.created", "--email", "ada\r\nBcc: x@y.z"],
        Some(SECRET),
    )
    .await;
    assert!(!bad_address.status.success());
    assert!(
        String::from_utf8_lossy(&bad_address.stderr).contains("--email"),
        "{bad_address:?}"
    );
    let unsigned = send_test_event(&app, &["user.created"], None).await;
    assert!(!unsigned.status.success());
    assert!(
        String::from_utf8_lossy(&unsigned.stderr).contains("CLERK_WEBHOOK_SECRET is not set"),
        "{unsigned:?}"
    );
    let wrong_secret = send_test_event(
        &app,
        &["user.created"],
        Some("whsec_d3Jvbmctc2VjcmV0LWZvci10ZXN0cw=="),
    )
    .await;
    assert!(
        !wrong_secret.status.success(),
        "Roster refused the signature"
    );
    assert_eq!(app.count("clerk_events").await, 0);
    assert_eq!(app.count("contacts").await, 0);
}

#[sqlx::test]
async fn the_empty_audience_page_stores_a_test_event(_: PgPoolOptions, db: PgConnectOptions) {
    let app = spawn_app(db).await;
    let (client, _) = logged_in(&app.address, API_KEY).await;
    let audience = format!("{}/", app.address);
    let page = client
        .get(&audience)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Send a test event"), "{page}");
    let token = csrf(&client, &audience).await;
    let post = |form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = format!("{}/test-event", app.address);
        async move { client.post(url).form(&form).send().await.unwrap() }
    };

    let stored = post(vec![
        ("csrf", token.clone()),
        ("type", "user.created".into()),
        ("email", "ada@example.com".into()),
    ])
    .await;
    assert_eq!(stored.status(), 303);
    let location = stored.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/?notice=A+test+user.created"),
        "{location}"
    );
    assert!(app.contact_by_email("ada@example.com").await.is_some());
    assert_eq!(app.count("clerk_events").await, 1);

    for (field, value, status) in [
        ("type", "user.exploded", 400),
        ("email", "not an address", 400),
        ("csrf", "forged", 403),
    ] {
        let mut form = vec![
            ("csrf", token.clone()),
            ("type", "session.created".to_owned()),
            ("email", "ada@example.com".to_owned()),
        ];
        form.retain(|(name, _)| *name != field);
        form.push((field, value.to_owned()));
        assert_eq!(post(form).await.status(), status, "{field} = {value:?}");
    }
    // A real person's contact is not the test user's to take.
    app.api_post(
        "/v1/contacts/create",
        serde_json::json!({ "email": "real@example.com" }),
    )
    .await;
    let taken = post(vec![
        ("csrf", token.clone()),
        ("type", "user.created".into()),
        ("email", "real@example.com".into()),
    ])
    .await;
    assert_eq!(taken.status(), 400);
    assert!(
        taken
            .text()
            .await
            .unwrap()
            .contains("a contact&#39;s address already")
    );
    assert!(
        app.contact_by_email("real@example.com")
            .await
            .unwrap()
            .user_id
            .is_none()
    );
    assert_eq!(
        app.count("clerk_events").await,
        1,
        "refused forms store nothing"
    );
}
