//! Herald's integration tests: one binary, one module per capability, each
//! test against its own real nats-server.

mod cli;
mod cluster;
mod consumers;
mod events;
mod ops;
mod personal;
mod receivers;
mod resources;
mod server;
mod support;
mod users;
mod webhooks;
