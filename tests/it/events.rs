//! Emitting events: automatic events on resource changes and producer events
//! through `herald.v1.EventService`, read back from the events stream.

use herald::{
    domain::subject::{Scope, filter_subjects, subject_matches},
    grpc::pb::{self, PermissionLevel as Level, ResourceVariant as V, emit_event_request::Kind},
};
use tonic::Code;

use crate::support::{TestApp, assert_status, create_resource, grant};

fn custom(resource_id: &str, event_type: &str, payload: &str) -> pb::EmitEventRequest {
    pb::EmitEventRequest {
        resource_id: resource_id.into(),
        kind: Some(Kind::CustomType(event_type.into())),
        payload_json: payload.into(),
        idempotency_key: String::new(),
    }
}

#[tokio::test]
async fn creating_a_resource_emits_created_on_it_and_updated_on_its_parent() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let c = create_resource(&admin, V::Collection, "c", &p.id).await;
    let d = create_resource(&admin, V::Dataset, "d", &c.id).await;
    let events = app.stored_events().await;
    let resource_events: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|(subject, _, e)| {
            e.resource.as_ref().map(|r| (subject.clone(), e.event_type.clone(), r.id.clone()))
        })
        .collect();
    assert_eq!(
        resource_events,
        [
            (format!("herald.ev.res.{}._._._.created", p.id), "created".into(), p.id.clone()),
            (format!("herald.ev.res.{}.{}._._.created", p.id, c.id), "created".into(), c.id.clone()),
            (format!("herald.ev.res.{}._._._.updated", p.id), "updated".into(), p.id.clone()),
            (format!("herald.ev.res.{}.{}.{}._.created", p.id, c.id, d.id), "created".into(), d.id.clone()),
            (format!("herald.ev.res.{}.{}._._.updated", p.id, c.id), "updated".into(), c.id.clone()),
        ]
    );
    let (_, _, created_d) = events.iter().find(|(_, _, e)| e.resource.as_ref().is_some_and(|r| r.id == d.id)).unwrap();
    let path: Vec<&str> = created_d.resource.as_ref().unwrap().path.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(path, [&p.id, &c.id, &d.id]);
    assert_eq!(created_d.actor, "admin");
    assert!(created_d.payload.is_none());
}

#[tokio::test]
async fn deleting_emits_deleted_events_that_reach_every_ancestor_scope() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let c = create_resource(&admin, V::Collection, "c", &p.id).await;
    let o = create_resource(&admin, V::Object, "o", &c.id).await;
    admin.resources().delete_resource(pb::DeleteResourceRequest { id: c.id.clone(), recursive: true }).await.unwrap();
    let events = app.stored_events().await;
    let deleted: Vec<(&str, &str)> = events
        .iter()
        .filter(|(_, _, e)| e.event_type == "deleted")
        .map(|(s, _, e)| (s.as_str(), e.resource.as_ref().unwrap().id.as_str()))
        .collect();
    assert_eq!(deleted.iter().map(|(_, id)| *id).collect::<Vec<_>>(), [o.id.as_str(), c.id.as_str()]);
    let last = events.last().unwrap();
    assert_eq!((last.2.event_type.as_str(), last.2.resource.as_ref().unwrap().id.as_str()), ("updated", p.id.as_str()));
    // The project's subtree scope sees both deletions.
    let project_path = vec![herald::domain::resource::PathEntry {
        id: p.id.clone(),
        variant: herald::domain::resource::ResourceVariant::Project,
    }];
    let filters = filter_subjects(&Scope::Resource { path: project_path, include_subresources: true }, &[]);
    for (subject, _) in deleted {
        assert!(filters.iter().any(|f| subject_matches(f, subject)), "{subject} escapes {filters:?}");
    }
}

#[tokio::test]
async fn custom_events_are_stored_with_type_payload_and_sequence() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let d = create_resource(&admin, V::Dataset, "d", &p.id).await;
    let reply = admin
        .events()
        .emit_event(custom(&d.id, "job.completed", r#"{"status":"FAILED","n":12345678901234567890}"#))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert!(!reply.duplicate);
    let events = app.stored_events().await;
    let (subject, seq, record) = events.iter().find(|(_, _, e)| e.id == reply.event_id).expect("stored");
    assert_eq!(*seq, reply.sequence);
    assert_eq!(subject, &format!("herald.ev.res.{}._.{}._.job.completed", p.id, d.id));
    assert_eq!(record.event_type, "job.completed");
    assert_eq!(record.payload.as_ref().unwrap().get(), r#"{"status":"FAILED","n":12345678901234567890}"#);

    let variant = pb::EmitEventRequest {
        resource_id: d.id.clone(),
        kind: Some(Kind::Variant(pb::EventVariant::Snapshotted as i32)),
        ..Default::default()
    };
    let snap = admin.events().emit_event(variant).await.unwrap().into_inner().event.unwrap();
    assert_eq!(snap.sequence, reply.sequence + 1);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_emit_a_no_op() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let mut request = custom(&p.id, "job.completed", "{}");
    request.idempotency_key = "run-42".into();
    let first = admin.events().emit_event(request.clone()).await.unwrap().into_inner().event.unwrap();
    let retry = admin.events().emit_event(request.clone()).await.unwrap().into_inner().event.unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.event_id.as_str(), retry.sequence), (first.event_id.as_str(), first.sequence));
    request.idempotency_key = "run-43".into();
    let other = admin.events().emit_event(request).await.unwrap().into_inner().event.unwrap();
    assert!(!other.duplicate);
    let stored = app.stored_events().await;
    assert_eq!(stored.iter().filter(|(_, _, e)| e.event_type == "job.completed").count(), 2);
}

#[tokio::test]
async fn payload_size_and_json_are_checked_at_the_limit() {
    let app = TestApp::spawn_with(|s| s.events.max_payload_bytes = 1000).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let exactly = format!("\"{}\"", "x".repeat(998));
    assert_eq!(exactly.len(), 1000);
    admin.events().emit_event(custom(&p.id, "a.b", &exactly)).await.unwrap();
    let over = format!("\"{}\"", "x".repeat(999));
    assert_status(admin.events().emit_event(custom(&p.id, "a.b", &over)).await, Code::InvalidArgument, "payload_json");
    assert_status(admin.events().emit_event(custom(&p.id, "a.b", &over)).await, Code::InvalidArgument, "limit is 1000");
    assert_status(
        admin.events().emit_event(custom(&p.id, "a.b", "{nope")).await,
        Code::InvalidArgument,
        "not valid JSON",
    );
}

#[tokio::test]
async fn bad_types_ids_and_keys_are_invalid_arguments() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    for (bad, why) in
        [("job", "2 to 8"), ("Job.Done", "lowercase"), ("job.*", "lowercase"), ("herald.user.created", "reserved")]
    {
        assert_status(admin.events().emit_event(custom(&p.id, bad, "")).await, Code::InvalidArgument, why);
    }
    let no_kind = pb::EmitEventRequest { resource_id: p.id.clone(), ..Default::default() };
    assert_status(admin.events().emit_event(no_kind).await, Code::InvalidArgument, "kind");
    let unspecified =
        pb::EmitEventRequest { resource_id: p.id.clone(), kind: Some(Kind::Variant(0)), ..Default::default() };
    assert_status(admin.events().emit_event(unspecified).await, Code::InvalidArgument, "kind");
    assert_status(admin.events().emit_event(custom("a>b", "a.b", "")).await, Code::InvalidArgument, "resource_id");
    assert_status(admin.events().emit_event(custom("01NOSUCH", "a.b", "")).await, Code::NotFound, "01NOSUCH");
    let mut with_key = custom(&p.id, "a.b", "");
    with_key.idempotency_key = "has space".into();
    assert_status(admin.events().emit_event(with_key).await, Code::InvalidArgument, "idempotency_key");
}

#[tokio::test]
async fn batches_are_bounded_and_validated_before_anything_is_stored() {
    let app = TestApp::spawn_with(|s| s.events.max_batch = 10).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let batch = |n: usize| pb::EmitEventsRequest {
        events: (0..n).map(|i| custom(&p.id, "batch.item", &i.to_string())).collect(),
    };
    let stored = admin.events().emit_events(batch(10)).await.unwrap().into_inner().events;
    assert_eq!(stored.len(), 10);
    assert!(stored.windows(2).all(|w| w[1].sequence == w[0].sequence + 1), "in order: {stored:?}");
    assert_status(admin.events().emit_events(batch(11)).await, Code::InvalidArgument, "limit is 10");
    assert_status(admin.events().emit_events(batch(0)).await, Code::InvalidArgument, "at least one");

    let mut mixed = batch(3);
    mixed.events[2].payload_json = "{broken".into();
    assert_status(admin.events().emit_events(mixed).await, Code::InvalidArgument, "events[2].payload_json");
    let count = app.stored_events().await.iter().filter(|(_, _, e)| e.event_type == "batch.item").count();
    assert_eq!(count, 10, "the invalid batch stored nothing");
}

#[tokio::test]
async fn emitting_needs_write_on_the_resource() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let d = create_resource(&admin, V::Dataset, "d", &p.id).await;
    let (user_id, user) = app.new_user("producer", false).await;
    assert_status(user.events().emit_event(custom(&d.id, "a.b", "")).await, Code::PermissionDenied, "WRITE");
    grant(&app, &user_id, &p.id, Level::Read).await;
    assert_status(user.events().emit_event(custom(&d.id, "a.b", "")).await, Code::PermissionDenied, "WRITE");
    grant(&app, &user_id, &p.id, Level::Write).await;
    let event = user.events().emit_event(custom(&d.id, "a.b", "")).await.unwrap().into_inner().event.unwrap();
    let stored = app.stored_events().await;
    let record = &stored.iter().find(|(_, _, e)| e.id == event.event_id).unwrap().2;
    assert_eq!(record.actor, user_id);
}
