//! Logging in with the API key, and out. The login form is protected against CSRF by
//! a token bound to a random nonce in a short-lived cookie of its own.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use minijinja::context;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::session::{Session, SessionKey};
use super::{DashboardError, Views, see_other};
use crate::api::auth::ApiKey;

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
) -> Result<HttpResponse, DashboardError> {
    let next = safe_next(form.next.as_deref());
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
        return login_form(&views, &key, &next, Some("That is not the API key."));
    }
    let Some(cookie) = key.login_cookie() else {
        return login_form(&views, &key, &next, None);
    };
    let mut response = see_other(&next);
    response
        .add_cookie(&cookie)
        .map_err(|e| DashboardError::Unexpected(e.into()))?;
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

#[post("/logout")]
pub async fn log_out(
    session: Session,
    form: web::Form<CsrfForm>,
    key: web::Data<SessionKey>,
) -> Result<HttpResponse, DashboardError> {
    session.check_csrf(&form.csrf)?;
    let mut response = see_other("/login");
    response
        .add_cookie(&key.logout_cookie())
        .map_err(|e| DashboardError::Unexpected(e.into()))?;
    Ok(response)
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
