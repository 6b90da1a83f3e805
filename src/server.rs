//! Starting and stopping a Herald replica: NATS (embedded or external), the
//! application state, and the gRPC server with health and reflection.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig, server::TcpIncoming};

use crate::{
    app::App,
    config::Settings,
    grpc::{
        AuthConfigApi, EventApi, NotificationApi, PersonalApi, ResourceApi, SubscriptionApi, UserApi,
        pb::{
            self, event_notification_service_server::EventNotificationServiceServer,
            event_service_server::EventServiceServer,
            personal_notification_service_server::PersonalNotificationServiceServer,
            resource_service_server::ResourceServiceServer,
            subscription_auth_service_server::SubscriptionAuthServiceServer,
            subscription_service_server::SubscriptionServiceServer, user_service_server::UserServiceServer,
        },
    },
    store::{
        Nats,
        embedded::{NatsProcess, locate_nats_server},
    },
};

/// A started replica.
pub struct Running {
    /// The bound gRPC address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound ops address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_addr: SocketAddr,
    /// The replica's state (tests inspect it).
    pub app: Arc<App>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until the server has stopped (after `shutdown` was cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Starts a replica; it runs until `shutdown` is cancelled.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let settings = Arc::new(settings);
    let (url, embedded) = match &settings.nats.url {
        Some(url) => (url.clone(), None),
        None => {
            let bin = locate_nats_server(settings.nats.server_bin.as_deref())?;
            let process = NatsProcess::start(&bin, settings.nats.embedded_listen, &settings.nats.embedded_store_dir)
                .await
                .context("failed to start the embedded nats-server")?;
            tracing::info!(url = process.url(), store_dir = %process.store_dir().display(), "started embedded nats-server");
            (process.url().to_owned(), Some(process))
        }
    };
    let nats = Nats::connect(&url, &settings).await?;
    let app = App::open(settings.clone(), nats.clone(), &shutdown).await?;
    let listener = TcpListener::bind(settings.grpc.listen)
        .await
        .with_context(|| format!("failed to bind grpc.listen = {}", settings.grpc.listen))?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY small responses wait for delayed ACKs (~40 ms each).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = router(&app, &settings, &shutdown).await?;
    let ops_addr = crate::telemetry::ops::start(app.clone(), settings.ops.listen, shutdown.clone()).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, tonic_health::ServingStatus::Serving).await;
    let router = router.add_service(health_service);
    tracing::info!(%addr, tls = settings.grpc.tls_cert.is_some(), "herald gRPC server listening");
    let engine_app = app.clone();
    let task = tokio::spawn(async move {
        let stopping = shutdown.clone();
        let health_on_stop = health.clone();
        let signal = async move {
            stopping.cancelled().await;
            set_health(&health_on_stop, tonic_health::ServingStatus::NotServing).await;
        };
        let served = router.serve_with_incoming_shutdown(incoming, signal).await;
        tracing::info!("gRPC server stopped; finishing in-flight deliveries");
        let background: Vec<_> = engine_app.background.lock().expect("background lock").drain(..).collect();
        for task in background {
            let _ = task.await;
        }
        tracing::info!("draining NATS");
        nats.drain().await;
        if let Some(mut process) = embedded {
            process.stop().await;
        }
        served.context("gRPC server failed")
    });
    Ok(Running { addr, ops_addr, app, task })
}

async fn router(
    app: &Arc<App>,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> anyhow::Result<tonic::transport::server::Router> {
    let max = settings.grpc.max_message_bytes;
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // A request id on every call: the caller's `x-request-id`, or a new one.
        .trace_fn(|request| {
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let id = id.filter(|v| v.len() <= 128).unwrap_or_else(crate::domain::ids::new_id);
            tracing::info_span!("grpc", request_id = %id, method = %request.uri().path())
        });
    if let (Some(cert), Some(key)) = (&settings.grpc.tls_cert, &settings.grpc.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("failed to read grpc.tls_cert {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("failed to read grpc.tls_key {}", key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("invalid grpc.tls_cert/grpc.tls_key")?;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("failed to build the reflection service")?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("failed to build the reflection service")?;
    Ok(builder
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(UserServiceServer::new(UserApi::new(app.clone())).max_decoding_message_size(max))
        .add_service(ResourceServiceServer::new(ResourceApi::new(app.clone())).max_decoding_message_size(max))
        .add_service(EventServiceServer::new(EventApi::new(app.clone())).max_decoding_message_size(max))
        .add_service(
            EventNotificationServiceServer::new(NotificationApi::new(app.clone(), shutdown.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            PersonalNotificationServiceServer::new(PersonalApi::new(app.clone(), shutdown.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            SubscriptionServiceServer::new(SubscriptionApi::new(app.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            SubscriptionAuthServiceServer::new(AuthConfigApi::new(app.clone())).max_decoding_message_size(max),
        ))
}

async fn set_health(health: &tonic_health::server::HealthReporter, status: tonic_health::ServingStatus) {
    health.set_service_status("", status).await;
    for name in [
        <UserServiceServer<UserApi> as tonic::server::NamedService>::NAME,
        <ResourceServiceServer<ResourceApi> as tonic::server::NamedService>::NAME,
        <EventServiceServer<EventApi> as tonic::server::NamedService>::NAME,
        <EventNotificationServiceServer<NotificationApi> as tonic::server::NamedService>::NAME,
        <PersonalNotificationServiceServer<PersonalApi> as tonic::server::NamedService>::NAME,
        <SubscriptionServiceServer<SubscriptionApi> as tonic::server::NamedService>::NAME,
        <SubscriptionAuthServiceServer<AuthConfigApi> as tonic::server::NamedService>::NAME,
    ] {
        health.set_service_status(name, status).await;
    }
}
