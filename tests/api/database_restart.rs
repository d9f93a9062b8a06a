//! A real restart of PostgreSQL (a cluster of this test's own): the first requests
//! after it succeed, and the worker with its LISTEN carries on by itself.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::{AppOptions, fixture, set, spawn_app_with};
use crate::own_cluster::OwnCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requests_after_a_database_restart_succeed() {
    let cluster = OwnCluster::start();
    let pool = sqlx::PgPool::connect_with(cluster.connect()).await.unwrap();
    roster::db::migrate(&pool).await.unwrap();
    pool.close().await;
    let options = AppOptions {
        config_toml: include_str!("../../roster.example.toml"),
        production_pool: true,
        ..AppOptions::default()
    };
    let app = spawn_app_with(cluster.connect(), options).await;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(app.another_worker().run(shutdown.clone()));

    // Open connections in every HTTP worker's pool.
    for n in 0..8 {
        let (status, _) = app
            .api_post(
                "/v1/contacts/create",
                json!({ "email": format!("before{n}@example.com") }),
            )
            .await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.restart();

    // The webhook retry lands, and the Loops SDK's next call after it too.
    let mut event = fixture("user.created");
    set(&mut event, "/data/id", json!("user_after_restart"));
    let (status, body) = app.deliver(&event).await;
    assert_eq!(status, 200, "{body}");
    for n in 0..8 {
        let (status, body) = app
            .api_get(&format!("/v1/contacts/find?email=before{n}@example.com"))
            .await;
        assert_eq!(status, 200, "request {n} after the restart: {body}");
    }

    // The worker sends the welcome of that user.created without being told again.
    let mut sent = false;
    for _ in 0..100 {
        let (_, deliveries) = app.api_get("/v1/email-deliveries?state=sent").await;
        if deliveries["data"].as_array().is_some_and(|d| !d.is_empty()) {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the worker ran the welcome after the restart");
    shutdown.cancel();
    worker.await.unwrap();
}
