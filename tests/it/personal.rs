//! Personal notifications through `herald.v1.PersonalNotificationService`.

use std::time::Duration;

use herald::{
    cli::client::Clients,
    grpc::pb::{
        self, PermissionLevel as Level, PersonalNotificationVariant as NV, ReferenceType, ResourceVariant as V,
        consumer_target::Target, start_position::Start, watch_personal_notifications_response::Message,
    },
};
use tonic::Code;

use crate::support::{TestApp, assert_status, create_resource, eventually, grant};

async fn inbox(client: &Clients) -> Vec<pb::PersonalNotification> {
    let request = pb::GetPersonalNotificationsRequest { page_size: 1000, page_token: String::new() };
    client.personal().get_personal_notifications(request).await.expect("list").into_inner().notifications
}

fn variants(notices: &[pb::PersonalNotification]) -> Vec<NV> {
    notices.iter().map(|n| n.variant()).collect()
}

async fn ack(client: &Clients, ids: &[&str]) -> pb::AcknowledgePersonalNotificationsResponse {
    let request =
        pb::AcknowledgePersonalNotificationsRequest { notification_ids: ids.iter().map(|s| s.to_string()).collect() };
    client.personal().acknowledge_personal_notifications(request).await.expect("ack").into_inner()
}

#[tokio::test]
async fn granting_changing_and_revoking_notify_only_the_affected_user() {
    let app = TestApp::spawn().await;
    let (owner_id, owner) = app.new_user("Olga Owner", true).await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let (_, bob) = app.new_user("bob", false).await;
    let p = create_resource(&owner, V::Project, "Genomes", "").await.id;
    let grant_req = |level: Level| pb::GrantPermissionRequest {
        user_id: alice_id.clone(),
        resource_id: p.clone(),
        level: level as i32,
    };
    owner.users().grant_permission(grant_req(Level::Read)).await.unwrap();
    owner.users().grant_permission(grant_req(Level::Write)).await.unwrap();
    owner.users().grant_permission(grant_req(Level::Write)).await.unwrap(); // unchanged: no notice
    owner
        .users()
        .revoke_permission(pb::RevokePermissionRequest { user_id: alice_id.clone(), resource_id: p.clone() })
        .await
        .unwrap();
    let notices = inbox(&alice).await;
    assert_eq!(
        variants(&notices),
        [NV::PermissionRevoked, NV::PermissionUpdated, NV::PermissionGranted],
        "newest first"
    );
    let granted = &notices[2];
    assert_eq!(granted.message, "Olga Owner granted you READ on project \"Genomes\"");
    assert_eq!(notices[1].message, "Olga Owner changed your permission on project \"Genomes\" from READ to WRITE");
    assert_eq!(notices[0].message, "Olga Owner revoked your WRITE permission on project \"Genomes\"");
    let refs: Vec<(ReferenceType, &str, &str)> =
        granted.references.iter().map(|r| (r.r#type(), r.id.as_str(), r.display_name.as_str())).collect();
    assert_eq!(
        refs,
        [(ReferenceType::User, owner_id.as_str(), "Olga Owner"), (ReferenceType::Resource, p.as_str(), "Genomes")]
    );
    assert!(granted.created_at.is_some());
    assert!(inbox(&bob).await.is_empty(), "nobody else is notified");
}

#[tokio::test]
async fn access_requests_notify_the_admins_of_the_resource_and_its_ancestors_at_a_limited_rate() {
    let app = TestApp::spawn_with(|s| s.personal.access_request_interval = Duration::from_secs(2)).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let d = create_resource(&admin, V::Dataset, "d", &p).await.id;
    let (project_admin_id, project_admin) = app.new_user("project admin", false).await;
    let (dataset_admin_id, dataset_admin) = app.new_user("dataset admin", false).await;
    let (reader_id, reader) = app.new_user("reader", false).await;
    let (requester_id, requester) = app.new_user("requester", false).await;
    grant(&app, &project_admin_id, &p, Level::Admin).await;
    grant(&app, &dataset_admin_id, &d, Level::Admin).await;
    grant(&app, &reader_id, &p, Level::Read).await;
    // Clear the grant notifications.
    for client in [&project_admin, &dataset_admin, &reader] {
        let ids: Vec<String> = inbox(client).await.into_iter().map(|n| n.id).collect();
        ack(client, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    }
    let request =
        |resource: &str| pb::RequestResourceAccessRequest { resource_id: resource.into(), message: "need it".into() };
    let reply = requester.personal().request_resource_access(request(&d)).await.unwrap().into_inner();
    assert_eq!(reply.notified, 3, "both admins and the bootstrap admin, who created the project and holds ADMIN");
    for client in [&project_admin, &dataset_admin] {
        let notices = inbox(client).await;
        assert_eq!(variants(&notices), [NV::AccessRequested]);
        assert_eq!(notices[0].message, "requester requests access to dataset \"d\": need it");
        assert_eq!(notices[0].references[0].id, requester_id);
    }
    assert!(inbox(&reader).await.is_empty() && inbox(&requester).await.is_empty());
    // The dataset's admin does not administer the project.
    assert_eq!(requester.personal().request_resource_access(request(&p)).await.unwrap().into_inner().notified, 2);
    assert_eq!(inbox(&dataset_admin).await.len(), 1);

    assert_status(requester.personal().request_resource_access(request(&d)).await, Code::ResourceExhausted, "recently");
    eventually(Duration::from_secs(20), "the rate limit to pass", || async {
        requester.personal().request_resource_access(request(&d)).await.ok()
    })
    .await;
    let empty = pb::RequestResourceAccessRequest { resource_id: d.clone(), message: String::new() };
    assert_status(requester.personal().request_resource_access(empty).await, Code::InvalidArgument, "message");
    assert_status(requester.personal().request_resource_access(request("01NOSUCH")).await, Code::NotFound, "01NOSUCH");
}

#[tokio::test]
async fn announcements_notify_every_user_and_reach_announcement_consumers() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, alice) = app.new_user("alice", false).await;
    let (_, bob) = app.new_user("bob", false).await;
    let consumer = alice
        .notifications()
        .create_stream_consumer(pb::CreateStreamConsumerRequest {
            target: Some(pb::ConsumerTarget { target: Some(Target::Announcements(pb::Empty {})) }),
            start: Some(pb::StartPosition { start: Some(Start::OnlyNew(pb::Empty {})) }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_consumer;
    let announce = |message: &str| pb::SendAnnouncementRequest { message: message.into() };
    assert_status(alice.personal().send_announcement(announce("hi")).await, Code::PermissionDenied, "admin");
    let reply = admin.personal().send_announcement(announce("Maintenance at 18:00")).await.unwrap().into_inner();
    assert_eq!(reply.notified, 3, "alice, bob and the bootstrap admin");
    for client in [&alice, &bob, &admin] {
        let notices = inbox(client).await;
        assert_eq!(variants(&notices), [NV::Announcement]);
        assert_eq!(notices[0].message, "Maintenance at 18:00");
    }
    let batch = pb::GetEventMessageBatchRequest {
        stream_consumer: consumer,
        batch_size: 10,
        max_wait: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
    };
    let events = alice.notifications().get_event_message_batch(batch).await.unwrap().into_inner().messages;
    let event = events[0].event.as_ref().unwrap();
    assert_eq!((event.id.as_str(), event.r#type.as_str()), (reply.event_id.as_str(), "herald.announcement"));
    assert_eq!(event.payload_json, r#"{"message":"Maintenance at 18:00"}"#);
    assert_status(admin.personal().send_announcement(announce("")).await, Code::InvalidArgument, "message");
}

async fn grant_many(app: &TestApp, user_id: &str, n: usize) {
    let admin = app.admin().await;
    for i in 0..n {
        let r = create_resource(&admin, V::Project, &format!("p{i}"), "").await.id;
        grant(app, user_id, &r, Level::Read).await;
    }
}

#[tokio::test]
async fn notifications_are_paged_newest_first() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    grant_many(&app, &alice_id, 5).await;
    let all = inbox(&alice).await;
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::GetPersonalNotificationsRequest { page_size: 2, page_token: token };
        let page = alice.personal().get_personal_notifications(request).await.unwrap().into_inner();
        pages.push(page.notifications.iter().map(|n| n.message.clone()).collect::<Vec<_>>());
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), all.iter().map(|n| n.message.clone()).collect::<Vec<_>>());
    assert!(all[0].message.contains("\"p4\"") && all[4].message.contains("\"p0\""), "newest first");
    let too_big = pb::GetPersonalNotificationsRequest { page_size: 1001, page_token: String::new() };
    assert_status(alice.personal().get_personal_notifications(too_big).await, Code::InvalidArgument, "page_size");
}

#[tokio::test]
async fn acknowledging_removes_exactly_the_callers_given_ids() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let (bob_id, bob) = app.new_user("bob", false).await;
    grant_many(&app, &alice_id, 3).await;
    grant_many(&app, &bob_id, 1).await;
    let mine: Vec<String> = inbox(&alice).await.into_iter().map(|n| n.id).collect();
    let bobs = inbox(&bob).await[0].id.clone();
    let reply = ack(&alice, &[&mine[0], &bobs, "01NOSUCHNOTICE"]).await;
    assert_eq!(reply.acknowledged_ids, [mine[0].clone()]);
    assert_eq!(reply.not_found_ids, [bobs.clone(), "01NOSUCHNOTICE".to_owned()]);
    assert_eq!(inbox(&alice).await.into_iter().map(|n| n.id).collect::<Vec<_>>(), mine[1..]);
    assert_eq!(inbox(&bob).await.len(), 1, "bob's notification is untouched");
    let again = ack(&alice, &[&mine[0]]).await;
    assert!(again.acknowledged_ids.is_empty() && again.not_found_ids == [mine[0].clone()], "twice is harmless");
    let empty = pb::AcknowledgePersonalNotificationsRequest { notification_ids: vec![] };
    assert_status(
        alice.personal().acknowledge_personal_notifications(empty).await,
        Code::InvalidArgument,
        "notification_ids",
    );
}

#[tokio::test]
async fn notifications_survive_restarts_of_herald_and_nats() {
    let mut app = TestApp::spawn().await;
    let (alice_id, token) = app.new_user_token("alice", false).await;
    grant_many(&app, &alice_id, 2).await;
    let before: Vec<String> = inbox(&app.client(&token).await).await.into_iter().map(|n| n.id).collect();
    assert_eq!(before.len(), 2);
    app.restart_herald().await;
    assert_eq!(inbox(&app.client(&token).await).await.into_iter().map(|n| n.id).collect::<Vec<_>>(), before);
    app.nats.restart().await;
    let alice = app.client(&token).await;
    let after = eventually(Duration::from_secs(20), "herald to reconnect to NATS", || async {
        let request = pb::GetPersonalNotificationsRequest { page_size: 100, page_token: String::new() };
        alice.personal().get_personal_notifications(request).await.ok().map(|r| r.into_inner().notifications)
    })
    .await;
    assert_eq!(after.into_iter().map(|n| n.id).collect::<Vec<_>>(), before);
}

#[tokio::test]
async fn the_per_user_cap_keeps_the_newest_notifications() {
    let app = TestApp::spawn_with(|s| s.personal.max_per_user = 3).await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let (bob_id, bob) = app.new_user("bob", false).await;
    grant_many(&app, &alice_id, 5).await;
    grant_many(&app, &bob_id, 1).await;
    let kept: Vec<String> = inbox(&alice).await.into_iter().map(|n| n.message).collect();
    assert_eq!(kept.len(), 3);
    assert!(kept[0].contains("\"p4\"") && kept[2].contains("\"p2\""), "{kept:?}");
    assert_eq!(inbox(&bob).await.len(), 1, "the cap is per user");
}

#[tokio::test]
async fn watch_delivers_notifications_created_after_it_started() {
    let app = TestApp::spawn_with(|s| s.consumers.keepalive_interval = Duration::from_millis(300)).await;
    let (alice_id, alice) = app.new_user("alice", false).await;
    let mut watch = alice
        .personal()
        .watch_personal_notifications(pb::WatchPersonalNotificationsRequest {})
        .await
        .unwrap()
        .into_inner();
    grant_many(&app, &alice_id, 1).await;
    let notice = loop {
        let item =
            tokio::time::timeout(Duration::from_secs(10), watch.message()).await.expect("in time").unwrap().unwrap();
        match item.message.unwrap() {
            Message::Notification(n) => break n,
            Message::KeepAlive(_) => continue,
        }
    };
    assert_eq!(notice.variant(), NV::PermissionGranted);
    assert_eq!(inbox(&alice).await[0].id, notice.id);
}
