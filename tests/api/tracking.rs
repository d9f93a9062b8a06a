//! Open and click tracking, from the email as SMTP received it: the pixel and the
//! rewritten links, fetched as a person's mail client and as Gmail's image proxy;
//! a tampered link is a 404, never a redirect; transactional email and `track = false`
//! are not tracked; webhooks hear of the first open and click.

use chrono::Utc;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{AppOptions, TestApp, spawn_app_with};
use crate::http_receiver::HttpReceiver;
use crate::smtp_server::SmtpServer;

const SECRET: &str = "whsec_dHJhY2tpbmctd2ViaG9vay1zZWNyZXQtMDEyMzQ1";
const PERSON: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";
const GMAIL_PROXY: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

async fn app(db: PgConnectOptions, receiver: &HttpReceiver) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let config = format!(
        r#"
[[workflows]]
name = "login"
trigger = "loginRequested"
steps = [{{ send = "magic_link" }}]

[[workflows]]
name = "quiet"
trigger = "quietRequested"
track = false
steps = [{{ send = "magic_link" }}]

[[workflows]]
name = "receipt"
trigger = "receiptRequested"
transactional = true
steps = [{{ send = "magic_link" }}]

[[webhooks]]
url = "{url}/hooks"
secret = "{SECRET}"
events = ["email.opened", "email.clicked", "email.unsubscribed"]
"#,
        url = receiver.url
    );
    let options = AppOptions {
        config_toml: Box::leak(config.into_boxed_str()),
        smtp: Some(smtp.clone()),
        ..AppOptions::default()
    };
    (spawn_app_with(db, options).await, smtp)
}

async fn send_event(app: &TestApp, event: &str, email: &str) {
    let body = json!({ "email": email, "eventName": event,
                       "eventProperties": { "url": "https://app.acme.test/magic?token=abc&next=/home" } });
    let (status, answer) = app.api_post("/v1/events/send", body).await;
    assert_eq!(status, 200, "{answer}");
    app.run_jobs_at(Utc::now()).await;
}

/// The HTML part of the last email to `email`, decoded (transfer encoding, entities).
fn html_to(smtp: &SmtpServer, email: &str) -> String {
    let message = smtp
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.recipients == [email])
        .expect("an email");
    let parsed = mailparse::parse_mail(message.data.as_bytes()).unwrap();
    parsed
        .subparts
        .iter()
        .find(|part| part.ctype.mimetype == "text/html")
        .expect("an HTML part")
        .get_body()
        .map(|html| html_escape::decode_html_entities(&html).into_owned())
        .unwrap()
}

/// The `List-Unsubscribe` URL of the last email.
fn list_unsubscribe(smtp: &SmtpServer) -> String {
    let message = smtp.messages().pop().unwrap();
    let parsed = mailparse::parse_mail(message.data.as_bytes()).unwrap();
    let header = parsed
        .headers
        .iter()
        .find(|h| h.get_key() == "List-Unsubscribe")
        .unwrap()
        .get_value();
    header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

fn links(html: &str, prefix: &str) -> Vec<String> {
    html.split(prefix)
        .skip(1)
        .map(|rest| format!("{prefix}{}", rest.split('"').next().unwrap()))
        .collect()
}

/// A segment of who did `activity` with an email of the login workflow this week.
async fn segment(app: &TestApp, activity: &str) -> String {
    let filter = json!({"match": "all", "conditions": [
        {"activity": activity, "workflow": "login", "withinDays": 7}]});
    let (status, saved) = app
        .api_post(
            "/v1/audience-segments",
            json!({"name": activity, "filter": filter}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    saved["id"].as_str().unwrap().to_owned()
}

async fn matches(app: &TestApp, segment: &str) -> i64 {
    let (_, shown) = app
        .api_get(&format!("/v1/audience-segments/{segment}"))
        .await;
    shown["count"].as_i64().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn activity(app: &TestApp, email: &str) -> Value {
    let (_, deliveries) = app.api_get("/v1/email-deliveries").await;
    deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"] == email)
        .unwrap()["activity"]
        .clone()
}

#[sqlx::test]
async fn opens_and_clicks_are_recorded_machines_apart(_: PgPoolOptions, db: PgConnectOptions) {
    let receiver = HttpReceiver::start().await;
    let (app, smtp) = app(db, &receiver).await;
    send_event(&app, "loginRequested", "ada@example.com").await;
    let html = html_to(&smtp, "ada@example.com");
    let pixels = links(&html, &format!("{}/t/o/", app.address));
    let clicks = links(&html, &format!("{}/t/c/", app.address));
    let on_app = |url: &str| url.to_owned();
    assert_eq!(pixels.len(), 1, "{html}");
    assert_eq!(clicks.len(), 1, "{html}");
    assert!(
        html.contains("/unsubscribe/"),
        "the unsubscribe link is kept: {html}"
    );

    // Gmail's proxy fetches the pixel: a machine open, no webhook.
    let pixel = client()
        .get(on_app(&pixels[0]))
        .header("user-agent", GMAIL_PROXY)
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);
    assert_eq!(pixel.headers()["content-type"], "image/gif");
    assert_eq!(pixel.bytes().await.unwrap().len(), 43);
    assert_eq!(
        activity(&app, "ada@example.com").await,
        json!(["machine_opened"])
    );
    let opened = segment(&app, "opened").await;
    let clicked = segment(&app, "clicked").await;
    assert_eq!(matches(&app, &opened).await, 0, "a machine open is no open");

    // Ada opens it, twice, and clicks.
    for _ in 0..2 {
        let pixel = client()
            .get(on_app(&pixels[0]))
            .header("user-agent", PERSON)
            .send()
            .await;
        assert_eq!(pixel.unwrap().status(), 200);
    }
    let click = client()
        .get(on_app(&clicks[0]))
        .header("user-agent", PERSON)
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 302);
    assert_eq!(
        click.headers()["location"],
        "https://app.acme.test/magic?token=abc&next=/home"
    );
    assert_eq!(
        activity(&app, "ada@example.com").await,
        json!(["clicked", "machine_opened", "opened"])
    );
    assert_eq!(matches(&app, &opened).await, 1);
    assert_eq!(matches(&app, &clicked).await, 1);
    let counts: Vec<(String, bool, i64)> = sqlx::query_as(
        "select kind, machine, count(*) from email_engagements group by kind, machine order by kind, machine",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        counts,
        [
            ("click".into(), false, 1),
            ("open".into(), false, 2),
            ("open".into(), true, 1)
        ]
    );

    // The workflow's step shows them on the dashboard.
    let page = crate::dashboard::dashboard_page(&app, "/workflows").await;
    assert!(
        page.contains("<div>1 opened</div><div>1 clicked</div>"),
        "{page}"
    );

    // Webhooks: the first human open and the first click, once each.
    app.run_jobs_at(Utc::now()).await;
    let mut names: Vec<String> = receiver
        .received()
        .iter()
        .map(|post| post.json()["eventName"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["email.clicked", "email.opened"]);
    let opened = receiver.received()[0].json();
    assert_eq!(opened["sourceType"], "loop", "{opened}");
    assert_eq!(opened["loopId"], "login", "{opened}");

    // A tampered token: 404, no redirect, nothing recorded.
    let token = clicks[0].rsplit('/').next().unwrap();
    let (data, mac) = token.split_once('.').unwrap();
    let forged = format!("{}/t/c/{}x.{mac}", app.address, data);
    let refused = client().get(forged).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    assert!(refused.headers().get("location").is_none());
    let swapped = format!(
        "{}/t/c/{}",
        app.address,
        pixels[0].rsplit('/').next().unwrap()
    );
    assert_eq!(client().get(swapped).send().await.unwrap().status(), 404);
    assert_eq!(
        client()
            .get(format!("{}/t/o/garbage", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[sqlx::test]
async fn transactional_and_untracked_email_have_no_tracking(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    let (app, smtp) = app(db, &receiver).await;
    send_event(&app, "quietRequested", "quiet@example.com").await;
    send_event(&app, "receiptRequested", "receipt@example.com").await;
    for email in ["quiet@example.com", "receipt@example.com"] {
        let html = html_to(&smtp, email);
        assert!(
            !html.contains("/t/o/") && !html.contains("/t/c/"),
            "{email}: {html}"
        );
        assert!(
            html.contains(r#"href="https://app.acme.test/magic?token=abc&next=/home""#),
            "{email}: {html}"
        );
    }
}

#[sqlx::test]
async fn campaigns_are_tracked_unless_they_say_not(_: PgPoolOptions, db: PgConnectOptions) {
    let receiver = HttpReceiver::start().await;
    let (app, smtp) = app(db, &receiver).await;
    let (status, _) = app
        .api_post("/v1/contacts/create", json!({"email": "cam@example.com"}))
        .await;
    assert_eq!(status, 200);
    let (status, refused) = app
        .api_post(
            "/v1/campaigns",
            json!({"name": "Odd", "template": "tips", "track": "yes"}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("track"), "{refused}");

    let mut pixels = Vec::new();
    for track in [true, false] {
        let body = json!({"name": format!("Tips {track}"), "template": "tips", "track": track,
                          "scheduling": {"method": "now"}});
        let (status, created) = app.api_post("/v1/campaigns", body).await;
        assert_eq!(status, 200, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        app.run_jobs_at(Utc::now()).await;
        app.run_jobs_at(Utc::now()).await;
        let html = html_to(&smtp, "cam@example.com");
        let found = links(&html, &format!("{}/t/o/", app.address));
        assert_eq!(found.len(), usize::from(track), "track = {track}: {html}");
        let (_, shown) = app.api_get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(shown["track"], track, "{shown}");
        pixels.extend(found.into_iter().map(|pixel| (id.clone(), pixel)));
    }
    let (id, pixel) = &pixels[0];
    let fetched = client()
        .get(pixel)
        .header("user-agent", PERSON)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let (_, shown) = app.api_get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(shown["stats"]["opened"], 1, "{shown}");
    assert_eq!(shown["stats"]["clicked"], 0, "{shown}");
}

#[sqlx::test]
async fn the_unsubscribe_link_names_its_email_to_the_webhooks(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let receiver = HttpReceiver::start().await;
    let (app, smtp) = app(db, &receiver).await;
    send_event(&app, "loginRequested", "bo@example.com").await;
    let url = list_unsubscribe(&smtp);
    assert!(url.contains("?email="), "{url}");
    // RFC 8058 one-click, as a mail provider posts it.
    let response = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !app.contact_by_email("bo@example.com")
            .await
            .unwrap()
            .subscribed
    );
    app.run_jobs_at(Utc::now()).await;
    let posts = receiver.received();
    assert_eq!(posts.len(), 1);
    let event = posts[0].json();
    assert_eq!(event["eventName"], "email.unsubscribed", "{event}");
    assert_eq!(event["loopId"], "login", "{event}");
    let delivery: uuid::Uuid = sqlx::query_scalar("select id from email_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(event["email"]["id"], delivery.to_string(), "{event}");

    // A tampered `email` (and parameters added or repeated) is ignored: the
    // unsubscribe still works, nothing is said.
    send_event(&app, "loginRequested", "cy@example.com").await;
    let url =
        list_unsubscribe(&smtp).replace("?email=", "?email=x") + "&email=again&utm_source=mail";
    assert_eq!(client().post(&url).send().await.unwrap().status(), 200);
    assert!(
        !app.contact_by_email("cy@example.com")
            .await
            .unwrap()
            .subscribed
    );
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(receiver.received().len(), 1);
}
