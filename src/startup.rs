//! Builds the HTTP application from `Settings`; `roster serve` and the tests both use it.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::api;
use crate::api::auth::ApiKey;
use crate::clerk::signature::SignatureVerifier;
use crate::clerk::webhook::receive_clerk_webhook;
use crate::config::Settings;
use crate::dashboard::{self, Views, session::SessionKey};
use crate::db::Database;
use crate::email::templates::Templates;
use crate::email::unsubscribe::UnsubscribeKey;
use crate::web::request_log::RouteSpan;
use crate::web::throttle::FailedAuthThrottle;
use crate::web::unsubscribe;
use crate::workflows::Workflows;
use crate::{health, monitoring};

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `settings.addr` (port 0 picks a free port) and wires the routes.
    pub fn build(
        settings: &Settings,
        database: Database,
        workflows: Arc<Workflows>,
        templates: Arc<Templates>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.addr))?;
        let port = listener.local_addr()?.port();
        let workers = settings.http_workers;
        let verifier = web::Data::new(SignatureVerifier::new(&settings.clerk_webhook_secrets));
        let clerk_settings = web::Data::new(settings.file.clerk.clone());
        let config_file = web::Data::new(settings.file.clone());
        let api_key = web::Data::new(ApiKey::new(settings.api_key.as_ref()));
        let templates = web::Data::from(templates);
        let views = web::Data::new(Views::new());
        let session_key = web::Data::new(SessionKey::new(
            settings.api_key.as_ref(),
            settings.public_url.scheme() == "https",
        ));
        let app_settings = web::Data::new(settings.clone());
        let throttle = web::Data::new(FailedAuthThrottle::default());
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
                .app_data(api_key.clone())
                .app_data(templates.clone())
                .app_data(views.clone())
                .app_data(session_key.clone())
                .app_data(app_settings.clone())
                .app_data(throttle.clone())
                .service(health::healthz)
                .service(health::readyz)
                .service(monitoring::serve_metrics)
                .service(receive_clerk_webhook)
                .service(unsubscribe::confirm_unsubscribe)
                .service(unsubscribe::unsubscribe)
                .configure(api::configure)
                .configure(dashboard::configure)
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
