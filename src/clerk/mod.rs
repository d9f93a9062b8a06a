//! Clerk webhooks: Svix signature verification, the typed event envelope, redaction of
//! secrets, and the rules that keep contacts in step with Clerk.

pub mod apply;
pub mod backend;
pub mod envelope;
pub mod redact;
pub mod samples;
pub mod signature;
pub mod subject;
pub mod sync;
pub mod triggers;
pub mod webhook;
