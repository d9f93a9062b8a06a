//! Dashboard sessions, kept by actix-session in PostgreSQL (`session_store`): the
//! cookie is HttpOnly, SameSite=Strict and signed, holds only a random key, and lasts
//! 12 hours; logging out deletes the session on the server, so a copied cookie stops
//! working. The session holds the CSRF token every form carries. The cookie's signing
//! key is derived from the API key, so changing the key logs everyone out.

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::{SessionExt, SessionMiddleware};
use actix_web::cookie::{Key, SameSite, time};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use super::DashboardError;
use super::session_store::PgSessionStore;

pub const SESSION_COOKIE: &str = "roster_session";
/// How long a login lasts.
const SESSION_HOURS: i64 = 12;
/// The session's entry holding its CSRF token; present only once logged in.
const CSRF: &str = "csrf";

/// The keys sessions and the login form are signed with; `None` without an API key
/// (no one can log in).
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

    /// The middleware that loads and stores sessions, for one HTTP worker's pool.
    pub fn middleware(&self, pool: PgPool) -> SessionMiddleware<PgSessionStore> {
        let cookie_key = match &self.key {
            Some(key) => Key::derive_from(key),
            // No API key: no one logs in, and no cookie of another install is valid.
            None => Key::generate(),
        };
        SessionMiddleware::builder(PgSessionStore::new(pool), cookie_key)
            .cookie_name(SESSION_COOKIE.to_owned())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_secure(self.secure)
            .cookie_path("/".to_owned())
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(time::Duration::hours(SESSION_HOURS))
                    // A login lasts 12 hours from the login, however busy.
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
            )
            .build()
    }

    /// The CSRF token of the login form, bound to the random `nonce` its cookie holds.
    pub fn login_token(&self, nonce: &str) -> String {
        self.sign(&format!("login:{nonce}")).unwrap_or_default()
    }
}

/// Starts a new session for this request (a fresh key, so a session fixed before the
/// login is never the logged-in one).
pub fn log_in(request: &HttpRequest) -> Result<(), DashboardError> {
    let session = request.get_session();
    session.renew();
    let csrf = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    session
        .insert(CSRF, csrf)
        .map_err(|e| DashboardError::Unexpected(anyhow::anyhow!("{e}")))
}

/// Ends this request's session on the server and removes its cookie.
pub fn log_out(request: &HttpRequest) {
    request.get_session().purge();
}

/// A logged-in request; extracting it from a request without a live session answers
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
        let csrf = request.get_session().get::<String>(CSRF).ok().flatten();
        let next = request
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        std::future::ready(
            csrf.map(|csrf| Session { csrf })
                .ok_or(DashboardError::LoginNeeded { next }),
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
