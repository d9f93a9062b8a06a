//! SMTP connections with TCP_NODELAY, in a pool (deadpool) of `SMTP_CONNECTIONS`.
//!
//! lettre writes a message and its final `.` in two writes. On a socket with Nagle's
//! algorithm on, the second write waits for the ACK of the first, and a server that
//! delays its ACKs (Linux does, 40 ms) holds every message that long: 25 messages per
//! second per connection. lettre's own pool connects its sockets itself, so Roster
//! connects each socket (TCP_NODELAY set), then hands it to lettre: plain, upgraded by
//! STARTTLS (`?tls=required` or `opportunistic`, lettre's own TLS), or wrapped in TLS
//! first (`smtps://`, rustls with the web's root certificates, as lettre does). A pooled
//! connection is reused, the most recent first, as long as it is not broken: without a
//! NOOP when it was used in the last few seconds, after a NOOP that answers when idle
//! longer (relays close idle connections), and never after a minute. A send cancelled
//! midway (a job's time is up) drops its connection, which may be out of step.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

/// An idle connection older than this is closed rather than reused.
const IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is asked a NOOP before it is reused.
const QUIET: Duration = Duration::from_secs(5);

/// How the connection is encrypted.
enum Security {
    None,
    /// STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// STARTTLS, or no connection.
    Required(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Implicit(tokio_rustls::TlsConnector, ServerName<'static>),
}

/// What `SMTP_URL` says, as lettre reads it: `smtp://host:25`, `smtp://…:587?tls=required`
/// (or `opportunistic`), `smtps://…:465`, with `user:password@` and a path naming the
/// EHLO name. TLS trusts the web's root certificates and those of `SMTP_CA_FILE`.
pub struct SmtpServer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

impl SmtpServer {
    /// `extra_roots`: certificate authorities trusted besides the web's (a relay's
    /// private CA, `SMTP_CA_FILE`).
    pub fn from_url(
        text: &str,
        timeout: Duration,
        extra_roots: &[CertificateDer<'static>],
    ) -> anyhow::Result<Self> {
        let invalid = || anyhow::anyhow!("SMTP_URL is not a valid SMTP URL");
        let url = Url::parse(text).map_err(|_| invalid())?;
        // An IPv6 address without its brackets, as it is connected to.
        let host = match url.host().ok_or_else(invalid)? {
            url::Host::Ipv6(ip) => ip.to_string(),
            other => other.to_string(),
        };
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let parameters = || starttls_parameters(&host, extra_roots).map_err(|_| invalid());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::None, 25),
            ("smtp", Some("required")) => (Security::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(parameters()?), 587),
            ("smtps", _) => {
                let name = ServerName::try_from(host.clone()).map_err(|_| invalid())?;
                (Security::Implicit(tls_connector(extra_roots), name), 465)
            }
            _ => return Err(invalid()),
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(
                percent_decode(url.username()).ok_or_else(invalid)?,
                percent_decode(password).ok_or_else(invalid)?,
            )),
            None => None,
        };
        let name = url.path().trim_matches('/');
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello: if name.is_empty() {
                ClientId::default()
            } else {
                ClientId::Domain(name.to_owned())
            },
            timeout,
        })
    }

    /// The TCP connection to the server, with TCP_NODELAY: each address it resolves to
    /// in turn, each within the timeout.
    async fn tcp(&self) -> Result<TcpStream, SmtpError> {
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(SmtpError::Connect)?;
        let mut failed = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for address in addresses {
            match tokio::time::timeout(self.timeout, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    tcp.set_nodelay(true).map_err(SmtpError::Connect)?;
                    return Ok(tcp);
                }
                Ok(Err(error)) => failed = error,
                Err(_) => failed = io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"),
            }
        }
        Err(SmtpError::Connect(failed))
    }

    /// A new connection, ready to send: connected (each address within the timeout),
    /// then encrypted as configured and logged in within the timeout. A refusal on the way (a 5xx to EHLO, a 535 to AUTH) is the
    /// server's setup, not the recipient's: transient.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = self.tcp().await?;
        tokio::time::timeout(self.timeout, self.set_up(tcp))
            .await
            .map_err(|_| {
                SmtpError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the SMTP server did not answer in time",
                ))
            })?
    }

    /// TLS (for `smtps://`), the greeting, EHLO, STARTTLS and AUTH over `tcp`.
    async fn set_up(&self, tcp: TcpStream) -> Result<AsyncSmtpConnection, SmtpError> {
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(SmtpError::Connect)?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(SmtpError::Setup)?;
        match &self.security {
            Security::Opportunistic(parameters) if conn.can_starttls() => {
                conn.starttls(parameters.clone(), &self.hello)
                    .await
                    .map_err(SmtpError::Setup)?;
            }
            Security::Required(parameters) => {
                conn.starttls(parameters.clone(), &self.hello)
                    .await
                    .map_err(SmtpError::Setup)?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(SmtpError::Setup)?;
        }
        Ok(conn)
    }
}

/// Why a message was not handed to the SMTP server.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to the SMTP server: {0}")]
    Connect(#[source] io::Error),
    #[error("the SMTP server refused the connection's setup: {0}")]
    Setup(#[source] lettre::transport::smtp::Error),
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("no SMTP connection: {0}")]
    Pool(String),
}

impl SmtpError {
    /// A 5xx answer: the server refuses this message or address for good.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Smtp(error) if error.is_permanent())
    }
}

/// `text` percent-decoded, if that is UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// lettre's STARTTLS to `host`, trusting the web's roots and `extra_roots`.
fn starttls_parameters(
    host: &str,
    extra_roots: &[CertificateDer<'static>],
) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut builder = TlsParameters::builder(host.to_owned());
    for root in extra_roots {
        builder = builder.add_root_certificate(Certificate::from_der(root.to_vec())?);
    }
    builder.build()
}

/// Reads the certificate authorities of a PEM file (`SMTP_CA_FILE`): at least one.
pub fn read_extra_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let roots = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("it is not PEM certificates ({error})"))?;
    if roots.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut store = rustls::RootCertStore::empty();
    for root in &roots {
        store
            .add(root.clone())
            .map_err(|error| format!("a certificate in it cannot be trusted: {error}"))?;
    }
    Ok(roots)
}

/// rustls with the web's root certificates, `extra_roots` and ring, as lettre's own TLS.
fn tls_connector(extra_roots: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Each was checked when `SMTP_CA_FILE` was read.
    roots.add_parsable_certificates(extra_roots.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS stream lettre can use as its transport.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl managed::Manager for SmtpServer {
    type Type = AsyncSmtpConnection;
    type Error = SmtpError;

    async fn create(&self) -> Result<AsyncSmtpConnection, Self::Error> {
        self.connect().await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncSmtpConnection,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        if conn.has_broken() {
            return Err(RecycleError::message("the connection broke"));
        }
        // Dropped, the connection closes its socket.
        let idle = metrics.last_used();
        if idle > IDLE {
            return Err(RecycleError::message("idle too long"));
        }
        if idle > QUIET && !conn.test_connected().await {
            return Err(RecycleError::message("closed while idle"));
        }
        Ok(())
    }
}

/// The pool of connections to the SMTP server.
#[derive(Clone)]
pub struct SmtpPool(managed::Pool<SmtpServer>);

impl SmtpPool {
    pub fn new(server: SmtpServer, connections: usize) -> anyhow::Result<Self> {
        let timeout = server.timeout;
        let pool = managed::Pool::builder(server)
            .max_size(connections)
            .queue_mode(managed::QueueMode::Lifo)
            .recycle_timeout(Some(timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()?;
        Ok(Self(pool))
    }

    /// Sends `message` over a pooled connection. It goes back to the pool only when the
    /// send finished on an unbroken connection: not when it broke, nor when the send
    /// was cancelled midway (its answer would be read by the next message).
    pub async fn send(&self, message: &Message) -> Result<Response, SmtpError> {
        let conn = self.0.get().await.map_err(|error| match error {
            managed::PoolError::Backend(error) => error,
            other => SmtpError::Pool(other.to_string()),
        })?;
        let mut in_flight = InFlight(Some(conn));
        let conn = in_flight.0.as_mut().expect("just set");
        let sent = conn.send(message.envelope(), &message.formatted()).await;
        if !conn.has_broken() {
            drop(in_flight.0.take()); // back to the pool
        }
        Ok(sent?)
    }
}

/// A connection in use: dropped with it unless handed back.
struct InFlight(Option<managed::Object<SmtpServer>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(managed::Object::take(conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> SmtpServer {
        SmtpServer::from_url(url, Duration::from_secs(5), &[]).unwrap()
    }

    #[test]
    fn the_url_says_the_port_and_the_encryption() {
        let plain = server("smtp://mail.test");
        assert!((plain.port, matches!(plain.security, Security::None)) == (25, true));
        let required = server("smtp://user:pass@mail.test?tls=required");
        assert_eq!(required.port, 587);
        assert!(matches!(required.security, Security::Required(_)));
        assert!(required.credentials.is_some());
        let opportunistic = server("smtp://mail.test:2525?tls=opportunistic");
        assert_eq!(opportunistic.port, 2525);
        assert!(matches!(opportunistic.security, Security::Opportunistic(_)));
        let implicit = server("smtps://mail.test/relay.example");
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.security, Security::Implicit(..)));
        assert_eq!(implicit.hello, ClientId::Domain("relay.example".into()));
        for bad in [
            "http://mail.test",
            "smtp://mail.test?tls=sometimes",
            "smtp://",
            "nope",
        ] {
            assert!(
                SmtpServer::from_url(bad, Duration::from_secs(5), &[]).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            percent_decode("p%40ss%2Fw%20rd").as_deref(),
            Some("p@ss/w rd")
        );
        assert!(
            SmtpServer::from_url("smtp://u:%FF@mail.test", Duration::from_secs(5), &[]).is_err()
        );
        assert_eq!(server("smtp://[::1]:2525").host, "::1");
    }

    #[tokio::test]
    async fn every_connection_has_tcp_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = server(&format!("smtp://127.0.0.1:{port}"));
        let tcp = server.tcp().await.unwrap();
        assert!(tcp.nodelay().unwrap());
    }
}
