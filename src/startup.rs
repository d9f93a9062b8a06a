//! The composition root: builds the HTTP server and the job worker from `Settings`;
//! `roster serve` and the tests both use it.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::api;
use crate::api::auth::ApiKey;
use crate::api::throttle::FailedAuthThrottle;
use crate::campaigns::{self, start::start_campaign};
use crate::clerk::backend::ClerkApi;
use crate::clerk::backend::schedule::run_scheduled_reconciles;
use crate::clerk::signature::SignatureVerifier;
use crate::clerk::webhook::receive_clerk_webhook;
use crate::config::clerk::ClerkSettings;
use crate::config::{ConfigFile, Settings};
use crate::db::Database;
use crate::email::templates::Templates;
use crate::email::unsubscribe::UnsubscribeKey;
use crate::forward::{self, Forwarder};
use crate::jobs::worker::{JobHandler, Worker, WorkerOptions, run_each};
use crate::jobs::{BulkRoom, Job};
use crate::relays::{Relays, webhook::receive_relay_webhook};
use crate::telemetry::error_chain;
use crate::web::dashboard::{self, Views, session::SessionKey};
use crate::web::request_log::RouteSpan;
use crate::web::{tracking, unsubscribe};
use crate::webhooks::{self, deliver::Deliverer};
use crate::workflows::engine::Engine;
use crate::workflows::{self, Workflows};
use crate::{health, monitoring};

/// A bound, not yet running server, and the worker that runs the jobs it queues.
pub struct Application {
    port: u16,
    server: Server,
    worker: Worker<Jobs>,
    reconciles: Option<ScheduledReconciles>,
    /// Looked at once at start: events left in an outbox by an earlier process.
    forwarding: (sqlx::PgPool, Forwarder),
}

/// `[clerk.reconcile]`: what the scheduled reconcile needs.
struct ScheduledReconciles {
    pool: sqlx::PgPool,
    api: ClerkApi,
    settings: ClerkSettings,
    every: std::time::Duration,
    fix: bool,
}

impl Application {
    /// Loads the workflows and templates, binds `settings.addr` (port 0 picks a free
    /// port, which a `PUBLIC_URL` left to its default then names), wires the routes
    /// and builds the worker; emails go to SMTP, or to `outbox` without `SMTP_URL`.
    pub fn build(settings: &Settings, database: Database, outbox: &Path) -> anyhow::Result<Self> {
        let (workflows, templates) = workflows::load(settings)?;
        let listener = TcpListener::bind(settings.addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.addr))?;
        let port = listener.local_addr()?.port();
        let mut settings = settings.clone();
        if settings.public_url.port() == Some(0) {
            settings
                .public_url
                .set_port(Some(port))
                .map_err(|()| anyhow::anyhow!("PUBLIC_URL cannot take a port"))?;
        }
        if workflows.sends_marketing() && settings.public_url.scheme() != "https" {
            tracing::warn!(
                public_url = %settings.public_url,
                "PUBLIC_URL is not https: mail clients may ignore the one-click unsubscribe links"
            );
        }
        let workflows = Arc::new(workflows);
        let templates = Arc::new(templates);
        // One pool for the worker and its steps; the HTTP workers have their own.
        let jobs_pool = database.pool(1);
        let engine = Engine::new(
            &settings,
            jobs_pool.clone(),
            workflows.clone(),
            templates.clone(),
            outbox,
        )?;
        let forwarder = Forwarder::new(&settings.file.forward)?;
        let jobs = Jobs {
            engine,
            config: Arc::new(settings.file.clone()),
            webhooks: Deliverer::new(workflows.webhooks().clone())?,
            forwarder: forwarder.clone(),
        };
        let reconciles = match &settings.file.clerk.reconcile {
            Some(reconcile) => Some(ScheduledReconciles {
                pool: jobs_pool.clone(),
                api: ClerkApi::new(&settings.clerk_api)?,
                settings: settings.file.clerk.clone(),
                every: reconcile
                    .interval()
                    .ok_or_else(|| anyhow::anyhow!("[clerk.reconcile] every is not a duration"))?,
                fix: reconcile.fix,
            }),
            None => None,
        };
        let forwarding = (jobs_pool.clone(), forwarder.clone());
        let worker = Worker::new(jobs_pool, jobs, WorkerOptions::default());
        let server = http_server(
            &settings, database, workflows, templates, forwarder, listener,
        )?;
        Ok(Self {
            port,
            server,
            worker,
            reconciles,
            forwarding,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server alone, and the worker for the caller to run (the tests drive it by
    /// hand, with their own clock).
    pub fn into_parts(self) -> (Server, Worker<Jobs>) {
        (self.server, self.worker)
    }

    /// Serves and runs jobs until SIGINT or SIGTERM; then finishes in-flight requests,
    /// and the worker the jobs it has in flight.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let (pool, forwarder) = self.forwarding;
        for destination in forwarder.names() {
            let now = chrono::Utc::now();
            if let Err(error) = forward::outbox::wake(&pool, destination, now).await {
                tracing::warn!(
                    destination,
                    error = error_chain(&error),
                    "cannot look at the forward outbox"
                );
            }
        }
        let worker = tokio::spawn(self.worker.run(shutdown.clone()));
        let reconciles = self.reconciles.map(|r| {
            tokio::spawn(run_scheduled_reconciles(
                r.pool,
                r.api,
                r.settings,
                r.every,
                r.fix,
                shutdown.clone(),
            ))
        });
        let served = self.server.await;
        shutdown.cancel();
        worker.await?;
        if let Some(reconciles) = reconciles {
            reconciles.await?;
        }
        Ok(served?)
    }
}

/// What the worker runs, by job kind: workflow steps (the engine), campaign starts,
/// outgoing webhooks and forwarded events.
#[derive(Clone)]
pub struct Jobs {
    pub engine: Engine,
    config: Arc<ConfigFile>,
    webhooks: Deliverer,
    forwarder: Forwarder,
}

impl JobHandler for Jobs {
    async fn run(&self, job: &Job) -> anyhow::Result<()> {
        if job.kind == campaigns::START_JOB {
            let id = job.payload["campaign"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("a campaign start without its campaign"))?;
            start_campaign(
                &self.engine.pool,
                &self.config,
                &self.engine.outbound.templates,
                id,
                job.run_at,
            )
            .await?;
            return Ok(());
        }
        if job.kind == webhooks::DELIVER_JOB {
            return self.webhooks.run(&self.engine.pool, job).await;
        }
        if job.kind == forward::FORWARD_JOB {
            return self.forwarder.run(&self.engine.pool, job).await;
        }
        self.engine.run(job).await
    }

    /// The batch's workflow steps go to the engine together; the other jobs run each
    /// on its own, at the same time.
    async fn run_batch(&self, jobs: &[Job]) -> Vec<anyhow::Result<()>> {
        let (steps, others): (Vec<&Job>, Vec<&Job>) =
            jobs.iter().partition(|job| job.kind == workflows::STEP_JOB);
        let steps: Vec<Job> = steps.into_iter().cloned().collect();
        let others: Vec<Job> = others.into_iter().cloned().collect();
        let (stepped, ran) = tokio::join!(self.engine.run_steps(&steps), run_each(self, &others));
        // Back in the batch's order.
        let (mut stepped, mut ran) = (stepped.into_iter(), ran.into_iter());
        jobs.iter()
            .map(|job| {
                let next = if job.kind == workflows::STEP_JOB {
                    stepped.next()
                } else {
                    ran.next()
                };
                next.unwrap_or_else(|| Err(anyhow::anyhow!("the job was not run")))
            })
            .collect()
    }

    async fn bulk_room(&self) -> anyhow::Result<BulkRoom> {
        Ok(match &self.engine.outbound.budget {
            Some(budget) => budget.bulk_room(&self.engine.pool).await?,
            None => BulkRoom::Unlimited,
        })
    }
}

/// The HTTP server on `listener`, its routes and their shared state.
fn http_server(
    settings: &Settings,
    database: Database,
    workflows: Arc<Workflows>,
    templates: Arc<Templates>,
    forwarder: Forwarder,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    {
        let workers = settings.http_workers;
        let verifier = web::Data::new(SignatureVerifier::new(&settings.clerk_webhook_secrets));
        let clerk_settings = web::Data::new(settings.file.clerk.clone());
        let config_file = web::Data::new(settings.file.clone());
        let forwarder = web::Data::new(forwarder);
        let api_key = web::Data::new(ApiKey::new(settings.api_key.as_ref()));
        let templates = web::Data::from(templates);
        let views = web::Data::new(Views::new());
        let session_key = web::Data::new(SessionKey::new(
            settings.api_key.as_ref(),
            settings.public_url.scheme() == "https",
        ));
        let app_settings = web::Data::new(settings.clone());
        let throttle = web::Data::new(FailedAuthThrottle::default());
        let relays =
            web::Data::new(Relays::new(&settings.relays).map_err(crate::config::ConfigError)?);
        let workflows = web::Data::from(workflows);
        let unsubscribe_key =
            web::Data::new(settings.unsubscribe_secret.clone().map(UnsubscribeKey::new));
        monitoring::handle(); // the recorder, before anything records
        let server = HttpServer::new(move || {
            // Runs on each worker's thread: the pool's connections belong to its runtime.
            let pool = web::Data::new(database.pool(workers));
            App::new()
                .wrap(session_key.middleware(pool.get_ref().clone()))
                .wrap(crate::web::security_headers())
                .wrap(TracingLogger::<RouteSpan>::new())
                .app_data(pool)
                .app_data(verifier.clone())
                .app_data(clerk_settings.clone())
                .app_data(workflows.clone())
                .app_data(unsubscribe_key.clone())
                .app_data(config_file.clone())
                .app_data(forwarder.clone())
                .app_data(api_key.clone())
                .app_data(templates.clone())
                .app_data(views.clone())
                .app_data(session_key.clone())
                .app_data(app_settings.clone())
                .app_data(throttle.clone())
                .app_data(relays.clone())
                .service(health::healthz)
                .service(health::readyz)
                .service(monitoring::serve_metrics)
                .service(receive_clerk_webhook)
                .service(receive_relay_webhook)
                .service(unsubscribe::confirm_unsubscribe)
                .service(unsubscribe::unsubscribe)
                .service(unsubscribe::save_preferences)
                .service(tracking::open_pixel)
                .service(tracking::tracked_link)
                .configure(api::configure)
                .configure(dashboard::configure)
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(server)
    }
}
