//! `herald.v1.SubscriptionService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{
    app::App,
    domain::subscription::{
        AttemptKind, AttemptOutcome, AttemptRecord, BodyFormat, Destination, HttpMethod, SubscriptionRecord,
        SubscriptionStatus,
    },
    error::{Error, Result},
    subscriptions::{EventTypeInfo, NewDestination, NewSubscription, SubscriptionChanges},
};

/// Implements `herald.v1.SubscriptionService`.
pub struct SubscriptionApi {
    app: Arc<App>,
}

impl SubscriptionApi {
    pub fn new(app: Arc<App>) -> Self {
        SubscriptionApi { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Reply<pb::CreateSubscriptionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let new = NewSubscription {
            name: r.name,
            target: convert::target_request(r.target),
            variants: convert::variants(&r.variants)?,
            custom_types: r.custom_types,
            condition: r.condition,
            destination: new_destination(r.destination)?,
            format: format(r.format)?.unwrap_or_default(),
            cloudevents_handshake: r.cloudevents_handshake,
            auth_config: r.auth_config_id,
            disabled_until: r
                .disabled_until
                .as_ref()
                .map(|t| convert::from_timestamp("disabled_until", t))
                .transpose()?,
            ordered: r.ordered,
            rate_limit: r.rate_limit_per_second,
            asymmetric_signatures: r.asymmetric_signatures,
        };
        let (record, signing_secret) = self.app.create_subscription(&who, new).await?;
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(subscription(&record, &SubscriptionStatus::default())),
            signing_secret,
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Reply<pb::GetSubscriptionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let (record, status) = self.app.describe_subscription(&who, &request.get_ref().subscription_id).await?;
        Ok(Response::new(pb::GetSubscriptionResponse { subscription: Some(subscription(&record, &status)) }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Reply<pb::ListSubscriptionsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let subscriptions = self.app.list_subscriptions(&who).iter().map(|(r, s)| subscription(r, s)).collect();
        Ok(Response::new(pb::ListSubscriptionsResponse { subscriptions }))
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> Reply<pb::UpdateSubscriptionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let disabled_until = match (r.clear_disabled_until, &r.disabled_until) {
            (true, _) => Some(None),
            (false, Some(t)) => Some(Some(convert::from_timestamp("disabled_until", t)?)),
            (false, None) => None,
        };
        let changes = SubscriptionChanges {
            name: r.name,
            url: r.url,
            method: (r.method != 0).then(|| method(r.method)).transpose()?.flatten(),
            headers: r.replace_headers.then(|| headers(r.headers)),
            condition: r.condition,
            disabled_until,
            rate_limit: r.rate_limit_per_second,
            enabled: r.enabled,
            auth_config: r.auth_config_id,
            format: format(r.format)?,
        };
        let record = self.app.update_subscription(&who, &r.subscription_id, changes).await?;
        let (_, status) = self.app.describe_subscription(&who, &record.id).await?;
        Ok(Response::new(pb::UpdateSubscriptionResponse { subscription: Some(subscription(&record, &status)) }))
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Reply<pb::DeleteSubscriptionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        self.app.delete_subscription(&who, &request.get_ref().subscription_id).await?;
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn rotate_secret(&self, request: Request<pb::RotateSecretRequest>) -> Reply<pb::RotateSecretResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let signing_secret = self.app.rotate_secret(&who, &request.get_ref().subscription_id).await?;
        Ok(Response::new(pb::RotateSecretResponse { signing_secret }))
    }

    async fn get_public_verification_key(
        &self,
        request: Request<pb::GetPublicVerificationKeyRequest>,
    ) -> Reply<pb::GetPublicVerificationKeyResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let public_key = self.app.public_verification_key(&who, &request.get_ref().subscription_id).await?;
        Ok(Response::new(pb::GetPublicVerificationKeyResponse { public_key }))
    }

    async fn list_event_types(&self, request: Request<pb::ListEventTypesRequest>) -> Reply<pb::ListEventTypesResponse> {
        self.app.authenticate(request.metadata()).await?;
        let event_types = self.app.list_event_types().iter().map(event_type).collect();
        Ok(Response::new(pb::ListEventTypesResponse { event_types }))
    }

    async fn register_event_type(
        &self,
        request: Request<pb::RegisterEventTypeRequest>,
    ) -> Reply<pb::RegisterEventTypeResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let info = self.app.register_event_type(&who, &r.name, &r.description).await?;
        Ok(Response::new(pb::RegisterEventTypeResponse { event_type: Some(event_type(&info)) }))
    }

    async fn list_delivery_attempts(
        &self,
        request: Request<pb::ListDeliveryAttemptsRequest>,
    ) -> Reply<pb::ListDeliveryAttemptsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let (listed, next_page_token) =
            self.app.list_attempts(&who, &r.subscription_id, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListDeliveryAttemptsResponse {
            attempts: listed.iter().map(|a| attempt(&a.record)).collect(),
            next_page_token,
        }))
    }

    async fn resend_event(&self, request: Request<pb::ResendEventRequest>) -> Reply<pb::ResendEventResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let record = self.app.resend_event(&who, &r.subscription_id, &r.event_id).await?;
        Ok(Response::new(pb::ResendEventResponse { attempt: Some(attempt(&record)) }))
    }

    async fn replay_events(&self, request: Request<pb::ReplayEventsRequest>) -> Reply<pb::ReplayEventsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let since = r.since.as_ref().ok_or_else(|| Error::invalid("since", "is required"))?;
        let since = convert::from_timestamp("since", since)?;
        let events = self.app.replay_events(&who, &r.subscription_id, since).await?;
        Ok(Response::new(pb::ReplayEventsResponse { events: events as u32 }))
    }

    async fn send_test_event(&self, request: Request<pb::SendTestEventRequest>) -> Reply<pb::SendTestEventResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let record = self.app.send_test_event(&who, &request.get_ref().subscription_id).await?;
        Ok(Response::new(pb::SendTestEventResponse { attempt: Some(attempt(&record)) }))
    }
}

fn new_destination(
    destination: Option<pb::create_subscription_request::Destination>,
) -> Result<Option<NewDestination>> {
    use pb::{create_subscription_request::Destination as D, slack_destination::Slack};
    Ok(match destination {
        None => None,
        Some(D::Webhook(w)) => {
            Some(NewDestination::Webhook { url: w.url, method: method(w.method)?, headers: headers(w.headers) })
        }
        Some(D::Slack(slack)) => match slack.slack {
            None => return Err(Error::invalid("slack", "set incoming_webhook_url or bot")),
            Some(Slack::IncomingWebhookUrl(url)) => Some(NewDestination::SlackWebhook { url }),
            Some(Slack::Bot(bot)) => Some(NewDestination::SlackBot { token: bot.token, channel: bot.channel }),
        },
    })
}

fn format(raw: i32) -> Result<Option<BodyFormat>> {
    match pb::BodyFormat::try_from(raw) {
        Ok(pb::BodyFormat::Unspecified) => Ok(None),
        Ok(pb::BodyFormat::Plain) => Ok(Some(BodyFormat::Plain)),
        Ok(pb::BodyFormat::CloudeventsBinary) => Ok(Some(BodyFormat::CloudEventsBinary)),
        Ok(pb::BodyFormat::CloudeventsStructured) => Ok(Some(BodyFormat::CloudEventsStructured)),
        Err(_) => Err(Error::invalid("format", format!("unknown body format {raw}"))),
    }
}

fn method(raw: i32) -> Result<Option<HttpMethod>> {
    match pb::HttpMethod::try_from(raw) {
        Ok(pb::HttpMethod::Unspecified) => Ok(None),
        Ok(pb::HttpMethod::Post) => Ok(Some(HttpMethod::Post)),
        Ok(pb::HttpMethod::Put) => Ok(Some(HttpMethod::Put)),
        Ok(pb::HttpMethod::Patch) => Ok(Some(HttpMethod::Patch)),
        Err(_) => Err(Error::invalid("webhook.method", format!("unknown method {raw}"))),
    }
}

fn headers(headers: Vec<pb::Header>) -> Vec<(String, String)> {
    headers.into_iter().map(|h| (h.name, h.value)).collect()
}

fn subscription(r: &SubscriptionRecord, status: &SubscriptionStatus) -> pb::Subscription {
    let paused = r.disabled_until.is_some_and(|u| u > time::OffsetDateTime::now_utc());
    let state = match (&r.disabled, paused) {
        (Some(_), _) => pb::SubscriptionState::Disabled,
        (None, true) => pb::SubscriptionState::Paused,
        (None, false) => pb::SubscriptionState::Active,
    };
    pb::Subscription {
        id: r.id.clone(),
        owner: r.owner.clone(),
        name: r.name.clone(),
        target: Some(convert::target(&r.target)),
        variants: convert::variants_pb(&r.variants),
        custom_types: r.custom_types.clone(),
        condition: r.condition.clone().unwrap_or_default(),
        destination: Some(destination(&r.destination)),
        format: match r.format {
            BodyFormat::Plain => pb::BodyFormat::Plain,
            BodyFormat::CloudEventsBinary => pb::BodyFormat::CloudeventsBinary,
            BodyFormat::CloudEventsStructured => pb::BodyFormat::CloudeventsStructured,
        } as i32,
        cloudevents_handshake: r.cloudevents_handshake,
        auth_config_id: r.auth_config.clone().unwrap_or_default(),
        disabled_until: r.disabled_until.map(convert::timestamp),
        ordered: r.ordered,
        rate_limit_per_second: r.rate_limit.unwrap_or(0),
        asymmetric_signatures: r.ed25519_seed.is_some(),
        state: state as i32,
        disabled_reason: r.disabled.as_ref().map(|d| d.reason.clone()).unwrap_or_default(),
        last_triggered_at: status.last_triggered_at.map(convert::timestamp),
        last_errored_at: status.last_errored_at.map(convert::timestamp),
        created_at: Some(convert::timestamp(r.created_at)),
        updated_at: Some(convert::timestamp(r.updated_at)),
    }
}

/// The destination as shown: Slack secrets masked.
fn destination(d: &Destination) -> pb::subscription::Destination {
    use pb::{slack_destination::Slack, subscription::Destination as D};
    match d {
        Destination::Webhook(w) => D::Webhook(pb::WebhookDestination {
            url: w.url.clone(),
            method: match w.method {
                HttpMethod::Post => pb::HttpMethod::Post,
                HttpMethod::Put => pb::HttpMethod::Put,
                HttpMethod::Patch => pb::HttpMethod::Patch,
            } as i32,
            headers: w
                .headers
                .iter()
                .map(|(name, value)| pb::Header { name: name.clone(), value: value.clone() })
                .collect(),
        }),
        Destination::SlackWebhook { .. } => D::Slack(pb::SlackDestination {
            slack: Some(Slack::IncomingWebhookUrl("https://hooks.slack.com/… (sealed)".into())),
        }),
        Destination::SlackBot { channel, .. } => D::Slack(pb::SlackDestination {
            slack: Some(Slack::Bot(pb::SlackBot { token: "******** (sealed)".into(), channel: channel.clone() })),
        }),
    }
}

fn attempt(a: &AttemptRecord) -> pb::DeliveryAttempt {
    pb::DeliveryAttempt {
        event_id: a.event_id.clone(),
        event_sequence: a.sequence,
        attempt: a.attempt,
        kind: match a.kind {
            AttemptKind::Delivery => pb::AttemptKind::Delivery,
            AttemptKind::Resend => pb::AttemptKind::Resend,
            AttemptKind::Replay => pb::AttemptKind::Replay,
            AttemptKind::Test => pb::AttemptKind::Test,
        } as i32,
        time: Some(convert::timestamp(a.time)),
        http_status: a.status.map_or(0, u32::from),
        error: a.error.clone().unwrap_or_default(),
        latency_ms: a.latency_ms,
        response_body: a.response_body.clone(),
        outcome: match a.outcome {
            AttemptOutcome::Delivered => pb::AttemptOutcome::Delivered,
            AttemptOutcome::RetryScheduled => pb::AttemptOutcome::RetryScheduled,
            AttemptOutcome::Failed => pb::AttemptOutcome::Failed,
            AttemptOutcome::Exhausted => pb::AttemptOutcome::Exhausted,
            AttemptOutcome::Disabled => pb::AttemptOutcome::Disabled,
        } as i32,
        next_attempt_at: a.next_attempt_at.map(convert::timestamp),
    }
}

fn event_type(t: &EventTypeInfo) -> pb::EventType {
    pb::EventType {
        name: t.name.clone(),
        description: t.description.clone(),
        builtin: t.builtin,
        registered: t.registered,
    }
}
