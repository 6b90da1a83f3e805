//! `herald notifications ...`, `herald access request` and `herald announce`.

use super::{AccessCommand, NotificationsCommand, client::Clients, output};
use crate::grpc::pb::{self, watch_personal_notifications_response::Message};

pub async fn notifications(clients: &Clients, json: bool, cmd: NotificationsCommand) -> anyhow::Result<()> {
    let mut api = clients.personal();
    match cmd {
        NotificationsCommand::Ls { limit, page_token } => {
            let request = pb::GetPersonalNotificationsRequest { page_size: limit, page_token };
            let reply = api.get_personal_notifications(request).await?.into_inner();
            if json {
                return output::print_json("herald.v1.GetPersonalNotificationsResponse", &reply);
            }
            let rows: Vec<Vec<String>> = reply
                .notifications
                .iter()
                .map(|n| {
                    vec![
                        n.id.clone(),
                        output::enum_name(n.variant().as_str_name(), "PERSONAL_NOTIFICATION_VARIANT_"),
                        output::time(n.created_at.as_ref()),
                        n.message.clone(),
                    ]
                })
                .collect();
            output::print_table(&["ID", "VARIANT", "CREATED", "MESSAGE"], &rows);
            if !reply.next_page_token.is_empty() {
                println!("more: --page-token {}", reply.next_page_token);
            }
        }
        NotificationsCommand::Ack { ids } => {
            let request = pb::AcknowledgePersonalNotificationsRequest { notification_ids: ids };
            let reply = api.acknowledge_personal_notifications(request).await?.into_inner();
            if json {
                return output::print_json("herald.v1.AcknowledgePersonalNotificationsResponse", &reply);
            }
            println!("acknowledged {}", reply.acknowledged_ids.len());
            for id in reply.not_found_ids {
                eprintln!("not found: {id}");
            }
        }
        NotificationsCommand::Watch => {
            let mut stream =
                api.watch_personal_notifications(pb::WatchPersonalNotificationsRequest {}).await?.into_inner();
            while let Some(item) = stream.message().await? {
                if let Some(Message::Notification(n)) = item.message {
                    if json {
                        output::print_json_line("herald.v1.PersonalNotification", &n)?;
                    } else {
                        let variant = output::enum_name(n.variant().as_str_name(), "PERSONAL_NOTIFICATION_VARIANT_");
                        println!("{} {} {} {}", output::time(n.created_at.as_ref()), variant, n.id, n.message);
                    }
                }
            }
        }
    }
    Ok(())
}

pub async fn access(clients: &Clients, json: bool, cmd: AccessCommand) -> anyhow::Result<()> {
    let AccessCommand::Request { resource_id, message } = cmd;
    let reply = clients
        .personal()
        .request_resource_access(pb::RequestResourceAccessRequest { resource_id, message })
        .await?
        .into_inner();
    if json {
        return output::print_json("herald.v1.RequestResourceAccessResponse", &reply);
    }
    println!("notified {} administrator(s)", reply.notified);
    Ok(())
}

pub async fn announce(clients: &Clients, json: bool, message: String) -> anyhow::Result<()> {
    let reply = clients.personal().send_announcement(pb::SendAnnouncementRequest { message }).await?.into_inner();
    if json {
        return output::print_json("herald.v1.SendAnnouncementResponse", &reply);
    }
    println!("notified {} user(s); announcement event {}", reply.notified, reply.event_id);
    Ok(())
}
