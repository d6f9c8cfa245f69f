//! gRPC `headscale.v1.HeadscaleService` on the [`Admin`] service: protobuf in, the same
//! operations as REST, protobuf out; errors become `tonic::Status` via [`ApiError`].

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use hs_types::model::{ApiKey, RegisterMethod, User};
use hs_types::{NodeId, UserId};

use crate::error::ApiError;
use crate::proto::headscale_service_server::{HeadscaleService, HeadscaleServiceServer};
use crate::proto::{self as pb};
use crate::service::{Admin, ApiKeyRef, NodeView, PreAuthKeyView, UserFilter};
use crate::store::NewUser;

/// The gRPC front end.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    admin: Admin,
}

impl GrpcApi {
    /// A front end over `admin`.
    pub fn new(admin: Admin) -> Self {
        Self { admin }
    }

    /// The tonic service, ready to mount.
    pub fn into_server(self) -> HeadscaleServiceServer<Self> {
        HeadscaleServiceServer::new(self)
    }
}

/// The gRPC routes as an axum router (no authentication; see [`crate::auth`]).
pub fn router(admin: Admin) -> axum::Router {
    // Routed by path prefix rather than through tonic's own router, whose catch-all fallback
    // could not coexist with the REST router's JSON 404 fallback.
    axum::Router::new().route_service(
        "/headscale.v1.HeadscaleService/{*method}",
        GrpcApi::new(admin).into_server(),
    )
}

type R<T> = Result<Response<T>, Status>;

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A request's optional timestamp; `field` names it in the error. Public for the fuzz target.
#[doc(hidden)]
pub fn from_ts(
    field: &str,
    t: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Status> {
    t.map(|t| {
        let nanos = u32::try_from(t.nanos).map_err(|_| {
            Status::invalid_argument(format!("{field}: negative nanos in timestamp"))
        })?;
        DateTime::<Utc>::from_timestamp(t.seconds, nanos)
            .ok_or_else(|| Status::invalid_argument(format!("{field}: timestamp out of range")))
    })
    .transpose()
}

/// The protobuf form of a user.
pub fn user_pb(u: &User) -> pb::User {
    pb::User {
        id: u.id.get(),
        name: u.name.clone(),
        created_at: Some(ts(u.created_at)),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        provider_id: u.provider_identifier.clone().unwrap_or_default(),
        provider: u.provider.clone(),
        profile_pic_url: u.profile_pic_url.clone(),
    }
}

/// The protobuf form of an API key (never its secret).
pub fn api_key_pb(k: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id,
        prefix: k.prefix.clone(),
        expiration: k.expiration.map(ts),
        created_at: Some(ts(k.created_at)),
        last_seen: k.last_seen.map(ts),
    }
}

/// The protobuf form of a pre-auth key (masked unless just created).
pub fn preauth_pb(v: &PreAuthKeyView) -> pb::PreAuthKey {
    let j = crate::json::PreAuthKeyJson::from(v);
    pb::PreAuthKey {
        user: v.user.as_ref().map(user_pb),
        id: v.key.id,
        key: j.key,
        reusable: v.key.reusable,
        ephemeral: v.key.ephemeral,
        used: v.key.used,
        expiration: v.key.expiration.map(ts),
        created_at: Some(ts(v.key.created_at)),
        acl_tags: v.key.tags.clone(),
    }
}

/// The protobuf form of a node.
pub fn node_pb(v: &NodeView) -> pb::Node {
    let j = crate::json::NodeJson::from(v);
    let n = &v.node;
    let method = match n.register_method {
        RegisterMethod::Unspecified => pb::RegisterMethod::Unspecified,
        RegisterMethod::AuthKey => pb::RegisterMethod::AuthKey,
        RegisterMethod::Cli => pb::RegisterMethod::Cli,
        RegisterMethod::Oidc => pb::RegisterMethod::Oidc,
    };
    pb::Node {
        id: n.id.get(),
        machine_key: j.machine_key,
        node_key: j.node_key,
        disco_key: j.disco_key,
        ip_addresses: j.ip_addresses,
        name: j.name,
        user: v.user.as_ref().map(user_pb),
        last_seen: n.last_seen.map(ts),
        expiry: n.expiry.map(ts),
        pre_auth_key: v.preauth_key.as_ref().map(|(k, u)| {
            preauth_pb(&PreAuthKeyView {
                key: k.clone(),
                full: None,
                user: u.clone(),
            })
        }),
        created_at: Some(ts(n.created_at)),
        register_method: method as i32,
        given_name: j.given_name,
        online: j.online,
        approved_routes: j.approved_routes,
        available_routes: j.available_routes,
        subnet_routes: j.subnet_routes,
        tags: j.tags,
    }
}

/// `f(id)`, or `InvalidArgument` naming `what` when `id` is 0. Public for the fuzz target.
#[doc(hidden)]
pub fn nonzero<T>(what: &str, id: u64, f: impl FnOnce(u64) -> T) -> Result<T, Status> {
    if id == 0 {
        Err(ApiError::bad_request(format!("{what} is required")).into())
    } else {
        Ok(f(id))
    }
}

/// Which API key a prefix or id names. Public for the fuzz target.
#[doc(hidden)]
pub fn key_ref(prefix: String, id: u64) -> Result<ApiKeyRef, Status> {
    match (prefix.is_empty(), id) {
        (false, 0) => Ok(ApiKeyRef::Prefix(prefix)),
        (true, 0) => Err(ApiError::bad_request("an API key prefix or id is required").into()),
        (true, id) => Ok(ApiKeyRef::Id(id)),
        (false, _) => {
            Err(ApiError::bad_request("give either an API key prefix or an id, not both").into())
        }
    }
}

#[tonic::async_trait]
impl HeadscaleService for GrpcApi {
    async fn create_user(&self, r: Request<pb::CreateUserRequest>) -> R<pb::CreateUserResponse> {
        let r = r.into_inner();
        let u = self
            .admin
            .create_user(NewUser {
                name: r.name,
                display_name: r.display_name,
                email: r.email,
                profile_pic_url: r.picture_url,
            })
            .await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_pb(&u)),
        }))
    }

    async fn rename_user(&self, r: Request<pb::RenameUserRequest>) -> R<pb::RenameUserResponse> {
        let r = r.into_inner();
        let id = nonzero("user id", r.old_id, UserId)?;
        let u = self.admin.rename_user(id, r.new_name).await?;
        Ok(Response::new(pb::RenameUserResponse {
            user: Some(user_pb(&u)),
        }))
    }

    async fn delete_user(&self, r: Request<pb::DeleteUserRequest>) -> R<pb::DeleteUserResponse> {
        let id = nonzero("user id", r.into_inner().id, UserId)?;
        self.admin.delete_user(id).await?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn list_users(&self, r: Request<pb::ListUsersRequest>) -> R<pb::ListUsersResponse> {
        let r = r.into_inner();
        let f = UserFilter {
            id: (r.id != 0).then_some(UserId(r.id)),
            name: (!r.name.is_empty()).then_some(r.name),
            email: (!r.email.is_empty()).then_some(r.email),
        };
        let users = self.admin.list_users(f).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(user_pb).collect(),
        }))
    }

    async fn create_pre_auth_key(
        &self,
        r: Request<pb::CreatePreAuthKeyRequest>,
    ) -> R<pb::CreatePreAuthKeyResponse> {
        let r = r.into_inner();
        let exp = from_ts("expiration", r.expiration)?;
        let user = (r.user != 0).then_some(UserId(r.user));
        let k = self
            .admin
            .create_preauth_key(user, r.reusable, r.ephemeral, exp, r.acl_tags)
            .await?;
        Ok(Response::new(pb::CreatePreAuthKeyResponse {
            pre_auth_key: Some(preauth_pb(&k)),
        }))
    }

    async fn expire_pre_auth_key(
        &self,
        r: Request<pb::ExpirePreAuthKeyRequest>,
    ) -> R<pb::ExpirePreAuthKeyResponse> {
        let id = nonzero("pre-auth key id", r.into_inner().id, |i| i)?;
        self.admin.expire_preauth_key(id).await?;
        Ok(Response::new(pb::ExpirePreAuthKeyResponse {}))
    }

    async fn delete_pre_auth_key(
        &self,
        r: Request<pb::DeletePreAuthKeyRequest>,
    ) -> R<pb::DeletePreAuthKeyResponse> {
        let id = nonzero("pre-auth key id", r.into_inner().id, |i| i)?;
        self.admin.delete_preauth_key(id).await?;
        Ok(Response::new(pb::DeletePreAuthKeyResponse {}))
    }

    async fn list_pre_auth_keys(
        &self,
        _r: Request<pb::ListPreAuthKeysRequest>,
    ) -> R<pb::ListPreAuthKeysResponse> {
        let keys = self.admin.list_preauth_keys().await?;
        Ok(Response::new(pb::ListPreAuthKeysResponse {
            pre_auth_keys: keys.iter().map(preauth_pb).collect(),
        }))
    }

    async fn debug_create_node(
        &self,
        r: Request<pb::DebugCreateNodeRequest>,
    ) -> R<pb::DebugCreateNodeResponse> {
        let r = r.into_inner();
        let n = self
            .admin
            .debug_create_node(&r.user, &r.key, &r.name, &r.routes)
            .await?;
        Ok(Response::new(pb::DebugCreateNodeResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn get_node(&self, r: Request<pb::GetNodeRequest>) -> R<pb::GetNodeResponse> {
        let id = nonzero("node id", r.into_inner().node_id, NodeId)?;
        let n = self.admin.get_node(id).await?;
        Ok(Response::new(pb::GetNodeResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn set_tags(&self, r: Request<pb::SetTagsRequest>) -> R<pb::SetTagsResponse> {
        let r = r.into_inner();
        let id = nonzero("node id", r.node_id, NodeId)?;
        let n = self.admin.set_tags(id, r.tags).await?;
        Ok(Response::new(pb::SetTagsResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn set_approved_routes(
        &self,
        r: Request<pb::SetApprovedRoutesRequest>,
    ) -> R<pb::SetApprovedRoutesResponse> {
        let r = r.into_inner();
        let id = nonzero("node id", r.node_id, NodeId)?;
        let n = self.admin.set_approved_routes(id, r.routes).await?;
        Ok(Response::new(pb::SetApprovedRoutesResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn register_node(
        &self,
        r: Request<pb::RegisterNodeRequest>,
    ) -> R<pb::RegisterNodeResponse> {
        let r = r.into_inner();
        let n = self.admin.auth_register(&r.user, &r.key).await?;
        Ok(Response::new(pb::RegisterNodeResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn delete_node(&self, r: Request<pb::DeleteNodeRequest>) -> R<pb::DeleteNodeResponse> {
        let id = nonzero("node id", r.into_inner().node_id, NodeId)?;
        self.admin.delete_node(id).await?;
        Ok(Response::new(pb::DeleteNodeResponse {}))
    }

    async fn expire_node(&self, r: Request<pb::ExpireNodeRequest>) -> R<pb::ExpireNodeResponse> {
        let r = r.into_inner();
        let id = nonzero("node id", r.node_id, NodeId)?;
        let exp = from_ts("expiry", r.expiry)?;
        let n = self.admin.expire_node(id, exp, r.disable_expiry).await?;
        Ok(Response::new(pb::ExpireNodeResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn rename_node(&self, r: Request<pb::RenameNodeRequest>) -> R<pb::RenameNodeResponse> {
        let r = r.into_inner();
        let id = nonzero("node id", r.node_id, NodeId)?;
        let n = self.admin.rename_node(id, r.new_name).await?;
        Ok(Response::new(pb::RenameNodeResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn list_nodes(&self, r: Request<pb::ListNodesRequest>) -> R<pb::ListNodesResponse> {
        let r = r.into_inner();
        let nodes = self.admin.list_nodes(Some(&r.user)).await?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: nodes.iter().map(node_pb).collect(),
        }))
    }

    async fn backfill_node_i_ps(
        &self,
        r: Request<pb::BackfillNodeIPsRequest>,
    ) -> R<pb::BackfillNodeIPsResponse> {
        let changes = self.admin.backfill_ips(r.into_inner().confirmed).await?;
        Ok(Response::new(pb::BackfillNodeIPsResponse { changes }))
    }

    async fn auth_register(
        &self,
        r: Request<pb::AuthRegisterRequest>,
    ) -> R<pb::AuthRegisterResponse> {
        let r = r.into_inner();
        let n = self.admin.auth_register(&r.user, &r.auth_id).await?;
        Ok(Response::new(pb::AuthRegisterResponse {
            node: Some(node_pb(&n)),
        }))
    }

    async fn auth_approve(&self, r: Request<pb::AuthApproveRequest>) -> R<pb::AuthApproveResponse> {
        self.admin.auth_approve(&r.into_inner().auth_id)?;
        Ok(Response::new(pb::AuthApproveResponse {}))
    }

    async fn auth_reject(&self, r: Request<pb::AuthRejectRequest>) -> R<pb::AuthRejectResponse> {
        self.admin.auth_reject(&r.into_inner().auth_id)?;
        Ok(Response::new(pb::AuthRejectResponse {}))
    }

    async fn create_api_key(
        &self,
        r: Request<pb::CreateApiKeyRequest>,
    ) -> R<pb::CreateApiKeyResponse> {
        let exp = from_ts("expiration", r.into_inner().expiration)?;
        let api_key = self.admin.create_api_key(exp).await?;
        Ok(Response::new(pb::CreateApiKeyResponse { api_key }))
    }

    async fn expire_api_key(
        &self,
        r: Request<pb::ExpireApiKeyRequest>,
    ) -> R<pb::ExpireApiKeyResponse> {
        let r = r.into_inner();
        self.admin.expire_api_key(key_ref(r.prefix, r.id)?).await?;
        Ok(Response::new(pb::ExpireApiKeyResponse {}))
    }

    async fn list_api_keys(
        &self,
        _r: Request<pb::ListApiKeysRequest>,
    ) -> R<pb::ListApiKeysResponse> {
        let keys = self.admin.list_api_keys().await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(api_key_pb).collect(),
        }))
    }

    async fn delete_api_key(
        &self,
        r: Request<pb::DeleteApiKeyRequest>,
    ) -> R<pb::DeleteApiKeyResponse> {
        let r = r.into_inner();
        self.admin.delete_api_key(key_ref(r.prefix, r.id)?).await?;
        Ok(Response::new(pb::DeleteApiKeyResponse {}))
    }

    async fn get_policy(&self, _r: Request<pb::GetPolicyRequest>) -> R<pb::GetPolicyResponse> {
        let p = self.admin.get_policy().await?;
        Ok(Response::new(pb::GetPolicyResponse {
            policy: p.data,
            updated_at: Some(ts(p.updated_at)),
        }))
    }

    async fn set_policy(&self, r: Request<pb::SetPolicyRequest>) -> R<pb::SetPolicyResponse> {
        let p = self.admin.set_policy(r.into_inner().policy).await?;
        Ok(Response::new(pb::SetPolicyResponse {
            policy: p.data,
            updated_at: Some(ts(p.updated_at)),
        }))
    }

    async fn check_policy(&self, r: Request<pb::CheckPolicyRequest>) -> R<pb::CheckPolicyResponse> {
        self.admin.check_policy(&r.into_inner().policy).await?;
        Ok(Response::new(pb::CheckPolicyResponse {}))
    }

    async fn health(&self, _r: Request<pb::HealthRequest>) -> R<pb::HealthResponse> {
        Ok(Response::new(pb::HealthResponse {
            database_connectivity: self.admin.health().await,
        }))
    }
}
