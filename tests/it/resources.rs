//! The resource hierarchy through `herald.v1.ResourceService`.

use herald::grpc::pb::{self, PermissionLevel as Level, ResourceVariant as V};
use tonic::Code;

use crate::support::{TestApp, assert_status, create_resource, grant, try_create_resource};

#[tokio::test]
async fn nesting_follows_project_collection_dataset_object() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let c = create_resource(&admin, V::Collection, "c", &p.id).await;
    let d = create_resource(&admin, V::Dataset, "d", &c.id).await;
    let o = create_resource(&admin, V::Object, "o", &d.id).await;
    // Shortcuts: dataset and object directly under a project, object under a collection.
    create_resource(&admin, V::Dataset, "d2", &p.id).await;
    create_resource(&admin, V::Object, "o2", &p.id).await;
    create_resource(&admin, V::Object, "o3", &c.id).await;
    let ids: Vec<&str> = o.path.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [&p.id, &c.id, &d.id, &o.id]);
    assert_eq!(o.parent_id, d.id);

    for (variant, parent, why) in [
        (V::Collection, &c.id, "a collection cannot be placed under a collection"),
        (V::Collection, &d.id, "a collection cannot be placed under a dataset"),
        (V::Dataset, &o.id, "a dataset cannot be placed under an object"),
        (V::Object, &o.id, "an object cannot be placed under an object"),
        (V::Project, &p.id, "a project has no parent"),
    ] {
        assert_status(try_create_resource(&admin, variant, "x", parent).await, Code::InvalidArgument, why);
    }
    assert_status(try_create_resource(&admin, V::Dataset, "x", "").await, Code::InvalidArgument, "parent_id");
    assert_status(try_create_resource(&admin, V::Unspecified, "x", "").await, Code::InvalidArgument, "variant");
    assert_status(try_create_resource(&admin, V::Dataset, "x", "no.such").await, Code::InvalidArgument, "parent_id");
    assert_status(try_create_resource(&admin, V::Dataset, "x", "01NOSUCH").await, Code::NotFound, "01NOSUCH");
    assert_status(
        try_create_resource(&admin, V::Project, &"n".repeat(257), "").await,
        Code::InvalidArgument,
        "limit is 256",
    );
    create_resource(&admin, V::Project, &"n".repeat(256), "").await;
}

#[tokio::test]
async fn creating_projects_needs_admin_or_the_creator_right_and_the_creator_gets_admin() {
    let app = TestApp::spawn().await;
    let (_, plain) = app.new_user("plain", false).await;
    assert_status(try_create_resource(&plain, V::Project, "p", "").await, Code::PermissionDenied, "project-creator");
    let (creator_id, creator) = app.new_user("creator", true).await;
    let p = create_resource(&creator, V::Project, "p", "").await;
    let perms = creator.users().list_permissions(pb::ListPermissionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(perms.permissions.len(), 1);
    assert_eq!(
        (perms.permissions[0].resource_id.as_str(), perms.permissions[0].level()),
        (p.id.as_str(), Level::Admin)
    );
    assert_eq!(perms.permissions[0].user_id, creator_id);
    create_resource(&creator, V::Collection, "c", &p.id).await;
}

#[tokio::test]
async fn permissions_inherit_downward_and_revocation_applies_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let c = create_resource(&admin, V::Collection, "c", &p.id).await;
    let d = create_resource(&admin, V::Dataset, "d", &c.id).await;
    let o = create_resource(&admin, V::Object, "o", &d.id).await;
    let other = create_resource(&admin, V::Project, "other", "").await;
    let (reader_id, reader) = app.new_user("reader", false).await;
    let get = |id: &str| pb::GetResourceRequest { id: id.into() };

    assert_status(reader.resources().get_resource(get(&o.id)).await, Code::PermissionDenied, "READ");
    grant(&app, &reader_id, &p.id, Level::Read).await;
    for id in [&p.id, &c.id, &d.id, &o.id] {
        reader.resources().get_resource(get(id)).await.unwrap();
    }
    assert_status(reader.resources().get_resource(get(&other.id)).await, Code::PermissionDenied, "READ");
    // READ does not allow creating children (that needs WRITE on the parent).
    assert_status(try_create_resource(&reader, V::Object, "x", &d.id).await, Code::PermissionDenied, "WRITE");
    grant(&app, &reader_id, &c.id, Level::Write).await;
    create_resource(&reader, V::Object, "x", &d.id).await;
    assert_status(try_create_resource(&reader, V::Collection, "x", &p.id).await, Code::PermissionDenied, "WRITE");

    admin
        .users()
        .revoke_permission(pb::RevokePermissionRequest { user_id: reader_id.clone(), resource_id: p.id.clone() })
        .await
        .unwrap();
    assert_status(reader.resources().get_resource(get(&p.id)).await, Code::PermissionDenied, "READ");
    // The WRITE on the collection still covers what is below it.
    reader.resources().get_resource(get(&o.id)).await.unwrap();
}

#[tokio::test]
async fn deleting_refuses_children_unless_recursive() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let c = create_resource(&admin, V::Collection, "c", &p.id).await;
    let d = create_resource(&admin, V::Dataset, "d", &c.id).await;
    let o = create_resource(&admin, V::Object, "o", &d.id).await;
    let delete = |id: &str, recursive| pb::DeleteResourceRequest { id: id.into(), recursive };
    assert_status(
        admin.resources().delete_resource(delete(&c.id, false)).await,
        Code::FailedPrecondition,
        "2 descendant",
    );
    let deleted = admin.resources().delete_resource(delete(&c.id, true)).await.unwrap().into_inner().deleted_ids;
    assert_eq!(deleted, [o.id.clone(), d.id.clone(), c.id.clone()]);
    for id in [&c.id, &d.id, &o.id] {
        assert_status(
            admin.resources().get_resource(pb::GetResourceRequest { id: id.clone() }).await,
            Code::NotFound,
            id,
        );
    }
    admin.resources().delete_resource(delete(&p.id, false)).await.unwrap();
    assert_status(admin.resources().delete_resource(delete(&p.id, false)).await, Code::NotFound, &p.id);
}

#[tokio::test]
async fn listing_shows_children_and_readable_projects_in_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await;
    let mut children = Vec::new();
    for i in 0..5 {
        children.push(create_resource(&admin, V::Dataset, &format!("d{i}"), &p.id).await.id);
    }
    create_resource(&admin, V::Project, "hidden", "").await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .resources()
            .list_resources(pb::ListResourcesRequest { parent_id: p.id.clone(), page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert!(page.resources.len() <= 2);
        seen.extend(page.resources.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected = children.clone();
    expected.sort();
    assert_eq!(seen, expected, "every child once, in id order");

    let (reader_id, reader) = app.new_user("reader", false).await;
    grant(&app, &reader_id, &p.id, Level::Read).await;
    let projects = reader.resources().list_resources(pb::ListResourcesRequest::default()).await.unwrap().into_inner();
    assert_eq!(projects.resources.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [p.id.as_str()]);
    assert_status(
        admin.resources().list_resources(pb::ListResourcesRequest { page_size: 1001, ..Default::default() }).await,
        Code::InvalidArgument,
        "page_size",
    );
}
