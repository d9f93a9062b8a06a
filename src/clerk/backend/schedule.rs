//! `[clerk.reconcile] every = "1d"`: a reconcile inside `roster serve`. Each process
//! checks every minute whether one is due (none began within `every`); beginning one
//! is decided under a lock in the database, so replicas on one database run one
//! between them.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::ClerkApi;
use super::reconcile::{begin_if_due, reconcile};
use crate::config::clerk::ClerkSettings;
use crate::telemetry::error_chain;

const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Runs the scheduled reconcile until `shutdown`.
pub async fn run_scheduled_reconciles(
    pool: PgPool,
    api: ClerkApi,
    settings: ClerkSettings,
    every: Duration,
    fix: bool,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let run = match begin_if_due(&pool, every).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot check whether a Clerk reconcile is due");
                continue;
            }
        };
        let progress = indicatif::ProgressBar::hidden();
        let run = reconcile(&pool, &api, &settings, fix, run, &progress);
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = run => match result {
                Ok(drift) => tracing::info!(
                    missing_in_roster = drift.missing_in_roster.len(),
                    missing_in_clerk = drift.missing_in_clerk.len(),
                    different = drift.different.len(),
                    fixed = drift.fixed,
                    "Clerk reconcile finished"
                ),
                Err(error) => tracing::error!(error = %format!("{error:#}"), "Clerk reconcile failed"),
            },
        }
    }
}
