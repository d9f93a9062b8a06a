//! Roster's own API, beyond Loops: what the dashboard reads.

pub mod campaigns;
pub mod contacts;
pub mod events;
pub mod runs;
pub mod segments;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Before `/v1/contacts/{id}`, which would take `export` for an ID.
    cfg.service(contacts::export_contacts)
        .service(contacts::list_contacts)
        .service(contacts::contact_timeline)
        .service(events::list_events)
        .service(runs::list_runs)
        .service(runs::list_deliveries)
        .service(runs::list_jobs)
        .service(runs::replay_job)
        .service(segments::create)
        .service(segments::list)
        .service(segments::show)
        .service(segments::update)
        .service(segments::remove)
        .service(segments::contacts)
        .service(campaigns::create)
        .service(campaigns::list)
        .service(campaigns::show)
        .service(campaigns::update)
        .service(campaigns::cancel)
        .service(campaigns::preview)
        .service(campaigns::test_send);
}
