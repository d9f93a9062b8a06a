//! Several `roster serve` replicas on one PostgreSQL share one job queue: two processes
//! drain the same sends at once, and every email goes out exactly once, some through
//! each process.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{API_KEY, free_port, roster_serve, wait_until_ready};
use crate::smtp_server::SmtpServer;

/// A `roster serve` process, killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    async fn start(db: &PgConnectOptions, smtp: &SmtpServer) -> Self {
        let port = free_port();
        let child = roster_serve(db, port, &smtp.url())
            .env("ROSTER_CONFIG", "/dev/null")
            .env("SMTP_CONNECTIONS", "4")
            .spawn()
            .unwrap();
        wait_until_ready(port).await;
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What this process's `/metrics` says it sent.
    async fn sent(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("roster_emails_total{outcome=\"sent\"} "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[sqlx::test]
async fn two_replicas_drain_one_queue_without_sending_twice(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let smtp = SmtpServer::start().await;
    // SMTP answers a little slowly, so both replicas have sends in flight at once.
    smtp.set_delay(Duration::from_millis(5));
    let first = Replica::start(&db, &smtp).await;
    let second = Replica::start(&db, &smtp).await;
    let client = reqwest::Client::new();
    let emails = 300;
    // The sends are queued through both, and each replica's worker claims from all.
    for i in 0..emails {
        let replica = if i % 2 == 0 { &first } else { &second };
        let response = client
            .post(format!("{}/api/v1/transactional", replica.url))
            .bearer_auth(API_KEY)
            .json(&json!({
                "transactionalId": "magic_link",
                "email": format!("r{i}@example.com"),
                "dataVariables": { "url": "https://app.example.com/magic/abc" },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let started = Instant::now();
    while smtp.messages().len() < emails {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} sent",
            smtp.messages().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing more comes once the queue is drained.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for message in smtp.messages() {
        for to in message.recipients {
            *received.entry(to).or_default() += 1;
        }
    }
    assert_eq!(received.len(), emails, "every address");
    assert!(received.values().all(|n| *n == 1), "none twice");
    let (a, b) = (first.sent().await, second.sent().await);
    assert_eq!(a + b, emails as u64);
    assert!(a > 0 && b > 0, "both replicas sent: {a} and {b}");
}
