//! Roster's own API, beyond Loops: what the dashboard reads.

pub mod contacts;
pub mod events;
pub mod runs;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(contacts::list_contacts)
        .service(contacts::contact_timeline)
        .service(events::list_events)
        .service(runs::list_runs)
        .service(runs::list_deliveries)
        .service(runs::list_jobs)
        .service(runs::replay_job);
}
