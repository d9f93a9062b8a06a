//! A small SMTP server on loopback for tests: it speaks real SMTP over TCP, keeps what
//! it accepts, and answers 4xx or 5xx to recipients when told to.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers `RCPT TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Accept,
    /// 451: the client should retry later.
    Transient,
    /// 550: the address does not exist.
    Permanent,
}

#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub recipients: Vec<String>,
    /// The DATA section: headers and body, dot-unstuffed.
    pub data: String,
    /// When the final `.` arrived.
    pub received_at: std::time::Instant,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

struct State {
    reply: Reply,
    /// How long the server takes to answer a message's final `.` (it keeps the
    /// message first, so a client killed meanwhile has sent it without knowing).
    delay: std::time::Duration,
    messages: Vec<ReceivedMessage>,
    /// Connections accepted, open now, and open at once at the most.
    sessions: usize,
    open: usize,
    most_open: usize,
    /// NOOP commands received.
    noops: usize,
    /// Close each connection after answering its next message, as a relay closing
    /// connections it thinks idle.
    close_after_message: bool,
}

/// What the server saw of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    pub accepted: usize,
    pub most_open: usize,
    pub noops: usize,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            state: Arc::new(Mutex::new(State {
                reply: Reply::Accept,
                delay: std::time::Duration::ZERO,
                messages: Vec::new(),
                sessions: 0,
                open: 0,
                most_open: 0,
                noops: 0,
                close_after_message: false,
            })),
        };
        let state = server.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                {
                    let mut state = state.lock().unwrap();
                    state.sessions += 1;
                    state.open += 1;
                    state.most_open = state.most_open.max(state.open);
                }
                tokio::spawn(async move {
                    serve(stream, state.clone()).await;
                    state.lock().unwrap().open -= 1;
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_reply(&self, reply: Reply) {
        self.state.lock().unwrap().reply = reply;
    }

    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn set_close_after_message(&self, close: bool) {
        self.state.lock().unwrap().close_after_message = close;
    }

    pub fn sessions(&self) -> Sessions {
        let state = self.state.lock().unwrap();
        Sessions {
            accepted: state.sessions,
            most_open: state.most_open,
            noops: state.noops,
        }
    }

    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// The `Subject:` of each message received, in order.
    pub fn subjects(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter_map(|m| {
                m.data
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            })
            .collect()
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut recipients = Vec::new();
    if writer
        .write_all(b"220 roster-test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let command = line.to_ascii_uppercase();
        let answer: String = if command.starts_with("EHLO") {
            "250-roster-test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
        } else if command.starts_with("HELO") {
            "250 OK\r\n".into()
        } else if command.starts_with("NOOP") {
            state.lock().unwrap().noops += 1;
            "250 OK\r\n".into()
        } else if command.starts_with("RSET") || command.starts_with("MAIL FROM") {
            recipients.clear();
            "250 OK\r\n".into()
        } else if command.starts_with("RCPT TO") {
            match state.lock().unwrap().reply {
                Reply::Accept => {
                    recipients.push(address_in(&line));
                    "250 OK\r\n".into()
                }
                Reply::Transient => "451 4.2.1 Mailbox busy, try again later\r\n".into(),
                Reply::Permanent => "550 5.1.1 No such user here\r\n".into(),
            }
        } else if command == "DATA" {
            if writer
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            let mut ended = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    ended = true;
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            if !ended {
                return; // the client went away mid-message: nothing was accepted
            }
            let (count, delay) = {
                let mut state = state.lock().unwrap();
                state.messages.push(ReceivedMessage {
                    recipients: std::mem::take(&mut recipients),
                    data,
                    received_at: std::time::Instant::now(),
                });
                (state.messages.len(), state.delay)
            };
            tokio::time::sleep(delay).await;
            if state.lock().unwrap().close_after_message {
                let answer = format!("250 2.0.0 Ok: queued as 4Q{count:08}\r\n");
                let _ = writer.write_all(answer.as_bytes()).await;
                return;
            }
            format!("250 2.0.0 Ok: queued as 4Q{count:08}\r\n")
        } else if command.starts_with("QUIT") {
            let _ = writer.write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        if writer.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn address_in(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
