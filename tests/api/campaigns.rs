//! Campaigns: an audience fixed at the start and sent once per contact (through
//! repeated starts and two workers), scheduling, cancel, unsubscribes mid-send, 409
//! once sent, and the figures.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, spawn_app_with_smtp};
use crate::smtp_server::SmtpServer;

const CONFIG: &str = r#"
[[lists]]
id = "news"
name = "Newsletter"
"#;

/// Four contacts on the newsletter (one unsubscribed), one off it.
async fn audience(app: &TestApp) {
    for (email, news, subscribed, group) in [
        ("ada@example.com", true, true, "beta"),
        ("grace@example.com", true, true, "beta"),
        ("alan@example.com", true, true, "staff"),
        ("kat@example.com", true, false, "beta"),
        ("edsger@example.com", false, true, "beta"),
    ] {
        let body = json!({ "email": email, "subscribed": subscribed, "userGroup": group,
                           "mailingLists": { "news": news } });
        let (status, answer) = app.api_post("/v1/contacts/create", body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

async fn campaign(app: &TestApp, body: Value) -> String {
    let (status, created) = app.api_post("/v1/campaigns", body).await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn show(app: &TestApp, id: &str) -> Value {
    let (status, campaign) = app.api_get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(status, 200, "{campaign}");
    campaign
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
async fn a_campaign_reaches_its_audience_once_each(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, smtp) = spawn_app_with_smtp(db, CONFIG).await;
    audience(&app).await;
    let filter = json!({ "match": "all", "conditions": [{ "property": "userGroup", "operator": "equals", "value": "beta" }] });
    let (_, segment) = app
        .api_post(
            "/v1/audience-segments",
            json!({ "name": "beta", "filter": filter }),
        )
        .await;
    let id = campaign(
        &app,
        json!({ "name": "Launch", "template": "tips", "mailingListId": "news",
                "audienceSegmentId": segment["id"], "scheduling": { "method": "now" } }),
    )
    .await;
    // Started and run twice, by two workers at once: one email each.
    let other = app.another_worker();
    let (first, second) = tokio::join!(app.run_jobs_at(Utc::now()), other.run_due(Utc::now()));
    assert!(first + second.unwrap() > 0);
    app.run_jobs_at(Utc::now()).await;
    sqlx::query(
        "update jobs set state = 'scheduled', run_at = now() where kind = 'campaign.start'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(
        recipients(&smtp),
        ["ada@example.com", "grace@example.com"],
        "subscribed, on the list, in the segment"
    );
    assert!(
        smtp.messages()[0].data.contains("List-Unsubscribe:"),
        "marketing email"
    );

    // Joining afterwards gets nothing: the audience was fixed at the start.
    let late = json!({ "email": "late@example.com", "userGroup": "beta", "mailingLists": { "news": true } });
    app.api_post("/v1/contacts/create", late).await;
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(smtp.messages().len(), 2);

    let shown = show(&app, &id).await;
    assert_eq!(shown["status"], "Sent");
    assert_eq!(shown["stats"]["recipients"], 2);
    assert_eq!(shown["stats"]["sent"], 2);
    assert_eq!(shown["stats"]["remaining"], 0);
    assert_eq!(
        shown["stats"]["perSecond"], 0.0,
        "2 in the last minute, to one decimal"
    );
    // Sent: it no longer changes, nor cancels, and its segment stays.
    let edit = json!({ "name": "Again", "template": "tips" });
    assert_eq!(
        app.api_post(&format!("/v1/campaigns/{id}"), edit).await.0,
        409
    );
    assert_eq!(
        app.api_post(&format!("/v1/campaigns/{id}/cancel"), json!({}))
            .await
            .0,
        409
    );
    let segment_path = format!("/v1/audience-segments/{}", segment["id"].as_str().unwrap());
    assert_eq!(app.api(Method::DELETE, &segment_path, None).await.0, 409);
    // And "received this campaign's template" is a segment now.
    let received = json!({ "match": "all", "conditions": [{ "activity": "received", "workflow": "campaign" }] });
    let (_, saved) = app
        .api_post(
            "/v1/audience-segments",
            json!({ "name": "got it", "filter": received }),
        )
        .await;
    let (_, got) = app
        .api_get(&format!(
            "/v1/audience-segments/{}",
            saved["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["count"], 2);
    // Or of this campaign: who did not get it yet (subscribed or not).
    let missed = json!({ "match": "all", "conditions": [{ "activity": "received", "campaignId": id, "negate": true }] });
    let (_, saved) = app
        .api_post(
            "/v1/audience-segments",
            json!({ "name": "missed", "filter": missed }),
        )
        .await;
    let (_, got) = app
        .api_get(&format!(
            "/v1/audience-segments/{}",
            saved["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["count"], 4, "kat, alan, edsger and the late one");
    let unknown = json!({ "match": "all", "conditions": [{ "activity": "received", "campaignId": uuid::Uuid::now_v7() }] });
    let (status, answer) = app
        .api_post(
            "/v1/audience-segments",
            json!({ "name": "?", "filter": unknown }),
        )
        .await;
    assert_eq!(
        (status, answer["path"].clone()),
        (400, json!("filter.conditions[0].campaignId"))
    );
}

#[sqlx::test]
async fn a_scheduled_campaign_waits_for_its_time_and_can_be_moved(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, CONFIG).await;
    audience(&app).await;
    let at = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let id = campaign(&app, json!({ "name": "Later", "template": "tips", "scheduling": { "method": "schedule", "timestamp": at } })).await;
    assert_eq!(show(&app, &id).await["status"], "Scheduled");
    app.run_jobs_at(Utc::now()).await;
    assert!(smtp.messages().is_empty());
    // Moved a day later: two hours on, still nothing.
    let later = (Utc::now() + Duration::days(1)).to_rfc3339();
    let moved = json!({ "name": "Later", "template": "tips", "scheduling": { "method": "schedule", "timestamp": later } });
    assert_eq!(
        app.api_post(&format!("/v1/campaigns/{id}"), moved).await.0,
        200
    );
    app.run_jobs_at(Utc::now() + Duration::hours(3)).await;
    assert!(smtp.messages().is_empty());
    app.run_jobs_at(Utc::now() + Duration::days(1) + Duration::minutes(1))
        .await;
    app.run_jobs_at(Utc::now() + Duration::days(1) + Duration::minutes(1))
        .await;
    assert_eq!(
        recipients(&smtp),
        [
            "ada@example.com",
            "alan@example.com",
            "edsger@example.com",
            "grace@example.com"
        ],
        "every subscribed contact"
    );
    // All sent, though nobody has looked: it is Sent, and no longer cancels.
    let (status, _) = app
        .api_post(&format!("/v1/campaigns/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409);
    let (_, list) = app.api_get("/v1/campaigns").await;
    assert_eq!(list["data"][0]["status"], "Sent");
}

/// The config file and templates are edited between scheduling and sending (the app
/// restarted with them): a campaign whose list or template is gone by its time is
/// cancelled with the reason, and sends nothing.
#[sqlx::test]
async fn a_campaign_whose_list_or_template_went_away_is_cancelled_with_the_reason(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (before, _) = spawn_app_with_smtp(db.clone(), CONFIG).await;
    audience(&before).await;
    let at = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let to_list = campaign(&before, json!({ "name": "News", "template": "tips", "mailingListId": "news",
                                             "scheduling": { "method": "schedule", "timestamp": at } })).await;
    let with_template = campaign(&before, json!({ "name": "Tips", "template": "tips",
                                                   "scheduling": { "method": "schedule", "timestamp": at } })).await;
    // The template's folder is removed (here, renamed in the row, as the start sees it
    // the same way: a name the templates no longer have).
    sqlx::query("update campaigns set template = 'retired' where id = $1::uuid")
        .bind(&with_template)
        .execute(&before.db)
        .await
        .unwrap();

    let (after, smtp) = spawn_app_with_smtp(db, "").await; // the list removed
    after.run_jobs_at(Utc::now() + Duration::hours(2)).await;
    assert!(smtp.messages().is_empty());
    for (id, problem) in [
        (
            &to_list,
            "the mailing list \"news\" is no longer in the config file",
        ),
        (&with_template, "the template \"retired\" is gone"),
    ] {
        let shown = show(&after, id).await;
        assert_eq!(
            (shown["status"].clone(), shown["problem"].clone()),
            (json!("Cancelled"), json!(problem)),
            "{shown}"
        );
    }
}

#[sqlx::test]
async fn cancel_and_unsubscribe_stop_the_sends_still_waiting(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, CONFIG).await;
    audience(&app).await;
    let id = campaign(&app, json!({ "name": "Launch", "template": "tips", "mailingListId": "news", "scheduling": { "method": "now" } })).await;
    // Only the start: its sends are queued, not yet made.
    sqlx::query("update jobs set run_at = now() + interval '1 hour' where kind = 'workflow.step'")
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs_at(Utc::now()).await;
    sqlx::query("update jobs set run_at = now() + interval '1 hour' where kind = 'workflow.step'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(show(&app, &id).await["stats"]["remaining"], 3);
    // Grace unsubscribes before her email: skipped, as unsubscribed.
    app.api_put(
        "/v1/contacts/update",
        json!({ "email": "grace@example.com", "subscribed": false }),
    )
    .await;
    // One send made, then the campaign is cancelled: the rest never go.
    let ada: String = sqlx::query_scalar(
        "select j.id::text from jobs j join workflow_runs r on r.id = (j.payload ->> 'run')::uuid
         join contacts c on c.id = r.contact_id where c.email = 'ada@example.com'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    sqlx::query("update jobs set run_at = now() where id = $1::bigint or payload ->> 'run' in (
                     select r.id::text from workflow_runs r join contacts c on c.id = r.contact_id where c.email = 'grace@example.com')")
        .bind(&ada)
        .execute(&app.db)
        .await
        .unwrap();
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(recipients(&smtp), ["ada@example.com"]);
    assert_eq!(
        app.api_post(&format!("/v1/campaigns/{id}/cancel"), json!({}))
            .await
            .0,
        200
    );
    app.run_jobs_at(Utc::now() + Duration::hours(2)).await;
    assert_eq!(
        recipients(&smtp),
        ["ada@example.com"],
        "nothing after the cancel"
    );
    let shown = show(&app, &id).await;
    assert_eq!(shown["status"], "Cancelled");
    let stats = &shown["stats"];
    assert_eq!(
        (
            stats["recipients"].clone(),
            stats["sent"].clone(),
            stats["unsubscribed"].clone(),
            stats["skipped"].clone()
        ),
        (json!(3), json!(1), json!(1), json!(1))
    );
}

#[sqlx::test]
async fn a_campaign_names_what_is_wrong_with_it(_: PgPoolOptions, db: PgConnectOptions) {
    let (app, _smtp) = spawn_app_with_smtp(db, CONFIG).await;
    for (body, path) in [
        (json!({ "template": "tips" }), "name"),
        (json!({ "name": "x", "template": "nope" }), "template"),
        (
            json!({ "name": "x", "template": "tips", "mailingListId": "gone" }),
            "mailingListId",
        ),
        (
            json!({ "name": "x", "template": "tips", "audienceSegmentId": uuid::Uuid::now_v7() }),
            "audienceSegmentId",
        ),
        (
            json!({ "name": "x", "template": "tips", "scheduling": { "method": "later" } }),
            "scheduling.method",
        ),
        (
            json!({ "name": "x", "template": "tips", "scheduling": { "method": "schedule", "timestamp": "soon" } }),
            "scheduling.timestamp",
        ),
        (
            json!({ "name": "x", "template": "tips", "extra": 1 }),
            "extra",
        ),
    ] {
        let (status, answer) = app.api_post("/v1/campaigns", body.clone()).await;
        assert_eq!(
            (status, answer["path"].clone()),
            (400, json!(path)),
            "{body}: {answer}"
        );
    }
    let id = campaign(&app, json!({ "name": "Draft", "template": "tips" })).await;
    assert_eq!(show(&app, &id).await["status"], "Draft");
    let (_, list) = app.api_get("/v1/campaigns").await;
    assert_eq!(list["data"][0]["id"], json!(id));
    assert_eq!(
        app.api_get(&format!("/v1/campaigns/{}", uuid::Uuid::now_v7()))
            .await
            .0,
        404
    );
}

#[sqlx::test]
async fn a_campaign_is_previewed_and_test_sent_before_it_goes(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let (app, smtp) = spawn_app_with_smtp(db, CONFIG).await;
    let body = json!({ "email": "ada@example.com", "firstName": "Ada" });
    app.api_post("/v1/contacts/create", body).await;
    let id = campaign(&app, json!({ "name": "Draft", "template": "tips" })).await;
    let (status, preview) = app
        .api_get(&format!(
            "/v1/campaigns/{id}/preview?email=ada%40example.com"
        ))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview["html"].as_str().unwrap().contains("Ada"),
        "{preview}"
    );
    assert!(!preview["subject"].as_str().unwrap().is_empty());
    let (status, sample) = app.api_get(&format!("/v1/campaigns/{id}/preview")).await;
    assert_eq!(status, 200, "{sample}");
    let (status, _) = app
        .api_get(&format!(
            "/v1/campaigns/{id}/preview?email=nobody%40example.com"
        ))
        .await;
    assert_eq!(status, 404);

    let test = format!("/v1/campaigns/{id}/test");
    assert_eq!(
        app.api_post(&test, json!({ "email": "not an address" }))
            .await
            .0,
        400
    );
    assert_eq!(
        app.api_post(&test, json!({ "email": "me@acme.test" }))
            .await
            .0,
        200
    );
    app.run_jobs_at(Utc::now()).await;
    assert_eq!(recipients(&smtp), ["me@acme.test"]);
    // Its templates saw the campaign's event, as the real sends' will.
    let event: Value =
        sqlx::query_scalar("select event from workflow_runs where workflow = 'transactional'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (
            &event["type"],
            &event["campaignId"],
            &event["name"],
            &event["test"]
        ),
        (
            &json!("campaign"),
            &json!(id),
            &json!("Draft"),
            &json!(true)
        ),
        "{event}"
    );
    let shown = show(&app, &id).await;
    assert_eq!(
        (
            shown["status"].clone(),
            shown["stats"]["recipients"].clone()
        ),
        (json!("Draft"), json!(0))
    );
}
