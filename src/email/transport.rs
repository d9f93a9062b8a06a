//! Hands messages to SMTP (a pool of connections with TCP_NODELAY, `smtp.rs`, from
//! `SMTP_URL`) or, without `SMTP_URL`, writes them as `.eml` files under `./outbox/`.
//! Sorts every failure into "try again later" and "this address will never work".

use std::path::Path;
use std::time::Duration;

use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::smtp::{SmtpPool, SmtpServer};

/// Where email goes.
#[derive(Clone)]
pub enum Mailer {
    Smtp(SmtpPool),
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

/// A send that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Connection trouble, a timeout or a 4xx reply: worth retrying with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// A 5xx reply: the server refuses this message or address for good.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// The relay's id for the message in its 250 answer, as relays put it last
/// (`250 Ok 0100018c...-000000`, `250 2.0.0 Ok: queued as 4Z3xyT`): a token of at least
/// 8 id characters with a digit, so that `250 Great success` names none.
pub fn queued_id(answer: &str) -> Option<&str> {
    let last = answer.split_whitespace().last()?;
    let id = last.trim_start_matches('<').trim_end_matches('>');
    let is_id = (8..=255).contains(&id.len())
        && id.bytes().any(|b| b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@=+-".contains(&b));
    (is_id && answer.starts_with("250")).then_some(id)
}

impl Mailer {
    /// `connections`: how many SMTP connections the pool keeps open at most;
    /// `extra_roots`: certificate authorities its TLS trusts besides the web's.
    pub fn new(
        smtp_url: Option<&SecretString>,
        outbox: &Path,
        connections: usize,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> anyhow::Result<Self> {
        let Some(url) = smtp_url else {
            std::fs::create_dir_all(outbox)?;
            return Ok(Self::Outbox(AsyncFileTransport::new(outbox)));
        };
        let server =
            SmtpServer::from_url(url.expose_secret(), Duration::from_secs(30), extra_roots)?;
        Ok(Self::Smtp(SmtpPool::new(server, connections)?))
    }

    /// Sends one message; `Ok` holds the server's answer, kept with the delivery.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Self::Smtp(smtp) => match smtp.send(&message).await {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
                Err(error) => Err(SendError::Transient(error.to_string())),
            },
            Self::Outbox(outbox) => outbox
                .send(message)
                .await
                .map(|id| format!("written to the outbox as {id}.eml"))
                .map_err(|error| SendError::Transient(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::queued_id;

    #[test]
    fn the_relays_id_is_read_from_its_answer() {
        assert_eq!(
            queued_id("250 Ok 0100018c1a2b3c4d-5e6f-7a8b-9c0d-000000"),
            Some("0100018c1a2b3c4d-5e6f-7a8b-9c0d-000000")
        );
        assert_eq!(
            queued_id("250 2.0.0 Ok: queued as 4Z3xyT8k"),
            Some("4Z3xyT8k")
        );
        assert_eq!(
            queued_id("250 OK <abc123def@mx.test>"),
            Some("abc123def@mx.test")
        );
        for none in [
            "250 Great success",
            "250 OK",
            "250 2.0.0 Ok",
            "",
            "451 queued as 12345678",
        ] {
            assert_eq!(queued_id(none), None, "{none}");
        }
    }
}
