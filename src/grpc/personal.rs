//! `herald.v1.PersonalNotificationService`.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt as _};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{
    app::App,
    domain::personal::{Notice, NoticeVariant, ReferenceKind},
    personal::PersonalItem,
};

/// Implements `herald.v1.PersonalNotificationService`.
pub struct PersonalApi {
    app: Arc<App>,
    shutdown: CancellationToken,
}

impl PersonalApi {
    pub fn new(app: Arc<App>, shutdown: CancellationToken) -> Self {
        PersonalApi { app, shutdown }
    }
}

type Reply<T> = Result<Response<T>, Status>;
type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchPersonalNotificationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::personal_notification_service_server::PersonalNotificationService for PersonalApi {
    async fn get_personal_notifications(
        &self,
        request: Request<pb::GetPersonalNotificationsRequest>,
    ) -> Reply<pb::GetPersonalNotificationsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let (notices, next_page_token) = self.app.list_notices(&who, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::GetPersonalNotificationsResponse {
            notifications: notices.iter().map(notification).collect(),
            next_page_token,
        }))
    }

    async fn acknowledge_personal_notifications(
        &self,
        request: Request<pb::AcknowledgePersonalNotificationsRequest>,
    ) -> Reply<pb::AcknowledgePersonalNotificationsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let (acknowledged_ids, not_found_ids) =
            self.app.acknowledge_notices(&who, &request.get_ref().notification_ids).await?;
        Ok(Response::new(pb::AcknowledgePersonalNotificationsResponse { acknowledged_ids, not_found_ids }))
    }

    type WatchPersonalNotificationsStream = WatchStream;

    async fn watch_personal_notifications(
        &self,
        request: Request<pb::WatchPersonalNotificationsRequest>,
    ) -> Reply<Self::WatchPersonalNotificationsStream> {
        let who = self.app.authenticate(request.metadata()).await?;
        let rx = self.app.watch_notices(&who, self.shutdown.clone()).await?;
        let stream = ReceiverStream::new(rx).map(|item| {
            use pb::watch_personal_notifications_response::Message;
            let message = match item.map_err(Status::from)? {
                PersonalItem::Notice(n) => Message::Notification(notification(&n)),
                PersonalItem::KeepAlive(at) => Message::KeepAlive(pb::KeepAlive { time: Some(convert::timestamp(at)) }),
            };
            Ok(pb::WatchPersonalNotificationsResponse { message: Some(message) })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn request_resource_access(
        &self,
        request: Request<pb::RequestResourceAccessRequest>,
    ) -> Reply<pb::RequestResourceAccessResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let notified = self.app.request_access(&who, &r.resource_id, &r.message).await?;
        Ok(Response::new(pb::RequestResourceAccessResponse { notified: notified as u32 }))
    }

    async fn send_announcement(
        &self,
        request: Request<pb::SendAnnouncementRequest>,
    ) -> Reply<pb::SendAnnouncementResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let (notified, event_id) = self.app.announce(&who, &request.get_ref().message).await?;
        Ok(Response::new(pb::SendAnnouncementResponse { notified: notified as u32, event_id }))
    }
}

fn notification(n: &Notice) -> pb::PersonalNotification {
    use pb::PersonalNotificationVariant as V;
    let variant = match n.variant {
        NoticeVariant::AccessRequested => V::AccessRequested,
        NoticeVariant::PermissionGranted => V::PermissionGranted,
        NoticeVariant::PermissionRevoked => V::PermissionRevoked,
        NoticeVariant::PermissionUpdated => V::PermissionUpdated,
        NoticeVariant::Announcement => V::Announcement,
        NoticeVariant::SubscriptionDisabled => V::SubscriptionDisabled,
    };
    pb::PersonalNotification {
        id: n.id.clone(),
        variant: variant as i32,
        message: n.message.clone(),
        references: n
            .references
            .iter()
            .map(|r| pb::Reference {
                r#type: match r.kind {
                    ReferenceKind::User => pb::ReferenceType::User,
                    ReferenceKind::Resource => pb::ReferenceType::Resource,
                    ReferenceKind::Subscription => pb::ReferenceType::Subscription,
                } as i32,
                id: r.id.clone(),
                display_name: r.display_name.clone(),
            })
            .collect(),
        created_at: Some(convert::timestamp(n.created_at)),
    }
}
