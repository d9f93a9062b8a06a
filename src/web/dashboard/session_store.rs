//! Where dashboard sessions live: actix-session's `SessionStore` on PostgreSQL, so a
//! session can be ended on the server (log out) and expires there. The cookie holds a
//! random key; the table keeps only its SHA-256.

use std::collections::HashMap;

use crate::telemetry::error_chain;
use actix_session::storage::{
    LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key,
};
use actix_web::cookie::time::Duration;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

type SessionState = HashMap<String, String>;

#[derive(Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn key_hash(key: &SessionKey) -> Vec<u8> {
    Sha256::digest(key.as_ref().as_bytes()).to_vec()
}

fn seconds(ttl: &Duration) -> f64 {
    ttl.as_seconds_f64()
}

impl SessionStore for PgSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let state = sqlx::query_scalar!(
            "select state from dashboard_sessions where key_hash = $1 and expires_at > now()",
            key_hash(key),
        )
        .fetch_optional(&self.pool)
        .await;
        match state {
            Ok(Some(state)) => serde_json::from_value(state)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
            Ok(None) => Ok(None),
            // The page then asks for a login rather than failing; the session itself
            // is still there when the database is back.
            Err(error) => {
                tracing::warn!(
                    error = error_chain(&error),
                    "cannot read the dashboard session"
                );
                Ok(None)
            }
        }
    }

    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let key = generate_session_key();
        let state = serde_json::to_value(state).map_err(|e| SaveError::Serialization(e.into()))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        // Logins are rare: each one sweeps the sessions that have expired.
        sqlx::query!("delete from dashboard_sessions where expires_at <= now()")
            .execute(&mut *tx)
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        sqlx::query!(
            "insert into dashboard_sessions (key_hash, state, expires_at)
             values ($1, $2, now() + make_interval(secs => $3))",
            key_hash(&key),
            state,
            seconds(ttl),
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| SaveError::Other(e.into()))?;
        tx.commit().await.map_err(|e| SaveError::Other(e.into()))?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json =
            serde_json::to_value(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let updated = sqlx::query!(
            "update dashboard_sessions set state = $2, expires_at = now() + make_interval(secs => $3)
             where key_hash = $1 and expires_at > now()",
            key_hash(&key),
            json,
            seconds(ttl),
        )
        .execute(&self.pool)
        .await
        .map_err(|e| UpdateError::Other(e.into()))?;
        if updated.rows_affected() == 1 {
            return Ok(key);
        }
        // Ended meanwhile (logged out elsewhere, or expired): a new key, never the old.
        self.save(state, ttl).await.map_err(|e| match e {
            SaveError::Serialization(e) => UpdateError::Serialization(e),
            SaveError::Other(e) => UpdateError::Other(e),
        })
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        sqlx::query!(
            "update dashboard_sessions set expires_at = now() + make_interval(secs => $2)
             where key_hash = $1 and expires_at > now()",
            key_hash(key),
            seconds(ttl),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        sqlx::query!(
            "delete from dashboard_sessions where key_hash = $1",
            key_hash(key)
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
