//! Builds the MIME message for one email: multipart text and HTML, a Message-ID we
//! chose (and store), and for marketing email the RFC 8058 one-click unsubscribe
//! headers.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::templates::RenderedEmail;

/// What one email needs besides its rendered content.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub to: Mailbox,
    /// `<...@domain>`, from `new_message_id`.
    pub message_id: &'a str,
    /// Set for marketing email: the HTTPS one-click unsubscribe URL.
    pub unsubscribe_url: Option<&'a str>,
}

/// A fresh Message-ID on the sender's domain.
pub fn new_message_id(from: &Mailbox) -> String {
    format!(
        "<{}@{}>",
        uuid::Uuid::new_v4().simple(),
        from.email.domain()
    )
}

pub fn build_message(
    envelope: &Envelope<'_>,
    email: &RenderedEmail,
) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .to(envelope.to.clone())
        .subject(&email.subject)
        .message_id(Some(envelope.message_id.to_owned()));
    if let Some(url) = envelope.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    builder.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(email.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(email.html.clone()),
            ),
    )
}
