//! The load loop the benchmark generators share: requests written out as raw HTTP/1.1
//! before the clock starts, sent over `concurrency` keep-alive connections from one
//! thread, so the generator's own CPU stays small (like pgbench's client). Reports
//! throughput and latency percentiles as one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The number after `--name` in the command line, or `default`.
pub fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Splits `http://host:port/path` into host and path.
pub fn host_and_path(url: &str) -> (String, String) {
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an http:// URL");
    (host.to_owned(), format!("/{path}"))
}

/// Sends every request once, `concurrency` at a time; the report counts a request
/// answered with anything but `expected_status` as a failure.
pub async fn run(
    host: &str,
    requests: Vec<Vec<u8>>,
    concurrency: usize,
    expected_status: u16,
) -> Value {
    let total = requests.len();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (host, requests, next) = (host.to_owned(), requests.clone(), next.clone());
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
                if status == expected_status {
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
    json!({
        "requests": total,
        "failures": failures,
        "concurrency": concurrency,
        "seconds": elapsed.as_secs_f64(),
        "requests_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
        "max_ms": percentile(1.0),
    })
}

/// Reads one HTTP/1.1 response (headers and a `content-length` body) and returns its
/// status code. Enough for a keep-alive connection to our own server.
async fn read_response(connection: &mut TcpStream, buffer: &mut Vec<u8>) -> u16 {
    buffer.clear();
    let mut chunk = [0u8; 16384];
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
