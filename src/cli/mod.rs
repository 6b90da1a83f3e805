//! The `herald` command line: `herald serve` runs a replica; every other
//! subcommand is a gRPC client of a running server.

pub mod client;
mod commands;
mod consume;
mod inbox;
mod output;
mod webhook;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Herald: notification broker on NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
pub struct Cli {
    /// Address of the Herald gRPC server (http:// or https://).
    #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:50051", global = true)]
    pub server: String,
    /// Bearer token to authenticate with.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON (the proto3 JSON mapping) instead of tables.
    #[arg(long, env = "HERALD_JSON", global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Herald server (replica).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Grant a user a permission level on a resource (and everything below it).
    Grant {
        /// The user to grant to.
        user_id: String,
        /// The resource the level applies to.
        resource_id: String,
        /// The level.
        level: LevelArg,
    },
    /// Revoke a user's permission on a resource.
    Revoke {
        /// The user to revoke from.
        user_id: String,
        /// The resource.
        resource_id: String,
    },
    /// List permissions of a user (default: yourself).
    Permissions {
        /// Whose permissions (admins only for others).
        #[arg(long)]
        user: Option<String>,
    },
    /// Manage resources.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Emit an event on a resource.
    Emit(EmitArgs),
    /// Manage event consumers.
    #[command(subcommand)]
    Consumer(ConsumerCommand),
    /// Read events from a consumer.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Your personal notifications.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Ask for access to resources.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Send an announcement to every user (admin).
    Announce {
        /// The announcement text.
        message: String,
    },
    /// Manage webhook subscriptions.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Manage receiver authentication configurations.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run a local webhook receiver that verifies signatures and prints events.
    Listen {
        /// Port to listen on (127.0.0.1).
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// The subscription's whsec_ secret, or its whpk_ public key.
        #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
    },
}

/// `herald webhook ...`
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a subscription; prints its signing secret once.
    Create(Box<WebhookArgs>),
    /// List your subscriptions.
    Ls,
    /// Show a subscription.
    Info {
        /// The subscription id.
        id: String,
    },
    /// Delete a subscription.
    Rm {
        /// The subscription id.
        id: String,
    },
    /// Show delivery attempts, newest first.
    Logs {
        /// The subscription id.
        id: String,
        /// How many attempts (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Deliver a logged event once more.
    Resend {
        /// The subscription id.
        id: String,
        /// The event id.
        event_id: String,
    },
    /// Deliver again every stored event since a time.
    Replay {
        /// The subscription id.
        id: String,
        /// How far back, e.g. 2h, or an RFC 3339 time.
        #[arg(long)]
        since: String,
    },
    /// Issue a new signing secret (the old one keeps signing for a grace period).
    RotateSecret {
        /// The subscription id.
        id: String,
    },
    /// Send a herald.ping test event.
    Test {
        /// The subscription id.
        id: String,
    },
    /// Re-enable a disabled subscription.
    Enable {
        /// The subscription id.
        id: String,
    },
}

/// `herald auth ...`
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Create an auth configuration (secrets are sealed and never shown again).
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// HTTP Basic: `key:secret`.
        #[arg(long, conflicts_with_all = ["bearer", "oauth2_token_url"])]
        basic: Option<String>,
        /// A static bearer token.
        #[arg(long, conflicts_with = "oauth2_token_url")]
        bearer: Option<String>,
        /// OAuth2 client credentials: the token URL.
        #[arg(long = "oauth2-token-url", requires_all = ["client_id", "client_secret"])]
        oauth2_token_url: Option<String>,
        /// OAuth2 client id.
        #[arg(long)]
        client_id: Option<String>,
        /// OAuth2 client secret.
        #[arg(long, env = "HERALD_OAUTH2_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// OAuth2 scope.
        #[arg(long, default_value = "")]
        scope: String,
        /// OAuth2 audience.
        #[arg(long, default_value = "")]
        audience: String,
    },
    /// List your auth configurations (secrets masked).
    Ls,
    /// Delete an auth configuration.
    Rm {
        /// The configuration id.
        id: String,
    },
}

/// Arguments of `herald webhook create`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Unique name among your subscriptions.
    #[arg(long)]
    pub name: String,
    /// The receiver's URL (a webhook).
    #[arg(long)]
    pub url: Option<String>,
    /// A Slack incoming webhook URL instead.
    #[arg(long)]
    pub slack_webhook: Option<String>,
    /// A Slack bot token instead (with --slack-channel).
    #[arg(long, env = "HERALD_SLACK_TOKEN", hide_env_values = true)]
    pub slack_token: Option<String>,
    /// The Slack channel id for --slack-token.
    #[arg(long)]
    pub slack_channel: Option<String>,
    /// Body format: plain, cloudevents-binary or cloudevents-structured.
    #[arg(long, default_value = "plain")]
    pub format: String,
    /// Perform the CloudEvents validation handshake first.
    #[arg(long)]
    pub cloudevents_handshake: bool,
    /// Authenticate with this auth configuration (see `herald auth`).
    #[arg(long)]
    pub auth: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub types: TypeArgs,
    /// JSONPath filter on the payload, e.g. "$.status == 'FAILED'".
    #[arg(long, default_value = "")]
    pub condition: String,
    /// POST (default), PUT or PATCH.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// Custom header `Name: value` (repeatable, at most 10).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Deliver in strict order, one at a time.
    #[arg(long)]
    pub ordered: bool,
    /// Deliveries per second (per replica).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Hold deliveries until this RFC 3339 time.
    #[arg(long)]
    pub disabled_until: Option<String>,
    /// Also sign with Ed25519 (v1a).
    #[arg(long)]
    pub asymmetric: bool,
}

/// `herald notifications ...`
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List your notifications, newest first.
    Ls {
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this page token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Acknowledge (remove) notifications by id.
    Ack {
        /// Notification ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print new notifications as they arrive until interrupted.
    Watch,
}

/// `herald access ...`
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask the administrators of a resource for access.
    Request {
        /// The resource.
        resource_id: String,
        /// Why you need access.
        #[arg(long)]
        message: String,
    },
}

/// `herald consumer ...`
#[derive(Debug, Subcommand)]
pub enum ConsumerCommand {
    /// Create a consumer; prints its id.
    Create(ConsumerArgs),
    /// List your consumers.
    Ls,
    /// Show a consumer with its pending and in-flight counts.
    Info {
        /// The consumer id.
        id: String,
    },
    /// Delete a consumer.
    Rm {
        /// The consumer id.
        id: String,
    },
}

/// Arguments of `herald consumer create`.
#[derive(Debug, Args)]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Start: `new` (default), `all`, `seq:<N>` or `time:<RFC 3339>`.
    #[arg(long, default_value = "new")]
    pub from: String,
    #[command(flatten)]
    pub types: TypeArgs,
}

/// What a consumer or subscription watches.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["resource", "user", "announcements", "all"]))]
pub struct TargetArgs {
    /// Watch this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// With --resource: also everything below it.
    #[arg(long, requires = "resource")]
    pub subtree: bool,
    /// Watch this user's account events.
    #[arg(long)]
    pub user: Option<String>,
    /// Watch announcements.
    #[arg(long)]
    pub announcements: bool,
    /// Watch every event (admins).
    #[arg(long)]
    pub all: bool,
}

/// Type filters.
#[derive(Debug, Args)]
pub struct TypeArgs {
    /// Only these variants (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<EventVariantArg>,
    /// Only these custom types, `job.*` for a prefix (repeatable).
    #[arg(long = "type")]
    pub types: Vec<String>,
}

/// `herald events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Fetch one batch of events.
    Fetch {
        /// The consumer id.
        consumer: String,
        /// Most events to fetch (1 to 1000).
        #[arg(long, default_value_t = 10)]
        batch: u32,
        /// How long to wait when none are available (up to 30s).
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Acknowledge the fetched events.
        #[arg(long)]
        ack: bool,
    },
    /// Print events as they arrive until interrupted.
    Stream {
        /// The consumer id.
        consumer: String,
        /// Acknowledge each event after printing it.
        #[arg(long)]
        ack: bool,
    },
}

/// Arguments of `herald serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML settings file (see config.example.toml).
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// NATS server or cluster URL; without it (and without HERALD_NATS_URL) an
    /// embedded nats-server is started.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// gRPC listen address (overrides grpc.listen).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// `herald user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (admin).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// E-mail address.
        #[arg(long, default_value = "")]
        email: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        /// Allow the user to create projects.
        #[arg(long)]
        project_creator: bool,
    },
    /// Show a user.
    Get {
        /// The user id.
        user_id: String,
    },
    /// List users (admin).
    Ls {
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this page token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Show yourself.
    Me,
    /// Change a user's global rights (admin).
    Update {
        /// The user id.
        user_id: String,
        /// Make (true) or unmake (false) an admin.
        #[arg(long)]
        admin: Option<bool>,
        /// Allow (true) or forbid (false) creating projects.
        #[arg(long)]
        project_creator: Option<bool>,
    },
}

/// `herald token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the secret once.
    Create {
        /// Token name.
        #[arg(long)]
        name: String,
        /// Owner (admins only for others; default: yourself).
        #[arg(long)]
        user: Option<String>,
        /// Lifetime such as 30d or 12h (default: no expiry).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List tokens (never their secrets).
    Ls {
        /// Owner (default: yourself).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token.
    Revoke {
        /// The token id.
        token_id: String,
    },
}

/// `herald resource ...`
#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Create a resource.
    Create {
        /// Kind of resource.
        #[arg(long)]
        variant: VariantArg,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Parent resource (required except for projects).
        #[arg(long, default_value = "")]
        parent: String,
    },
    /// Show a resource.
    Get {
        /// The resource id.
        id: String,
    },
    /// List a resource's children, or your projects without a parent.
    Ls {
        /// The parent resource.
        parent: Option<String>,
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this page token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Delete a resource.
    Rm {
        /// The resource id.
        id: String,
        /// Also delete everything below it.
        #[arg(long, short)]
        recursive: bool,
    },
}

/// Arguments of `herald emit`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["variant", "event_type"]))]
pub struct EmitArgs {
    /// The resource the event is about.
    pub resource_id: String,
    /// A built-in variant.
    #[arg(long)]
    pub variant: Option<EventVariantArg>,
    /// A dotted custom type such as job.completed.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// JSON payload, or @FILE to read it from a file.
    #[arg(long, default_value = "")]
    pub payload: String,
    /// Idempotency key: retries with the same key store the event once.
    #[arg(long, default_value = "")]
    pub idempotency_key: String,
}

/// Resource variants on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VariantArg {
    Project,
    Collection,
    Dataset,
    Object,
}

/// Permission levels on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LevelArg {
    Read,
    Append,
    Write,
    Admin,
}

/// Event variants on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EventVariantArg {
    Created,
    Available,
    Updated,
    Deleted,
    Snapshotted,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
