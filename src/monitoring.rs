//! Monitoring: `GET /metrics` in Prometheus' text format: counters and histograms recorded where
//! things happen (webhooks, jobs, emails), and the queue's gauges read from the
//! database when scraped, so they are right whichever process did the work.

use std::sync::OnceLock;

use crate::clerk::backend::reconcile::last_reconcile;
use crate::telemetry::error_chain;
use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

/// Webhook outcomes: `processed`, `duplicate`, `ignored`, or the refusal.
pub const WEBHOOKS: &str = "roster_webhooks_received_total";
pub const SIGNATURE_FAILURES: &str = "roster_webhook_signature_failures_total";
pub const INGEST_SECONDS: &str = "roster_webhook_ingest_seconds";
pub const JOBS_RETRIED: &str = "roster_jobs_retried_total";
/// Jobs put back for later without spending an attempt (a send waiting for the send
/// rate), by `lane`: `bulk` or `other`.
pub const JOBS_DEFERRED: &str = "roster_jobs_deferred_total";
/// Emails by outcome: `sent`, `failed`, `retrying`, `suppressed`.
pub const EMAILS: &str = "roster_emails_total";
/// Relay webhook events by `provider`, `kind` (`delivered`, `hard_bounce`,
/// `soft_bounce`, `complaint`, `other`) and `outcome` (`applied`, `unmatched`,
/// `duplicate`).
pub const RELAY_EVENTS: &str = "roster_relay_events_total";
/// Opens and clicks of tracked email, by `kind` (`open`, `click`) and `machine`.
pub const EMAIL_ENGAGEMENTS: &str = "roster_email_engagements_total";
/// From the Clerk event (its envelope time) to SMTP accepting the email it caused.
pub const EVENT_TO_EMAIL_SECONDS: &str = "roster_event_to_email_accepted_seconds";

/// Drift the last Clerk reconcile found, by `kind`: `missing_in_roster`,
/// `missing_in_clerk`, `different`.
pub const CLERK_DRIFT: &str = "roster_clerk_drift";
/// Events a destination of `[forward.*]` accepted, by destination.
pub const FORWARDED_EVENTS: &str = "roster_forwarded_events_total";
/// Forward attempts a destination refused or did not answer (a 429 included).
pub const FORWARD_FAILURES: &str = "roster_forward_failures_total";
/// Forwarded events Tinybird took into the data source's quarantine (rows its schema
/// refused), by destination.
pub const FORWARD_QUARANTINED: &str = "roster_forward_quarantined_total";

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(INGEST_SECONDS.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(EVENT_TO_EMAIL_SECONDS.to_owned()),
                    &[
                        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                    ],
                )
            })
            .expect("valid buckets")
            .install_recorder()
            .expect("the only metrics recorder")
    })
}

#[get("/metrics")]
pub async fn serve_metrics(
    pool: web::Data<PgPool>,
    forwarder: web::Data<crate::forward::Forwarder>,
) -> HttpResponse {
    let handle = handle();
    // The queue as the database has it; a scrape while it is down keeps the last values.
    let queue = sqlx::query!(
        r#"select
             (select count(*) from jobs where state = 'scheduled' and not bulk and run_at <= now()) as "due!",
             (select count(*) from jobs where state = 'scheduled' and bulk and run_at <= now()) as "bulk_due!",
             (select count(*) from jobs where state = 'running') as "running!",
             (select count(*) from jobs where state = 'dead') as "dead!",
             (select coalesce(extract(epoch from now() - min(run_at)), 0)::float8
                from jobs where state = 'scheduled' and not bulk and run_at <= now()) as "lag_seconds!""#
    )
    .fetch_one(pool.get_ref())
    .await;
    match queue {
        Ok(queue) => {
            metrics::gauge!("roster_jobs_due").set((queue.due + queue.bulk_due) as f64);
            metrics::gauge!("roster_bulk_jobs_due").set(queue.bulk_due as f64);
            metrics::gauge!("roster_jobs_running").set(queue.running as f64);
            metrics::gauge!("roster_jobs_dead").set(queue.dead as f64);
            metrics::gauge!("roster_queue_lag_seconds").set(queue.lag_seconds);
            metrics::gauge!("roster_database_up").set(1.0);
        }
        Err(error) => {
            tracing::warn!(
                error = error_chain(&error),
                "metrics: the queue could not be read"
            );
            metrics::gauge!("roster_database_up").set(0.0);
        }
    }
    // The drift the last Clerk reconcile found, whichever process ran it.
    if let Ok(Some(last)) = last_reconcile(pool.get_ref()).await {
        for (kind, drift) in [
            ("missing_in_roster", last.missing_in_roster),
            ("missing_in_clerk", last.missing_in_clerk),
            ("different", last.different),
        ] {
            metrics::gauge!(CLERK_DRIFT, "kind" => kind).set(f64::from(drift));
        }
        metrics::gauge!("roster_clerk_reconciled_timestamp_seconds")
            .set(last.finished_at.timestamp() as f64);
    }
    // What waits to be forwarded, whichever process forwards it.
    if let Ok(outboxes) = crate::forward::outbox::lag(pool.get_ref(), forwarder.names()).await {
        for outbox in outboxes {
            let labels = [("destination", outbox.destination)];
            metrics::gauge!("roster_forward_pending", &labels).set(outbox.pending as f64);
            metrics::gauge!("roster_forward_lag_seconds", &labels).set(outbox.lag_seconds);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
