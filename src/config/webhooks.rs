//! The `[[webhooks]]` entries: endpoints Roster posts its events to, signed as
//! Standard Webhooks (Svix's scheme), with Loops' event names and payloads.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::webhooks::EVENT_NAMES;

/// One `[[webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are posted: `https://...` (or `http://` for a local receiver).
    pub url: String,
    /// The `whsec_...` secret the receiver verifies with.
    pub secret: SecretString,
    /// The event names posted there: `contact.created`, `email.hardBounced`, ...
    pub events: Vec<String>,
}

/// Every problem of the entries, naming the entry by its position and field; secrets
/// are never shown.
pub(super) fn check(webhooks: &[WebhookConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let at = format!("webhooks[{index}]");
        match url::Url::parse(&webhook.url) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => {}
            _ => problems.push(format!("{at}.url: not an http(s) URL")),
        }
        if webhooks[..index]
            .iter()
            .any(|other| other.url == webhook.url)
        {
            problems.push(format!("{at}.url: another entry has the same URL"));
        }
        let secret = webhook.secret.expose_secret();
        if !secret.starts_with("whsec_") || svix::webhooks::Webhook::new(secret).is_err() {
            problems.push(format!(
                "{at}.secret: not a signing secret (whsec_ and base64; `openssl rand -base64 32` makes the base64)"
            ));
        }
        if webhook.events.is_empty() {
            problems.push(format!("{at}.events: name at least one event"));
        }
        for event in &webhook.events {
            if !EVENT_NAMES.contains(&event.as_str()) {
                problems.push(format!(
                    "{at}.events: {event:?} is not one of {}",
                    EVENT_NAMES.join(", ")
                ));
            }
        }
    }
    problems
}
