//! Errors of the API in Loops' shape: `{"success": false, "message": "..."}`, with the
//! offending field in `path` when one field is to blame.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::contacts::ContactError;
use crate::db;
use crate::input::InputError;
use crate::input::Invalid;
use crate::telemetry::error_chain;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    path: Option<String>,
    /// The cause of a 5xx, logged and never shown.
    source: Option<anyhow::Error>,
    /// Seconds for `Retry-After` (a 429).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            path: None,
            source: None,
            retry_after: None,
        }
    }

    /// 400 naming the field at fault and why.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    /// Names the field at fault.
    pub fn at(self, path: impl Into<String>) -> Self {
        Self {
            path: Some(path.into()),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid API key")
    }

    /// 429: this address failed its credentials too often; it may try again in
    /// `seconds`.
    pub fn too_many_failures(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed attempts; try again in {seconds} seconds."),
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body as Loops shapes it, also what an idempotent replay stores.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "success": false, "message": self.message });
        if let Some(path) = &self.path {
            body["path"] = json!(path);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // What Loops' `api-key` route answers, and what its SDK types expect.
            body["error"] = json!(self.message);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        match invalid.field {
            Some(field) => Self::field(field, invalid.message),
            None => Self::bad_request(invalid.message),
        }
    }
}

impl From<ContactError> for ApiError {
    fn from(error: ContactError) -> Self {
        match error {
            ContactError::Invalid(invalid) => invalid.into(),
            ContactError::Taken => Self::conflict(error.to_string()),
            ContactError::Changed => Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
            ContactError::Database(error) => error.into(),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        match error {
            InputError::Invalid(invalid) => invalid.into(),
            InputError::Database(error) => error.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if db::is_bad_data(&error) {
            tracing::info!(error = error_chain(&error), "a value the database refused");
            return Self::bad_request("A value is too long or out of range to be stored.");
        }
        if db::is_transient(&error) {
            Self {
                source: Some(error.into()),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable; retry later.",
                )
            }
        } else {
            anyhow::Error::from(error).into()
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self {
            source: Some(error),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            tracing::error!(error = error_chain(source.as_ref()), "API request failed");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        response.json(self.body())
    }
}
