//! The `herald` binary as a client: tables, JSON and errors.

use std::time::Duration;

use tokio::process::Command;

use crate::support::{ADMIN_TOKEN, TestApp};

async fn herald(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--server", &app.url, "--token", ADMIN_TOKEN])
        .args(args)
        .env_remove("HERALD_SERVER")
        .env_remove("HERALD_TOKEN")
        .output()
        .await
        .expect("run herald");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_drives_users_resources_and_events() {
    let app = TestApp::spawn().await;
    let (ok, out, err) = herald(&app, &["user", "create", "--name", "alice", "--project-creator"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("ID") && out.contains("alice"), "{out}");

    let (ok, out, err) =
        herald(&app, &["--json", "resource", "create", "--variant", "project", "--name", "demo"]).await;
    assert!(ok, "{err}");
    let project: serde_json::Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(project["variant"], "RESOURCE_VARIANT_PROJECT");
    let project_id = project["id"].as_str().unwrap().to_owned();

    let (ok, out, err) =
        herald(&app, &["emit", &project_id, "--type", "job.completed", "--payload", r#"{"ok":true}"#]).await;
    assert!(ok, "{err}");
    assert!(out.contains("stored at sequence"), "{out}");

    let (ok, out, _) = herald(&app, &["resource", "ls"]).await;
    assert!(ok && out.contains("demo") && out.contains("PROJECT"), "{out}");

    let (ok, _, err) = herald(&app, &["emit", &project_id, "--type", "NotDotted"]).await;
    assert!(!ok);
    assert!(err.contains("custom_type"), "{err}");

    let (ok, consumer, err) =
        herald(&app, &["consumer", "create", "--resource", &project_id, "--subtree", "--from", "all"]).await;
    assert!(ok, "{err}");
    let consumer = consumer.trim().to_owned();
    let (ok, out, err) = herald(&app, &["events", "fetch", &consumer, "--batch", "10", "--wait", "2s", "--ack"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("job.completed") && out.contains(r#"{"ok":true}"#), "{out}");
    assert!(!err.contains("ack of event"), "every ack succeeded: {err}");
    let (ok, out, _) = herald(&app, &["consumer", "info", &consumer]).await;
    assert!(ok && out.contains("IN FLIGHT"), "{out}");
    let (ok, out, err) = herald(&app, &["--json", "events", "fetch", &consumer]).await;
    assert!(ok && out.trim().is_empty(), "all acknowledged: {out} {err}");

    let (ok, out, err) = herald(&app, &["announce", "hello everyone"]).await;
    assert!(ok && out.contains("notified 2 user(s)"), "{out} {err}");
    let (ok, out, _) = herald(&app, &["notifications", "ls"]).await;
    assert!(ok && out.contains("ANNOUNCEMENT") && out.contains("hello everyone"), "{out}");
    let (_, out, _) = herald(&app, &["--json", "notifications", "ls"]).await;
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = listed["notifications"][0]["id"].as_str().unwrap().to_owned();
    let (ok, out, _) = herald(&app, &["notifications", "ack", &id, "nope"]).await;
    assert!(ok && out.contains("acknowledged 1"), "{out}");
    let (ok, _, err) = herald(&app, &["access", "request", &project_id, "--message", "please"]).await;
    assert!(!ok && err.contains("nobody but you"), "the admin administers it alone: {err}");
}

#[tokio::test]
async fn webhook_commands_and_the_listen_receiver_work_end_to_end() {
    let app = TestApp::spawn().await;
    let (_, out, err) =
        herald(&app, &["--json", "resource", "create", "--variant", "project", "--name", "hooks"]).await;
    let project: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    let project_id = project["id"].as_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let (ok, out, err) = herald(
        &app,
        &[
            "--json",
            "webhook",
            "create",
            "--name",
            "cli",
            "--url",
            &url,
            "--resource",
            &project_id,
            "--subtree",
            "--type",
            "job.*",
            "--header",
            "X-From: cli",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let secret = created["signingSecret"].as_str().unwrap().to_owned();
    let id = created["subscription"]["id"].as_str().unwrap().to_owned();

    let mut listen = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["listen", "--port", &port, "--secret", &secret])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(listen.stdout.take().unwrap()));
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.starts_with("listening on"), "{first}");

    let (ok, _, err) = herald(&app, &["emit", &project_id, "--type", "job.done", "--payload", r#"{"n":7}"#]).await;
    assert!(ok, "{err}");
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(line.starts_with("verified") && line.contains("job.done") && line.contains(r#"{"n":7}"#), "{line}");

    let (ok, out, _) = herald(&app, &["webhook", "test", &id]).await;
    assert!(ok && out.contains("TEST") && out.contains("DELIVERED"), "{out}");
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(line.contains("herald.ping"), "{line}");
    let (ok, out, _) = herald(&app, &["webhook", "logs", &id]).await;
    assert!(ok && out.matches("DELIVERED").count() == 2, "{out}");
    let (ok, out, _) = herald(&app, &["webhook", "ls"]).await;
    assert!(ok && out.contains("ACTIVE") && out.contains(&url), "{out}");
    let (ok, out, _) = herald(&app, &["webhook", "rotate-secret", &id]).await;
    assert!(ok && out.contains("whsec_"), "{out}");
    let (ok, _, _) = herald(&app, &["webhook", "rm", &id]).await;
    assert!(ok);

    let (ok, auth_id, err) = herald(&app, &["auth", "create", "--name", "ci", "--basic", "robot:hunter2"]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = herald(&app, &["auth", "ls"]).await;
    assert!(ok && out.contains("basic robot:********") && !out.contains("hunter2"), "{out}");
    let (ok, _, _) = herald(&app, &["auth", "rm", auth_id.trim()]).await;
    assert!(ok);
}
