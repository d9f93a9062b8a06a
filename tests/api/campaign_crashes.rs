//! Campaigns through crashes. `roster serve` killed with -9 mid-send and started again,
//! with a second campaign's schedule coming due after the kill; and a database restart
//! mid-send. Each time: no recipient gets a campaign twice, and every recipient gets it
//! but those whose send was in flight at the crash (left `unknown`, never sent again).

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    API_KEY, AppOptions, free_port, roster_serve, spawn_app_with, wait_until_ready,
};
use crate::own_cluster::OwnCluster;
use crate::smtp_server::SmtpServer;

/// `count` subscribed contacts, `person0@example.com` on.
async fn seed_contacts(db: &PgPool, count: i32) {
    sqlx::query(
        "insert into contacts (id, email, source)
         select gen_random_uuid(), 'person' || g || '@example.com', 'api'
         from generate_series(0, $1 - 1) g",
    )
    .bind(count)
    .execute(db)
    .await
    .unwrap();
}

/// A `roster serve` process, killed with -9 when dropped.
struct Serve {
    child: Child,
    base: String,
    config: std::path::PathBuf,
}

impl Serve {
    /// With a send rate of 400 a second, so that the budget is crossed by the crash too.
    async fn start(db: &PgConnectOptions, smtp: &SmtpServer) -> Self {
        let port = free_port();
        let config = std::env::temp_dir().join(format!("roster-crash-{port}.toml"));
        std::fs::write(&config, "[sending]\nrate = \"400/s\"\n").unwrap();
        let child = roster_serve(db, port, &smtp.url())
            .env("ROSTER_CONFIG", &config)
            .env("ROSTER_UNSUBSCRIBE_SECRET", "crash-unsubscribe-secret-0123")
            .spawn()
            .unwrap();
        wait_until_ready(port).await;
        Self {
            child,
            base: format!("http://127.0.0.1:{port}/api"),
            config,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Waits until `smtp` has received `count` messages.
async fn wait_for_messages(smtp: &SmtpServer, count: usize) {
    let started = Instant::now();
    while smtp.messages().len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} arrived",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until campaign `id` is `Sent`, as `get` reads it.
async fn wait_until_sent(get: impl AsyncFn(String) -> Value, id: &str) {
    let started = Instant::now();
    loop {
        let campaign = get(format!("/v1/campaigns/{id}")).await;
        if campaign["status"] == "Sent" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{campaign}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Each of `audience` contacts got campaign `id` once, except those whose send was in
/// flight at a crash (`unknown`); none got it twice; each email SMTP received is a
/// delivery that is `sent` or `unknown`, and each `sent` one was received. Returns how
/// many were `unknown`.
async fn assert_once_each(db: &PgPool, smtp: &SmtpServer, id: &str, audience: i64) -> i64 {
    let deliveries: Vec<(String, String, String)> = sqlx::query_as(
        "select d.message_id, d.recipient, d.state from email_deliveries d
         join workflow_runs r on r.id = d.run_id
         where r.workflow = 'campaign' and r.trigger_key = $1",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .unwrap();
    let by_message_id: HashMap<&str, (&str, &str)> = deliveries
        .iter()
        .map(|(message_id, recipient, state)| {
            (message_id.as_str(), (recipient.as_str(), state.as_str()))
        })
        .collect();
    let mut received = HashSet::new();
    for message in smtp.messages() {
        let message_id = message
            .data
            .lines()
            .find_map(|line| line.strip_prefix("Message-ID: "))
            .unwrap()
            .trim();
        let Some((recipient, state)) = by_message_id.get(message_id) else {
            continue; // the other campaign's
        };
        assert!(
            matches!(*state, "sent" | "unknown"),
            "{recipient} received, but {state}"
        );
        assert!(received.insert(*recipient), "{recipient} received it twice");
    }
    for (_, recipient, state) in &deliveries {
        assert!(
            state != "sent" || received.contains(recipient.as_str()),
            "{recipient} sent but never received"
        );
    }
    let recipients: HashSet<&str> = deliveries.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(
        recipients.len(),
        deliveries.len(),
        "one delivery per recipient"
    );
    assert_eq!(
        i64::try_from(deliveries.len()).unwrap(),
        audience,
        "every recipient"
    );
    let unknown = deliveries
        .iter()
        .filter(|(_, _, state)| state == "unknown")
        .count();
    let sent = deliveries
        .iter()
        .filter(|(_, _, state)| state == "sent")
        .count();
    assert_eq!(sent + unknown, deliveries.len(), "{deliveries:?}");
    i64::try_from(unknown).unwrap()
}

#[sqlx::test]
async fn a_campaign_sends_once_each_through_kill_9_and_a_schedule_survives_it(
    pool: PgPoolOptions,
    db: PgConnectOptions,
) {
    let test_db = pool.connect_with(db.clone()).await.unwrap();
    seed_contacts(&test_db, 200).await;
    let smtp = SmtpServer::start().await;
    // Slow answers, so that sends are in flight when the process dies.
    smtp.set_delay(Duration::from_millis(100));

    let first = Serve::start(&db, &smtp).await;
    let now = first
        .post(
            "/v1/campaigns",
            json!({ "name": "Now", "template": "tips", "scheduling": { "method": "now" } }),
        )
        .await;
    let at = (Utc::now() + chrono::Duration::seconds(10)).to_rfc3339();
    let later = first
        .post(
            "/v1/campaigns",
            json!({ "name": "Later", "template": "tips",
                                       "scheduling": { "method": "schedule", "timestamp": at } }),
        )
        .await;
    wait_for_messages(&smtp, 40).await;
    let scheduled = first
        .get(&format!("/v1/campaigns/{}", later["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        scheduled["status"], "Scheduled",
        "its time comes after the kill"
    );
    drop(first); // kill -9
    assert!(smtp.messages().len() < 200, "killed mid-send");

    let second = Serve::start(&db, &smtp).await;
    let get = async |path: String| second.get(&path).await;
    for campaign in [&now, &later] {
        wait_until_sent(get, campaign["id"].as_str().unwrap()).await;
    }
    let unknown = assert_once_each(&test_db, &smtp, now["id"].as_str().unwrap(), 200).await;
    assert!(unknown > 0, "some sends were in flight at the kill");
    let unknown_later = assert_once_each(&test_db, &smtp, later["id"].as_str().unwrap(), 200).await;
    assert_eq!(
        unknown_later, 0,
        "the scheduled campaign started after the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_sends_once_each_through_a_database_restart() {
    let cluster = OwnCluster::start();
    let test_db = PgPool::connect_with(cluster.connect()).await.unwrap();
    roster::db::migrate(&test_db).await.unwrap();
    seed_contacts(&test_db, 150).await;
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(50));
    let options = AppOptions {
        smtp: Some(smtp.clone()),
        production_pool: true,
        ..AppOptions::default()
    };
    let app = spawn_app_with(cluster.connect(), options).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(app.another_worker().run(shutdown.clone()));

    let (status, created) = app
        .api_post(
            "/v1/campaigns",
            json!({ "name": "Now", "template": "tips", "scheduling": { "method": "now" } }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    wait_for_messages(&smtp, 30).await;
    cluster.restart();

    let id = created["id"].as_str().unwrap();
    wait_until_sent(async |path: String| app.api_get(&path).await.1, id).await;
    assert_once_each(&test_db, &smtp, id, 150).await;
    shutdown.cancel();
    worker.await.unwrap();
}
