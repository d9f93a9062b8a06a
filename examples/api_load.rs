//! Load generator for Roster's API: GET requests from a file of paths (one per line,
//! taken in turn), with the API key, sent by the shared raw-HTTP load loop
//! (`support/raw_http.rs`). Prints throughput and latency percentiles as one JSON line.
//! Driven by `bench/api-queries.sh`.
//!
//! Usage: api_load BASE_URL API_KEY PATHS_FILE [--requests N] [--concurrency C]
//! With `ROSTER_COOKIE` set, that cookie is sent too (a dashboard session).

#[path = "support/raw_http.rs"]
mod raw_http;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args.get(1).expect("BASE_URL");
    let key = args.get(2).expect("API_KEY");
    let paths = std::fs::read_to_string(args.get(3).expect("PATHS_FILE")).expect("a readable file");
    let total = raw_http::flag(&args, "--requests", 1000);
    let concurrency = raw_http::flag(&args, "--concurrency", 1);
    let (host, _) = raw_http::host_and_path(&format!("{}/", base.trim_end_matches('/')));
    let paths: Vec<&str> = paths.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!paths.is_empty(), "no paths in the file");
    let cookie = std::env::var("ROSTER_COOKIE")
        .map(|c| format!("cookie: {c}\r\n"))
        .unwrap_or_default();
    let requests = (0..total)
        .map(|i| {
            let path = paths[i % paths.len()];
            format!(
                "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n{cookie}\r\n"
            )
            .into_bytes()
        })
        .collect();
    println!("{}", raw_http::run(&host, requests, concurrency, 200).await);
}
