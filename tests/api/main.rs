//! Roster's integration tests: one binary, a real PostgreSQL database per test.

mod clerk_sync;
mod cli;
mod db_proxy;
mod email;
mod health;
mod helpers;
mod jobs;
mod smtp_server;
mod webhook_delivery;
mod webhook_signature;
mod workflows;
