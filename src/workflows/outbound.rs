//! The outbound half of the engine: what turns a rendered step into a message on the
//! wire (the mailer, the send budget, the templates, `MAIL_FROM`, the public URL of
//! unsubscribe links and their key).

use std::sync::Arc;

use lettre::message::Mailbox;
use minijinja::{Value, context};
use url::Url;

use crate::contacts::Contact;
use crate::email::budget::SendBudget;
use crate::email::message::{Envelope, build_message, display_name, new_message_id};
use crate::email::templates::Templates;
use crate::email::tracking::{Tracker, email_token};
use crate::email::transport::Mailer;
use crate::email::unsubscribe::UnsubscribeKey;

#[derive(Clone)]
pub struct Outbound {
    pub mailer: Mailer,
    /// `[sending] rate`; `None` sends as fast as SMTP takes it.
    pub budget: Option<SendBudget>,
    pub templates: Arc<Templates>,
    /// `MAIL_FROM`; checked at start to be set when a workflow sends.
    pub from: Option<Mailbox>,
    pub public_url: Url,
    /// Signs the unsubscribe links of marketing email.
    pub unsubscribe: Option<UnsubscribeKey>,
}

/// Whom a message goes to: the contact now (`None` once deleted), the run's copy of it,
/// and the address.
pub struct Recipient<'a> {
    pub contact: Option<&'a Contact>,
    pub contact_snapshot: &'a serde_json::Value,
    pub address: &'a str,
}

impl Outbound {
    /// Renders `template` with `context` and builds the message to `to` (the email of
    /// run `email.0`'s step `email.1`), with an unsubscribe link unless it is
    /// `transactional`, and tracked (open pixel, links through Roster) if `track`.
    pub fn build(
        &self,
        template: &str,
        transactional: bool,
        to: &Recipient<'_>,
        context: Value,
        email: (uuid::Uuid, i32),
        track: bool,
    ) -> anyhow::Result<lettre::Message> {
        let from = self
            .from
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("MAIL_FROM is not set"))?;
        let unsubscribe_url = match (transactional, to.contact, &self.unsubscribe) {
            (true, _, _) => None,
            // `?email=` names the email, for the `email.unsubscribed` webhook.
            (false, Some(contact), Some(key)) => Some(
                self.public_url
                    .join(&format!(
                        "unsubscribe/{}?email={}",
                        key.token(contact.id),
                        email_token(key, email.0, email.1)
                    ))?
                    .to_string(),
            ),
            (false, _, _) => anyhow::bail!(
                "marketing email needs ROSTER_UNSUBSCRIBE_SECRET for its unsubscribe link"
            ),
        };
        let context = context! { unsubscribe_url => unsubscribe_url.clone(), ..context };
        let mut rendered = self.templates.render(template, &context)?;
        if let (true, Some(key)) = (track, &self.unsubscribe) {
            let tracker = Tracker {
                key,
                public_url: &self.public_url,
                run: email.0,
                step: email.1,
                keep: unsubscribe_url.as_deref(),
            };
            rendered.html = tracker.rewrite(&rendered.html)?;
        }
        let message_id = new_message_id(from);
        let name = match to.contact {
            Some(c) => display_name(c.first_name.as_deref(), c.last_name.as_deref()),
            None => display_name(
                to.contact_snapshot["firstName"].as_str(),
                to.contact_snapshot["lastName"].as_str(),
            ),
        };
        let envelope = Envelope {
            from,
            to: Mailbox::new(name, to.address.parse()?),
            message_id: &message_id,
            unsubscribe_url: unsubscribe_url.as_deref(),
        };
        Ok(build_message(&envelope, &rendered)?)
    }
}
