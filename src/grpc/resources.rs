//! `herald.v1.ResourceService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::app::App;

/// Implements `herald.v1.ResourceService`.
pub struct ResourceApi {
    app: Arc<App>,
}

impl ResourceApi {
    pub fn new(app: Arc<App>) -> Self {
        ResourceApi { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::resource_service_server::ResourceService for ResourceApi {
    async fn create_resource(&self, request: Request<pb::CreateResourceRequest>) -> Reply<pb::CreateResourceResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let variant = convert::to_resource_variant("variant", r.variant)?;
        let resource = self.app.create_resource(&who, variant, &r.name, &r.parent_id).await?;
        Ok(Response::new(pb::CreateResourceResponse { resource: Some(convert::resource(&resource)) }))
    }

    async fn get_resource(&self, request: Request<pb::GetResourceRequest>) -> Reply<pb::GetResourceResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let resource = self.app.get_resource(&who, &request.get_ref().id).await?;
        Ok(Response::new(pb::GetResourceResponse { resource: Some(convert::resource(&resource)) }))
    }

    async fn list_resources(&self, request: Request<pb::ListResourcesRequest>) -> Reply<pb::ListResourcesResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let (items, next_page_token) = self.app.list_resources(&who, &r.parent_id, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListResourcesResponse {
            resources: items.iter().map(|r| convert::resource(r)).collect(),
            next_page_token,
        }))
    }

    async fn delete_resource(&self, request: Request<pb::DeleteResourceRequest>) -> Reply<pb::DeleteResourceResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let deleted_ids = self.app.delete_resource(&who, &r.id, r.recursive).await?;
        Ok(Response::new(pb::DeleteResourceResponse { deleted_ids }))
    }
}
