//! Email: templates, message building, the transport, the send budget, unsubscribe
//! tokens, the suppression list, and addresses masked for the log. Deciding what to send is the
//! workflow engine's job.

pub mod budget;
pub mod engagement;
pub mod mask;
pub mod message;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod transport;
pub mod unsubscribe;
