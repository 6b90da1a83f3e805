//! The CLI's gRPC connection: TLS for https:// addresses and the bearer token
//! on every call.

use anyhow::Context as _;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use crate::grpc::pb::{
    event_notification_service_client::EventNotificationServiceClient, event_service_client::EventServiceClient,
    personal_notification_service_client::PersonalNotificationServiceClient,
    resource_service_client::ResourceServiceClient, subscription_auth_service_client::SubscriptionAuthServiceClient,
    subscription_service_client::SubscriptionServiceClient, user_service_client::UserServiceClient,
};

/// Adds `authorization: Bearer <token>` to each request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// Typed clients sharing one channel.
pub struct Clients {
    channel: Channel,
    bearer: Bearer,
}

impl Clients {
    /// Connects to `server` with an optional bearer `token`.
    pub async fn connect(server: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let mut endpoint =
            Endpoint::from_shared(server.to_owned()).with_context(|| format!("invalid --server {server}"))?;
        if server.starts_with("https://") {
            endpoint = endpoint.tls_config(ClientTlsConfig::new().with_native_roots())?;
        }
        let channel = endpoint.connect().await.with_context(|| format!("failed to connect to {server}"))?;
        let bearer = match token {
            Some(t) => Some(format!("Bearer {t}").parse().context("the token contains invalid characters")?),
            None => None,
        };
        Ok(Clients { channel, bearer: Bearer(bearer) })
    }

    pub fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn resources(&self) -> ResourceServiceClient<Authed> {
        ResourceServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn events(&self) -> EventServiceClient<Authed> {
        EventServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn subscriptions(&self) -> SubscriptionServiceClient<Authed> {
        SubscriptionServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(256 * 1024 * 1024)
    }

    pub fn auth_configs(&self) -> SubscriptionAuthServiceClient<Authed> {
        SubscriptionAuthServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn personal(&self) -> PersonalNotificationServiceClient<Authed> {
        PersonalNotificationServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(256 * 1024 * 1024)
    }

    pub fn notifications(&self) -> EventNotificationServiceClient<Authed> {
        EventNotificationServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(256 * 1024 * 1024)
    }
}
