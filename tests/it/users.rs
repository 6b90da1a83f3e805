//! Users, tokens and permissions through `herald.v1.UserService`.

use std::time::Duration;

use herald::grpc::pb;
use tonic::Code;

use crate::support::{TestApp, assert_status, create_resource, eventually};

#[tokio::test]
async fn only_admins_create_and_list_users() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let created = admin
        .users()
        .create_user(pb::CreateUserRequest {
            name: "alice".into(),
            email: "a@example.org".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(created.name, "alice");
    assert!(!created.is_admin);

    let (_, bob) = app.new_user("bob", false).await;
    let denied = bob.users().create_user(pb::CreateUserRequest { name: "eve".into(), ..Default::default() }).await;
    assert_status(denied, Code::PermissionDenied, "admin");
    assert_status(bob.users().list_users(pb::ListUsersRequest::default()).await, Code::PermissionDenied, "admin");
    assert_status(
        bob.users().get_user(pb::GetUserRequest { user_id: created.id.clone() }).await,
        Code::PermissionDenied,
        "",
    );

    let listed = admin.users().list_users(pb::ListUsersRequest::default()).await.unwrap().into_inner();
    let names: Vec<&str> = listed.users.iter().map(|u| u.name.as_str()).collect();
    assert!(names.contains(&"alice") && names.contains(&"bob"), "{names:?}");
}

#[tokio::test]
async fn user_fields_are_validated_with_the_field_named() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let long = "x".repeat(129);
    assert_status(
        admin.users().create_user(pb::CreateUserRequest { name: long, ..Default::default() }).await,
        Code::InvalidArgument,
        "name",
    );
    let exactly = "x".repeat(128);
    admin.users().create_user(pb::CreateUserRequest { name: exactly, ..Default::default() }).await.unwrap();
    assert_status(
        admin
            .users()
            .create_user(pb::CreateUserRequest { name: "a".into(), email: "nope".into(), ..Default::default() })
            .await,
        Code::InvalidArgument,
        "email",
    );
    assert_status(
        admin.users().get_user(pb::GetUserRequest { user_id: "bad.id".into() }).await,
        Code::InvalidArgument,
        "user_id",
    );
    assert_status(
        admin.users().get_user(pb::GetUserRequest { user_id: "01NOSUCHUSER".into() }).await,
        Code::NotFound,
        "01NOSUCHUSER",
    );
}

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let anonymous = app.anonymous().await;
    assert_status(
        anonymous.users().get_current_user(pb::GetCurrentUserRequest {}).await,
        Code::Unauthenticated,
        "authorization",
    );
    for bad in ["garbage", "hrld_01ABC_secret", "hrld_bad.id_secret"] {
        let client = app.client(bad).await;
        assert_status(
            client.users().get_current_user(pb::GetCurrentUserRequest {}).await,
            Code::Unauthenticated,
            "token",
        );
    }
    // A real token id with a wrong secret.
    let (_, token) = app.new_user_token("carol", false).await;
    let (prefix, _) = token.rsplit_once('_').unwrap();
    let forged = app.client(&format!("{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_status(forged.users().get_current_user(pb::GetCurrentUserRequest {}).await, Code::Unauthenticated, "token");
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let (user_id, token) = app.new_user_token("dave", false).await;
    let dave = app.client(&token).await;
    let me = dave.users().get_current_user(pb::GetCurrentUserRequest {}).await.unwrap().into_inner().user.unwrap();
    assert_eq!(me.id, user_id);

    let tokens = dave.users().list_tokens(pb::ListTokensRequest::default()).await.unwrap().into_inner().tokens;
    assert_eq!(tokens.len(), 1);
    dave.users().revoke_token(pb::RevokeTokenRequest { token_id: tokens[0].id.clone() }).await.unwrap();
    assert_status(dave.users().get_current_user(pb::GetCurrentUserRequest {}).await, Code::Unauthenticated, "revoked");
}

#[tokio::test]
async fn revocation_on_one_replica_reaches_another_replica_through_the_watch() {
    let app = TestApp::spawn().await;
    // A second replica on the same NATS.
    let second = herald::server::start(app.settings.clone(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let second_url = format!("http://{}", second.addr);
    let (_, token) = app.new_user_token("erin", false).await;
    let on_second = herald::cli::client::Clients::connect(&second_url, Some(&token)).await.unwrap();
    on_second.users().get_current_user(pb::GetCurrentUserRequest {}).await.unwrap();

    let erin = app.client(&token).await;
    let token_id =
        erin.users().list_tokens(pb::ListTokensRequest::default()).await.unwrap().into_inner().tokens[0].id.clone();
    erin.users().revoke_token(pb::RevokeTokenRequest { token_id }).await.unwrap();
    eventually(Duration::from_secs(5), "revocation to reach the second replica", || async {
        let r = on_second.users().get_current_user(pb::GetCurrentUserRequest {}).await;
        matches!(r, Err(s) if s.code() == Code::Unauthenticated).then_some(())
    })
    .await;
}

#[tokio::test]
async fn expired_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let (user_id, _) = app.new_user_token("frank", false).await;
    let expires = time::OffsetDateTime::now_utc() + Duration::from_millis(1500);
    let created = app
        .admin()
        .await
        .users()
        .create_token(pb::CreateTokenRequest {
            user_id,
            name: "short".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires.unix_timestamp(),
                nanos: expires.nanosecond() as i32,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let client = app.client(&created.secret).await;
    client.users().get_current_user(pb::GetCurrentUserRequest {}).await.expect("valid before expiry");
    eventually(Duration::from_secs(10), "the token to expire", || async {
        let r = client.users().get_current_user(pb::GetCurrentUserRequest {}).await;
        matches!(r, Err(s) if s.code() == Code::Unauthenticated).then_some(())
    })
    .await;

    let past = prost_types::Timestamp { seconds: 1_000, nanos: 0 };
    assert_status(
        app.admin()
            .await
            .users()
            .create_token(pb::CreateTokenRequest { user_id: String::new(), name: "old".into(), expires_at: Some(past) })
            .await,
        Code::InvalidArgument,
        "expires_at",
    );
}

#[tokio::test]
async fn only_a_hash_of_the_token_secret_is_stored() {
    let app = TestApp::spawn().await;
    let (_, token) = app.new_user_token("gina", false).await;
    let (token_id, secret) = token.strip_prefix("hrld_").unwrap().split_once('_').unwrap();
    let kv = app.jetstream().await.get_key_value("herald_tokens").await.unwrap();
    let raw = kv.get(token_id).await.unwrap().expect("token record");
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    assert!(!raw.contains(secret), "the secret must not be stored: {raw}");
    assert!(raw.contains("secret_hash"), "{raw}");
    let listed = app.admin().await.users().list_tokens(pb::ListTokensRequest { user_id: String::new() }).await.unwrap();
    assert!(!format!("{listed:?}").contains(secret));
}

#[tokio::test]
async fn account_changes_emit_events_on_the_users_own_subject() {
    let app = TestApp::spawn().await;
    let (user_id, token) = app.new_user_token("hank", false).await;
    let admin = app.admin().await;
    let project = create_resource(&admin, pb::ResourceVariant::Project, "p", "").await;
    let grant = pb::GrantPermissionRequest {
        user_id: user_id.clone(),
        resource_id: project.id.clone(),
        level: pb::PermissionLevel::Read as i32,
    };
    admin.users().grant_permission(grant).await.unwrap();
    admin
        .users()
        .revoke_permission(pb::RevokePermissionRequest { user_id: user_id.clone(), resource_id: project.id.clone() })
        .await
        .unwrap();
    let hank = app.client(&token).await;
    let token_id =
        hank.users().list_tokens(pb::ListTokensRequest::default()).await.unwrap().into_inner().tokens[0].id.clone();
    hank.users().revoke_token(pb::RevokeTokenRequest { token_id: token_id.clone() }).await.unwrap();

    let events = app.stored_events().await;
    let mine: Vec<(&str, &str)> = events
        .iter()
        .filter(|(_, _, e)| e.user_id.as_deref() == Some(&user_id))
        .map(|(subject, _, e)| (subject.as_str(), e.event_type.as_str()))
        .collect();
    let expected_types = [
        "herald.user.created",
        "herald.token.created",
        "herald.permission.granted",
        "herald.permission.revoked",
        "herald.token.revoked",
    ];
    assert_eq!(mine.iter().map(|(_, t)| *t).collect::<Vec<_>>(), expected_types);
    for (subject, event_type) in &mine {
        assert_eq!(*subject, format!("herald.ev.user.{user_id}.{event_type}"));
    }
    let granted = events.iter().find(|(_, _, e)| e.event_type == "herald.permission.granted").unwrap();
    let payload: serde_json::Value = serde_json::from_str(granted.2.payload.as_ref().unwrap().get()).unwrap();
    assert_eq!(payload["resource_id"], project.id.as_str());
    assert_eq!(payload["level"], "READ");
    assert_eq!(granted.2.actor, "admin");
}

#[tokio::test]
async fn granting_needs_admin_on_the_resource() {
    let app = TestApp::spawn().await;
    let (owner_id, owner) = app.new_user("owner", true).await;
    let (other_id, other) = app.new_user("other", false).await;
    let project = create_resource(&owner, pb::ResourceVariant::Project, "p", "").await;
    // The creator holds ADMIN and may grant; the other user may not.
    let grant = |user_id: &str, level: pb::PermissionLevel| pb::GrantPermissionRequest {
        user_id: user_id.into(),
        resource_id: project.id.clone(),
        level: level as i32,
    };
    assert_status(
        other.users().grant_permission(grant(&other_id, pb::PermissionLevel::Admin)).await,
        Code::PermissionDenied,
        "ADMIN",
    );
    owner.users().grant_permission(grant(&other_id, pb::PermissionLevel::Write)).await.unwrap();
    assert_status(
        other.users().grant_permission(grant(&owner_id, pb::PermissionLevel::Read)).await,
        Code::PermissionDenied,
        "ADMIN",
    );
    assert_status(
        owner.users().grant_permission(grant(&other_id, pb::PermissionLevel::Unspecified)).await,
        Code::InvalidArgument,
        "level",
    );
    let perms = other.users().list_permissions(pb::ListPermissionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(perms.permissions.len(), 1);
    assert_eq!(perms.permissions[0].level(), pb::PermissionLevel::Write);
    assert_status(
        owner
            .users()
            .revoke_permission(pb::RevokePermissionRequest { user_id: owner_id.clone(), resource_id: "01NOPE".into() })
            .await,
        Code::NotFound,
        "01NOPE",
    );
}
