//! Server lifecycle: health, reflection, TLS, restarts, NATS outages and the
//! start-up checks on the NATS server.

use std::time::Duration;

use herald::{
    grpc::pb::{self, ResourceVariant as V},
    server,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::support::{
    NatsServer, TestApp, assert_status, create_resource, eventually, nats_bin, test_settings, try_create_resource,
};

#[tokio::test]
async fn health_reports_serving_until_shutdown_and_the_server_stops_in_time() {
    let mut app = TestApp::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(app.url.clone()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "herald.v1.EventService", "herald.v1.UserService", "herald.v1.ResourceService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service}");
    }
    let started = std::time::Instant::now();
    app.stop_herald().await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(health.check(HealthCheckRequest { service: String::new() }).await.is_err(), "server is gone");
}

#[tokio::test]
async fn reflection_lists_every_herald_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(app.url.clone()).unwrap().connect().await.unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let reply = replies.message().await.unwrap().expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else { panic!("{reply:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["herald.v1.UserService", "herald.v1.ResourceService", "herald.v1.EventService", "grpc.health.v1.Health"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test]
async fn a_restarted_replica_keeps_users_tokens_and_resources() {
    let mut app = TestApp::spawn().await;
    let (user_id, token) = app.new_user_token("persistent", true).await;
    let project = create_resource(&app.client(&token).await, V::Project, "kept", "").await;
    app.restart_herald().await;
    let user = app.client(&token).await;
    let me = user.users().get_current_user(pb::GetCurrentUserRequest {}).await.unwrap().into_inner().user.unwrap();
    assert_eq!(me.id, user_id);
    let got = user.resources().get_resource(pb::GetResourceRequest { id: project.id.clone() }).await.unwrap();
    assert_eq!(got.into_inner().resource.unwrap().name, "kept");
}

#[tokio::test]
async fn writes_during_a_nats_outage_fail_unavailable_and_leave_nothing_behind() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "before", "").await;
    app.nats.stop().await;
    let during = try_create_resource(&admin, V::Dataset, "during", &p.id).await;
    assert_status(during, Code::Unavailable, "NATS");
    let emit = pb::EmitEventRequest {
        resource_id: p.id.clone(),
        kind: Some(pb::emit_event_request::Kind::CustomType("a.b".into())),
        ..Default::default()
    };
    assert_status(admin.events().emit_event(emit).await, Code::Unavailable, "NATS");

    app.nats.restart().await;
    let after = eventually(Duration::from_secs(20), "herald to reconnect", || async {
        try_create_resource(&admin, V::Dataset, "after", &p.id).await.ok()
    })
    .await;
    let children = admin
        .resources()
        .list_resources(pb::ListResourcesRequest { parent_id: p.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .resources;
    assert_eq!(children.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["after"]);
    assert_eq!(children[0].id, after.id);
    assert!(!app.stored_events().await.iter().any(|(_, _, e)| e.event_type == "a.b"), "no event from the outage");
}

#[tokio::test]
async fn a_nats_server_older_than_2_10_is_refused_with_a_clear_message() {
    // Herald's version gate reads the INFO line every NATS server sends first;
    // this listener answers like a 2.9.10 server (the version Debian ships).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let info = format!(
                    "INFO {{\"server_id\":\"OLD\",\"server_name\":\"old\",\"version\":\"2.9.10\",\"go\":\"go1.19\",\
                     \"host\":\"127.0.0.1\",\"port\":{},\"headers\":true,\"max_payload\":1048576,\"proto\":1,\"jetstream\":true}}\r\n",
                    addr.port()
                );
                let _ = write.write_all(info.as_bytes()).await;
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("PING") {
                        let _ = write.write_all(b"PONG\r\n").await;
                    }
                }
            });
        }
    });
    let settings = test_settings(&format!("nats://{addr}"));
    let err = server::start(settings, CancellationToken::new()).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("2.9.10") && text.contains("too old") && text.contains("2.10"), "{text}");
}

#[tokio::test]
async fn a_nats_server_without_jetstream_is_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(nats_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "nats-server to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;
    let err = server::start(test_settings(&format!("nats://127.0.0.1:{port}")), CancellationToken::new())
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("JetStream is not enabled"), "{err:#}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn without_a_nats_url_herald_runs_its_own_embedded_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings("unused");
    settings.nats.url = None;
    settings.nats.server_bin = Some(nats_bin());
    settings.nats.embedded_listen = ([127, 0, 0, 1], 0).into();
    settings.nats.embedded_store_dir = dir.path().join("nats");
    let shutdown = CancellationToken::new();
    let running = server::start(settings, shutdown.clone()).await.unwrap();
    let admin =
        herald::cli::client::Clients::connect(&format!("http://{}", running.addr), Some(crate::support::ADMIN_TOKEN))
            .await
            .unwrap();
    create_resource(&admin, V::Project, "embedded", "").await;
    assert!(dir.path().join("nats/jetstream").exists(), "JetStream data lives in the configured store dir");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.wait()).await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_is_served_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let nats = NatsServer::start().await;
    let mut settings = test_settings(&nats.url());
    settings.grpc.tls_cert = Some(cert_path);
    settings.grpc.tls_key = Some(key_path);
    let shutdown = CancellationToken::new();
    let running = server::start(settings, shutdown.clone()).await.unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", running.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let status = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
    // Plaintext clients cannot talk to the TLS port.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr)).unwrap().connect().await;
    if let Ok(channel) = plain {
        assert!(HealthClient::new(channel).check(HealthCheckRequest::default()).await.is_err());
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), running.wait()).await.unwrap().unwrap();
}
