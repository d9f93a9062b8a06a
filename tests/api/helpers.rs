//! The test harness: a Roster app on a free port over this test's own database, a Svix
//! signer, Clerk fixtures, and a TCP proxy that can cut the database off.

use roster::clerk::sync::facts::register_mapped_properties;
use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use roster::config::{ConfigFile, Settings};
use roster::contacts::Contact;
use roster::db::Database;
use roster::startup::Application;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use svix::webhooks::Webhook;
use uuid::Uuid;

use roster::jobs::worker::{Worker, WorkerOptions};
use roster::startup::Jobs;

use crate::db_proxy::DbProxy;
use crate::smtp_server::SmtpServer;

/// The secret Clerk signs with in tests (base64 of "roster-test-secret-0123456789").
pub const SECRET: &str = "whsec_cm9zdGVyLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";
/// A second secret, as during a rotation.
pub const ROTATED_SECRET: &str = "whsec_cm90YXRlZC1zZWNyZXQtYWJjZGVmZ2hpams=";

/// The API key of test apps.
pub const API_KEY: &str = "test-api-key-0123456789-abcdefghijklmnop";

pub struct TestApp {
    pub address: String,
    /// The workflow engine's worker, run by hand with `run_jobs_at`.
    pub worker: Worker<Jobs>,
    /// A pool of the test's own, straight to the database (not through any proxy).
    pub db: PgPool,
    pub client: reqwest::Client,
}

/// Options for `spawn_app_with`.
#[derive(Default)]
pub struct AppOptions {
    /// TOML of the config file; empty means built-in defaults.
    pub config_toml: &'static str,
    /// Route the app's database connections through this proxy.
    pub proxy: Option<&'static DbProxy>,
    /// Connections of the app in all (default 10); 1 also means one HTTP worker.
    pub max_connections: Option<u32>,
    /// Where email goes; without it, to an outbox folder of the test's own.
    pub smtp: Option<SmtpServer>,
    /// The app's pools as `roster serve` opens them (connections kept between
    /// requests), instead of connections closed on release.
    pub production_pool: bool,
}

pub async fn spawn_app(connect: PgConnectOptions) -> TestApp {
    spawn_app_with(connect, AppOptions::default()).await
}

/// An app with this TOML as its config file.
pub async fn spawn_app_with_config(
    connect: PgConnectOptions,
    config_toml: &'static str,
) -> TestApp {
    let options = AppOptions {
        config_toml,
        ..AppOptions::default()
    };
    spawn_app_with(connect, options).await
}

pub async fn spawn_app_with(connect: PgConnectOptions, options: AppOptions) -> TestApp {
    let mut env = HashMap::from([
        ("ROSTER_ADDR", "127.0.0.1:0".to_owned()),
        ("CLERK_WEBHOOK_SECRET", format!("{SECRET} {ROTATED_SECRET}")),
        ("MAIL_FROM", "Acme <hello@acme.test>".to_owned()),
        ("ROSTER_API_KEY", API_KEY.to_owned()),
        (
            "ROSTER_UNSUBSCRIBE_SECRET",
            "test-unsubscribe-secret-0123456789".to_owned(),
        ),
        (
            "ROSTER_TEMPLATES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates").to_owned(),
        ),
    ]);
    if let Some(smtp) = &options.smtp {
        env.insert("SMTP_URL", smtp.url());
    }
    let mut settings =
        Settings::from_lookup(|name| env.get(name).cloned()).expect("valid settings");
    settings.file = toml::from_str::<ConfigFile>(options.config_toml).expect("valid config file");
    settings.relays = settings.file.relays.clone();
    let app_connect = match options.proxy {
        Some(proxy) => connect.clone().host("127.0.0.1").port(proxy.port()),
        None => connect.clone(),
    };
    let pool_options = if options.production_pool {
        roster::db::pool_options(&settings.database)
    } else {
        short_lived_connections().acquire_timeout(Duration::from_secs(2))
    };
    let max_connections = options.max_connections.unwrap_or(10);
    if max_connections == 1 {
        settings.http_workers = 1;
    }
    let database = Database::new(app_connect, pool_options, max_connections);
    let outbox = std::env::temp_dir().join(format!("roster-test-outbox-{}", Uuid::new_v4()));
    let app = Application::build(&settings, database, &outbox).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    // The worker is run by hand (`run_jobs_at`), with the test's clock.
    let (server, worker) = app.into_parts();
    tokio::spawn(server);

    let db = short_lived_connections()
        .max_connections(2)
        .connect_with(connect)
        .await
        .expect("test pool connects");
    // As `roster serve` does before it serves.
    let mut conn = db.acquire().await.expect("a connection");
    register_mapped_properties(&mut conn, &settings.file.clerk.properties)
        .await
        .expect("the mapped properties register");
    drop(conn);
    TestApp {
        address,
        db,
        client: reqwest::Client::new(),
        worker,
    }
}

/// An app whose email goes to a real SMTP server on loopback, with this config file.
pub async fn spawn_app_with_smtp(
    connect: PgConnectOptions,
    config_toml: &'static str,
) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let options = AppOptions {
        config_toml,
        smtp: Some(smtp.clone()),
        ..AppOptions::default()
    };
    (spawn_app_with(connect, options).await, smtp)
}

/// Connections close when released, so none is open when `#[sqlx::test]` drops the
/// test's database at the end (Postgres would wait 5 s for them).
pub fn short_lived_connections() -> PgPoolOptions {
    PgPoolOptions::new().after_release(|_, _| Box::pin(async { Ok(false) }))
}

/// A sample Clerk event from `src/clerk/samples/`, as JSON to edit.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/src/clerk/samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists")).unwrap()
}

/// A fresh Svix message ID.
pub fn svix_id() -> String {
    format!("msg_{}", Uuid::new_v4().simple())
}

/// A signed delivery, built step by step so tests can break any part of it.
pub struct Delivery {
    pub body: Vec<u8>,
    pub id: String,
    pub timestamp: i64,
    pub secret: &'static str,
    /// `svix` or `webhook`: the header spelling.
    pub header_prefix: &'static str,
    pub signature: Option<String>,
}

impl Delivery {
    pub fn of(event: &Value) -> Self {
        Self::raw(serde_json::to_vec(event).unwrap())
    }

    pub fn raw(body: Vec<u8>) -> Self {
        Self {
            body,
            id: svix_id(),
            timestamp: Utc::now().timestamp(),
            secret: SECRET,
            header_prefix: "svix",
            signature: None,
        }
    }

    pub fn signature(&self) -> String {
        self.signature.clone().unwrap_or_else(|| {
            Webhook::new(self.secret)
                .unwrap()
                .sign(&self.id, self.timestamp, &self.body)
                .unwrap()
        })
    }
}

impl TestApp {
    /// A second worker on the same database, as another `roster serve` would run.
    pub fn another_worker(&self) -> Worker<Jobs> {
        self.worker.another(WorkerOptions::default())
    }

    /// Runs every job due at `now` (a test's clock), as the worker would.
    pub async fn run_jobs_at(&self, now: chrono::DateTime<Utc>) -> usize {
        self.worker.run_due(now).await.expect("jobs run")
    }

    pub async fn send(&self, delivery: &Delivery) -> reqwest::Response {
        let prefix = delivery.header_prefix;
        self.client
            .post(format!("{}/webhooks/clerk", self.address))
            .header("content-type", "application/json")
            .header(format!("{prefix}-id"), &delivery.id)
            .header(
                format!("{prefix}-timestamp"),
                delivery.timestamp.to_string(),
            )
            .header(format!("{prefix}-signature"), delivery.signature())
            .body(delivery.body.clone())
            .send()
            .await
            .expect("request sent")
    }

    /// Delivers `event` correctly signed and returns the status and JSON body.
    pub async fn deliver(&self, event: &Value) -> (u16, Value) {
        let response = self.send(&Delivery::of(event)).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn contact_by_user_id(&self, user_id: &str) -> Option<Contact> {
        sqlx::query_as::<_, Contact>("select * from contacts where user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    pub async fn contact_by_email(&self, email: &str) -> Option<Contact> {
        sqlx::query_as::<_, Contact>("select * from contacts where lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "contacts" => "select count(*) from contacts",
            "clerk_events" => "select count(*) from clerk_events",
            "api_events" => "select count(*) from api_events",
            "workflow_runs" => "select count(*) from workflow_runs",
            "audience_segments" => "select count(*) from audience_segments",
            "email_events" => "select count(*) from email_events",
            "suppressions" => "select count(*) from suppressions",
            other => panic!("no count for {other}"),
        };
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    /// Calls the API with the key; returns the status and JSON body (null if none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_request(method, path, body, &[]).await
    }

    /// `api` with extra headers.
    pub async fn api_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/api{path}", self.address))
            .bearer_auth(API_KEY);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    pub async fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn api_put(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::PUT, path, Some(body)).await
    }

    /// The stored (redacted) payload of one delivery.
    pub async fn stored_payload(&self, svix_id: &str) -> Option<Value> {
        sqlx::query_scalar("select payload from clerk_events where svix_id = $1")
            .bind(svix_id)
            .fetch_optional(&self.db)
            .await
            .unwrap()
    }
}

/// Sets a value at a JSON pointer such as `/data/updated_at`.
pub fn set(event: &mut Value, pointer: &str, value: Value) {
    *event
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} exists")) = value;
}

/// The `roster` binary, with only what each test sets: no DATABASE_URL or secrets from
/// the outer environment, and a working directory without a .env file or roster.toml.
pub fn roster() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    command
}

/// `roster serve` on `port`, against this test's database and the SMTP server at
/// `smtp_url`, with the shipped templates, the test API key and warnings only; callers
/// add their config file and the rest.
pub fn roster_serve(db: &PgConnectOptions, port: u16, smtp_url: &str) -> std::process::Command {
    let mut command = roster();
    command
        .args(["serve"])
        .env("DATABASE_URL", database_url(db))
        .env("ROSTER_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "ROSTER_TEMPLATES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        )
        .env("ROSTER_API_KEY", API_KEY)
        .env("MAIL_FROM", "Acme <hello@acme.test>")
        .env("SMTP_URL", smtp_url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// The URL of this test's database, for a `roster` process.
pub fn database_url(db: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        db.get_username(),
        db.get_host(),
        db.get_port(),
        db.get_database().unwrap()
    )
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until the `roster serve` on `port` answers `/readyz` with 200.
pub async fn wait_until_ready(port: u16) {
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let started = std::time::Instant::now();
    while !reqwest::get(&ready)
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "roster did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
