//! Runs a nats-server child process: the embedded default of `herald serve`
//! and the fixture of the integration tests and benchmarks.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// Where `./dev install` puts nats-server, relative to the project root.
pub const PROJECT_LOCAL_BIN: &str = ".herald/tools/nats-server/bin/nats-server";
/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds the nats-server binary: `configured` if given, else the
/// project-local install (under the working directory, then under the source
/// tree Herald was built from), else `nats-server` on `PATH`.
pub fn locate_nats_server(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("nats.server_bin = {} does not exist", path.display());
    }
    let candidates = [PathBuf::from(PROJECT_LOCAL_BIN), Path::new(env!("CARGO_MANIFEST_DIR")).join(PROJECT_LOCAL_BIN)];
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Ok(found);
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    bail!(
        "nats-server not found: run `./dev install` (installs it under {PROJECT_LOCAL_BIN}), set nats.server_bin, \
         or set nats.url to use an existing server"
    )
}

/// A running nats-server child, killed when dropped.
pub struct NatsProcess {
    child: Child,
    url: String,
    addr: SocketAddr,
    store_dir: PathBuf,
}

impl NatsProcess {
    /// Starts `bin` with JetStream on `listen` (port 0 picks a free port),
    /// storing under `store_dir`, and waits until it accepts connections.
    pub async fn start(bin: &Path, listen: SocketAddr, store_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with_args(bin, listen, store_dir, &[]).await
    }

    /// Like [`NatsProcess::start`] with extra nats-server arguments (e.g. cluster routes).
    pub async fn start_with_args(
        bin: &Path,
        listen: SocketAddr,
        store_dir: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(store_dir)
            .with_context(|| format!("failed to create nats store dir {}", store_dir.display()))?;
        let log = store_dir.join("nats-server.log");
        let ports_dir = store_dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port = if listen.port() == 0 { "-1".to_owned() } else { listen.port().to_string() };
        let mut child = Command::new(bin)
            .args(["-a", &listen.ip().to_string(), "-p", &port, "-js", "-sd"])
            .arg(store_dir)
            .arg("-l")
            .arg(&log)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", bin.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Some(status) = child.try_wait()? {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                bail!("nats-server exited with {status} during start: {}", tail.join(" | "));
            }
            if let Some(addr) = read_ports_file(&ports_dir)
                && tokio::net::TcpStream::connect(addr).await.is_ok()
            {
                break addr;
            }
            if Instant::now() > deadline {
                bail!("nats-server did not accept connections within {START_TIMEOUT:?}; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(NatsProcess { child, url: format!("nats://{addr}"), addr, store_dir: store_dir.to_owned() })
    }

    /// `nats://host:port` of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops the server: SIGTERM (a clean JetStream shutdown), then SIGKILL
    /// after 10 seconds.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

fn read_ports_file(dir: &Path) -> Option<SocketAddr> {
    #[derive(serde::Deserialize)]
    struct Ports {
        nats: Vec<String>,
    }
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().ends_with(".ports"))?;
    let ports: Ports = serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
    ports.nats.first()?.trim_start_matches("nats://").parse().ok()
}
