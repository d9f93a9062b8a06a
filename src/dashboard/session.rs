//! Dashboard sessions: a signed, HttpOnly, SameSite=Strict cookie that says until when
//! the holder is logged in, and the CSRF token every form carries, derived from it.
//! The signing key is derived from the API key, so changing the key logs everyone out.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::DashboardError;

pub const SESSION_COOKIE: &str = "roster_session";
/// How long a login lasts.
const SESSION_HOURS: i64 = 12;

/// The key sessions are signed with; `None` without an API key (no one can log in).
#[derive(Clone)]
pub struct SessionKey {
    key: Option<[u8; 32]>,
    /// Set the cookie's `Secure` flag (PUBLIC_URL is https).
    secure: bool,
}

impl SessionKey {
    pub fn new(api_key: Option<&SecretString>, secure: bool) -> Self {
        let key = api_key.map(|api_key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(api_key.expose_secret().trim().as_bytes())
                .expect("HMAC takes any key length");
            mac.update(b"roster dashboard session");
            mac.finalize().into_bytes().into()
        });
        Self { key, secure }
    }

    pub fn configured(&self) -> bool {
        self.key.is_some()
    }

    fn sign(&self, message: &str) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key?).expect("any key length");
        mac.update(message.as_bytes());
        Some(hex(&mac.finalize().into_bytes()))
    }

    /// A new session cookie.
    pub fn login_cookie(&self) -> Option<Cookie<'static>> {
        let expires = Utc::now().timestamp() + SESSION_HOURS * 3600;
        let value = format!("{expires}.{}", self.sign(&expires.to_string())?);
        Some(self.cookie(value, time::Duration::hours(SESSION_HOURS)))
    }

    /// The cookie that logs out.
    pub fn logout_cookie(&self) -> Cookie<'static> {
        self.cookie(String::new(), time::Duration::ZERO)
    }

    fn cookie(&self, value: String, max_age: time::Duration) -> Cookie<'static> {
        Cookie::build(SESSION_COOKIE, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .max_age(max_age)
            .finish()
    }

    /// The session a cookie value holds, if it is ours and not expired.
    fn session(&self, value: &str) -> Option<Session> {
        let (expires, signature) = value.split_once('.')?;
        let expected = self.sign(expires)?;
        let valid: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
        let expires: i64 = expires.parse().ok()?;
        (valid && expires > Utc::now().timestamp()).then(|| Session {
            csrf: self.sign(&format!("csrf:{value}")).unwrap_or_default(),
        })
    }

    /// The CSRF token of the login form, bound to the random `nonce` its cookie holds.
    pub fn login_token(&self, nonce: &str) -> String {
        self.sign(&format!("login:{nonce}")).unwrap_or_default()
    }
}

/// A logged-in request; extracting it from a request without a valid session answers
/// with a redirect to the login page.
pub struct Session {
    csrf: String,
}

impl Session {
    /// The token forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), DashboardError> {
        let valid: bool = self.csrf.as_bytes().ct_eq(token.as_bytes()).into();
        if valid {
            Ok(())
        } else {
            Err(DashboardError::Forbidden)
        }
    }
}

impl FromRequest for Session {
    type Error = DashboardError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = request.app_data::<web::Data<SessionKey>>();
        let session = match (key, request.cookie(SESSION_COOKIE)) {
            (Some(key), Some(cookie)) => key.session(cookie.value()),
            _ => None,
        };
        let next = request
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        std::future::ready(session.ok_or(DashboardError::LoginNeeded { next }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_only_with_its_key_and_signature() {
        let key = SessionKey::new(Some(&SecretString::from("k-1")), false);
        let cookie = key.login_cookie().unwrap();
        assert!(key.session(cookie.value()).is_some());
        let other = SessionKey::new(Some(&SecretString::from("k-2")), false);
        assert!(other.session(cookie.value()).is_none(), "another API key");
        let (expires, _) = cookie.value().split_once('.').unwrap();
        assert!(
            key.session(&format!("{expires}.00")).is_none(),
            "forged signature"
        );
        let later = (expires.parse::<i64>().unwrap() + 3600).to_string();
        assert!(
            key.session(&format!(
                "{later}.{}",
                key.sign(&later).unwrap()[..10].to_owned()
            ))
            .is_none()
        );
        assert!(SessionKey::new(None, false).login_cookie().is_none());
    }

    #[test]
    fn an_expired_session_is_refused() {
        let key = SessionKey::new(Some(&SecretString::from("k-1")), false);
        let past = (Utc::now().timestamp() - 1).to_string();
        let signed = format!("{past}.{}", key.sign(&past).unwrap());
        assert!(key.session(&signed).is_none());
        let future = (Utc::now().timestamp() + 60).to_string();
        assert!(
            key.session(&format!("{future}.{}", key.sign(&future).unwrap()))
                .is_some()
        );
    }
}
