//! What each CLI subcommand does.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{
    Cli, Command, EmitArgs, EventVariantArg, LevelArg, ResourceCommand, ServeArgs, TokenCommand, UserCommand,
    VariantArg, client::Clients, output,
};
use crate::{config::Settings, grpc::pb, server, telemetry};

/// Runs one CLI invocation.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => return serve(args).await,
        Command::Listen { port, secret } => return super::webhook::listen(port, secret).await,
        _ => {}
    }
    let clients = Clients::connect(&cli.server, cli.token.as_deref()).await?;
    let json = cli.json;
    match cli.command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::User(cmd) => user(&clients, json, cmd).await,
        Command::Token(cmd) => token(&clients, json, cmd).await,
        Command::Grant { user_id, resource_id, level } => {
            let level = match level {
                LevelArg::Read => pb::PermissionLevel::Read,
                LevelArg::Append => pb::PermissionLevel::Append,
                LevelArg::Write => pb::PermissionLevel::Write,
                LevelArg::Admin => pb::PermissionLevel::Admin,
            };
            let request = pb::GrantPermissionRequest { user_id, resource_id, level: level as i32 };
            let reply = clients.users().grant_permission(request).await?.into_inner();
            show_permissions(json, reply.permission.into_iter().collect())
        }
        Command::Revoke { user_id, resource_id } => {
            clients.users().revoke_permission(pb::RevokePermissionRequest { user_id, resource_id }).await?;
            println!("revoked");
            Ok(())
        }
        Command::Permissions { user } => {
            let request = pb::ListPermissionsRequest { user_id: user.unwrap_or_default() };
            let reply = clients.users().list_permissions(request).await?.into_inner();
            show_permissions(json, reply.permissions)
        }
        Command::Resource(cmd) => resource(&clients, json, cmd).await,
        Command::Emit(args) => emit(&clients, json, args).await,
        Command::Consumer(cmd) => super::consume::consumer(&clients, json, cmd).await,
        Command::Events(cmd) => super::consume::events(&clients, json, cmd).await,
        Command::Notifications(cmd) => super::inbox::notifications(&clients, json, cmd).await,
        Command::Access(cmd) => super::inbox::access(&clients, json, cmd).await,
        Command::Announce { message } => super::inbox::announce(&clients, json, message).await,
        Command::Webhook(cmd) => super::webhook::webhook(&clients, json, cmd).await,
        Command::Auth(cmd) => super::webhook::auth(&clients, json, cmd).await,
        Command::Listen { .. } => unreachable!("handled above"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref(), std::env::vars())?;
    if let Some(url) = args.nats_url {
        settings.nats.url = Some(url);
    }
    if let Some(listen) = args.listen {
        settings.grpc.listen = listen;
    }
    telemetry::init(&settings.log);
    let shutdown = CancellationToken::new();
    let running = server::start(settings, shutdown.clone()).await?;
    println!("herald listening on {}", running.addr);
    wait_for_signal().await?;
    tracing::info!("shutdown requested");
    shutdown.cancel();
    running.wait().await
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to listen for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

async fn user(clients: &Clients, json: bool, cmd: UserCommand) -> anyhow::Result<()> {
    let mut users = clients.users();
    let shown = match cmd {
        UserCommand::Create { name, email, admin, project_creator } => {
            let request = pb::CreateUserRequest { name, email, is_admin: admin, can_create_projects: project_creator };
            users.create_user(request).await?.into_inner().user
        }
        UserCommand::Get { user_id } => users.get_user(pb::GetUserRequest { user_id }).await?.into_inner().user,
        UserCommand::Me => users.get_current_user(pb::GetCurrentUserRequest {}).await?.into_inner().user,
        UserCommand::Update { user_id, admin, project_creator } => {
            let request = pb::UpdateUserRequest { user_id, is_admin: admin, can_create_projects: project_creator };
            users.update_user(request).await?.into_inner().user
        }
        UserCommand::Ls { limit, page_token } => {
            let reply = users.list_users(pb::ListUsersRequest { page_size: limit, page_token }).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListUsersResponse", &reply);
            }
            show_users(&reply.users);
            if !reply.next_page_token.is_empty() {
                println!("more: --page-token {}", reply.next_page_token);
            }
            return Ok(());
        }
    };
    let user = shown.context("the server returned no user")?;
    if json {
        return output::print_json("herald.v1.User", &user);
    }
    show_users(&[user]);
    Ok(())
}

fn show_users(users: &[pb::User]) {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.clone(),
                u.name.clone(),
                u.email.clone(),
                u.is_admin.to_string(),
                u.can_create_projects.to_string(),
                output::time(u.created_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["ID", "NAME", "EMAIL", "ADMIN", "PROJECT CREATOR", "CREATED"], &rows);
}

async fn token(clients: &Clients, json: bool, cmd: TokenCommand) -> anyhow::Result<()> {
    let mut users = clients.users();
    match cmd {
        TokenCommand::Create { name, user, expires_in } => {
            let expires_at = expires_in.map(|d| {
                let at = time::OffsetDateTime::now_utc() + d;
                prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: 0 }
            });
            let request = pb::CreateTokenRequest { user_id: user.unwrap_or_default(), name, expires_at };
            let reply = users.create_token(request).await?.into_inner();
            if json {
                return output::print_json("herald.v1.CreateTokenResponse", &reply);
            }
            show_tokens(&reply.token.into_iter().collect::<Vec<_>>());
            println!("\nsecret (shown only now): {}", reply.secret);
        }
        TokenCommand::Ls { user } => {
            let reply =
                users.list_tokens(pb::ListTokensRequest { user_id: user.unwrap_or_default() }).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListTokensResponse", &reply);
            }
            show_tokens(&reply.tokens);
        }
        TokenCommand::Revoke { token_id } => {
            users.revoke_token(pb::RevokeTokenRequest { token_id }).await?;
            println!("revoked");
        }
    }
    Ok(())
}

fn show_tokens(tokens: &[pb::Token]) {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.user_id.clone(),
                t.name.clone(),
                output::time(t.created_at.as_ref()),
                output::time(t.expires_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["ID", "USER", "NAME", "CREATED", "EXPIRES"], &rows);
}

fn show_permissions(json: bool, permissions: Vec<pb::Permission>) -> anyhow::Result<()> {
    if json {
        return output::print_json("herald.v1.ListPermissionsResponse", &pb::ListPermissionsResponse { permissions });
    }
    let rows: Vec<Vec<String>> = permissions
        .iter()
        .map(|p| {
            vec![
                p.user_id.clone(),
                p.resource_id.clone(),
                output::enum_name(p.level().as_str_name(), "PERMISSION_LEVEL_"),
                p.granted_by.clone(),
                output::time(p.granted_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["USER", "RESOURCE", "LEVEL", "GRANTED BY", "GRANTED"], &rows);
    Ok(())
}

async fn resource(clients: &Clients, json: bool, cmd: ResourceCommand) -> anyhow::Result<()> {
    let mut resources = clients.resources();
    let shown = match cmd {
        ResourceCommand::Create { variant, name, parent } => {
            let variant = match variant {
                VariantArg::Project => pb::ResourceVariant::Project,
                VariantArg::Collection => pb::ResourceVariant::Collection,
                VariantArg::Dataset => pb::ResourceVariant::Dataset,
                VariantArg::Object => pb::ResourceVariant::Object,
            };
            let request = pb::CreateResourceRequest { variant: variant as i32, name, parent_id: parent };
            resources.create_resource(request).await?.into_inner().resource
        }
        ResourceCommand::Get { id } => {
            resources.get_resource(pb::GetResourceRequest { id }).await?.into_inner().resource
        }
        ResourceCommand::Ls { parent, limit, page_token } => {
            let request =
                pb::ListResourcesRequest { parent_id: parent.unwrap_or_default(), page_size: limit, page_token };
            let reply = resources.list_resources(request).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListResourcesResponse", &reply);
            }
            show_resources(&reply.resources);
            if !reply.next_page_token.is_empty() {
                println!("more: --page-token {}", reply.next_page_token);
            }
            return Ok(());
        }
        ResourceCommand::Rm { id, recursive } => {
            let reply = resources.delete_resource(pb::DeleteResourceRequest { id, recursive }).await?.into_inner();
            if json {
                return output::print_json("herald.v1.DeleteResourceResponse", &reply);
            }
            println!("deleted {}", reply.deleted_ids.join(" "));
            return Ok(());
        }
    };
    let resource = shown.context("the server returned no resource")?;
    if json {
        return output::print_json("herald.v1.Resource", &resource);
    }
    show_resources(&[resource]);
    Ok(())
}

fn show_resources(resources: &[pb::Resource]) {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            let path: Vec<&str> = r.path.iter().map(|p| p.id.as_str()).collect();
            vec![
                r.id.clone(),
                output::enum_name(r.variant().as_str_name(), "RESOURCE_VARIANT_"),
                r.name.clone(),
                path.join("/"),
                output::time(r.created_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["ID", "VARIANT", "NAME", "PATH", "CREATED"], &rows);
}

async fn emit(clients: &Clients, json: bool, args: EmitArgs) -> anyhow::Result<()> {
    let payload_json = match args.payload.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("failed to read payload file {path}"))?,
        None => args.payload,
    };
    let kind = match (args.variant, args.event_type) {
        (Some(v), _) => pb::emit_event_request::Kind::Variant(event_variant(v) as i32),
        (None, Some(t)) => pb::emit_event_request::Kind::CustomType(t),
        (None, None) => anyhow::bail!("give --variant or --type"),
    };
    let request = pb::EmitEventRequest {
        resource_id: args.resource_id,
        kind: Some(kind),
        payload_json,
        idempotency_key: args.idempotency_key,
    };
    let reply = clients.events().emit_event(request).await?.into_inner();
    if json {
        return output::print_json("herald.v1.EmitEventResponse", &reply);
    }
    let event = reply.event.context("the server returned no event")?;
    let note = if event.duplicate { " (duplicate of an earlier emit)" } else { "" };
    println!("event {} stored at sequence {}{note}", event.event_id, event.sequence);
    Ok(())
}

pub(super) fn event_variant(v: EventVariantArg) -> pb::EventVariant {
    match v {
        EventVariantArg::Created => pb::EventVariant::Created,
        EventVariantArg::Available => pb::EventVariant::Available,
        EventVariantArg::Updated => pb::EventVariant::Updated,
        EventVariantArg::Deleted => pb::EventVariant::Deleted,
        EventVariantArg::Snapshotted => pb::EventVariant::Snapshotted,
    }
}
