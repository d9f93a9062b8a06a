//! The OpenAPI 3 document of the API, generated from the routes' annotations (their
//! bodies are described in `schema`) and served at `/api/openapi.json`.

use actix_web::{HttpResponse, get};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{analytics, loops, roster};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("ROSTER_API_KEY"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Roster API", description = "The Loops API v1 dialect and Roster's own routes. Every route takes `Authorization: Bearer $ROSTER_API_KEY`."),
    servers((url = "/api")),
    security(("api_key" = [])),
    modifiers(&BearerKey),
    paths(
        loops::account::test_api_key,
        loops::account::list_mailing_lists,
        loops::contacts::create_contact,
        loops::contacts::update_contact,
        loops::contacts::find_contact,
        loops::contacts::delete_contact_route,
        loops::properties::list_properties,
        loops::properties::create_property_route,
        loops::suppression::check_suppression,
        loops::suppression::remove_suppression,
        loops::events::send_event,
        loops::transactional::send_transactional,
        loops::transactional::list_transactional,
        loops::transactional::list_transactional_emails,
        roster::contacts::list_contacts,
        roster::contacts::export_contacts,
        roster::contacts::contact_timeline,
        roster::events::list_events,
        roster::runs::list_runs,
        roster::runs::list_deliveries,
        roster::runs::list_jobs,
        roster::runs::replay_job,
        roster::segments::create,
        roster::segments::list,
        roster::segments::show,
        roster::segments::update,
        roster::segments::remove,
        roster::segments::contacts,
        roster::campaigns::create,
        roster::campaigns::list,
        roster::campaigns::show,
        roster::campaigns::update,
        roster::campaigns::cancel,
        roster::campaigns::preview,
        roster::campaigns::test_send,
        analytics::growth,
        analytics::churn,
        analytics::waitlist,
        analytics::events,
        analytics::active_users,
        analytics::auth_health,
        analytics::deliverability,
    )
)]
pub struct ApiDoc;

/// The OpenAPI document; public, it holds no data.
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
