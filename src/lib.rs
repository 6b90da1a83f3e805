//! Herald: a notification broker on NATS JetStream.
//!
//! See `ARCHITECTURE.md` for the map of this crate.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod personal;
pub mod resources;
pub mod server;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
