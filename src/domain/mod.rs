//! Pure domain types and rules with no I/O: ids, resources, permissions,
//! users, events and the NATS subject layout.
//!
//! Nothing here may touch the network, NATS or generated proto types.

pub mod consumer;
pub mod event;
pub mod ids;
pub mod page;
pub mod permission;
pub mod personal;
pub mod resource;
pub mod subject;
pub mod subscription;
pub mod user;
