//! The parts of the email dispatch benchmark (`bench/email-dispatch.sh`):
//! - `smtp_bench sink PORT [DELAY_MS] [realistic]`: an SMTP server on 127.0.0.1 that
//!   accepts every message and keeps nothing. Quick by default (TCP_NODELAY, every
//!   segment acknowledged at once); `realistic` keeps Linux's default TCP (delayed ACKs,
//!   Nagle), as a mail server's socket does;
//! - `smtp_bench proxy PORT TARGET_PORT RTT_MS`: a TCP proxy on 127.0.0.1 that delays
//!   each direction by half the round trip, as a network between Roster and its relay;
//! - `smtp_bench load URL MESSAGES CONCURRENCY`: the best plain SMTP client (lettre with
//!   TCP_NODELAY, Roster's own connection pool, no database), measuring how many
//!   messages per second the sink accepts, printed as one JSON line;
//! - `smtp_bench latency ROSTER_URL WEBHOOK_SECRET SINK_PORT EVENTS`: from outside, the
//!   time from posting a signed `user.created` to the realistic sink accepting the
//!   welcome it causes, one event after another, as JSON (p50, p99, max in ms).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::header::ContentType;
use roster::clerk::signature::signed_delivery;
use roster::email::transport::Mailer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// When the sink accepted a message, by its first recipient.
type Accepted = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => {
            let delay = args
                .get(3)
                .map_or(0, |ms| ms.parse().expect("milliseconds"));
            let realistic = args.get(4).is_some_and(|mode| mode == "realistic");
            let listener = TcpListener::bind(("127.0.0.1", args[2].parse().expect("a port")))
                .await
                .expect("port is free");
            sink(listener, Duration::from_millis(delay), realistic, None).await
        }
        Some("proxy") => {
            proxy(
                args[2].parse().expect("a port"),
                args[3].parse().expect("a target port"),
                Duration::from_millis(args[4].parse().expect("milliseconds")),
            )
            .await
        }
        Some("latency") => {
            latency(
                &args[2],
                &args[3],
                args[4].parse().expect("a port"),
                args[5].parse().expect("a count"),
            )
            .await
        }
        Some("load") => {
            load(
                &args[2],
                args[3].parse().expect("a count"),
                args[4].parse().expect("a concurrency"),
            )
            .await
        }
        _ => eprintln!(
            "usage: smtp_bench sink PORT [DELAY_MS] [realistic] | proxy PORT TARGET_PORT RTT_MS \
             | load URL MESSAGES CONCURRENCY | latency ROSTER_URL SECRET SINK_PORT EVENTS"
        ),
    }
}

/// Accepts everything; `delay` before answering each message's final "." stands for a
/// slow relay (so that a crash can land while sends are in flight). With `accepted`,
/// notes when each message was accepted.
async fn sink(listener: TcpListener, delay: Duration, realistic: bool, accepted: Option<Accepted>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, delay, realistic, accepted.clone()));
    }
}

async fn serve(stream: TcpStream, delay: Duration, realistic: bool, accepted: Option<Accepted>) {
    // The quick sink sets TCP_NODELAY and acknowledges every segment at once, so no
    // client is ever held by its ACKs; the realistic one keeps the kernel's defaults.
    if !realistic {
        let _ = stream.set_nodelay(true);
    }
    let socket = socket2::SockRef::from(&stream)
        .try_clone()
        .expect("a socket");
    let quickack = move || {
        if !realistic {
            let _ = socket.set_tcp_quickack(true);
        }
    };
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let _ = writer.write_all(b"220 sink ESMTP\r\n").await;
    let mut recipient = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        quickack();
        let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
        if command == "RCPT" {
            recipient = line
                .split(['<', '>'])
                .nth(1)
                .unwrap_or_default()
                .to_ascii_lowercase();
        }
        let answer: &[u8] = match command.as_str() {
            "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n",
            "DATA" => {
                let _ = writer.write_all(b"354 go ahead\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    quickack();
                    if line == "." {
                        break;
                    }
                }
                tokio::time::sleep(delay).await;
                if let Some(accepted) = &accepted {
                    let recipient = std::mem::take(&mut recipient);
                    accepted.lock().unwrap().insert(recipient, Instant::now());
                }
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                let _ = writer.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 OK\r\n",
        };
        if writer.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// Forwards each connection to `target`, each direction `rtt / 2` late: bytes read at t
/// are written at t + rtt / 2, in order. Its own writes go at once (TCP_NODELAY), as a
/// wire adds no Nagle of its own; its sockets acknowledge as the kernel does.
async fn proxy(port: u16, target: u16, rtt: Duration) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port is free");
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                delayed(client_read, server_write, rtt / 2),
                delayed(server_read, client_write, rtt / 2)
            );
        });
    }
}

async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer).await {
            if send
                .send((Instant::now() + delay, buffer[..read].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((due, bytes)) = receive.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

/// Posts `events` signed `user.created`, one after another, and waits for each welcome
/// to be accepted by the realistic sink on `sink_port`.
async fn latency(roster: &str, secret: &str, sink_port: u16, events: usize) {
    assert!(events > 0, "at least one event");
    let accepted: Accepted = Arc::default();
    let listener = TcpListener::bind(("127.0.0.1", sink_port))
        .await
        .expect("port is free");
    tokio::spawn(sink(listener, Duration::ZERO, true, Some(accepted.clone())));
    let url = url::Url::parse(&format!("{roster}/webhooks/clerk")).expect("a URL");
    let client = reqwest::Client::new();
    let mut millis = Vec::with_capacity(events);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..events {
        let email = format!("latency{i}-{}@bench.test", &run[..8]);
        let now = chrono::Utc::now().timestamp_millis();
        let body = serde_json::json!({
            "object": "event", "type": "user.created", "timestamp": now,
            "data": {
                "object": "user", "id": format!("user_latency_{run}_{i}"), "first_name": "Ada",
                "primary_email_address_id": "idn_1",
                "email_addresses": [{"id": "idn_1", "email_address": email}],
                "created_at": now, "updated_at": now
            }
        })
        .to_string();
        let id = format!("msg_latency_{run}_{i}");
        let posted = Instant::now();
        let response = signed_delivery(&client, url.clone(), secret, &id, body.into_bytes())
            .expect("signed")
            .send()
            .await
            .expect("Roster answers");
        assert!(response.status().is_success(), "{}", response.status());
        let deadline = posted + Duration::from_secs(30);
        loop {
            if let Some(at) = accepted.lock().unwrap().get(&email) {
                millis.push((*at - posted).as_secs_f64() * 1000.0);
                break;
            }
            assert!(Instant::now() < deadline, "no welcome for {email}");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    millis.sort_by(f64::total_cmp);
    let at =
        |q: f64| millis[((millis.len() as f64 * q).ceil() as usize).clamp(1, millis.len()) - 1];
    println!(
        "{{\"events\":{events},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1}}}",
        at(0.5),
        at(0.99),
        millis[millis.len() - 1]
    );
}

async fn load(url: &str, messages: usize, concurrency: usize) {
    let transport = Mailer::new(
        Some(&url.to_owned().into()),
        Path::new("outbox"),
        concurrency,
        &[],
    )
    .expect("an smtp:// URL");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (transport, next) = (transport.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                let message = Message::builder()
                    .from("Acme <hello@acme.test>".parse().unwrap())
                    .to("Ada <ada@example.com>".parse().unwrap())
                    .subject("Welcome, Ada!")
                    .header(ContentType::TEXT_PLAIN)
                    .body("Hi Ada,\n\nThanks for signing up.\n".repeat(20))
                    .unwrap();
                transport.send(message).await.expect("the sink accepts");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\":{messages},\"seconds\":{seconds},\"messages_per_second\":{}}}",
        messages as f64 / seconds
    );
}
