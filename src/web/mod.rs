//! Pages for people rather than programs.

pub mod unsubscribe;

/// Text made safe inside HTML (and SVG): the five characters that could end a text
/// node or an attribute.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
