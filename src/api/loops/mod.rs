//! The Loops API v1 dialect: same paths, bodies, status codes and error shape, so the
//! official Loops SDKs work with their API root set to `http://<roster>/api/`.

pub mod account;
pub mod contacts;
pub mod events;
pub mod properties;
pub mod suppression;
pub mod transactional;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(account::test_api_key)
        .service(account::list_mailing_lists)
        .service(contacts::create_contact)
        .service(contacts::update_contact)
        .service(contacts::find_contact)
        .service(contacts::delete_contact_route)
        .service(properties::list_properties)
        .service(properties::create_property_route)
        .service(suppression::check_suppression)
        .service(suppression::remove_suppression)
        .service(events::send_event)
        .service(transactional::send_transactional)
        .service(transactional::list_transactional)
        .service(transactional::list_transactional_emails);
}
