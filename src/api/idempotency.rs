//! `Idempotency-Key` for events and transactional sends, as Loops and useSend define
//! it: the same key with the same body replays the stored answer; with another body,
//! or while the first request is still in flight, it is a 409. Keys live 24 hours.
//!
//! The key is reserved in its own statement (so a concurrent request sees it in
//! flight), the work records its answer in the work's own transaction (so an accepted
//! request and its stored answer commit together), an error answer is stored after,
//! and a 5xx releases the key so that the retry the client will make can run.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::error::ApiError;

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_CHARS: usize = 100;

/// A key reserved for this request.
#[derive(Debug, Clone)]
pub struct Reservation {
    route: &'static str,
    key: String,
}

impl Reservation {
    /// Stores the success answer in the caller's transaction.
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        body: &serde_json::Value,
    ) -> sqlx::Result<()> {
        store(conn, self, StatusCode::OK, body).await
    }
}

/// Runs `work` at most once per key: replays a stored answer, refuses a conflicting
/// or in-flight request, and otherwise runs it with the reservation (`None` without a
/// key), which `work` must `record` in its transaction on success.
pub async fn run_once<Work, Fut>(
    pool: &PgPool,
    route: &'static str,
    key: Option<&str>,
    body: &[u8],
    work: Work,
) -> Result<HttpResponse, ApiError>
where
    Work: FnOnce(Option<Reservation>) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, ApiError>>,
{
    let Some(key) = key else {
        return work(None).await.map(|body| HttpResponse::Ok().json(body));
    };
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ApiError::field(
            HEADER,
            format!("The {HEADER} header must be 1 to {MAX_KEY_CHARS} characters long."),
        ));
    }
    let hash = Sha256::digest(body).to_vec();
    if let Some(answer) = reserve(pool, route, key, &hash).await? {
        return Ok(answer);
    }
    let settle = Reservation {
        route,
        key: key.to_owned(),
    };
    match work(Some(settle.clone())).await {
        Ok(body) => Ok(HttpResponse::Ok().json(body)),
        Err(error) if error.status().is_server_error() => {
            sqlx::query!(
                "delete from idempotency_keys where route = $1 and key = $2 and status is null",
                settle.route,
                settle.key
            )
            .execute(pool)
            .await
            .ok(); // failing to release only delays the retry until the key goes stale
            Err(error)
        }
        Err(error) => {
            let mut conn = pool.acquire().await?;
            store(&mut conn, &settle, error.status(), &error.body()).await?;
            Err(error)
        }
    }
}

/// Reserves the key; `Some(answer)` when the request must not run: the stored answer
/// of the same request, or a 409.
async fn reserve(
    pool: &PgPool,
    route: &str,
    key: &str,
    hash: &[u8],
) -> Result<Option<HttpResponse>, ApiError> {
    let mut conn = pool.acquire().await?;
    // A key older than 24 hours is free again; so is one whose request has been in
    // flight for 5 minutes (its process died before answering).
    let reserved = sqlx::query_scalar!(
        "insert into idempotency_keys (route, key, request_hash) values ($1, $2, $3)
         on conflict (route, key) do update
             set request_hash = excluded.request_hash, status = null, response = null, created_at = now()
             where idempotency_keys.created_at < now() - interval '24 hours'
                or (idempotency_keys.status is null and idempotency_keys.created_at < now() - interval '5 minutes')
         returning true as \"reserved!\"",
        route,
        key,
        hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    if reserved.is_some() {
        sqlx::query!("delete from idempotency_keys where created_at < now() - interval '24 hours'")
            .execute(&mut *conn)
            .await?;
        return Ok(None);
    }
    let stored = sqlx::query!(
        "select request_hash, status, response from idempotency_keys where route = $1 and key = $2",
        route,
        key
    )
    .fetch_one(&mut *conn)
    .await?;
    if stored.request_hash != hash {
        return Err(ApiError::conflict(format!(
            "This {HEADER} was already used with a different request body."
        )));
    }
    match (stored.status, stored.response) {
        (Some(status), Some(response)) => {
            let status = StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(Some(
                HttpResponse::build(status)
                    .insert_header(("Idempotent-Replayed", "true"))
                    .json(response),
            ))
        }
        _ => Err(ApiError::conflict(format!(
            "A request with this {HEADER} is still being processed."
        ))),
    }
}

async fn store(
    conn: &mut PgConnection,
    reservation: &Reservation,
    status: StatusCode,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update idempotency_keys set status = $3, response = $4 where route = $1 and key = $2",
        reservation.route,
        reservation.key,
        i16::try_from(status.as_u16()).unwrap_or(500),
        body
    )
    .execute(conn)
    .await?;
    Ok(())
}
