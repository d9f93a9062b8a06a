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

/// Text made safe for a header field: every control character (CR, LF, tab, NUL, ...)
/// becomes a space, runs of whitespace one space, trimmed. The text and HTML parts
/// keep what the contact typed; only headers need this.
pub fn header_text(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The mailbox with its display name made safe for a header (none when it is blank).
fn header_mailbox(mailbox: &Mailbox) -> Mailbox {
    let name = mailbox
        .name
        .as_deref()
        .map(header_text)
        .filter(|name| !name.is_empty());
    Mailbox::new(name, mailbox.email.clone())
}

pub fn build_message(
    envelope: &Envelope<'_>,
    email: &RenderedEmail,
) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(header_mailbox(envelope.from))
        .to(header_mailbox(&envelope.to))
        .subject(header_text(&email.subject))
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

/// "First Last" for the To header; `None` when neither name is given.
pub fn display_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.trim().is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_lose_control_characters_and_the_body_keeps_them() {
        assert_eq!(
            header_text(" Hi\r\nBcc: x@evil.test\t\0 there "),
            "Hi Bcc: x@evil.test there"
        );
        let from: Mailbox = "Acme <hello@acme.test>".parse().unwrap();
        let to = Mailbox::new(
            Some("Ada\r\nLovelace".to_owned()),
            "ada@example.com".parse().unwrap(),
        );
        let email = RenderedEmail {
            subject: "Welcome, Ada\r\nX-Evil: 1".to_owned(),
            text: "Dear Ada\r\nLovelace".to_owned(),
            html: "<p>Ada</p>".to_owned(),
        };
        let envelope = Envelope {
            from: &from,
            to,
            message_id: "<1@acme.test>",
            unsubscribe_url: None,
        };
        let message = build_message(&envelope, &email).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("Subject: Welcome, Ada X-Evil: 1\r\n"), "{raw}");
        let to_line = raw.lines().find(|l| l.starts_with("To: ")).unwrap();
        assert!(
            to_line.contains("Ada Lovelace") && to_line.ends_with("<ada@example.com>"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nX-Evil"), "{raw}");
        assert!(raw.contains("Dear Ada\r\nLovelace"), "{raw}");
    }
}
