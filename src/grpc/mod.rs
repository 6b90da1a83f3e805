//! The gRPC surface: generated `herald.v1` types, conversions between them
//! and domain types, and one service implementation per proto service.
//!
//! Handlers authenticate, convert, call an `App` operation and convert back;
//! they hold no logic of their own.

mod auth_configs;
mod convert;
mod events;
mod notifications;
mod personal;
mod resources;
mod subscriptions;
mod users;

pub use auth_configs::AuthConfigApi;
pub use events::EventApi;
pub use notifications::NotificationApi;
pub use personal::PersonalApi;
pub use resources::ResourceApi;
pub use subscriptions::SubscriptionApi;
pub use users::UserApi;

/// Generated types and stubs of package `herald.v1`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)] // generated code
    tonic::include_proto!("herald.v1");

    /// Encoded `FileDescriptorSet` of every Herald proto (for reflection and JSON output).
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("herald_descriptor");
}
