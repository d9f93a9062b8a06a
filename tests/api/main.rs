//! Roster's integration tests: one binary, a real PostgreSQL database per test.

mod analytics;
mod api_events;
mod api_failures;
mod clerk_sync;
mod cli;
mod dashboard;
mod database_restart;
mod db_proxy;
mod email;
mod health;
mod helpers;
mod hostile_input;
mod jobs;
mod loops_api;
mod monitoring;
mod own_cluster;
mod replay;
mod roster_api;
mod segments;
mod smtp_server;
mod states;
mod sync_model;
mod webhook_delivery;
mod webhook_signature;
mod workflow_versions;
mod workflows;
