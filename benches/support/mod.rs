//! Shared benchmark fixture: a real nats-server and a Herald replica in the
//! same process, plus a results table printer.

#![allow(dead_code)] // each bench uses a different part of this module

use std::{path::PathBuf, time::Duration};

use herald::{
    cli::client::Clients,
    config::Settings,
    server::{self, Running},
    store::embedded::{NatsProcess, locate_nats_server},
};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// True when run by `cargo bench` (which passes `--bench`); under `cargo test
/// --benches` the benchmark only checks that it starts.
pub fn is_bench_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub struct Fixture {
    pub nats: NatsProcess,
    pub herald: Running,
    pub admin: Clients,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Fixture {
    pub async fn start(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let configured = std::env::var_os("HERALD_NATS_SERVER_BIN").map(PathBuf::from);
        let bin = locate_nats_server(configured.as_deref()).expect("nats-server (run ./dev bench)");
        let nats = NatsProcess::start(&bin, ([127, 0, 0, 1], 0).into(), &dir.path().join("nats")).await.expect("nats");
        let mut settings = Settings::default();
        settings.nats.url = Some(nats.url().to_owned());
        settings.grpc.listen = ([127, 0, 0, 1], 0).into();
        settings.ops.listen = ([127, 0, 0, 1], 0).into();
        settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
        settings.consumers.reply_key = Some(SecretString::from("bench-reply-key-0123456789abcdef0123456789"));
        settings.secrets_key = Some(SecretString::from("YmVuY2gtc2VjcmV0cy1rZXktMDEyMzQ1Njc4OWFiY2Q="));
        tweak(&mut settings);
        let shutdown = CancellationToken::new();
        let herald = server::start(settings, shutdown.clone()).await.expect("herald");
        let admin = Clients::connect(&format!("http://{}", herald.addr), Some(ADMIN_TOKEN)).await.expect("client");
        Fixture { nats, herald, admin, shutdown, _dir: dir }
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.nats.url()).await.expect("connect");
        async_nats::jetstream::new(client)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.herald.wait()).await;
    }
}

/// Prints a table of named rows.
pub fn print_table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    println!("\n{title}");
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let fmt =
        |cells: Vec<&str>| cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
    println!("{}", fmt(headers.to_vec()));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in rows {
        println!("{}", fmt(row.iter().map(String::as_str).collect()));
    }
}

/// Percentile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// CPU time (user + system) a process has used so far, from `/proc` (Linux;
/// zero elsewhere). `pid` `None` is this process.
pub fn cpu_time(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else { return Duration::ZERO };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}
