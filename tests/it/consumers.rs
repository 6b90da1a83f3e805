//! Scoped event consumers through `herald.v1.EventNotificationService`:
//! scopes, start positions, batch limits, acknowledgements, reply tokens,
//! permissions, lifecycle and streaming.

use std::{sync::atomic::Ordering, time::Duration};

use herald::{
    auth::reply::{ReplyClaims, ReplyKeys},
    cli::client::Clients,
    grpc::pb::{
        self, PermissionLevel as Level, ReplyStatus, ResourceVariant as V, consumer_target::Target,
        emit_event_request::Kind, get_event_message_stream_response::Message as StreamMsg, start_position::Start,
    },
};
use secrecy::SecretString;
use tonic::{Code, Streaming};

use crate::support::{REPLY_KEY, TestApp, assert_status, create_resource, eventually, grant};

fn resource_target(id: &str, include_subresources: bool) -> Target {
    Target::Resource(pb::ResourceTarget { resource_id: id.into(), include_subresources })
}

/// A new user with READ on `resource`: (user id, client).
async fn reader(app: &TestApp, name: &str, resource: &str) -> (String, Clients) {
    let (id, client) = app.new_user(name, false).await;
    grant(app, &id, resource, Level::Read).await;
    (id, client)
}

fn request(target: Target, start: Start) -> pb::CreateStreamConsumerRequest {
    pb::CreateStreamConsumerRequest {
        target: Some(pb::ConsumerTarget { target: Some(target) }),
        start: Some(pb::StartPosition { start: Some(start) }),
        ..Default::default()
    }
}

fn new_only() -> Start {
    Start::OnlyNew(pb::Empty {})
}

async fn create(client: &Clients, request: pb::CreateStreamConsumerRequest) -> String {
    client.notifications().create_stream_consumer(request).await.expect("create consumer").into_inner().stream_consumer
}

async fn emit(client: &Clients, resource_id: &str, event_type: &str) -> pb::EmittedEvent {
    let request = pb::EmitEventRequest {
        resource_id: resource_id.into(),
        kind: Some(Kind::CustomType(event_type.into())),
        ..Default::default()
    };
    client.events().emit_event(request).await.expect("emit").into_inner().event.unwrap()
}

async fn fetch(client: &Clients, consumer: &str, batch: u32, wait: Duration) -> Vec<pb::EventMessage> {
    try_fetch(client, consumer, batch, wait).await.expect("fetch")
}

async fn try_fetch(
    client: &Clients,
    consumer: &str,
    batch: u32,
    wait: Duration,
) -> Result<Vec<pb::EventMessage>, tonic::Status> {
    let request = pb::GetEventMessageBatchRequest {
        stream_consumer: consumer.into(),
        batch_size: batch,
        max_wait: Some(prost_types::Duration { seconds: wait.as_secs() as i64, nanos: wait.subsec_nanos() as i32 }),
    };
    Ok(client.notifications().get_event_message_batch(request).await?.into_inner().messages)
}

/// Fetches until `n` events arrived (failing after 10 s), then checks nothing more comes.
async fn fetch_exactly(client: &Clients, consumer: &str, n: usize) -> Vec<pb::EventMessage> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} events arrived", got.len());
        got.extend(fetch(client, consumer, 100, Duration::from_millis(500)).await);
    }
    let extra = fetch(client, consumer, 100, Duration::from_millis(200)).await;
    assert!(extra.is_empty() && got.len() == n, "expected exactly {n} events, got {} + {}", got.len(), extra.len());
    got
}

async fn ack(client: &Clients, consumer: &str, replies: Vec<pb::Reply>) -> Vec<ReplyStatus> {
    let request = pb::AcknowledgeMessageBatchRequest { replies, stream_consumer: consumer.into() };
    let results = client.notifications().acknowledge_message_batch(request).await.expect("ack").into_inner().results;
    results.iter().map(|r| r.status()).collect()
}

fn replies(messages: &[pb::EventMessage]) -> Vec<pb::Reply> {
    messages.iter().map(|m| m.reply.clone().unwrap()).collect()
}

fn resource_ids(messages: &[pb::EventMessage]) -> Vec<String> {
    let mut ids: Vec<String> =
        messages.iter().map(|m| m.event.as_ref().unwrap().resource.as_ref().unwrap().id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_scope_matrix_delivers_exactly_the_events_in_scope() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let c = create_resource(&admin, V::Collection, "c", &p).await.id;
    let d = create_resource(&admin, V::Dataset, "d", &c).await.id;
    let o = create_resource(&admin, V::Object, "o", &d).await.id;
    let levels = [p.clone(), c.clone(), d.clone(), o.clone()];
    let mut consumers = Vec::new();
    for (i, id) in levels.iter().enumerate() {
        for subtree in [false, true] {
            let consumer = create(&admin, request(resource_target(id, subtree), new_only())).await;
            let mut expected: Vec<String> = if subtree { levels[i..].to_vec() } else { vec![id.clone()] };
            expected.sort();
            consumers.push((consumer, expected, format!("level {i} subtree={subtree}")));
        }
    }
    for id in &levels {
        emit(&admin, id, "matrix.ping").await;
    }
    for (consumer, expected, what) in consumers {
        let got = fetch_exactly(&admin, &consumer, expected.len()).await;
        assert_eq!(resource_ids(&got), expected, "{what}");
        assert!(got.iter().all(|m| m.event.as_ref().unwrap().r#type == "matrix.ping"));
    }
}

#[tokio::test]
async fn each_start_position_begins_where_asked() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let e1 = emit(&admin, &p, "start.one").await;
    let e2 = emit(&admin, &p, "start.two").await;
    let e3 = emit(&admin, &p, "start.three").await;
    let types =
        |ms: &[pb::EventMessage]| ms.iter().map(|m| m.event.as_ref().unwrap().r#type.clone()).collect::<Vec<_>>();
    let mut only_start = request(resource_target(&p, false), Start::All(pb::Empty {}));
    only_start.custom_types = vec!["start.*".into()];

    let all = create(&admin, only_start.clone()).await;
    let got = fetch_exactly(&admin, &all, 3).await;
    assert_eq!(types(&got), ["start.one", "start.two", "start.three"]);
    assert_eq!(got[0].event.as_ref().unwrap().sequence, e1.sequence);
    let e2_time = got[1].event.as_ref().unwrap().time.unwrap();

    only_start.start = Some(pb::StartPosition { start: Some(Start::FromSequence(e2.sequence)) });
    let from_seq = create(&admin, only_start.clone()).await;
    assert_eq!(types(&fetch_exactly(&admin, &from_seq, 2).await), ["start.two", "start.three"]);

    only_start.start = Some(pb::StartPosition { start: Some(Start::FromTime(e2_time)) });
    let from_time = create(&admin, only_start.clone()).await;
    assert_eq!(types(&fetch_exactly(&admin, &from_time, 2).await), ["start.two", "start.three"]);

    only_start.start = Some(pb::StartPosition { start: Some(new_only()) });
    let new = create(&admin, only_start.clone()).await;
    assert!(fetch(&admin, &new, 10, Duration::ZERO).await.is_empty());
    let e4 = emit(&admin, &p, "start.four").await;
    let got = fetch_exactly(&admin, &new, 1).await;
    assert_eq!(got[0].event.as_ref().unwrap().id, e4.event_id);
    assert!(e3.sequence < e4.sequence);
}

#[tokio::test]
async fn batch_size_and_max_wait_are_checked_at_their_limits() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, true), Start::All(pb::Empty {}))).await;
    assert_status(try_fetch(&admin, &consumer, 0, Duration::ZERO).await, Code::InvalidArgument, "batch_size");
    assert_status(
        try_fetch(&admin, &consumer, 1001, Duration::ZERO).await,
        Code::InvalidArgument,
        "between 1 and 1000",
    );
    assert_status(
        try_fetch(&admin, &consumer, 1, Duration::from_millis(30_001)).await,
        Code::InvalidArgument,
        "max_wait",
    );
    try_fetch(&admin, &consumer, 1000, Duration::ZERO).await.unwrap();
    // 30 s is allowed; an event is available, so it returns at once.
    try_fetch(&admin, &consumer, 1, Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn a_batch_never_pulls_more_than_it_returns() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    for _ in 0..5 {
        emit(&admin, &p, "pull.item").await;
    }
    let first = fetch(&admin, &consumer, 2, Duration::ZERO).await;
    assert_eq!(first.len(), 2);
    let info = |c: &Clients| {
        let mut n = c.notifications();
        let consumer = consumer.clone();
        async move {
            n.get_stream_consumer(pb::GetStreamConsumerRequest { stream_consumer: consumer })
                .await
                .unwrap()
                .into_inner()
                .consumer
                .unwrap()
        }
    };
    let state = info(&admin).await;
    assert_eq!((state.in_flight, state.pending), (2, 3));
    // The remaining three are available to the next call at once.
    let rest = fetch(&admin, &consumer, 10, Duration::ZERO).await;
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].event.as_ref().unwrap().sequence, first[1].event.as_ref().unwrap().sequence + 1);
    let state = info(&admin).await;
    assert_eq!((state.in_flight, state.pending), (5, 0));
    assert!(state.last_active_at.is_some());
}

#[tokio::test]
async fn a_waiting_fetch_returns_an_event_emitted_while_it_waits() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    let started = std::time::Instant::now();
    assert!(fetch(&admin, &consumer, 10, Duration::from_millis(300)).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "an empty fetch waits for max_wait");

    let waiting = {
        let admin = app.admin().await;
        let consumer = consumer.clone();
        tokio::spawn(async move { fetch(&admin, &consumer, 10, Duration::from_secs(20)).await })
    };
    emit(&admin, &p, "wait.done").await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("returns before max_wait").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].delivery_count, 1);
}

#[tokio::test]
async fn acked_events_are_not_redelivered_and_unacked_ones_are_after_the_ack_wait() {
    let app = TestApp::spawn_with(|s| s.consumers.ack_wait = Duration::from_secs(1)).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    let acked = emit(&admin, &p, "ack.yes").await;
    let unacked = emit(&admin, &p, "ack.no").await;
    let got = fetch(&admin, &consumer, 10, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(ack(&admin, &consumer, replies(&got[..1])).await, [ReplyStatus::Ok]);
    let again = eventually(Duration::from_secs(10), "redelivery after the ack wait", || async {
        let got = fetch(&admin, &consumer, 10, Duration::from_millis(500)).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(again.len(), 1, "only the unacknowledged event comes back");
    let event = again[0].event.as_ref().unwrap();
    assert_eq!((event.id.as_str(), again[0].delivery_count), (unacked.event_id.as_str(), 2));
    assert_ne!(event.id, acked.event_id);
}

#[tokio::test]
async fn a_negative_acknowledgement_redelivers_after_its_delay() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    emit(&admin, &p, "nak.me").await;
    let got = fetch(&admin, &consumer, 1, Duration::from_secs(2)).await;
    let nak = |replies: Vec<pb::Reply>, delay_ms: u64| pb::NegativeAcknowledgeMessageBatchRequest {
        replies,
        stream_consumer: consumer.clone(),
        delay: Some(prost_types::Duration {
            seconds: (delay_ms / 1000) as i64,
            nanos: ((delay_ms % 1000) * 1_000_000) as i32,
        }),
    };
    let results = admin.notifications().negative_acknowledge_message_batch(nak(replies(&got), 1500)).await.unwrap();
    assert_eq!(results.into_inner().results[0].status(), ReplyStatus::Ok);
    assert!(fetch(&admin, &consumer, 1, Duration::ZERO).await.is_empty(), "not before the delay");
    let again = eventually(Duration::from_secs(10), "redelivery after the nak delay", || async {
        let got = fetch(&admin, &consumer, 1, Duration::from_millis(500)).await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(again[0].delivery_count, 2);
    // Without a delay the event is available at once.
    let mut immediate = nak(replies(&again), 0);
    immediate.delay = None;
    admin.notifications().negative_acknowledge_message_batch(immediate).await.unwrap();
    assert_eq!(fetch(&admin, &consumer, 1, Duration::from_secs(2)).await[0].delivery_count, 3);
    assert_status(
        admin.notifications().negative_acknowledge_message_batch(nak(replies(&again), 13 * 3600 * 1000)).await,
        Code::InvalidArgument,
        "delay",
    );
}

#[tokio::test]
async fn bad_reply_tokens_are_rejected_per_reply_while_valid_ones_succeed() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let (alice_id, alice) = reader(&app, "alice", &p).await;
    let (bob_id, bob) = reader(&app, "bob", &p).await;
    let mine = create(&alice, request(resource_target(&p, false), new_only())).await;
    let my_other = create(&alice, request(resource_target(&p, false), new_only())).await;
    let bobs = create(&bob, request(resource_target(&p, false), new_only())).await;
    for _ in 0..3 {
        emit(&admin, &p, "token.test").await;
    }
    let m = fetch_exactly(&alice, &mine, 3).await;
    let other = fetch(&alice, &my_other, 1, Duration::from_secs(2)).await;
    let foreign = fetch(&bob, &bobs, 1, Duration::from_secs(2)).await;

    let mut tampered = m[1].reply.clone().unwrap();
    tampered.reply = tampered.reply.replace(&format!(":{alice_id}:"), &format!(":{bob_id}:"));
    let garbage = pb::Reply { reply: "garbage".into(), salt: "x".into(), hmac: "not base64 !".into() };
    // A correctly signed token whose expiry has passed (the test knows the key).
    let keys = ReplyKeys::new(SecretString::from(REPLY_KEY), None);
    let subject = m[2].reply.as_ref().unwrap().reply.splitn(4, ':').nth(3).unwrap().to_owned();
    let expired = keys.sign(&ReplyClaims { owner: alice_id.clone(), expires_at: 1_000, ack_subject: subject });
    let expired = pb::Reply { reply: expired.reply, salt: expired.salt, hmac: expired.hmac };

    let batch = vec![
        m[0].reply.clone().unwrap(),
        tampered,
        foreign[0].reply.clone().unwrap(),
        other[0].reply.clone().unwrap(),
        expired,
        garbage,
        m[2].reply.clone().unwrap(),
    ];
    let statuses = ack(&alice, &mine, batch).await;
    use ReplyStatus::*;
    assert_eq!(statuses, [Ok, Invalid, NotYours, NotYours, Expired, Invalid, Ok]);
    // Acknowledging again is harmless and says the event is gone.
    assert_eq!(ack(&alice, &mine, replies(&m[..1])).await, [AlreadyGone]);
    // The tampered event is still unacknowledged; its genuine token works.
    assert_eq!(ack(&alice, &mine, replies(&m[1..2])).await, [Ok]);
    // Without naming a consumer, Alice may acknowledge any of her consumers.
    let request = pb::AcknowledgeMessageBatchRequest { replies: replies(&other), stream_consumer: String::new() };
    let result = alice.notifications().acknowledge_message_batch(request).await.unwrap().into_inner().results;
    assert_eq!(result[0].status(), Ok);
    let empty = pb::AcknowledgeMessageBatchRequest { replies: vec![], stream_consumer: String::new() };
    assert_status(alice.notifications().acknowledge_message_batch(empty).await, Code::InvalidArgument, "replies");
}

#[tokio::test]
async fn only_the_owner_or_an_admin_can_use_a_consumer() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let (_, alice) = reader(&app, "alice", &p).await;
    let (_, bob) = reader(&app, "bob", &p).await;
    let consumer = create(&alice, request(resource_target(&p, false), new_only())).await;
    let get = pb::GetStreamConsumerRequest { stream_consumer: consumer.clone() };
    assert_status(bob.notifications().get_stream_consumer(get.clone()).await, Code::PermissionDenied, "another user");
    assert_status(try_fetch(&bob, &consumer, 1, Duration::ZERO).await, Code::PermissionDenied, "another user");
    let delete = pb::DeleteStreamConsumerRequest { stream_consumer: consumer.clone() };
    assert_status(
        bob.notifications().delete_stream_consumer(delete.clone()).await,
        Code::PermissionDenied,
        "another user",
    );
    let stream = bob
        .notifications()
        .get_event_message_stream(pb::GetEventMessageStreamRequest { stream_consumer: consumer.clone() })
        .await;
    assert_status(stream.map(|_| ()), Code::PermissionDenied, "another user");
    let listed = bob.notifications().list_stream_consumers(pb::ListStreamConsumersRequest {}).await.unwrap();
    assert!(listed.into_inner().consumers.is_empty());
    let listed = alice.notifications().list_stream_consumers(pb::ListStreamConsumersRequest {}).await.unwrap();
    assert_eq!(listed.into_inner().consumers.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [consumer.as_str()]);
    admin.notifications().get_stream_consumer(get.clone()).await.unwrap();
    alice.notifications().delete_stream_consumer(delete).await.unwrap();
    assert_status(alice.notifications().get_stream_consumer(get).await, Code::NotFound, &consumer);
}

#[tokio::test]
async fn targets_need_the_right_permission_and_bad_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let (bob_id, _) = app.new_user("bob", false).await;
    let n = || alice.notifications();
    let create_req = |t: Target| request(t, new_only());
    assert_status(
        n().create_stream_consumer(create_req(resource_target(&p, true))).await,
        Code::PermissionDenied,
        "READ",
    );
    assert_status(n().create_stream_consumer(create_req(Target::UserId(bob_id))).await, Code::PermissionDenied, "");
    assert_status(
        n().create_stream_consumer(create_req(Target::All(pb::Empty {}))).await,
        Code::PermissionDenied,
        "admin",
    );
    n().create_stream_consumer(create_req(Target::UserId(alice_id.clone()))).await.unwrap();
    n().create_stream_consumer(create_req(Target::Announcements(pb::Empty {}))).await.unwrap();
    admin.notifications().create_stream_consumer(create_req(Target::All(pb::Empty {}))).await.unwrap();

    let no_target = pb::CreateStreamConsumerRequest::default();
    assert_status(n().create_stream_consumer(no_target).await, Code::InvalidArgument, "target");
    let zero = request(resource_target(&p, true), Start::FromSequence(0));
    assert_status(admin.notifications().create_stream_consumer(zero).await, Code::InvalidArgument, "from_sequence");
    let mut bad_type = create_req(resource_target(&p, true));
    bad_type.custom_types = vec!["job.done".into(), "Job!".into()];
    assert_status(
        admin.notifications().create_stream_consumer(bad_type).await,
        Code::InvalidArgument,
        "custom_types[1]",
    );
    let unknown = create_req(resource_target("01NOSUCH", false));
    assert_status(admin.notifications().create_stream_consumer(unknown).await, Code::NotFound, "01NOSUCH");
}

#[tokio::test]
async fn a_user_consumer_receives_that_users_account_events() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let mut req = request(Target::UserId(alice_id.clone()), new_only());
    req.custom_types = vec!["herald.token.*".into()];
    let consumer = create(&alice, req).await;
    let token = alice
        .users()
        .create_token(pb::CreateTokenRequest { name: "second".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    let got = fetch_exactly(&alice, &consumer, 1).await;
    let event = got[0].event.as_ref().unwrap();
    assert_eq!((event.r#type.as_str(), event.user_id.as_str()), ("herald.token.created", alice_id.as_str()));
    assert!(event.payload_json.contains(&token.id));
}

#[tokio::test]
async fn the_consumer_quota_gives_resource_exhausted() {
    let app = TestApp::spawn_with(|s| s.consumers.max_per_user = 2).await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let req = || request(Target::UserId(alice_id.clone()), new_only());
    let first = create(&alice, req()).await;
    create(&alice, req()).await;
    assert_status(alice.notifications().create_stream_consumer(req()).await, Code::ResourceExhausted, "limit is 2");
    let delete = pb::DeleteStreamConsumerRequest { stream_consumer: first };
    alice.notifications().delete_stream_consumer(delete).await.unwrap();
    create(&alice, req()).await;
}

#[tokio::test]
async fn inactive_consumers_are_removed() {
    let app = TestApp::spawn_with(|s| s.consumers.inactive_threshold = Duration::from_secs(1)).await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let consumer = create(&alice, request(Target::UserId(alice_id), new_only())).await;
    eventually(Duration::from_secs(20), "the idle consumer to be removed", || async {
        let get = pb::GetStreamConsumerRequest { stream_consumer: consumer.clone() };
        let r = alice.notifications().get_stream_consumer(get).await;
        matches!(r, Err(s) if s.code() == Code::NotFound).then_some(())
    })
    .await;
    let listed = alice.notifications().list_stream_consumers(pb::ListStreamConsumersRequest {}).await.unwrap();
    assert!(listed.into_inner().consumers.is_empty());
}

async fn next_message(stream: &mut Streaming<pb::GetEventMessageStreamResponse>) -> Result<StreamMsg, tonic::Status> {
    let item = tokio::time::timeout(Duration::from_secs(15), stream.message()).await.expect("stream item in time")?;
    Ok(item.expect("stream still open").message.unwrap())
}

async fn next_event(stream: &mut Streaming<pb::GetEventMessageStreamResponse>) -> pb::EventMessage {
    loop {
        match next_message(stream).await.expect("stream ok") {
            StreamMsg::Event(e) => return e,
            StreamMsg::KeepAlive(_) => continue,
        }
    }
}

async fn open_stream(client: &Clients, consumer: &str) -> Streaming<pb::GetEventMessageStreamResponse> {
    let request = pb::GetEventMessageStreamRequest { stream_consumer: consumer.into() };
    client.notifications().get_event_message_stream(request).await.expect("open stream").into_inner()
}

#[tokio::test]
async fn a_stream_delivers_events_as_they_arrive_and_keeps_idle_clients_alive() {
    let app = TestApp::spawn_with(|s| s.consumers.keepalive_interval = Duration::from_millis(300)).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, true), new_only())).await;
    let mut stream = open_stream(&admin, &consumer).await;
    assert!(matches!(next_message(&mut stream).await.unwrap(), StreamMsg::KeepAlive(_)), "idle streams keep alive");
    let emitted = emit(&admin, &p, "stream.one").await;
    let got = next_event(&mut stream).await;
    assert_eq!(got.event.as_ref().unwrap().id, emitted.event_id);
    assert_eq!(ack(&admin, &consumer, vec![got.reply.unwrap()]).await, [ReplyStatus::Ok]);
    let second = emit(&admin, &p, "stream.two").await;
    assert_eq!(next_event(&mut stream).await.event.unwrap().id, second.event_id);
}

#[tokio::test]
async fn revoking_read_stops_fetches_and_ends_an_open_stream() {
    let app = TestApp::spawn_with(|s| s.consumers.keepalive_interval = Duration::from_millis(300)).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let (alice_id, alice) = reader(&app, "alice", &p).await;
    let consumer = create(&alice, request(resource_target(&p, true), new_only())).await;
    let streaming = create(&alice, request(resource_target(&p, true), new_only())).await;
    let mut stream = open_stream(&alice, &streaming).await;
    emit(&admin, &p, "before.revoke").await;
    next_event(&mut stream).await;
    admin
        .users()
        .revoke_permission(pb::RevokePermissionRequest { user_id: alice_id, resource_id: p.clone() })
        .await
        .unwrap();
    assert_status(try_fetch(&alice, &consumer, 1, Duration::ZERO).await, Code::PermissionDenied, "READ");
    let ended = loop {
        match next_message(&mut stream).await {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
}

#[tokio::test]
async fn a_disconnected_stream_client_frees_its_server_side_work() {
    const EVENTS: usize = 300;
    let app = TestApp::spawn_with(|s| {
        s.consumers.stream_buffer = 4;
        s.consumers.ack_wait = Duration::from_secs(300);
    })
    .await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    // 300 events of 2 KiB: far more than HTTP/2 flow control lets the server
    // hand to a client that does not read, so the server must hold some back.
    let payload = format!("\"{}\"", "x".repeat(2048));
    let events: Vec<pb::EmitEventRequest> = (0..EVENTS)
        .map(|_| pb::EmitEventRequest {
            resource_id: p.clone(),
            kind: Some(Kind::CustomType("slow.client".into())),
            payload_json: payload.clone(),
            ..Default::default()
        })
        .collect();
    admin.events().emit_events(pb::EmitEventsRequest { events }).await.unwrap();
    let mut stream = open_stream(&admin, &consumer).await;
    next_event(&mut stream).await;
    drop(stream);
    eventually(Duration::from_secs(15), "the stream task and its pull requests to end", || async {
        let state = app.app.events.consumer_state(&consumer).await.unwrap().unwrap();
        (app.app.stats.open_streams.load(Ordering::SeqCst) == 0 && state.waiting == 0).then_some(())
    })
    .await;
    // Everything not handed to the client is available again at once (long
    // before the 300 s ack wait): fetch until nothing more comes.
    let mut rest = Vec::new();
    loop {
        let got = fetch(&admin, &consumer, 1000, Duration::from_millis(500)).await;
        if got.is_empty() {
            break;
        }
        rest.extend(got);
    }
    let state = app.app.events.consumer_state(&consumer).await.unwrap().unwrap();
    assert_eq!(state.pending, 0, "nothing is stuck behind the dead stream");
    let reached_client = state.in_flight as usize - rest.len();
    // Only what HTTP/2 flow control (a 64 KiB window, ~28 of these events)
    // let through to the client stays in flight until the ack wait.
    assert!((1..=48).contains(&reached_client), "{reached_client} events stayed in flight");
}

#[tokio::test]
async fn a_stream_survives_a_nats_restart_without_losing_events() {
    let mut app = TestApp::spawn_with(|s| s.consumers.keepalive_interval = Duration::from_millis(500)).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    let mut stream = open_stream(&admin, &consumer).await;
    let before = emit(&admin, &p, "restart.before").await;
    assert_eq!(next_event(&mut stream).await.event.unwrap().id, before.event_id);
    app.nats.restart().await;
    let after = eventually(Duration::from_secs(20), "emitting after the restart", || async {
        let request = pb::EmitEventRequest {
            resource_id: p.clone(),
            kind: Some(Kind::CustomType("restart.after".into())),
            idempotency_key: "after-restart".into(),
            ..Default::default()
        };
        admin.events().emit_event(request).await.ok().map(|r| r.into_inner().event.unwrap())
    })
    .await;
    let got = next_event(&mut stream).await;
    assert_eq!(got.event.unwrap().id, after.event_id, "the same stream resumes with the next event");
}

#[tokio::test]
async fn deleted_events_reach_consumers_of_the_resource_and_of_its_ancestors() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let d = create_resource(&admin, V::Dataset, "d", &p).await.id;
    let (alice_id, alice) = app.new_user("alice", false).await;
    grant(&app, &alice_id, &d, Level::Read).await;
    grant(&app, &alice_id, &p, Level::Read).await;
    let on_dataset = create(&alice, request(resource_target(&d, false), new_only())).await;
    let on_project = create(&alice, request(resource_target(&p, true), new_only())).await;
    admin.resources().delete_resource(pb::DeleteResourceRequest { id: d.clone(), recursive: false }).await.unwrap();
    let got = fetch_exactly(&alice, &on_dataset, 1).await;
    assert_eq!(got[0].event.as_ref().unwrap().variant(), pb::EventVariant::Deleted);
    let got = fetch_exactly(&alice, &on_project, 2).await;
    let kinds: Vec<(String, String)> = got
        .iter()
        .map(|m| {
            let e = m.event.as_ref().unwrap();
            (e.r#type.clone(), e.resource.as_ref().unwrap().id.clone())
        })
        .collect();
    assert_eq!(kinds, [("deleted".to_owned(), d.clone()), ("updated".to_owned(), p.clone())]);
}

#[tokio::test]
async fn a_consumer_created_on_one_replica_is_fetched_and_acked_on_another() {
    let app = TestApp::spawn().await;
    let second = herald::server::start(app.settings.clone(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let other = Clients::connect(&format!("http://{}", second.addr), Some(crate::support::ADMIN_TOKEN)).await.unwrap();
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = create(&admin, request(resource_target(&p, false), new_only())).await;
    emit(&other, &p, "replica.event").await;
    let got = fetch_exactly(&other, &consumer, 1).await;
    assert_eq!(ack(&admin, &consumer, replies(&got)).await, [ReplyStatus::Ok]);
}
