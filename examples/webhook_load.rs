//! Load generator for `POST /webhooks/clerk`: realistic Clerk `user.created` deliveries
//! (the shared fixture, a new user each), signed with Svix's own signer and written out
//! as raw HTTP/1.1 requests before the clock starts, then sent over `--concurrency`
//! keep-alive connections from one thread, so the generator's own CPU stays small (like
//! pgbench's client). Prints throughput and latency percentiles as one JSON line.
//! Driven by `bench/webhook-ingest.sh`.
//!
//! Usage: webhook_load URL SECRET [--requests N] [--concurrency C]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use svix::webhooks::Webhook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIXTURE: &str = include_str!("../tests/fixtures/clerk/user.created.json");

/// Reads one HTTP/1.1 response (headers and a `content-length` body) and returns its
/// status code. Enough for a keep-alive connection to our own server.
async fn read_response(connection: &mut TcpStream, buffer: &mut Vec<u8>) -> u16 {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let read = connection.read(&mut chunk).await.expect("response read");
        assert!(read > 0, "server closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..end]).expect("ASCII headers");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buffer.len() >= end + 4 + length {
            return head[9..12].parse().expect("a status code");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("URL").clone();
    let secret = args.get(2).expect("SECRET").clone();
    let flag = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let total = flag("--requests", 20_000);
    let concurrency = flag("--concurrency", 32);
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an http:// URL");
    let (host, path) = (host.to_owned(), format!("/{path}"));

    let requests = Arc::new(signed_requests(&secret, total, &host, &path));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (host, requests, next) = (host.clone(), requests.clone(), next.clone());
        tasks.spawn(async move {
            let mut connection = TcpStream::connect(&host).await.expect("server is up");
            connection.set_nodelay(true).unwrap();
            let mut buffer = Vec::with_capacity(4096);
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    break;
                };
                let sent = Instant::now();
                connection
                    .write_all(request)
                    .await
                    .expect("request written");
                let status = read_response(&mut connection, &mut buffer).await;
                if status == 200 {
                    latencies.push(sent.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failures = 0;
    while let Some(result) = tasks.join_next().await {
        let (mut task_latencies, task_failures) = result.unwrap();
        latencies.append(&mut task_latencies);
        failures += task_failures;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| -> f64 {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies
            .get(index)
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1000.0
    };
    let report = json!({
        "requests": total,
        "failures": failures,
        "concurrency": concurrency,
        "seconds": elapsed.as_secs_f64(),
        "requests_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": percentile(1.0),
    });
    println!("{report}");
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
