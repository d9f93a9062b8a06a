//! Logging in with the API key, and out. The login form is protected against CSRF by
//! a token bound to a random nonce in a short-lived cookie of its own.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use minijinja::context;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{self, Session, SessionKey};
use super::{DashboardError, Views, see_other};
use crate::api::auth::ApiKey;
use crate::api::throttle::{FailedAuthThrottle, retry_after_seconds};

const LOGIN_COOKIE: &str = "roster_login";

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site: never another origin (`//evil.test`, `https://...`), nor
/// anything a browser cleans up into one (`/\evil.test`, `/<tab>/evil.test`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && next.chars().all(|c| c.is_ascii_graphic()) =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_form(
    views: &Views,
    key: &SessionKey,
    next: &str,
    error: Option<&str>,
) -> Result<HttpResponse, DashboardError> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut response = views.render(
        "login.html",
        context! {
            configured => key.configured(), token => key.login_token(&nonce), nonce => nonce.clone(),
            next, error,
        },
    )?;
    if error.is_some() || !key.configured() {
        *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
    }
    let cookie = Cookie::build(LOGIN_COOKIE, nonce)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::minutes(30))
        .finish();
    response
        .add_cookie(&cookie)
        .map_err(|e| DashboardError::Unexpected(e.into()))?;
    Ok(response)
}

/// The login form again, answered 429 with `Retry-After`.
fn too_many_failures(
    views: &Views,
    key: &SessionKey,
    next: &str,
    wait: std::time::Duration,
) -> Result<HttpResponse, DashboardError> {
    let seconds = retry_after_seconds(wait);
    let message =
        format!("Too many failed logins from your address; try again in {seconds} seconds.");
    let mut response = login_form(views, key, next, Some(&message))?;
    *response.status_mut() = actix_web::http::StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(seconds),
    );
    Ok(response)
}

#[get("/login")]
pub async fn login_page(
    query: web::Query<LoginQuery>,
    views: web::Data<Views>,
    key: web::Data<SessionKey>,
) -> Result<HttpResponse, DashboardError> {
    login_form(&views, &key, &safe_next(query.next.as_deref()), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    key: String,
    nonce: String,
    token: String,
    next: Option<String>,
}

#[post("/login")]
pub async fn log_in(
    request: HttpRequest,
    form: web::Form<LoginForm>,
    views: web::Data<Views>,
    key: web::Data<SessionKey>,
    api_key: web::Data<ApiKey>,
    throttle: web::Data<FailedAuthThrottle>,
) -> Result<HttpResponse, DashboardError> {
    let next = safe_next(form.next.as_deref());
    let address = request.peer_addr().map(|a| a.ip());
    if let Some(wait) = address.and_then(|address| throttle.wait(address)) {
        return too_many_failures(&views, &key, &next, wait);
    }
    let nonce_matches = request
        .cookie(LOGIN_COOKIE)
        .is_some_and(|cookie| bool::from(cookie.value().as_bytes().ct_eq(form.nonce.as_bytes())));
    let token_matches: bool = key
        .login_token(&form.nonce)
        .as_bytes()
        .ct_eq(form.token.as_bytes())
        .into();
    if !nonce_matches || !token_matches {
        return login_form(
            &views,
            &key,
            &next,
            Some("This form expired. Log in again."),
        );
    }
    if !api_key.accepts(&form.key) {
        tracing::info!("dashboard login refused");
        if let Some(wait) = address.and_then(|address| throttle.failed(address)) {
            tracing::warn!(address = ?address, "dashboard login failures throttled");
            return too_many_failures(&views, &key, &next, wait);
        }
        return login_form(&views, &key, &next, Some("That is not the API key."));
    }
    session::log_in(&request)?;
    Ok(see_other(&next))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

#[post("/logout")]
pub async fn log_out(
    request: HttpRequest,
    session: Session,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    session::log_out(&request);
    Ok(see_other("/login"))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/contacts/1?x=2")), "/contacts/1?x=2");
        assert_eq!(safe_next(Some("//evil.test/")), "/");
        assert_eq!(safe_next(Some("https://evil.test/")), "/");
        assert_eq!(safe_next(Some("/\\evil.test")), "/");
        assert_eq!(safe_next(Some("/\t/evil.test")), "/");
        assert_eq!(safe_next(Some("/\n/evil.test")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
