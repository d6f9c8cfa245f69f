//! Fuzzes the admin API's request decoding: the first byte picks a REST route that takes a
//! body or a gRPC method, the rest is the body or the protobuf message.
//!
//! REST: the body goes through `rest::body` into the route's type and then through the
//! conversion its handler applies before calling the service (API key reference, required
//! id, pre-auth key owner). Any bytes give a value or a 400 (which renders as a response),
//! never a panic; a blank body is the type's default; ids that pass are never 0.
//!
//! gRPC: the message is decoded with `prost::Message::decode`, as tonic does, then goes
//! through its handler's conversion (`from_ts`, `key_ref`, `nonzero`). A message that decodes
//! re-encodes to `encoded_len()` bytes that decode to the same message; a timestamp that
//! converts converts back to the same seconds and nanos; errors render as gRPC responses.
#![no_main]

use std::fmt::Debug;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hs_api::ApiError;
use hs_api::ApiKeyRef;
use hs_api::grpc::{from_ts, key_ref, nonzero};
use hs_api::json::{
    AuthBody, CreateApiKeyBody, CreatePreAuthKeyBody, CreateUserBody, ExpireApiKeyBody,
    ExpireNodeBody, IdBody, PolicyBody, RoutesBody, StringOrNumber, TagsBody,
};
use hs_api::proto as pb;
use hs_api::rest::{self, DebugNodeBody, api_key_ref, parse_id, preauth_user, required_id};
use hs_types::UserId;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use serde::de::DeserializeOwned;

/// REST routes that take a body, in the order the first byte picks them.
const REST_ROUTES: u8 = 11;

/// Decodes `data` as the route's body; a failure must be a 400.
fn rest_body<T: DeserializeOwned + Default>(data: &[u8]) -> Option<T> {
    let bytes = Bytes::copy_from_slice(data);
    match rest::body::<T>(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            bad_request(e);
            assert!(
                !data.iter().all(u8::is_ascii_whitespace),
                "blank body refused"
            );
            None
        }
    }
}

/// A refusal of client input is a 400 and renders as one.
fn bad_request(e: ApiError) {
    assert!(matches!(e, ApiError::BadRequest(_)), "{e:?}");
    assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
}

/// The handler's conversion after decoding: on success the value, else a 400.
fn converted<T>(r: Result<T, ApiError>) -> Option<T> {
    r.map_err(bad_request).ok()
}

/// A JSON id, as text, parses back to the same number.
fn id_text(id: Option<&StringOrNumber>) {
    if let Some(StringOrNumber::Number(n)) = id {
        assert_eq!(
            parse_id("id", &StringOrNumber::Number(*n).as_text()).ok(),
            Some(*n)
        );
    }
}

fn rest_route(route: u8, data: &[u8]) {
    match route {
        0 => drop(rest_body::<CreateApiKeyBody>(data)),
        1 => {
            let Some(req) = rest_body::<ExpireApiKeyBody>(data) else {
                return;
            };
            id_text(req.id.as_ref());
            let id = req.id.as_ref().map(StringOrNumber::as_text);
            if let Some(ApiKeyRef::Id(n)) = converted(api_key_ref(&req.prefix, id.as_deref())) {
                assert_ne!(n, 0);
            }
        }
        2 => drop(rest_body::<CreateUserBody>(data)),
        3 => {
            let Some(req) = rest_body::<CreatePreAuthKeyBody>(data) else {
                return;
            };
            id_text(req.user.as_ref());
            if let Some(Some(UserId(n))) = converted(preauth_user(req.user.as_ref())) {
                assert_ne!(n, 0);
            }
        }
        4 => {
            let Some(req) = rest_body::<IdBody>(data) else {
                return;
            };
            id_text(req.id.as_ref());
            let id = req.id.map(|i| i.as_text());
            if let Some(n) = converted(required_id("pre-auth key id", id)) {
                assert_ne!(n, 0);
            }
        }
        5 => drop(rest_body::<ExpireNodeBody>(data)),
        6 => drop(rest_body::<TagsBody>(data)),
        7 => drop(rest_body::<RoutesBody>(data)),
        8 => drop(rest_body::<DebugNodeBody>(data)),
        9 => drop(rest_body::<AuthBody>(data)),
        _ => drop(rest_body::<PolicyBody>(data)),
    }
}

/// Decodes `data` as tonic does; a message that decodes round-trips.
fn proto<M: Message + Default + PartialEq + Debug>(data: &[u8]) -> Option<M> {
    let m = M::decode(data).ok()?;
    let bytes = m.encode_to_vec();
    assert_eq!(bytes.len(), m.encoded_len());
    let again = M::decode(bytes.as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, m);
    Some(m)
}

/// The handler's conversion after decoding; a refusal renders as a gRPC response.
fn grpc<T>(r: Result<T, tonic::Status>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
            drop(s.into_http::<()>());
            None
        }
    }
}

/// A timestamp the handler accepts names the same instant it came as.
fn timestamp(field: &str, t: Option<prost_types::Timestamp>) {
    if let Some(Some(dt)) = grpc(from_ts(field, t)) {
        let t = t.expect("converted from Some");
        assert_eq!(dt.timestamp(), t.seconds);
        assert_eq!(i64::from(dt.timestamp_subsec_nanos()), i64::from(t.nanos));
    }
}

fn api_key(prefix: String, id: u64) {
    let empty = prefix.is_empty();
    match grpc(key_ref(prefix, id)) {
        Some(ApiKeyRef::Id(n)) => assert!(n != 0 && empty),
        Some(ApiKeyRef::Prefix(p)) => assert!(!p.is_empty() && id == 0),
        None => {}
    }
}

fn required(what: &str, id: u64) {
    if let Some(n) = grpc(nonzero(what, id, |i| i)) {
        assert_ne!(n, 0);
    }
}

fn grpc_method(method: u8, d: &[u8]) {
    match method {
        0 => {
            if let Some(m) = proto::<pb::CreateApiKeyRequest>(d) {
                timestamp("expiration", m.expiration);
            }
        }
        1 => {
            if let Some(m) = proto::<pb::ExpireApiKeyRequest>(d) {
                api_key(m.prefix, m.id);
            }
        }
        2 => drop(proto::<pb::ListApiKeysRequest>(d)),
        3 => {
            if let Some(m) = proto::<pb::DeleteApiKeyRequest>(d) {
                api_key(m.prefix, m.id);
            }
        }
        4 => drop(proto::<pb::CreateUserRequest>(d)),
        5 => {
            if let Some(m) = proto::<pb::RenameUserRequest>(d) {
                required("user id", m.old_id);
            }
        }
        6 => {
            if let Some(m) = proto::<pb::DeleteUserRequest>(d) {
                required("user id", m.id);
            }
        }
        7 => drop(proto::<pb::ListUsersRequest>(d)),
        8 => {
            if let Some(m) = proto::<pb::CreatePreAuthKeyRequest>(d) {
                timestamp("expiration", m.expiration);
            }
        }
        9 => {
            if let Some(m) = proto::<pb::ExpirePreAuthKeyRequest>(d) {
                required("pre-auth key id", m.id);
            }
        }
        10 => {
            if let Some(m) = proto::<pb::DeletePreAuthKeyRequest>(d) {
                required("pre-auth key id", m.id);
            }
        }
        11 => drop(proto::<pb::ListPreAuthKeysRequest>(d)),
        12 => drop(proto::<pb::RegisterNodeRequest>(d)),
        13 => {
            if let Some(m) = proto::<pb::GetNodeRequest>(d) {
                required("node id", m.node_id);
            }
        }
        14 => {
            if let Some(m) = proto::<pb::SetTagsRequest>(d) {
                required("node id", m.node_id);
            }
        }
        15 => {
            if let Some(m) = proto::<pb::SetApprovedRoutesRequest>(d) {
                required("node id", m.node_id);
            }
        }
        16 => {
            if let Some(m) = proto::<pb::DeleteNodeRequest>(d) {
                required("node id", m.node_id);
            }
        }
        17 => {
            if let Some(m) = proto::<pb::ExpireNodeRequest>(d) {
                required("node id", m.node_id);
                timestamp("expiry", m.expiry);
            }
        }
        18 => {
            if let Some(m) = proto::<pb::RenameNodeRequest>(d) {
                required("node id", m.node_id);
            }
        }
        19 => drop(proto::<pb::ListNodesRequest>(d)),
        20 => drop(proto::<pb::DebugCreateNodeRequest>(d)),
        21 => drop(proto::<pb::BackfillNodeIPsRequest>(d)),
        22 => drop(proto::<pb::AuthRegisterRequest>(d)),
        23 => drop(proto::<pb::AuthApproveRequest>(d)),
        24 => drop(proto::<pb::AuthRejectRequest>(d)),
        25 => drop(proto::<pb::SetPolicyRequest>(d)),
        26 => drop(proto::<pb::GetPolicyRequest>(d)),
        27 => drop(proto::<pb::CheckPolicyRequest>(d)),
        _ => drop(proto::<pb::HealthRequest>(d)),
    }
}

/// gRPC request types, after the REST routes.
const GRPC_METHODS: u8 = 29;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let pick = pick % (REST_ROUTES + GRPC_METHODS);
    if pick < REST_ROUTES {
        rest_route(pick, rest);
    } else {
        grpc_method(pick - REST_ROUTES, rest);
    }
});
