//! `herald.v1.UserService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{accounts::NewUser, app::App};

/// Implements `herald.v1.UserService`.
pub struct UserApi {
    app: Arc<App>,
}

impl UserApi {
    pub fn new(app: Arc<App>) -> Self {
        UserApi { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserApi {
    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::CreateUserResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let new =
            NewUser { name: r.name, email: r.email, is_admin: r.is_admin, can_create_projects: r.can_create_projects };
        let user = self.app.create_user(&who, new).await?;
        Ok(Response::new(pb::CreateUserResponse { user: Some(convert::user(&user)) }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let user = self.app.get_user(&who, &request.get_ref().user_id).await?;
        Ok(Response::new(pb::GetUserResponse { user: Some(convert::user(&user)) }))
    }

    async fn list_users(&self, request: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let (users, next_page_token) = self.app.list_users(&who, r.page_size, &r.page_token)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(|u| convert::user(u)).collect(),
            next_page_token,
        }))
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::UpdateUserResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let user = self.app.update_user(&who, &r.user_id, r.is_admin, r.can_create_projects).await?;
        Ok(Response::new(pb::UpdateUserResponse { user: Some(convert::user(&user)) }))
    }

    async fn get_current_user(&self, request: Request<pb::GetCurrentUserRequest>) -> Reply<pb::GetCurrentUserResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let user = self.app.get_user(&who, &who.user_id).await?;
        Ok(Response::new(pb::GetCurrentUserResponse { user: Some(convert::user(&user)) }))
    }

    async fn create_token(&self, request: Request<pb::CreateTokenRequest>) -> Reply<pb::CreateTokenResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let expires_at = r.expires_at.as_ref().map(|t| convert::from_timestamp("expires_at", t)).transpose()?;
        let (token, secret) = self.app.create_token(&who, &r.user_id, &r.name, expires_at).await?;
        Ok(Response::new(pb::CreateTokenResponse { token: Some(convert::token(&token)), secret }))
    }

    async fn list_tokens(&self, request: Request<pb::ListTokensRequest>) -> Reply<pb::ListTokensResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let tokens = self.app.list_tokens(&who, &request.get_ref().user_id)?;
        Ok(Response::new(pb::ListTokensResponse { tokens: tokens.iter().map(|t| convert::token(t)).collect() }))
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> Reply<pb::RevokeTokenResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        self.app.revoke_token(&who, &request.get_ref().token_id).await?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn grant_permission(
        &self,
        request: Request<pb::GrantPermissionRequest>,
    ) -> Reply<pb::GrantPermissionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let level = convert::to_permission_level("level", r.level)?;
        let grant = self.app.grant(&who, &r.user_id, &r.resource_id, level).await?;
        Ok(Response::new(pb::GrantPermissionResponse { permission: Some(convert::grant(&grant)) }))
    }

    async fn revoke_permission(
        &self,
        request: Request<pb::RevokePermissionRequest>,
    ) -> Reply<pb::RevokePermissionResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        self.app.revoke_grant(&who, &r.user_id, &r.resource_id).await?;
        Ok(Response::new(pb::RevokePermissionResponse {}))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Reply<pb::ListPermissionsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let grants = self.app.list_grants(&who, &request.get_ref().user_id)?;
        Ok(Response::new(pb::ListPermissionsResponse {
            permissions: grants.iter().map(|g| convert::grant(g)).collect(),
        }))
    }
}
