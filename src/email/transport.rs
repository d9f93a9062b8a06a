//! Hands messages to SMTP (lettre's pooled async transport, from `SMTP_URL`) or, without
//! `SMTP_URL`, writes them as `.eml` files under `./outbox/`. Sorts every failure into
//! "try again later" and "this address will never work".

use std::path::Path;
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// Where email goes.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
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

impl Mailer {
    /// `connections`: how many SMTP connections the pool keeps open at most.
    pub fn new(
        smtp_url: Option<&SecretString>,
        outbox: &Path,
        connections: u32,
    ) -> anyhow::Result<Self> {
        let Some(url) = smtp_url else {
            std::fs::create_dir_all(outbox)?;
            return Ok(Self::Outbox(AsyncFileTransport::new(outbox)));
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("SMTP_URL is not a valid SMTP URL"))?
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(connections))
            .build();
        Ok(Self::Smtp(transport))
    }

    /// Sends one message; `Ok` holds the server's answer, kept with the delivery.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Self::Smtp(smtp) => match smtp.send(message).await {
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
