//! Pages for people rather than programs: the dashboard, the unsubscribe pages, and
//! what every response carries (security headers, the request log's span).

pub mod dashboard;
pub mod request_log;
pub mod tracking;
pub mod unsubscribe;

use actix_web::middleware::DefaultHeaders;

/// Nothing of Roster is framed by another site, no script runs on any page (there is
/// none), forms post only here, and no address leaks through `Referer`. Inline styles
/// stay allowed for the emails the dashboard previews. On every response (a page that
/// sets its own keeps it).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "content-security-policy",
            "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .add(("x-frame-options", "DENY"))
        .add(("referrer-policy", "no-referrer"))
        .add(("x-content-type-options", "nosniff"))
}

/// Text made safe inside HTML (and SVG): the five characters that could end a text
/// node or an attribute.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
