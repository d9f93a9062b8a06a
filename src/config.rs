//! Settings: read once at start from the environment (and `.env`) plus the TOML config
//! file, validated as a whole so that every problem is reported in one go.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use url::Url;

use crate::clerk::settings::ClerkSettings;

/// The shortest `ROSTER_API_KEY` taken: it opens the dashboard and the whole API.
pub const MIN_API_KEY_CHARS: usize = 32;
use crate::workflows::definition::{WorkflowConfig, check_workflows};

/// Everything Roster needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` only matters to the commands that talk to the database.
    pub database_url: Option<SecretString>,
    pub database: DatabaseSettings,
    pub addr: SocketAddr,
    /// HTTP worker threads, each with its own database pool. Not in the environment
    /// contract: one per core, as actix-web does.
    pub http_workers: usize,
    pub api_key: Option<SecretString>,
    /// Svix signing secrets (`whsec_...`), several during a rotation; checked as base64.
    pub clerk_webhook_secrets: Vec<SecretString>,
    pub smtp_url: Option<SecretString>,
    pub mail_from: Option<Mailbox>,
    pub public_url: Url,
    /// `ROSTER_UNSUBSCRIBE_SECRET`: the key of the unsubscribe links' signatures.
    pub unsubscribe_secret: Option<SecretString>,
    pub config_path: PathBuf,
    pub templates_dir: PathBuf,
    /// `ROSTER_TEMPLATES` was set: then the folder must exist.
    pub templates_required: bool,
    pub file: ConfigFile,
    /// `RUST_LOG`, checked to be a valid `tracing` filter.
    pub log_filter: String,
    /// `ROSTER_LOG_FORMAT`: `text` (default) or `json`, one object per line.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Pool limits. Not in the environment contract: tests and benchmarks set them in code.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Connections in all, shared out between the HTTP workers' pools.
    pub max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The TOML file named by `ROSTER_CONFIG`: `team_name`, `[clerk.*]` settings,
/// `[[lists]]` and `[[workflows]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// What `GET /api/v1/api-key` answers as `teamName`.
    pub team_name: Option<String>,
    pub clerk: ClerkSettings,
    /// Mailing lists contacts can be on (Loops' `mailingLists`).
    pub lists: Vec<MailingList>,
    pub workflows: Vec<WorkflowConfig>,
}

/// One `[[lists]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailingList {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Whether contacts may see and join it themselves (Loops' `isPublic`).
    #[serde(default)]
    pub public: bool,
}

impl ConfigFile {
    pub fn list(&self, id: &str) -> Option<&MailingList> {
        self.lists.iter().find(|list| list.id == id)
    }
}

/// Every problem found in the configuration, one sentence each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads the process environment; `.env` must already have been loaded by the caller.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut errors = Vec::new();

        let database_url = var("DATABASE_URL").map(SecretString::from);
        if let Some(url) = &database_url
            && !is_postgres_url(url.expose_secret())
        {
            errors.push(
                "DATABASE_URL is not a valid PostgreSQL URL (postgres://user:password@host:5432/db)"
                    .to_owned(),
            );
        }

        let addr_text = var("ROSTER_ADDR").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let addr = addr_text.parse().unwrap_or_else(|_| {
            errors.push(format!(
                "ROSTER_ADDR must be an IP address and port such as 127.0.0.1:8080, not {addr_text:?}"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let clerk_webhook_secrets = var("CLERK_WEBHOOK_SECRET")
            .map(|v| parse_webhook_secrets(&v, &mut errors))
            .unwrap_or_default();

        let smtp_url = var("SMTP_URL").map(SecretString::from);
        if let Some(url) = &smtp_url {
            type Smtp = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;
            if Smtp::from_url(url.expose_secret()).is_err() {
                errors.push(
                    "SMTP_URL is not a valid SMTP URL (smtp://host:25, \
                     smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465)"
                        .to_owned(),
                );
            }
        }

        let mail_from = var("MAIL_FROM").and_then(|v| match v.parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(_) => {
                errors.push(format!(
                    "MAIL_FROM must be an address such as `Acme <hello@acme.test>`, not {v:?}"
                ));
                None
            }
        });

        let public_url_text = var("PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
        // A trailing slash, so that links join below a path prefix (https://x/roster/).
        let public_url_text = if public_url_text.ends_with('/') {
            public_url_text
        } else {
            format!("{public_url_text}/")
        };
        let public_url = match Url::parse(&public_url_text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                errors.push(format!(
                    "PUBLIC_URL must be an http(s) URL such as https://roster.acme.test, not {public_url_text:?}"
                ));
                Url::parse("http://127.0.0.1:8080").expect("a valid URL")
            }
        };

        let (config_path, config_required) = match var("ROSTER_CONFIG") {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from("roster.toml"), false),
        };
        let file = load_config_file(&config_path, config_required).unwrap_or_else(|e| {
            errors.push(e);
            ConfigFile::default()
        });
        // Templates are checked where they are loaded (serve, check).
        if let Err(problems) = check_workflows(&file.workflows, None) {
            errors.extend(problems);
        }
        for (i, list) in file.lists.iter().enumerate() {
            if list.id.trim().is_empty() {
                errors.push(format!("lists[{i}]: the id must not be empty"));
            } else if file.lists[..i].iter().any(|other| other.id == list.id) {
                errors.push(format!("lists: the id {:?} is used twice", list.id));
            }
        }

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

        let unsubscribe_secret = var("ROSTER_UNSUBSCRIBE_SECRET").map(SecretString::from);
        if unsubscribe_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 16)
        {
            errors.push("ROSTER_UNSUBSCRIBE_SECRET must be at least 16 characters long".to_owned());
        }

        let log_filter = var("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            errors.push(format!("RUST_LOG is not a valid log filter: {e}"));
        }

        let log_format = match var("ROSTER_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(format!(
                    "ROSTER_LOG_FORMAT must be text or json, not {other:?}"
                ));
                LogFormat::Text
            }
        };

        let settings = Self {
            database_url,
            database: DatabaseSettings::default(),
            addr,
            http_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            api_key,
            clerk_webhook_secrets,
            smtp_url,
            mail_from,
            public_url,
            unsubscribe_secret,
            config_path,
            templates_required: var("ROSTER_TEMPLATES").is_some(),
            templates_dir: PathBuf::from(var("ROSTER_TEMPLATES").unwrap_or("templates".into())),
            file,
            log_filter,
            log_format,
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The database URL, for the commands that cannot run without one.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url.as_ref().ok_or_else(|| {
            ConfigError(vec![
                "DATABASE_URL is not set: give the PostgreSQL connection URL, \
                 e.g. postgres://roster:secret@localhost:5432/roster"
                    .to_owned(),
            ])
        })
    }
}

fn is_postgres_url(url: &str) -> bool {
    (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        && PgConnectOptions::from_str(url).is_ok()
}

/// Splits `CLERK_WEBHOOK_SECRET` on spaces and commas and checks each secret decodes the
/// way Svix will decode it, naming the secret by position (never by value).
fn parse_webhook_secrets(value: &str, errors: &mut Vec<String>) -> Vec<SecretString> {
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

#[cfg(test)]
mod tests {
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
}
