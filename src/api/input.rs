//! Middleware in front of every API route: a query parameter or a JSON body that
//! PostgreSQL could not store (a NUL anywhere, a number out of range, nesting past 128
//! levels) is refused with a 400 naming it before any handler runs, so nothing is
//! half-written and nothing ends in a 500.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::error::ApiError;
use super::{MAX_BODY_BYTES, too_large};
use crate::db::storable_json::check_storable;

pub async fn refuse_unstorable_input(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    for (name, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        if value.contains('\0') || name.contains('\0') {
            return Err(ApiError::field(
                name.to_string(),
                format!("`{name}` contains a NUL character."),
            )
            .into());
        }
    }
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if is_json {
        let mut body = BytesMut::new();
        let mut payload = request.take_payload();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("The body could not be read: {e}.")))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large().into());
            }
            body.extend_from_slice(&chunk);
        }
        let body: Bytes = body.freeze();
        // Not JSON at all is the extractor's to answer, in its own words.
        if let Ok(text) = std::str::from_utf8(&body)
            && let Err(problem) = check_storable(text)
            && !problem.not_json
        {
            let message = format!("The request body cannot be stored: {problem}.");
            return Err(ApiError::field(problem.path, message).into());
        }
        request.set_payload(Payload::from(body));
    }
    next.call(request).await
}
