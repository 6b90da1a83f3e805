//! `herald consumer ...` and `herald events ...`.

use anyhow::{Context as _, bail};

use super::{
    ConsumerArgs, ConsumerCommand, EventsCommand, TargetArgs, client::Clients, commands::event_variant, output,
};
use crate::grpc::pb::{
    self, consumer_target::Target, get_event_message_stream_response::Message as StreamMessage, start_position::Start,
};

pub async fn consumer(clients: &Clients, json: bool, cmd: ConsumerCommand) -> anyhow::Result<()> {
    let mut api = clients.notifications();
    let consumers = match cmd {
        ConsumerCommand::Create(args) => {
            let reply = api.create_stream_consumer(create_request(args)?).await?.into_inner();
            if json {
                return output::print_json("herald.v1.CreateStreamConsumerResponse", &reply);
            }
            println!("{}", reply.stream_consumer);
            return Ok(());
        }
        ConsumerCommand::Ls => {
            api.list_stream_consumers(pb::ListStreamConsumersRequest {}).await?.into_inner().consumers
        }
        ConsumerCommand::Info { id } => {
            let request = pb::GetStreamConsumerRequest { stream_consumer: id };
            api.get_stream_consumer(request).await?.into_inner().consumer.into_iter().collect()
        }
        ConsumerCommand::Rm { id } => {
            api.delete_stream_consumer(pb::DeleteStreamConsumerRequest { stream_consumer: id }).await?;
            println!("deleted");
            return Ok(());
        }
    };
    if json {
        return output::print_json(
            "herald.v1.ListStreamConsumersResponse",
            &pb::ListStreamConsumersResponse { consumers },
        );
    }
    let rows: Vec<Vec<String>> = consumers
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                describe_target(c.target.as_ref()),
                c.pending.to_string(),
                c.in_flight.to_string(),
                output::time(c.created_at.as_ref()),
                output::time(c.last_active_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["ID", "TARGET", "PENDING", "IN FLIGHT", "CREATED", "LAST ACTIVE"], &rows);
    Ok(())
}

/// The proto target named by the command line.
pub fn target(args: TargetArgs) -> pb::ConsumerTarget {
    let target = if let Some(resource_id) = args.resource {
        Target::Resource(pb::ResourceTarget { resource_id, include_subresources: args.subtree })
    } else if let Some(user) = args.user {
        Target::UserId(user)
    } else if args.announcements {
        Target::Announcements(pb::Empty {})
    } else {
        Target::All(pb::Empty {})
    };
    pb::ConsumerTarget { target: Some(target) }
}

/// Parses an RFC 3339 time argument.
pub fn rfc3339(flag: &str, value: &str) -> anyhow::Result<prost_types::Timestamp> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{flag} needs an RFC 3339 time such as 2026-01-02T03:04:05Z"))?;
    Ok(prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: at.nanosecond() as i32 })
}

fn create_request(args: ConsumerArgs) -> anyhow::Result<pb::CreateStreamConsumerRequest> {
    let start = match args.from.split_once(':') {
        None if args.from == "new" => Start::OnlyNew(pb::Empty {}),
        None if args.from == "all" => Start::All(pb::Empty {}),
        Some(("seq", n)) => Start::FromSequence(n.parse().context("--from seq:<N> needs a number")?),
        Some(("time", t)) => Start::FromTime(rfc3339("--from time:<T>", t)?),
        _ => bail!("--from must be new, all, seq:<N> or time:<RFC 3339>"),
    };
    Ok(pb::CreateStreamConsumerRequest {
        target: Some(target(args.target)),
        start: Some(pb::StartPosition { start: Some(start) }),
        variants: args.types.variants.into_iter().map(|v| event_variant(v) as i32).collect(),
        custom_types: args.types.types,
    })
}

pub fn describe_target(target: Option<&pb::ConsumerTarget>) -> String {
    match target.and_then(|t| t.target.as_ref()) {
        Some(Target::Resource(r)) if r.include_subresources => format!("{}/**", r.resource_id),
        Some(Target::Resource(r)) => r.resource_id.clone(),
        Some(Target::UserId(u)) => format!("user {u}"),
        Some(Target::Announcements(_)) => "announcements".into(),
        Some(Target::All(_)) => "all".into(),
        None => "-".into(),
    }
}

pub async fn events(clients: &Clients, json: bool, cmd: EventsCommand) -> anyhow::Result<()> {
    let mut api = clients.notifications();
    match cmd {
        EventsCommand::Fetch { consumer, batch, wait, ack } => {
            let request = pb::GetEventMessageBatchRequest {
                stream_consumer: consumer.clone(),
                batch_size: batch,
                max_wait: Some(prost_types::Duration {
                    seconds: wait.as_secs() as i64,
                    nanos: wait.subsec_nanos() as i32,
                }),
            };
            let messages = api.get_event_message_batch(request).await?.into_inner().messages;
            for message in &messages {
                print_event(json, message)?;
            }
            if ack && !messages.is_empty() {
                acknowledge(clients, &consumer, messages.iter().filter_map(|m| m.reply.clone()).collect()).await?;
            }
            if messages.is_empty() && !json {
                eprintln!("no events");
            }
        }
        EventsCommand::Stream { consumer, ack } => {
            let request = pb::GetEventMessageStreamRequest { stream_consumer: consumer.clone() };
            let mut stream = api.get_event_message_stream(request).await?.into_inner();
            while let Some(item) = stream.message().await? {
                if let Some(StreamMessage::Event(message)) = item.message {
                    print_event(json, &message)?;
                    if ack && let Some(reply) = message.reply {
                        acknowledge(clients, &consumer, vec![reply]).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

async fn acknowledge(clients: &Clients, consumer: &str, replies: Vec<pb::Reply>) -> anyhow::Result<()> {
    let request = pb::AcknowledgeMessageBatchRequest { replies, stream_consumer: consumer.to_owned() };
    let results = clients.notifications().acknowledge_message_batch(request).await?.into_inner().results;
    for r in results.iter().filter(|r| r.status() != pb::ReplyStatus::Ok) {
        eprintln!("ack of event #{}: {} {}", r.index, r.status().as_str_name(), r.message);
    }
    Ok(())
}

/// One readable line per event, or one JSON object per line with --json.
fn print_event(json: bool, message: &pb::EventMessage) -> anyhow::Result<()> {
    if json {
        return output::print_json_line("herald.v1.EventMessage", message);
    }
    let Some(e) = &message.event else { return Ok(()) };
    let subject = match &e.resource {
        Some(r) => r.path.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join("/"),
        None if !e.user_id.is_empty() => format!("user {}", e.user_id),
        None => "-".into(),
    };
    let redelivered =
        if message.delivery_count > 1 { format!(" (delivery {})", message.delivery_count) } else { String::new() };
    println!(
        "#{} {} {} {} by {} {}{redelivered}",
        e.sequence,
        output::time(e.time.as_ref()),
        e.r#type,
        subject,
        e.actor,
        e.payload_json
    );
    Ok(())
}
