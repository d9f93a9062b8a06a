//! `Idempotency-Key` for events and transactional sends, as Loops and useSend define
//! it: the same key with the same body replays the stored answer; with another body,
//! or while the first request is still in flight, it is a 409. Keys live 24 hours.
//!
//! The key is reserved in its own statement (so a concurrent request sees it in
//! flight) under a token naming this request. The work stores its answer in the work's
//! own transaction, only while the token still holds the key, so an accepted request
//! and its stored answer commit together or not at all. A refusal (4xx) is stored
//! after; a 5xx, or a request dropped half-way (the client went away, the server
//! stopped), releases the key so that the retry the client makes runs. A request that
//! neither answers nor releases (its process died) loses the key after a minute.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::error::ApiError;
use crate::telemetry::error_chain;

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_CHARS: usize = 100;

/// A key reserved for this request.
#[derive(Debug, Clone)]
pub struct Reservation {
    route: &'static str,
    key: String,
    token: Uuid,
}

impl Reservation {
    /// Stores the success answer in the caller's transaction; fails (so the caller
    /// rolls back) if the key is no longer this request's.
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        body: &serde_json::Value,
    ) -> Result<(), ApiError> {
        if store(conn, self, StatusCode::OK, body).await? {
            Ok(())
        } else {
            Err(ApiError::conflict(format!(
                "This request took too long and its {HEADER} was taken by a later one; nothing was done."
            )))
        }
    }
}

/// Releases the key when dropped unless the request settled it.
struct Guard {
    pool: PgPool,
    reservation: Option<Reservation>,
}

impl Guard {
    fn settled(&mut self) {
        self.reservation = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let pool = self.pool.clone();
            tokio::spawn(async move { release(&pool, &reservation).await });
        }
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
    let reservation = Reservation {
        route,
        key: key.to_owned(),
        token: Uuid::new_v4(),
    };
    let hash = Sha256::digest(body).to_vec();
    if let Some(answer) = reserve(pool, &reservation, &hash).await? {
        return Ok(answer);
    }
    let mut guard = Guard {
        pool: pool.clone(),
        reservation: Some(reservation.clone()),
    };
    match work(Some(reservation.clone())).await {
        Ok(body) => {
            guard.settled();
            Ok(HttpResponse::Ok().json(body))
        }
        Err(error) if error.status().is_server_error() => {
            release(pool, &reservation).await;
            guard.settled();
            Err(error)
        }
        Err(error) => {
            let mut conn = pool.acquire().await?;
            store(&mut conn, &reservation, error.status(), &error.body()).await?;
            guard.settled();
            Err(error)
        }
    }
}

/// Reserves the key; `Some(answer)` when the request must not run: the stored answer
/// of the same request, or a 409.
async fn reserve(
    pool: &PgPool,
    reservation: &Reservation,
    hash: &[u8],
) -> Result<Option<HttpResponse>, ApiError> {
    let mut conn = pool.acquire().await?;
    // A key older than 24 hours is free again; so is one whose request has been in
    // flight for a minute (its process died before answering or releasing it).
    let reserved = sqlx::query_scalar!(
        "insert into idempotency_keys (route, key, token, request_hash) values ($1, $2, $3, $4)
         on conflict (route, key) do update
             set token = excluded.token, request_hash = excluded.request_hash,
                 status = null, response = null, created_at = now()
             where idempotency_keys.created_at < now() - interval '24 hours'
                or (idempotency_keys.status is null and idempotency_keys.created_at < now() - interval '1 minute')
         returning true as \"reserved!\"",
        reservation.route,
        reservation.key,
        reservation.token,
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
        reservation.route,
        reservation.key
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

/// Stores the answer while the key is still this request's; false otherwise.
async fn store(
    conn: &mut PgConnection,
    reservation: &Reservation,
    status: StatusCode,
    body: &serde_json::Value,
) -> sqlx::Result<bool> {
    let stored = sqlx::query!(
        "update idempotency_keys set status = $4, response = $5
         where route = $1 and key = $2 and token = $3 and status is null",
        reservation.route,
        reservation.key,
        reservation.token,
        i16::try_from(status.as_u16()).unwrap_or(500),
        body
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(stored == 1)
}

/// Frees the key for a retry, if it is still this request's. Best effort: a key left
/// behind is freed after a minute.
async fn release(pool: &PgPool, reservation: &Reservation) {
    let released = sqlx::query!(
        "delete from idempotency_keys where route = $1 and key = $2 and token = $3 and status is null",
        reservation.route,
        reservation.key,
        reservation.token
    )
    .execute(pool)
    .await;
    if let Err(error) = released {
        tracing::warn!(
            error = error_chain(&error),
            "an Idempotency-Key could not be released; it frees itself in a minute"
        );
    }
}
