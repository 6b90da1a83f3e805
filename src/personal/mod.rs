//! Personal notifications: producing them (permission changes, access
//! requests, announcements), listing and acknowledging a user's own, and
//! watching for new ones.
//!
//! Notifications live in their own stream, one subject per user, so a user's
//! inbox is read, capped and cleared by subject and nothing of anyone else's
//! can be touched.

mod watch;

use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::json;
use time::OffsetDateTime;

pub use watch::PersonalItem;

use crate::{
    app::App,
    auth::Principal,
    domain::{
        event::system,
        ids,
        page::{Order, page_size, paginate},
        permission::PermissionLevel,
        personal::{Notice, NoticeVariant, Reference, ReferenceKind, personal_subject},
        resource::Resource,
        subject,
    },
    error::{Error, Result},
    store::OutgoingEvent,
};

/// Longest access request message.
pub const MAX_REQUEST_MESSAGE: usize = 1000;
/// Longest announcement.
pub const MAX_ANNOUNCEMENT: usize = 4000;
/// Most ids in one acknowledgement call.
pub const MAX_ACK_IDS: usize = 1000;

/// A notice to store for one recipient.
pub(crate) struct Outgoing {
    pub recipient: String,
    pub notice: Notice,
}

impl Outgoing {
    pub(crate) fn new(recipient: &str, variant: NoticeVariant, message: String, references: Vec<Reference>) -> Self {
        let notice = Notice { id: ids::new_id(), variant, message, references, created_at: OffsetDateTime::now_utc() };
        Outgoing { recipient: recipient.to_owned(), notice }
    }

    fn message(&self) -> Result<OutgoingEvent> {
        let body =
            serde_json::to_vec(&self.notice).map_err(|e| Error::internal("failed to encode a notification", e))?;
        Ok(OutgoingEvent {
            event_id: self.notice.id.clone(),
            subject: personal_subject(&self.recipient),
            body: Bytes::from(body),
            dedup_id: None,
        })
    }
}

impl App {
    /// Stores notices (all confirmed, or UNAVAILABLE).
    pub(crate) async fn notify(&self, notices: Vec<Outgoing>) -> Result<()> {
        let messages = notices.iter().map(Outgoing::message).collect::<Result<Vec<_>>>()?;
        self.personal.publish(messages).await
    }

    /// A reference to a user, with their current display name.
    pub(crate) fn user_ref(&self, user_id: &str) -> Reference {
        let display_name = self.users.cached(user_id).map(|u| u.name.clone()).unwrap_or_else(|| user_id.to_owned());
        Reference { kind: ReferenceKind::User, id: user_id.to_owned(), display_name }
    }

    /// A reference to a resource.
    pub(crate) fn resource_ref(resource: &Resource) -> Reference {
        Reference { kind: ReferenceKind::Resource, id: resource.id.clone(), display_name: resource.name.clone() }
    }

    /// The caller's notifications, newest first, paged by id.
    pub async fn list_notices(&self, who: &Principal, size: u32, token: &str) -> Result<(Vec<Notice>, String)> {
        let size = page_size(size)?;
        let notices = self.stored_notices(&who.user_id).await?.into_iter().map(|(_, n)| n).collect();
        Ok(paginate(notices, |n| n.id.as_str(), size, token, Order::Descending))
    }

    /// Removes the caller's notifications with these ids; returns
    /// (acknowledged, not found).
    pub async fn acknowledge_notices(&self, who: &Principal, ids: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        if ids.is_empty() {
            return Err(Error::invalid("notification_ids", "must hold at least one id"));
        }
        if ids.len() > MAX_ACK_IDS {
            return Err(Error::invalid("notification_ids", format!("holds {}; the limit is {MAX_ACK_IDS}", ids.len())));
        }
        let stored = self.stored_notices(&who.user_id).await?;
        let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let mut acknowledged = Vec::new();
        for (sequence, notice) in stored.iter().filter(|(_, n)| wanted.contains(n.id.as_str())) {
            if self.personal.delete(*sequence).await? {
                acknowledged.push(notice.id.clone());
            }
        }
        let not_found = ids.iter().filter(|id| !acknowledged.contains(id)).cloned().collect();
        Ok((acknowledged, not_found))
    }

    /// Every stored notice of `user_id` with its stream sequence.
    async fn stored_notices(&self, user_id: &str) -> Result<Vec<(u64, Notice)>> {
        let stored = self.personal.list(&personal_subject(user_id)).await?;
        Ok(stored
            .into_iter()
            .filter_map(|s| match serde_json::from_slice::<Notice>(&s.payload) {
                Ok(notice) => Some((s.sequence, notice)),
                Err(err) => {
                    tracing::warn!(sequence = s.sequence, error = %err, "skipping an undecodable notification");
                    None
                }
            })
            .collect())
    }

    /// Notifies every administrator of a resource (ADMIN on it or an
    /// ancestor; global admins when nobody holds such a grant) that the
    /// caller asks for access. Rate-limited per requester and resource.
    pub async fn request_access(&self, who: &Principal, resource_id: &str, message: &str) -> Result<usize> {
        ids::check_id("resource_id", resource_id)?;
        ids::check_name("message", message, MAX_REQUEST_MESSAGE)?;
        let resource =
            self.resources.get(resource_id).await?.ok_or_else(|| Error::not_found("resource", resource_id))?;
        let mut admins: BTreeSet<String> = self
            .grants
            .select(|_, g| g.level == PermissionLevel::Admin && resource.path.iter().any(|p| p.id == g.resource_id))
            .iter()
            .map(|g| g.user_id.clone())
            .collect();
        if admins.is_empty() {
            admins = self.users.select(|_, u| u.is_admin).iter().map(|u| u.id.clone()).collect();
        }
        admins.remove(&who.user_id);
        if admins.is_empty() {
            return Err(Error::FailedPrecondition(format!("nobody but you administers resource {resource_id}")));
        }
        let claim = format!("{}.{}", who.user_id, resource_id);
        if !self.personal.claim_access_request(&claim).await? {
            return Err(Error::ResourceExhausted(format!(
                "you asked for access to resource {resource_id} recently; one request per {} (personal.access_request_interval)",
                humantime::format_duration(self.settings.personal.access_request_interval)
            )));
        }
        let requester = self.user_ref(&who.user_id);
        let text = format!(
            "{} requests access to {} \"{}\": {message}",
            requester.display_name,
            resource.variant.as_str().to_lowercase(),
            resource.name
        );
        let notices: Vec<Outgoing> = admins
            .iter()
            .map(|admin| {
                let refs = vec![requester.clone(), Self::resource_ref(&resource)];
                Outgoing::new(admin, NoticeVariant::AccessRequested, text.clone(), refs)
            })
            .collect();
        let count = notices.len();
        if let Err(err) = self.notify(notices).await {
            self.personal.release_access_request(&claim).await;
            return Err(err);
        }
        Ok(count)
    }

    /// Notifies every user and emits an announcement event (admin only).
    /// Returns how many were notified and the event id.
    pub async fn announce(&self, who: &Principal, message: &str) -> Result<(usize, String)> {
        who.require_admin()?;
        ids::check_name("message", message, MAX_ANNOUNCEMENT)?;
        let users = self.users.select(|_, _| true);
        let author = self.user_ref(&who.user_id);
        let notices: Vec<Outgoing> = users
            .iter()
            .map(|u| Outgoing::new(&u.id, NoticeVariant::Announcement, message.to_owned(), vec![author.clone()]))
            .collect();
        let count = notices.len();
        let event = announcement_event(&who.user_id, message)?;
        let stored = self.publish_system(vec![event]).await?;
        self.notify(notices).await?;
        Ok((count, stored.into_iter().next().map(|s| s.event_id).unwrap_or_default()))
    }
}

fn announcement_event(actor: &str, message: &str) -> Result<OutgoingEvent> {
    let record = crate::domain::event::EventRecord {
        id: ids::new_id(),
        event_type: system::ANNOUNCEMENT.to_owned(),
        time: OffsetDateTime::now_utc(),
        resource: None,
        user_id: None,
        actor: actor.to_owned(),
        payload: Some(
            serde_json::value::to_raw_value(&json!({ "message": message }))
                .map_err(|e| Error::internal("failed to encode an announcement", e))?,
        ),
    };
    let body = serde_json::to_vec(&record).map_err(|e| Error::internal("failed to encode an announcement", e))?;
    Ok(OutgoingEvent {
        event_id: record.id,
        subject: subject::announcement_subject(system::ANNOUNCEMENT),
        body: Bytes::from(body),
        dedup_id: None,
    })
}
