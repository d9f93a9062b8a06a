//! `Authorization: Bearer $ROSTER_API_KEY` in front of every `/api` route. Without a
//! configured key every request is refused. Failed keys are throttled per client
//! address (`web::throttle`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::web;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::api::throttle::{FailedAuthThrottle, retry_after_seconds};

/// The API key, kept as its SHA-256 so that comparing takes the same time however
/// many leading bytes a guess gets right.
#[derive(Clone)]
pub struct ApiKey(Option<[u8; 32]>);

impl ApiKey {
    pub fn new(key: Option<&SecretString>) -> Self {
        Self(key.map(|key| Sha256::digest(key.expose_secret().trim().as_bytes()).into()))
    }

    pub fn accepts(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.is_some_and(|key| bool::from(key.ct_eq(&presented)))
    }
}

/// Middleware: refuses the request with 401 unless it carries the key.
pub async fn require_api_key(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let throttle = request.app_data::<web::Data<FailedAuthThrottle>>();
    let address = request.peer_addr().map(|a| a.ip());
    if let (Some(throttle), Some(address)) = (throttle, address)
        && let Some(wait) = throttle.wait(address)
    {
        return Err(ApiError::too_many_failures(retry_after_seconds(wait)).into());
    }
    let accepted = match (request.app_data::<web::Data<ApiKey>>(), presented) {
        (Some(key), Some(presented)) => key.accepts(presented),
        _ => false,
    };
    if !accepted {
        // A guess counts; a request with no key at all guesses nothing.
        if let (Some(throttle), Some(address), Some(_)) = (throttle, address, presented)
            && let Some(wait) = throttle.failed(address)
        {
            tracing::warn!(%address, "API key failures throttled");
            return Err(ApiError::too_many_failures(retry_after_seconds(wait)).into());
        }
        return Err(ApiError::unauthorized().into());
    }
    next.call(request).await
}

#[cfg(test)]
mod tests {
    use super::ApiKey;
    use secrecy::SecretString;

    #[test]
    fn only_the_configured_key_is_accepted() {
        let key = ApiKey::new(Some(&SecretString::from("k-123")));
        assert!(key.accepts("k-123"));
        assert!(!key.accepts("k-124"));
        assert!(!key.accepts(""));
        assert!(!ApiKey::new(None).accepts(""));
    }
}
