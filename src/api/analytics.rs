//! `/api/v1/analytics/...`: each takes `from`, `to` (RFC 3339 or YYYY-MM-DD, UTC;
//! default the last 30 days) and `interval` (day, week or month; default day).

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use sqlx::PgPool;

use super::error::ApiError;
use crate::events::analytics;
use crate::events::range::{Range, RangeQuery, snapshot};

fn answer(range: &Range, body: serde_json::Value) -> HttpResponse {
    let mut answer = json!({ "from": range.from, "to": range.to, "interval": range.interval });
    if let (Some(answer), serde_json::Value::Object(body)) = (answer.as_object_mut(), body) {
        answer.extend(body);
    }
    HttpResponse::Ok().json(answer)
}

/// Sign-ups, deletions, net growth, running total of users and churn rate per bucket;
/// organizations likewise.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/growth")]
pub async fn growth(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let buckets = analytics::growth(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!({ "buckets": buckets })))
}

/// Churn rate per bucket: deletions over the users at the bucket's start.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/churn")]
pub async fn churn(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let buckets: Vec<_> = analytics::growth(&mut *snapshot(&pool).await?, &range)
        .await?
        .into_iter()
        .map(|b| {
            json!({
                "start": b.start,
                "usersAtStart": b.total_users - b.net_growth,
                "deletions": b.deletions,
                "churnRate": b.churn_rate,
            })
        })
        .collect();
    Ok(answer(&range, json!({ "buckets": buckets })))
}

/// The waitlist funnel: joined, invited, graduated, rejected per bucket; conversion
/// rate; median and p90 time from joining to graduating.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/waitlist")]
pub async fn waitlist(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let funnel = analytics::waitlist_funnel(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!(funnel)))
}

/// Clerk events by type per bucket.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/events")]
pub async fn events(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let counts = analytics::event_counts(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!(counts)))
}

/// Distinct users with a new session per bucket.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/active-users")]
pub async fn active_users(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let buckets = analytics::active_users(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!({ "buckets": buckets })))
}

/// Banned and locked users, failed verifications and revoked sessions per bucket.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/auth")]
pub async fn auth_health(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let buckets = analytics::auth_health(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!({ "buckets": buckets })))
}

/// Of the emails sent in each bucket, how many relays reported delivered, hard- or
/// soft-bounced, or complained about, with bounce and complaint rates; the same per
/// template, workflow and campaign, and `warnings` when the range's complaint rate
/// passes 0.3% or its hard bounce rate 2%.
#[utoipa::path(tag = "Analytics", params(RangeQuery),
    responses((status = 200, body = crate::api::schema::AnalyticsBody),
              (status = 400, body = crate::api::schema::ErrorBody)))]
#[get("/v1/analytics/deliverability")]
pub async fn deliverability(
    query: web::Query<RangeQuery>,
    pool: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let figures =
        crate::relays::deliverability::deliverability(&mut *snapshot(&pool).await?, &range).await?;
    Ok(answer(&range, json!(figures)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(growth)
        .service(deliverability)
        .service(churn)
        .service(waitlist)
        .service(events)
        .service(active_users)
        .service(auth_health);
}
