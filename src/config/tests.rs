//! The settings read from a map: every problem at once, secrets never shown.

use super::*;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    })
}

fn errors(vars: &[(&str, &str)]) -> String {
    settings(vars).expect_err("invalid").to_string()
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let settings = settings(&[("ROSTER_CONFIG", "roster.example.toml")]).unwrap();
    assert_eq!(settings.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.public_url.as_str(), "http://127.0.0.1:8080/");
    let prefixed = super::Settings::from_lookup(|name| {
        (name == "PUBLIC_URL").then(|| "https://acme.test/roster".to_owned())
    })
    .unwrap();
    let link = prefixed.public_url.join("unsubscribe/x").unwrap();
    assert_eq!(link.as_str(), "https://acme.test/roster/unsubscribe/x");
    assert!(settings.database_url.is_none());
    assert!(settings.require_database_url().is_err());
    assert!(settings.clerk_webhook_secrets.is_empty());
}

#[test]
fn several_webhook_secrets_are_accepted() {
    let secrets = "whsec_c2VjcmV0LW9uZQ==, whsec_c2VjcmV0LXR3bw==";
    let settings = settings(&[("CLERK_WEBHOOK_SECRET", secrets)]).unwrap();
    assert_eq!(settings.clerk_webhook_secrets.len(), 2);
}

#[test]
fn webhook_secret_that_is_not_base64_is_named_without_its_value() {
    let message = errors(&[(
        "CLERK_WEBHOOK_SECRET",
        "whsec_c2VjcmV0LW9uZQ== whsec_not*base64",
    )]);
    assert!(
        message.contains("secret 2 of 2 is not valid base64"),
        "{message}"
    );
    assert!(
        !message.contains("not*base64"),
        "the secret leaked: {message}"
    );
}

#[test]
fn webhook_secret_without_prefix_is_refused() {
    let message = errors(&[("CLERK_WEBHOOK_SECRET", "c2VjcmV0LW9uZQ==")]);
    assert!(message.contains("does not start with whsec_"), "{message}");
}

#[test]
fn every_malformed_value_is_reported_at_once() {
    let message = errors(&[
        ("DATABASE_URL", "mysql://nope"),
        ("ROSTER_ADDR", "localhost"),
        ("SMTP_URL", "http://mail"),
        ("MAIL_FROM", "not an address"),
        ("PUBLIC_URL", "ftp://x"),
        ("ROSTER_CONFIG", "/nonexistent/roster.toml"),
    ]);
    for name in [
        "DATABASE_URL",
        "ROSTER_ADDR",
        "SMTP_URL",
        "MAIL_FROM",
        "PUBLIC_URL",
        "ROSTER_CONFIG",
    ] {
        assert!(message.contains(name), "{name} missing from {message}");
    }
}

#[test]
fn a_short_api_key_is_refused_with_how_to_make_one() {
    let message = errors(&[("ROSTER_API_KEY", "0123456789abcdefghijklmnopqrstu")]);
    assert!(
        message.contains("ROSTER_API_KEY must be at least 32"),
        "{message}"
    );
    assert!(message.contains("openssl rand"), "{message}");
    assert!(settings(&[("ROSTER_API_KEY", "0123456789abcdefghijklmnopqrstuv")]).is_ok());
}

#[test]
fn smtp_password_never_appears_in_errors() {
    let message = errors(&[("SMTP_URL", "smtp://user:hunter2@/bad url")]);
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn example_config_file_parses() {
    let settings = settings(&[("ROSTER_CONFIG", "roster.example.toml")]).unwrap();
    let clerk = settings.file.clerk;
    assert_eq!(clerk.user_created.user_group.as_deref(), Some("Users"));
    assert_eq!(
        clerk.waitlist_entry_created.user_group.as_deref(),
        Some("Waitlist")
    );
}

#[test]
fn unknown_keys_in_the_config_file_are_refused() {
    let error = toml::from_str::<ConfigFile>("[clerk.user_created]\nenabeld = false\n")
        .expect_err("typo refused");
    assert!(error.to_string().contains("enabeld"), "{error}");
}

#[test]
fn relays_are_configured_from_the_environment() {
    let settings = settings(&[
        (
            "ROSTER_SES_TOPIC_ARNS",
            "arn:aws:sns:us-east-1:123456789012:a, arn:aws:sns:eu-west-1:123456789012:b",
        ),
        ("ROSTER_POSTMARK_WEBHOOK_USERNAME", "postmark"),
        ("ROSTER_POSTMARK_WEBHOOK_PASSWORD", "0123456789abcdefghij"),
        ("ROSTER_RESEND_WEBHOOK_SECRET", "whsec_c2VjcmV0LW9uZQ=="),
        ("ROSTER_MAILGUN_WEBHOOK_SIGNING_KEY", "key-0123456789"),
    ])
    .unwrap();
    let ses = settings.relays.ses.expect("ses");
    assert_eq!(ses.topics.len(), 2);
    assert_eq!(
        settings.relays.postmark.expect("postmark").username,
        "postmark"
    );
    assert!(settings.relays.resend.is_some());
    assert!(settings.relays.mailgun.is_some());
    assert!(settings.relays.sendgrid.is_none());
}

#[test]
fn relay_problems_are_named_without_their_secrets() {
    let message = errors(&[
        ("ROSTER_SES_TOPIC_ARNS", "not-an-arn"),
        ("ROSTER_POSTMARK_WEBHOOK_USERNAME", "postmark"),
        ("ROSTER_POSTMARK_WEBHOOK_PASSWORD", "short-secret"),
        ("ROSTER_SENDGRID_WEBHOOK_PUBLIC_KEY", "bm90IGEga2V5"),
        ("ROSTER_RESEND_WEBHOOK_SECRET", "plain-resend-secret"),
    ]);
    for problem in [
        "relays.ses.topics: \"not-an-arn\" is not an SNS topic ARN",
        "relays.postmark.password: use at least 16",
        "relays.sendgrid.public_key: not the base64 ECDSA public key",
        "relays.resend.secret: not a Svix signing secret",
    ] {
        assert!(message.contains(problem), "{problem}: {message}");
    }
    assert!(!message.contains("short-secret"), "{message}");
    assert!(!message.contains("plain-resend-secret"), "{message}");
    let lonely = errors(&[("ROSTER_POSTMARK_WEBHOOK_USERNAME", "postmark")]);
    assert!(lonely.contains("are set together"), "{lonely}");
    let certificate = errors(&[("ROSTER_SES_CERTIFICATE", "/etc/sns.pem")]);
    assert!(
        certificate.contains("without ROSTER_SES_TOPIC_ARNS"),
        "{certificate}"
    );
}

#[test]
fn an_unreadable_ses_certificate_is_named() {
    let message = errors(&[
        (
            "ROSTER_SES_TOPIC_ARNS",
            "arn:aws:sns:us-east-1:123456789012:a",
        ),
        ("ROSTER_SES_CERTIFICATE", "/nonexistent/sns.pem"),
    ]);
    assert!(
        message.contains("relays.ses.certificate: cannot read /nonexistent/sns.pem"),
        "{message}"
    );
}

#[test]
fn an_smtp_ca_file_that_is_missing_or_not_pem_is_named() {
    let message = errors(&[("SMTP_CA_FILE", "/nonexistent/ca.pem")]);
    assert!(
        message.contains("SMTP_CA_FILE \"/nonexistent/ca.pem\": it cannot be read"),
        "{message}"
    );
    let file = std::env::temp_dir().join(format!("roster-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&file, "not a certificate").unwrap();
    let message = errors(&[("SMTP_CA_FILE", file.to_str().unwrap())]);
    std::fs::remove_file(&file).unwrap();
    assert!(message.contains("it holds no PEM certificate"), "{message}");
}

#[test]
fn clerk_api_url_is_https_or_loopback_and_the_secret_key_is_never_shown() {
    let message = errors(&[
        ("CLERK_API_URL", "http://api.clerk.example"),
        ("CLERK_SECRET_KEY", "not-a-key-0123456789"),
    ]);
    assert!(
        message.contains("CLERK_API_URL must be an https URL"),
        "{message}"
    );
    assert!(
        message.contains("CLERK_SECRET_KEY must be a Clerk secret key"),
        "{message}"
    );
    assert!(!message.contains("not-a-key-0123456789"), "{message}");
    for url in [
        "http://127.0.0.1:3000",
        "http://localhost:9",
        "https://api.clerk.com",
    ] {
        let settings = settings(&[("CLERK_API_URL", url)]).unwrap();
        assert_eq!(settings.clerk_api.url.as_str().trim_end_matches('/'), url);
    }
}
