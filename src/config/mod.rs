//! Settings: read once at start from the environment (and `.env`) plus the TOML config
//! file, validated as a whole so that every problem is reported in one go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::config::clerk::ClerkSettings;
use crate::config::relays::RelaySettings;
use crate::config::sending::SendingSettings;

pub mod clerk;
mod env;
pub mod forward;
pub mod relays;
pub mod sending;
pub mod webhooks;
pub mod workflows;

use workflows::WorkflowConfig;

/// The shortest `ROSTER_API_KEY` taken: it opens the dashboard and the whole API.
pub const MIN_API_KEY_CHARS: usize = 32;

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
    /// `SMTP_CONNECTIONS`: the most SMTP connections open at once (default 16).
    pub smtp_connections: usize,
    /// `SMTP_CA_FILE`: certificate authorities SMTP's TLS trusts besides the web's.
    pub smtp_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
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
    /// The relays' webhooks: the file's `[relays.*]` with the environment's on top.
    pub relays: RelaySettings,
    /// `CLERK_API_URL` and `CLERK_SECRET_KEY`.
    pub clerk_api: ClerkApiSettings,
}

/// Clerk's Backend API, which `roster clerk backfill` and `reconcile` read.
#[derive(Debug, Clone)]
pub struct ClerkApiSettings {
    /// `CLERK_API_URL`, `https://api.clerk.com/` by default; always ends in `/`.
    pub url: Url,
    /// `CLERK_SECRET_KEY` (`sk_live_...` or `sk_test_...`).
    pub secret_key: Option<SecretString>,
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
/// `[sending]`, `[relays.*]`, `[[lists]]`, `[[workflows]]`, `[[webhooks]]` and
/// `[forward.*]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// What `GET /api/v1/api-key` answers as `teamName`.
    pub team_name: Option<String>,
    pub clerk: ClerkSettings,
    pub sending: SendingSettings,
    pub relays: RelaySettings,
    /// Mailing lists contacts can be on (Loops' `mailingLists`).
    pub lists: Vec<MailingList>,
    pub workflows: Vec<WorkflowConfig>,
    /// Endpoints Roster's events are posted to.
    pub webhooks: Vec<webhooks::WebhookConfig>,
    /// Where stored Clerk events are forwarded for analytics.
    pub forward: forward::ForwardSettings,
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
    /// `check_file` names the problems of the config file's contents (its workflows,
    /// `workflows::definition::file_problems`), reported with every other problem.
    pub fn from_env_checking(
        check_file: impl Fn(&ConfigFile) -> Vec<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_lookup_checking(|name| std::env::var(name).ok(), check_file)
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the
    /// environment; the file's workflows are checked where they are loaded.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_checking(lookup, |_| Vec::new())
    }

    /// `from_lookup`, with `check_file`'s problems among the others.
    pub fn from_lookup_checking(
        lookup: impl Fn(&str) -> Option<String>,
        check_file: impl Fn(&ConfigFile) -> Vec<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let var: &dyn Fn(&str) -> Option<String> = &var;
        let mut errors = Vec::new();
        let addr = env::addr(var, &mut errors);
        let (config_path, file) = env::config_file(var, &mut errors);
        errors.extend(check_file(&file));
        errors.extend(webhooks::check(&file.webhooks));
        errors.extend(forward::check(&file.forward));
        errors.extend(file.clerk.problems());
        let relays = file.relays.clone().with_env(var, &mut errors);
        if let Err(problems) = crate::relays::Relays::new(&relays) {
            errors.extend(problems);
        }
        let settings = Self {
            database_url: env::database_url(var, &mut errors),
            database: DatabaseSettings::default(),
            addr,
            http_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            api_key: env::api_key(var, &mut errors),
            clerk_webhook_secrets: var("CLERK_WEBHOOK_SECRET")
                .map(|v| env::webhook_secrets(&v, &mut errors))
                .unwrap_or_default(),
            smtp_url: env::smtp_url(var, &mut errors),
            smtp_connections: env::smtp_connections(var, &mut errors),
            smtp_ca: env::smtp_ca(var, &mut errors),
            mail_from: env::mail_from(var, &mut errors),
            public_url: env::public_url(var, addr, &mut errors),
            unsubscribe_secret: env::unsubscribe_secret(var, &mut errors),
            config_path,
            templates_required: var("ROSTER_TEMPLATES").is_some(),
            templates_dir: PathBuf::from(var("ROSTER_TEMPLATES").unwrap_or("templates".into())),
            file,
            log_filter: env::log_filter(var, &mut errors),
            log_format: env::log_format(var, &mut errors),
            relays,
            clerk_api: env::clerk_api(var, &mut errors),
        };
        if settings.file.clerk.reconcile.is_some() && settings.clerk_api.secret_key.is_none() {
            errors.push(
                "[clerk.reconcile] needs CLERK_SECRET_KEY to read Clerk's Backend API".into(),
            );
        }
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

#[cfg(test)]
mod tests;
