//! Email: templates, message building, the transport (SMTP connections in `smtp.rs`), the send budget, unsubscribe
//! tokens, the suppression list, and addresses masked for the log. Deciding what to send is the
//! workflow engine's job.

pub mod budget;
pub mod engagement;
pub mod mask;
pub mod message;
pub mod smtp;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod transport;
pub mod unsubscribe;
