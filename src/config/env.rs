//! Each environment variable of the settings, read and checked on its own; a problem
//! is pushed onto `errors` (and a default returned) so that every one is reported at
//! once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use url::Url;

use super::{ConfigFile, LogFormat, MIN_API_KEY_CHARS};

/// How a setting is looked up: by name, blank values taken as unset.
type Var<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn database_url(var: Var<'_>, errors: &mut Vec<String>) -> Option<SecretString> {
    let database_url = var("DATABASE_URL").map(SecretString::from);
    if let Some(url) = &database_url
        && !is_postgres_url(url.expose_secret())
    {
        errors.push(
            "DATABASE_URL is not a valid PostgreSQL URL (postgres://user:password@host:5432/db)"
                .to_owned(),
        );
    }
    database_url
}

pub(super) fn addr(var: Var<'_>, errors: &mut Vec<String>) -> SocketAddr {
    let addr_text = var("ROSTER_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    addr_text.parse().unwrap_or_else(|_| {
        errors.push(format!(
            "ROSTER_ADDR must be an IP address and port such as 127.0.0.1:8080, not {addr_text:?}"
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    })
}

pub(super) fn smtp_url(var: Var<'_>, errors: &mut Vec<String>) -> Option<SecretString> {
    let smtp_url = var("SMTP_URL").map(SecretString::from);
    if let Some(url) = &smtp_url {
        let parsed = crate::email::smtp::SmtpServer::from_url(
            url.expose_secret(),
            std::time::Duration::from_secs(30),
            &[],
        );
        if parsed.is_err() {
            errors.push(
                "SMTP_URL is not a valid SMTP URL (smtp://host:25, \
                 smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465)"
                    .to_owned(),
            );
        }
    }
    smtp_url
}

/// `SMTP_CA_FILE`: a PEM file of certificate authorities SMTP's TLS trusts besides the
/// web's (a relay with a private CA); none when unset.
pub(super) fn smtp_ca(
    var: Var<'_>,
    errors: &mut Vec<String>,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let Some(path) = var("SMTP_CA_FILE") else {
        return Vec::new();
    };
    let read = std::fs::read(&path)
        .map_err(|error| format!("it cannot be read ({error})"))
        .and_then(|pem| crate::email::smtp::read_extra_roots(&pem));
    read.unwrap_or_else(|problem| {
        errors.push(format!("SMTP_CA_FILE {path:?}: {problem}"));
        Vec::new()
    })
}

/// `SMTP_CONNECTIONS`: 1 to 1,000, default 16.
pub(super) fn smtp_connections(var: Var<'_>, errors: &mut Vec<String>) -> usize {
    match var("SMTP_CONNECTIONS").map(|text| text.trim().parse::<usize>()) {
        None => 16,
        Some(Ok(connections @ 1..=1000)) => connections,
        Some(_) => {
            errors.push("SMTP_CONNECTIONS must be a whole number from 1 to 1000".to_owned());
            16
        }
    }
}

pub(super) fn mail_from(var: Var<'_>, errors: &mut Vec<String>) -> Option<Mailbox> {
    var("MAIL_FROM").and_then(|v| match v.parse::<Mailbox>() {
        Ok(mailbox) => Some(mailbox),
        Err(_) => {
            errors.push(format!(
                "MAIL_FROM must be an address such as `Acme <hello@acme.test>`, not {v:?}"
            ));
            None
        }
    })
}

/// `PUBLIC_URL`, by default `http://ROSTER_ADDR`, always with a trailing slash so that
/// links join below a path prefix (https://x/roster/).
pub(super) fn public_url(var: Var<'_>, addr: SocketAddr, errors: &mut Vec<String>) -> Url {
    let text = var("PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
    let text = if text.ends_with('/') {
        text
    } else {
        format!("{text}/")
    };
    match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            errors.push(format!(
                "PUBLIC_URL must be an http(s) URL such as https://roster.acme.test, not {text:?}"
            ));
            Url::parse("http://127.0.0.1:8080").expect("a valid URL")
        }
    }
}

/// `CLERK_API_URL` and `CLERK_SECRET_KEY`.
pub(super) fn clerk_api(var: Var<'_>, errors: &mut Vec<String>) -> super::ClerkApiSettings {
    let text = var("CLERK_API_URL").unwrap_or_else(|| "https://api.clerk.com".into());
    let text = format!("{}/", text.trim_end_matches('/'));
    // The secret key goes in each request: in clear only to this machine (a stand-in).
    let loopback = |url: &Url| match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let url = match Url::parse(&text) {
        Ok(url)
            if (url.scheme() == "https" || (url.scheme() == "http" && loopback(&url)))
                && url.query().is_none() =>
        {
            url
        }
        _ => {
            errors.push(format!(
                "CLERK_API_URL must be an https URL such as https://api.clerk.com (http only to localhost), not {text:?}"
            ));
            Url::parse("https://api.clerk.com/").expect("a valid URL")
        }
    };
    let secret_key = var("CLERK_SECRET_KEY").map(|key| key.trim().to_owned());
    if let Some(key) = &secret_key
        && (!key.starts_with("sk_") || key.chars().any(|c| c.is_control() || c == ' '))
    {
        errors.push(
            "CLERK_SECRET_KEY must be a Clerk secret key (sk_live_... or sk_test_...)".into(),
        );
    }
    super::ClerkApiSettings {
        url,
        secret_key: secret_key.map(SecretString::from),
    }
}

/// `ROSTER_CONFIG` (default `roster.toml`, which may be missing) and the file it names,
/// its lists checked (its workflows are checked by the caller's `check_file`).
pub(super) fn config_file(var: Var<'_>, errors: &mut Vec<String>) -> (PathBuf, ConfigFile) {
    let (config_path, config_required) = match var("ROSTER_CONFIG") {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from("roster.toml"), false),
    };
    let file = load_config_file(&config_path, config_required).unwrap_or_else(|e| {
        errors.push(e);
        ConfigFile::default()
    });
    for (i, list) in file.lists.iter().enumerate() {
        if list.id.trim().is_empty() {
            errors.push(format!("lists[{i}]: the id must not be empty"));
        } else if list.id.contains(';') {
            // A CSV's `mailingLists` cell separates IDs with `;`.
            errors.push(format!(
                "lists[{i}]: the id {:?} must not hold `;`",
                list.id
            ));
        } else if file.lists[..i].iter().any(|other| other.id == list.id) {
            errors.push(format!("lists: the id {:?} is used twice", list.id));
        }
    }
    (config_path, file)
}

pub(super) fn api_key(var: Var<'_>, errors: &mut Vec<String>) -> Option<SecretString> {
    let api_key = var("ROSTER_API_KEY").map(SecretString::from);
    if api_key
        .as_ref()
        .is_some_and(|key| key.expose_secret().trim().chars().count() < MIN_API_KEY_CHARS)
    {
        errors.push(format!(
            "ROSTER_API_KEY must be at least {MIN_API_KEY_CHARS} characters long; \
             make one with `openssl rand -hex 32`"
        ));
    }
    api_key
}

pub(super) fn unsubscribe_secret(var: Var<'_>, errors: &mut Vec<String>) -> Option<SecretString> {
    let secret = var("ROSTER_UNSUBSCRIBE_SECRET").map(SecretString::from);
    if secret
        .as_ref()
        .is_some_and(|s| s.expose_secret().len() < 16)
    {
        errors.push("ROSTER_UNSUBSCRIBE_SECRET must be at least 16 characters long".to_owned());
    }
    secret
}

pub(super) fn log_filter(var: Var<'_>, errors: &mut Vec<String>) -> String {
    let log_filter = var("RUST_LOG").unwrap_or_else(|| "info".to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
        errors.push(format!("RUST_LOG is not a valid log filter: {e}"));
    }
    log_filter
}

pub(super) fn log_format(var: Var<'_>, errors: &mut Vec<String>) -> LogFormat {
    match var("ROSTER_LOG_FORMAT").as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            errors.push(format!(
                "ROSTER_LOG_FORMAT must be text or json, not {other:?}"
            ));
            LogFormat::Text
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        && PgConnectOptions::from_str(url).is_ok()
}

/// Splits `CLERK_WEBHOOK_SECRET` on spaces and commas and checks each secret decodes the
/// way Svix will decode it, naming the secret by position (never by value).
pub(super) fn webhook_secrets(value: &str, errors: &mut Vec<String>) -> Vec<SecretString> {
    let secrets: Vec<&str> = value
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .collect();
    let count = secrets.len();
    for (index, secret) in secrets.iter().enumerate() {
        let position = index + 1;
        match secret.strip_prefix("whsec_") {
            None => errors.push(format!(
                "CLERK_WEBHOOK_SECRET: secret {position} of {count} does not start with whsec_ \
                 (copy the signing secret from the Clerk dashboard's webhook page)"
            )),
            Some(_) if svix::webhooks::Webhook::new(secret).is_err() => errors.push(format!(
                "CLERK_WEBHOOK_SECRET: secret {position} of {count} is not valid base64 after whsec_"
            )),
            Some(_) => {}
        }
    }
    secrets.into_iter().map(SecretString::from).collect()
}

/// Reads the TOML config; a missing default file means built-in defaults.
fn load_config_file(path: &Path, required: bool) -> Result<ConfigFile, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(ConfigFile::default());
        }
        Err(e) => {
            return Err(format!(
                "ROSTER_CONFIG: cannot read {}: {e}",
                path.display()
            ));
        }
    };
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
