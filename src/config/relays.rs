//! The `[relays.*]` tables: how each relay's webhook at `/webhooks/email/{provider}` is
//! verified. Each can also be set in the environment, which wins over the file (secrets
//! are better kept there). A relay left unconfigured has no endpoint (404).

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The `[relays]` table: one optional sub-table per relay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    pub ses: Option<SesSettings>,
    pub postmark: Option<PostmarkSettings>,
    pub sendgrid: Option<SendgridSettings>,
    pub resend: Option<ResendSettings>,
    pub mailgun: Option<MailgunSettings>,
}

/// `[relays.ses]`: Amazon SES notifications through an SNS topic subscribed over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesSettings {
    /// The SNS topic ARNs whose messages are taken (`ROSTER_SES_TOPIC_ARNS`, comma
    /// separated); a message from any other topic is refused.
    pub topics: Vec<String>,
    /// A PEM certificate to verify messages with instead of fetching `SigningCertURL`
    /// (`ROSTER_SES_CERTIFICATE`): for tests and installs that cannot reach AWS.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
}

/// `[relays.postmark]`: the HTTP basic auth credentials put in the webhook's URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkSettings {
    /// `ROSTER_POSTMARK_WEBHOOK_USERNAME`.
    pub username: String,
    /// `ROSTER_POSTMARK_WEBHOOK_PASSWORD`.
    pub password: SecretString,
}

/// `[relays.sendgrid]`: the Signed Event Webhook's verification key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridSettings {
    /// The base64 public key from SendGrid's Mail Settings
    /// (`ROSTER_SENDGRID_WEBHOOK_PUBLIC_KEY`).
    pub public_key: String,
}

/// `[relays.resend]`: the webhook's Svix signing secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendSettings {
    /// `whsec_...` (`ROSTER_RESEND_WEBHOOK_SECRET`).
    pub secret: SecretString,
}

/// `[relays.mailgun]`: the HTTP webhook signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunSettings {
    /// `ROSTER_MAILGUN_WEBHOOK_SIGNING_KEY`.
    pub signing_key: SecretString,
}

/// The shortest Postmark password taken: it is all that guards the endpoint.
const MIN_POSTMARK_PASSWORD_CHARS: usize = 16;

impl RelaySettings {
    /// The file's settings with the environment's on top; problems are pushed onto
    /// `errors`, naming the setting.
    pub(super) fn with_env(
        mut self,
        var: &dyn Fn(&str) -> Option<String>,
        errors: &mut Vec<String>,
    ) -> Self {
        if let Some(topics) = var("ROSTER_SES_TOPIC_ARNS") {
            let topics = topics
                .split([',', ' ', '\n'])
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            let certificate = self.ses.take().and_then(|ses| ses.certificate);
            self.ses = Some(SesSettings {
                topics,
                certificate,
            });
        }
        if let Some(path) = var("ROSTER_SES_CERTIFICATE") {
            match &mut self.ses {
                Some(ses) => ses.certificate = Some(PathBuf::from(path)),
                None => errors.push(
                    "ROSTER_SES_CERTIFICATE is set without ROSTER_SES_TOPIC_ARNS: \
                     name the SNS topics to take"
                        .to_owned(),
                ),
            }
        }
        let username = var("ROSTER_POSTMARK_WEBHOOK_USERNAME");
        let password = var("ROSTER_POSTMARK_WEBHOOK_PASSWORD");
        match (username, password) {
            (Some(username), Some(password)) => {
                self.postmark = Some(PostmarkSettings {
                    username,
                    password: password.into(),
                })
            }
            (None, None) => {}
            _ => errors.push(
                "ROSTER_POSTMARK_WEBHOOK_USERNAME and ROSTER_POSTMARK_WEBHOOK_PASSWORD \
                 are set together"
                    .to_owned(),
            ),
        }
        if let Some(public_key) = var("ROSTER_SENDGRID_WEBHOOK_PUBLIC_KEY") {
            self.sendgrid = Some(SendgridSettings { public_key });
        }
        if let Some(secret) = var("ROSTER_RESEND_WEBHOOK_SECRET") {
            self.resend = Some(ResendSettings {
                secret: secret.into(),
            });
        }
        if let Some(key) = var("ROSTER_MAILGUN_WEBHOOK_SIGNING_KEY") {
            self.mailgun = Some(MailgunSettings {
                signing_key: key.into(),
            });
        }
        self.check(errors);
        self
    }

    /// What can be checked without reading keys: the keys themselves are checked when
    /// the verifiers are built (`relays::Relays::new`).
    fn check(&self, errors: &mut Vec<String>) {
        if let Some(ses) = &self.ses {
            if ses.topics.is_empty() {
                errors.push("relays.ses.topics: name at least one SNS topic ARN".to_owned());
            }
            for topic in &ses.topics {
                if !topic.starts_with("arn:") || topic.split(':').count() != 6 {
                    errors.push(format!(
                        "relays.ses.topics: {topic:?} is not an SNS topic ARN \
                         (arn:aws:sns:us-east-1:123456789012:roster)"
                    ));
                }
            }
        }
        if let Some(postmark) = &self.postmark {
            if postmark.username.is_empty() || postmark.username.contains(':') {
                errors.push("relays.postmark.username: give a name without a colon".to_owned());
            }
            if postmark.password.expose_secret().chars().count() < MIN_POSTMARK_PASSWORD_CHARS {
                errors.push(format!(
                    "relays.postmark.password: use at least {MIN_POSTMARK_PASSWORD_CHARS} \
                     random characters"
                ));
            }
        }
        if let Some(resend) = &self.resend
            && svix::webhooks::Webhook::new(resend.secret.expose_secret()).is_err()
        {
            errors.push(
                "relays.resend.secret: not a Svix signing secret (whsec_ and base64)".to_owned(),
            );
        }
        if let Some(mailgun) = &self.mailgun
            && mailgun.signing_key.expose_secret().trim().is_empty()
        {
            errors.push("relays.mailgun.signing_key is empty".to_owned());
        }
    }
}
