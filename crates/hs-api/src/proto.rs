//! The `headscale.v1` protobuf messages and the tonic client and server for
//! `HeadscaleService`, generated from `proto/headscale/v1/*.proto` by `cargo xtask codegen`
//! and checked in so building needs no `protoc`.

#![allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all,
    reason = "generated code"
)]

include!("generated/headscale.v1.rs");

#[cfg(test)]
mod tests {
    //! Field numbers pinned against Go Headscale 0.29's `headscale.v1` protos: a message
    //! encoded here must decode there. Each check encodes one field and reads back its tag.

    use prost::Message;

    use super::*;

    /// The protobuf key of the first field in `bytes`: `(field number, wire type)`.
    fn first_key(bytes: &[u8]) -> (u64, u64) {
        let mut key = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            key |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        (key >> 3, key & 7)
    }

    fn field<M: Message>(m: &M) -> (u64, u64) {
        first_key(&m.encode_to_vec())
    }

    #[test]
    fn field_numbers_match_headscale() {
        let s = || "x".to_owned();
        assert_eq!(
            field(&Node {
                given_name: s(),
                ..Default::default()
            }),
            (21, 2)
        );
        assert_eq!(
            field(&Node {
                online: true,
                ..Default::default()
            }),
            (22, 0)
        );
        assert_eq!(
            field(&Node {
                tags: vec![s()],
                ..Default::default()
            }),
            (26, 2)
        );
        assert_eq!(
            field(&Node {
                expiry: Some(Default::default()),
                ..Default::default()
            }),
            (10, 2)
        );
        assert_eq!(
            field(&Node {
                register_method: 2,
                ..Default::default()
            }),
            (13, 0)
        );
        assert_eq!(
            field(&Node {
                pre_auth_key: Some(Default::default()),
                ..Default::default()
            }),
            (11, 2)
        );
        assert_eq!(
            field(&PreAuthKey {
                acl_tags: vec![s()],
                ..Default::default()
            }),
            (9, 2)
        );
        assert_eq!(
            field(&PreAuthKey {
                user: Some(Default::default()),
                ..Default::default()
            }),
            (1, 2)
        );
        assert_eq!(
            field(&User {
                profile_pic_url: s(),
                ..Default::default()
            }),
            (8, 2)
        );
        assert_eq!(
            field(&ApiKey {
                last_seen: Some(Default::default()),
                ..Default::default()
            }),
            (5, 2)
        );
        assert_eq!(
            field(&ExpireApiKeyRequest {
                id: 1,
                ..Default::default()
            }),
            (2, 0)
        );
        assert_eq!(
            field(&CreatePreAuthKeyRequest {
                user: 1,
                ..Default::default()
            }),
            (1, 0)
        );
        assert_eq!(
            field(&ExpireNodeRequest {
                disable_expiry: true,
                ..Default::default()
            }),
            (3, 0)
        );
        assert_eq!(
            field(&DebugCreateNodeRequest {
                routes: vec![s()],
                ..Default::default()
            }),
            (4, 2)
        );
        assert_eq!(
            field(&AuthRegisterRequest {
                auth_id: s(),
                ..Default::default()
            }),
            (2, 2)
        );
        assert_eq!(
            field(&GetPolicyResponse {
                updated_at: Some(Default::default()),
                ..Default::default()
            }),
            (2, 2)
        );
        assert_eq!(
            field(&HealthResponse {
                database_connectivity: true
            }),
            (1, 0)
        );
        assert_eq!(RegisterMethod::Oidc as i32, 3);
    }

    #[test]
    fn service_paths_match_headscale() {
        // gRPC routes by "/package.Service/Method"; clients built from Go's protos call these.
        let src = include_str!("generated/headscale.v1.rs");
        for m in [
            "CreateUser",
            "ListNodes",
            "BackfillNodeIPs",
            "SetApprovedRoutes",
            "Health",
        ] {
            assert!(
                src.contains(&format!("\"/headscale.v1.HeadscaleService/{m}\"")),
                "{m}"
            );
        }
    }
}
