//! Two halves of the email dispatch benchmark (`bench/email-dispatch.sh`):
//! - `smtp_bench sink PORT`: an SMTP server on 127.0.0.1 that accepts every message as
//!   fast as it can and keeps nothing;
//! - `smtp_bench load URL MESSAGES CONCURRENCY`: a plain SMTP client (lettre's pooled
//!   transport, no database) that measures how many messages per second the sink
//!   accepts, printed as one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => {
            let delay = args
                .get(3)
                .map_or(0, |ms| ms.parse().expect("milliseconds"));
            sink(
                args[2].parse().expect("a port"),
                Duration::from_millis(delay),
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
        _ => eprintln!("usage: smtp_bench sink PORT [DELAY_MS] | load URL MESSAGES CONCURRENCY"),
    }
}

/// Accepts everything; `delay` before answering each message's final "." stands for a
/// slow relay (so that a crash can land while sends are in flight).
async fn sink(port: u16, delay: Duration) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port is free");
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, delay));
    }
}

async fn serve(stream: TcpStream, delay: Duration) {
    // lettre writes a message's body and its final "." in two writes without
    // TCP_NODELAY, so Nagle holds the "." until the body is acknowledged. A sink that
    // delays its ACKs (Linux does, 40 ms) would cap every connection at 25 messages/s:
    // acknowledge at once instead, as a busy mail server's socket effectively does.
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(&stream)
        .try_clone()
        .expect("a socket");
    let quickack = move || {
        let _ = socket.set_tcp_quickack(true);
    };
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let _ = writer.write_all(b"220 sink ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        quickack();
        let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
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

async fn load(url: &str, messages: usize, concurrency: usize) {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .expect("an smtp:// URL")
        .pool_config(PoolConfig::new().max_size(u32::try_from(concurrency).unwrap_or(16)))
        .build();
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
