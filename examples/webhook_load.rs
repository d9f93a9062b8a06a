//! Load generator for `POST /webhooks/clerk`: realistic Clerk `user.created` deliveries
//! (the shared fixture, a new user each), signed with Svix's own signer, sent by the
//! shared raw-HTTP load loop (`support/raw_http.rs`). Prints throughput and latency
//! percentiles as one JSON line.
//! Driven by `bench/webhook-ingest.sh`.
//!
//! Usage: webhook_load URL SECRET [--requests N] [--concurrency C]

#[path = "support/raw_http.rs"]
mod raw_http;

use serde_json::{Value, json};
use svix::webhooks::Webhook;

const FIXTURE: &str = include_str!("../src/clerk/samples/user.created.json");

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("URL").clone();
    let secret = args.get(2).expect("SECRET").clone();
    let total = raw_http::flag(&args, "--requests", 20_000);
    let concurrency = raw_http::flag(&args, "--concurrency", 32);
    let (host, path) = raw_http::host_and_path(&url);
    let requests = signed_requests(&secret, total, &host, &path);
    println!("{}", raw_http::run(&host, requests, concurrency, 200).await);
}

/// One signed `user.created` per request, each for a new user. Signing up front keeps
/// the generator's CPU out of the measurement; runs are far shorter than Svix's 5-minute
/// timestamp tolerance.
fn signed_requests(secret: &str, count: usize, host: &str, path: &str) -> Vec<Vec<u8>> {
    let webhook = Webhook::new(secret).expect("a whsec_ secret");
    let template: Value = serde_json::from_str(FIXTURE).unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let now_ms = chrono::Utc::now().timestamp_millis();
    (0..count)
        .map(|i| {
            let mut event = template.clone();
            event["data"]["id"] = json!(format!("user_{run}_{i}"));
            event["data"]["email_addresses"][0]["email_address"] =
                json!(format!("person{i}.{}@bench.test", &run[..8]));
            event["data"]["updated_at"] = json!(now_ms);
            event["timestamp"] = json!(now_ms);
            let body = serde_json::to_vec(&event).unwrap();
            let id = format!("msg_{run}_{i}");
            let timestamp = chrono::Utc::now().timestamp();
            let signature = webhook.sign(&id, timestamp, &body).unwrap();
            let mut request = format!(
                "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nsvix-id: {id}\r\nsvix-timestamp: {timestamp}\r\n\
                 svix-signature: {signature}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            request
        })
        .collect()
}
