//! Roster: a self-hosted audience manager for apps built on Clerk.

pub mod activity;
pub mod api;
pub mod campaigns;
pub mod clerk;
pub mod config;
pub mod contacts;
pub mod db;
pub mod email;
pub mod events;
pub mod export;
pub mod forward;
pub mod health;
pub mod import;
pub mod input;
pub mod jobs;
pub mod monitoring;
pub mod page;
pub mod relays;
pub mod replay;
pub mod segments;
pub mod startup;
pub mod telemetry;
pub mod web;
pub mod webhooks;
pub mod workflows;
