//! Email: templates, message building and transport. Sending is the workflow engine's
//! job; nothing here touches the database.

pub mod message;
pub mod suppressions;
pub mod templates;
pub mod transport;
pub mod unsubscribe;
