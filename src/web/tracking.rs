//! `GET /t/o/{token}` (the open pixel) and `GET /t/c/{token}` (a tracked link): each
//! records what it reports and answers the pixel or a 302 to the link the email had. A
//! forged or altered token answers 404, so these never redirect anywhere else.

use actix_web::http::header::{CACHE_CONTROL, LOCATION, USER_AGENT};
use actix_web::{HttpRequest, HttpResponse, get, web};
use sqlx::PgPool;

use crate::email::engagement::{Engagement, record_engagement};
use crate::email::tracking::{Kind, Tracked, read};
use crate::email::unsubscribe::UnsubscribeKey;
use crate::telemetry::error_chain;
use crate::workflows::Workflows;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

#[get("/t/o/{token}")]
pub async fn open_pixel(
    token: web::Path<String>,
    request: HttpRequest,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> HttpResponse {
    let Some(tracked) = verified(&key, Kind::Open, &token) else {
        return not_found();
    };
    record(&request, &pool, &workflows, Engagement::Open, &tracked).await;
    HttpResponse::Ok()
        .content_type("image/gif")
        .insert_header((CACHE_CONTROL, "no-store, private"))
        .body(PIXEL)
}

#[get("/t/c/{token}")]
pub async fn tracked_link(
    token: web::Path<String>,
    request: HttpRequest,
    key: web::Data<Option<UnsubscribeKey>>,
    pool: web::Data<PgPool>,
    workflows: web::Data<Workflows>,
) -> HttpResponse {
    let Some(tracked) = verified(&key, Kind::Click, &token) else {
        return not_found();
    };
    let Some(target) = tracked
        .url
        .as_deref()
        .and_then(|url| url::Url::parse(url).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
    else {
        return not_found();
    };
    record(&request, &pool, &workflows, Engagement::Click, &tracked).await;
    HttpResponse::Found()
        .insert_header((LOCATION, target.as_str()))
        .insert_header((CACHE_CONTROL, "no-store, private"))
        .finish()
}

fn verified(key: &Option<UnsubscribeKey>, kind: Kind, token: &str) -> Option<Tracked> {
    key.as_ref().and_then(|key| read(key, kind, token))
}

/// Records it; a failure is logged, never in the way of the pixel or the link.
async fn record(
    request: &HttpRequest,
    pool: &PgPool,
    workflows: &Workflows,
    kind: Engagement,
    tracked: &Tracked,
) {
    let agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok());
    if let Err(error) = record_engagement(pool, workflows.webhooks(), kind, tracked, agent).await {
        tracing::warn!(
            error = error_chain(&error),
            "an open or click could not be recorded"
        );
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("This link is not valid.")
}
