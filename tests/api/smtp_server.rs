//! A small SMTP server on loopback for tests: it speaks real SMTP over TCP (in the
//! clear, with STARTTLS, or TLS from the first byte), keeps what it accepts, and
//! answers 4xx or 5xx to recipients when told to.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the server encrypts its sessions.
#[derive(Clone)]
pub enum Tls {
    None,
    /// Offers STARTTLS and takes mail only after it.
    Starttls(TlsAcceptor),
    /// TLS from the first byte (port 465's way).
    Implicit(TlsAcceptor),
}

/// A session's stream, in the clear or encrypted.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
    /// Whether it came over TLS.
    pub encrypted: bool,
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
        Self::start_with(Tls::None).await
    }

    pub async fn start_with(tls: Tls) -> SmtpServer {
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
                let tls = tls.clone();
                {
                    let mut state = state.lock().unwrap();
                    state.sessions += 1;
                    state.open += 1;
                    state.most_open = state.most_open.max(state.open);
                }
                tokio::spawn(async move {
                    serve(stream, state.clone(), tls).await;
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

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, tls: Tls) {
    let (io, mut encrypted): (Box<dyn Io>, bool) = match &tls {
        Tls::Implicit(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => (Box::new(stream), true),
            Err(_) => return,
        },
        Tls::None | Tls::Starttls(_) => (Box::new(stream), false),
    };
    let mut session = BufReader::new(io);
    let mut recipients = Vec::new();
    if session
        .get_mut()
        .write_all(b"220 roster-test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Some(line) = next_line(&mut session).await {
        let command = line.to_ascii_uppercase();
        let offers_starttls = matches!(tls, Tls::Starttls(_)) && !encrypted;
        let answer: String = if command.starts_with("EHLO") {
            let starttls = if offers_starttls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            format!("250-roster-test\r\n{starttls}250-8BITMIME\r\n250 SMTPUTF8\r\n")
        } else if command == "STARTTLS" && offers_starttls {
            let Tls::Starttls(acceptor) = &tls else {
                return;
            };
            if session
                .get_mut()
                .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await
                .is_err()
            {
                return;
            }
            // The client waits for that answer before its handshake: nothing is buffered.
            match acceptor.accept(session.into_inner()).await {
                Ok(stream) => session = BufReader::new(Box::new(stream) as Box<dyn Io>),
                Err(_) => return,
            }
            encrypted = true;
            recipients.clear();
            continue;
        } else if command.starts_with("MAIL FROM") && offers_starttls {
            "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
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
            if session
                .get_mut()
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            let mut ended = false;
            while let Some(line) = next_line(&mut session).await {
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
                    encrypted,
                });
                (state.messages.len(), state.delay)
            };
            tokio::time::sleep(delay).await;
            if state.lock().unwrap().close_after_message {
                let answer = format!("250 2.0.0 Ok: queued as 4Q{count:08}\r\n");
                let _ = session.get_mut().write_all(answer.as_bytes()).await;
                return;
            }
            format!("250 2.0.0 Ok: queued as 4Q{count:08}\r\n")
        } else if command.starts_with("QUIT") {
            let _ = session.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        if session
            .get_mut()
            .write_all(answer.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The next line the client sent, without its line ending; `None` once it is gone.
async fn next_line(session: &mut BufReader<Box<dyn Io>>) -> Option<String> {
    let mut line = String::new();
    match session.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

fn address_in(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
