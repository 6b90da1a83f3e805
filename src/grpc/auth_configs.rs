//! `herald.v1.SubscriptionAuthService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{
    app::App,
    domain::subscription::{AuthConfigRecord, AuthKind},
    subscriptions::auth_configs::{NewAuth, masked},
};

/// Implements `herald.v1.SubscriptionAuthService`.
pub struct AuthConfigApi {
    app: Arc<App>,
}

impl AuthConfigApi {
    pub fn new(app: Arc<App>) -> Self {
        AuthConfigApi { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::subscription_auth_service_server::SubscriptionAuthService for AuthConfigApi {
    async fn create_auth_config(
        &self,
        request: Request<pb::CreateAuthConfigRequest>,
    ) -> Reply<pb::CreateAuthConfigResponse> {
        use pb::create_auth_config_request::Auth;
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let auth = r.auth.map(|a| match a {
            Auth::Basic(b) => NewAuth::Basic { key: b.key, secret: b.secret },
            Auth::Bearer(b) => NewAuth::Bearer { token: b.token },
            Auth::Oauth2ClientCredentials(o) => {
                let mut extra_params: Vec<(String, String)> = o.extra_params.into_iter().collect();
                extra_params.sort();
                NewAuth::OAuth2 {
                    token_url: o.token_url,
                    client_id: o.client_id,
                    client_secret: o.client_secret,
                    scope: o.scope,
                    audience: o.audience,
                    extra_params,
                }
            }
        });
        let record = self.app.create_auth_config(&who, &r.name, auth).await?;
        Ok(Response::new(pb::CreateAuthConfigResponse { auth_config: Some(auth_config(&record)) }))
    }

    async fn list_auth_configs(
        &self,
        request: Request<pb::ListAuthConfigsRequest>,
    ) -> Reply<pb::ListAuthConfigsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let auth_configs = self.app.list_auth_configs(&who).iter().map(|r| auth_config(r)).collect();
        Ok(Response::new(pb::ListAuthConfigsResponse { auth_configs }))
    }

    async fn delete_auth_config(
        &self,
        request: Request<pb::DeleteAuthConfigRequest>,
    ) -> Reply<pb::DeleteAuthConfigResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        self.app.delete_auth_config(&who, &request.get_ref().auth_config_id).await?;
        Ok(Response::new(pb::DeleteAuthConfigResponse {}))
    }
}

/// A configuration as shown: secrets masked.
fn auth_config(record: &AuthConfigRecord) -> pb::AuthConfig {
    use pb::auth_config::Auth;
    let auth = match masked(record) {
        AuthKind::Basic { key, secret } => Auth::Basic(pb::BasicAuth { key, secret }),
        AuthKind::Bearer { token } => Auth::Bearer(pb::BearerAuth { token }),
        AuthKind::OAuth2 { token_url, client_id, client_secret, scope, audience, extra_params } => {
            Auth::Oauth2ClientCredentials(pb::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                extra_params: extra_params.into_iter().collect(),
            })
        }
    };
    pb::AuthConfig {
        id: record.id.clone(),
        name: record.name.clone(),
        auth: Some(auth),
        created_at: Some(convert::timestamp(record.created_at)),
    }
}
