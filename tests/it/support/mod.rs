//! Test fixtures: a real nats-server per test, a Herald replica on a free
//! port, typed clients, a webhook receiver, and deadline-bounded waiting.

pub mod receiver;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use herald::{
    app::App,
    cli::client::Clients,
    config::Settings,
    domain::event::EventRecord,
    server::{self, Running},
    store::embedded::{NatsProcess, locate_nats_server},
};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const REPLY_KEY: &str = "test-reply-key-0123456789abcdef0123456789";
pub const SECRETS_KEY: &str = "dGVzdC1zZWNyZXRzLWtleS0wMTIzNDU2Nzg5YWJjZGU=";

/// The nats-server binary: `HERALD_NATS_SERVER_BIN`, else the project-local install.
pub fn nats_bin() -> PathBuf {
    let configured = std::env::var_os("HERALD_NATS_SERVER_BIN").map(PathBuf::from);
    locate_nats_server(configured.as_deref())
        .unwrap_or_else(|e| panic!("integration tests need nats-server >= 2.10: {e:#} (run `./dev test`)"))
}

/// A real nats-server on a free loopback port with its own store directory.
pub struct NatsServer {
    process: Option<NatsProcess>,
    addr: std::net::SocketAddr,
    pub dir: TempDir,
}

impl NatsServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let process = NatsProcess::start(&nats_bin(), ([127, 0, 0, 1], 0).into(), &dir.path().join("store"))
            .await
            .expect("start nats-server");
        NatsServer { addr: process.addr(), process: Some(process), dir }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Stops the server (clean shutdown); its data stays in the store dir.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop().await;
        }
    }

    /// Starts the server again on the same port and store dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        let process = NatsProcess::start(&nats_bin(), self.addr, &self.dir.path().join("store"))
            .await
            .expect("restart nats-server");
        self.process = Some(process);
    }
}

/// Settings for a test replica against `nats_url`.
pub fn test_settings(nats_url: &str) -> Settings {
    let mut s = Settings::default();
    s.nats.url = Some(nats_url.to_owned());
    s.grpc.listen = ([127, 0, 0, 1], 0).into();
    s.admin_token = Some(SecretString::from(ADMIN_TOKEN));
    s.consumers.reply_key = Some(SecretString::from(REPLY_KEY));
    s.secrets_key = Some(SecretString::from(SECRETS_KEY));
    s.nats.request_timeout = Duration::from_secs(2);
    s.delivery.allowed_networks = vec!["127.0.0.1/32".into()];
    s.delivery.retry_schedule = vec![Duration::from_millis(300); 3];
    s.delivery.retry_jitter = 0.0;
    s.delivery.request_timeout = Duration::from_secs(3);
    s.ops.listen = ([127, 0, 0, 1], 0).into();
    s
}

/// A Herald replica on its own nats-server.
pub struct TestApp {
    pub nats: NatsServer,
    pub settings: Settings,
    pub url: String,
    pub app: Arc<App>,
    shutdown: CancellationToken,
    running: Option<Running>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with settings changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let nats = NatsServer::start().await;
        let mut settings = test_settings(&nats.url());
        tweak(&mut settings);
        let shutdown = CancellationToken::new();
        let running = server::start(settings.clone(), shutdown.clone()).await.expect("start herald");
        TestApp {
            url: format!("http://{}", running.addr),
            app: running.app.clone(),
            nats,
            settings,
            shutdown,
            running: Some(running),
        }
    }

    /// Stops Herald (gracefully) and starts a fresh replica on the same NATS.
    pub async fn restart_herald(&mut self) {
        self.stop_herald().await;
        self.shutdown = CancellationToken::new();
        let running = server::start(self.settings.clone(), self.shutdown.clone()).await.expect("restart herald");
        self.url = format!("http://{}", running.addr);
        self.app = running.app.clone();
        self.running = Some(running);
    }

    pub async fn stop_herald(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), running.wait())
                .await
                .expect("herald stops within 20s")
                .expect("herald stops cleanly");
        }
    }

    /// The ops listener's address.
    pub fn ops_addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("herald running").ops_addr
    }

    pub async fn admin(&self) -> Clients {
        self.client(ADMIN_TOKEN).await
    }

    pub async fn client(&self, token: &str) -> Clients {
        Clients::connect(&self.url, Some(token)).await.expect("connect to herald")
    }

    pub async fn anonymous(&self) -> Clients {
        Clients::connect(&self.url, None).await.expect("connect to herald")
    }

    /// Creates a user with a token; returns the user id and a client for them.
    pub async fn new_user(&self, name: &str, project_creator: bool) -> (String, Clients) {
        let (id, token) = self.new_user_token(name, project_creator).await;
        (id, self.client(&token).await)
    }

    /// Creates a user with a token; returns the user id and the bearer token.
    pub async fn new_user_token(&self, name: &str, project_creator: bool) -> (String, String) {
        use herald::grpc::pb;
        let admin = self.admin().await;
        let user = admin
            .users()
            .create_user(pb::CreateUserRequest {
                name: name.into(),
                can_create_projects: project_creator,
                ..Default::default()
            })
            .await
            .expect("create user")
            .into_inner()
            .user
            .unwrap();
        let token = admin
            .users()
            .create_token(pb::CreateTokenRequest { user_id: user.id.clone(), name: "test".into(), expires_at: None })
            .await
            .expect("create token")
            .into_inner()
            .secret;
        (user.id, token)
    }

    /// A raw NATS JetStream context on the test server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.nats.url()).await.expect("connect to nats");
        async_nats::jetstream::new(client)
    }

    /// Every event in the events stream, oldest first, with its subject.
    pub async fn stored_events(&self) -> Vec<(String, u64, EventRecord)> {
        let js = self.jetstream().await;
        let mut stream = js.get_stream("HERALD_EVENTS").await.expect("events stream");
        let state = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            if let Ok(msg) = stream.direct_get(seq).await {
                let record: EventRecord = serde_json::from_slice(&msg.payload).expect("event json");
                out.push((msg.subject.to_string(), seq, record));
            }
        }
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts a gRPC status code and that the message mentions `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: tonic::Code, needle: &str) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            assert!(
                status.message().contains(needle),
                "status message {:?} should mention {needle:?}",
                status.message()
            );
        }
    }
}

/// Creates a resource through `client`, panicking on failure.
pub async fn create_resource(
    client: &Clients,
    variant: herald::grpc::pb::ResourceVariant,
    name: &str,
    parent_id: &str,
) -> herald::grpc::pb::Resource {
    try_create_resource(client, variant, name, parent_id).await.expect("create resource")
}

/// Creates a resource through `client`.
pub async fn try_create_resource(
    client: &Clients,
    variant: herald::grpc::pb::ResourceVariant,
    name: &str,
    parent_id: &str,
) -> Result<herald::grpc::pb::Resource, tonic::Status> {
    use herald::grpc::pb;
    let request = pb::CreateResourceRequest { variant: variant as i32, name: name.into(), parent_id: parent_id.into() };
    Ok(client.resources().create_resource(request).await?.into_inner().resource.expect("resource in reply"))
}

/// Grants `level` on `resource_id` to `user_id` as the bootstrap admin.
pub async fn grant(app: &TestApp, user_id: &str, resource_id: &str, level: herald::grpc::pb::PermissionLevel) {
    use herald::grpc::pb;
    let request =
        pb::GrantPermissionRequest { user_id: user_id.into(), resource_id: resource_id.into(), level: level as i32 };
    app.admin().await.users().grant_permission(request).await.expect("grant");
}

/// Three nats-server nodes clustered on loopback with JetStream.
pub struct NatsCluster {
    nodes: Vec<Option<NatsProcess>>,
    args: Vec<(std::net::SocketAddr, Vec<String>)>,
    pub dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl NatsCluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let args: Vec<(std::net::SocketAddr, Vec<String>)> = (0..3)
            .map(|i| {
                let client: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
                let extra = vec![
                    "-n".into(),
                    format!("node{i}"),
                    "--cluster_name".into(),
                    "herald-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", cluster_ports[i]),
                    "--routes".into(),
                    routes.clone(),
                ];
                (client, extra)
            })
            .collect();
        let mut cluster = NatsCluster { nodes: vec![None, None, None], args, dir };
        let starts = (0..3).map(|i| cluster.spawn(i));
        let started = futures::future::join_all(starts).await;
        cluster.nodes = started.into_iter().map(Some).collect();
        cluster.wait_for_jetstream().await;
        cluster
    }

    fn spawn(&self, i: usize) -> impl std::future::Future<Output = NatsProcess> + use<> {
        let (addr, extra) = self.args[i].clone();
        let store = self.dir.path().join(format!("node{i}"));
        async move { NatsProcess::start_with_args(&nats_bin(), addr, &store, &extra).await.expect("start cluster node") }
    }

    /// All client URLs, comma-separated (as `nats.url` takes them).
    pub fn urls(&self) -> String {
        self.args.iter().map(|(a, _)| format!("nats://{a}")).collect::<Vec<_>>().join(",")
    }

    /// Waits until the cluster has a JetStream meta leader.
    pub async fn wait_for_jetstream(&self) {
        let urls: Vec<String> = self.urls().split(',').map(str::to_owned).collect();
        let client = async_nats::connect(urls).await.expect("connect to the cluster");
        let js = async_nats::jetstream::new(client);
        eventually(Duration::from_secs(30), "JetStream to be ready on the cluster", || async {
            js.query_account().await.ok().map(drop)
        })
        .await;
    }

    /// Kills node `i` (SIGKILL).
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill().await;
        }
    }

    /// Starts node `i` again with its store dir.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        self.nodes[i] = Some(self.spawn(i).await);
    }
}
