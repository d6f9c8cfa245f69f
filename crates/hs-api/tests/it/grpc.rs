//! Every `HeadscaleService` method called through the generated client: over TCP on
//! 127.0.0.1 with an API key, and over the unix socket without one.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tonic::Code;

use hs_api::proto as pb;

use hs_api::client::RemoteTls;
use hs_api::serve::GrpcSecurity;

use super::support::{AUTH_ID, Fixture, later};

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    )
}

/// Auth ids of later pending registrations (each registration has its own).
const PHONE_AUTH_ID: &str = "hskey-authreq-0123456789abcdef01234567";
const X_AUTH_ID: &str = "hskey-authreq-76543210fedcba9876543210";

const T: Duration = Duration::from_secs(10);

/// Serves the gRPC listener for `f` on an ephemeral loopback port; returns its address and
/// a sender that stops it.
pub(crate) async fn serve(f: &Fixture) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let admin = f.admin.clone();
    tokio::spawn(async move {
        hs_api::serve::serve_grpc(listener, admin, GrpcSecurity::Insecure, async {
            rx.await.ok();
        })
        .await
        .unwrap();
    });
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_the_generated_client() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let (addr, stop) = serve(&f).await;
    let mut c =
        hs_api::client::connect_remote(&format!("http://{addr}"), &key, RemoteTls::Plain, T)
            .await
            .unwrap();

    let h = c.health(pb::HealthRequest {}).await.unwrap().into_inner();
    assert!(h.database_connectivity);

    // users
    let alice = c
        .create_user(pb::CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: "a@example.com".into(),
            picture_url: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!((alice.id, alice.display_name.as_str()), (1, "Alice"));
    let dup = c
        .create_user(pb::CreateUserRequest {
            name: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    c.create_user(pb::CreateUserRequest {
        name: "temp".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let renamed = c
        .rename_user(pb::RenameUserRequest {
            old_id: 2,
            new_name: "temp2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(renamed.name, "temp2");
    c.delete_user(pb::DeleteUserRequest { id: 2 })
        .await
        .unwrap();
    let users = c
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );

    // pre-auth keys
    let pak = c
        .create_pre_auth_key(pb::CreatePreAuthKeyRequest {
            user: 1,
            reusable: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pre_auth_key
        .unwrap();
    assert!(pak.key.starts_with("hskey-auth-") && !pak.key.ends_with("***"));
    let listed = c
        .list_pre_auth_keys(pb::ListPreAuthKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .pre_auth_keys;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].key.ends_with("-***"),
        "listing never shows the secret"
    );
    c.expire_pre_auth_key(pb::ExpirePreAuthKeyRequest { id: pak.id })
        .await
        .unwrap();
    c.delete_pre_auth_key(pb::DeletePreAuthKeyRequest { id: pak.id })
        .await
        .unwrap();
    let gone = c
        .delete_pre_auth_key(pb::DeletePreAuthKeyRequest { id: pak.id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // nodes: one registered through a pending session, then every node operation on it
    f.pending(AUTH_ID, "laptop");
    let n = c
        .register_node(pb::RegisterNodeRequest {
            user: "alice".into(),
            key: AUTH_ID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(n.register_method, pb::RegisterMethod::Cli as i32);
    assert!(n.machine_key.starts_with("mkey:"));
    let got = c
        .get_node(pb::GetNodeRequest { node_id: n.id })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(got.given_name, "laptop");
    let r = c
        .rename_node(pb::RenameNodeRequest {
            node_id: n.id,
            new_name: "laptop-2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(r.given_name, "laptop-2");
    let routes = c
        .set_approved_routes(pb::SetApprovedRoutesRequest {
            node_id: n.id,
            routes: vec!["192.168.1.0/24".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(routes.approved_routes, ["192.168.1.0/24"]);
    let bad = c
        .set_approved_routes(pb::SetApprovedRoutesRequest {
            node_id: n.id,
            routes: vec!["nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("nope"));
    let exp = c
        .expire_node(pb::ExpireNodeRequest {
            node_id: n.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert!(exp.expiry.is_some());
    let tags = c
        .set_tags(pb::SetTagsRequest {
            node_id: n.id,
            tags: vec!["tag:x".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(
        tags.code(),
        Code::InvalidArgument,
        "tag not owned by the policy"
    );
    let nodes = c
        .list_nodes(pb::ListNodesRequest {
            user: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    let dbg = c
        .debug_create_node(pb::DebugCreateNodeRequest {
            user: "alice".into(),
            key: "hskey-authreq-000000000000000000000000".into(),
            name: "dbg".into(),
            routes: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(dbg.name, "dbg");
    let back = c
        .backfill_node_i_ps(pb::BackfillNodeIPsRequest { confirmed: false })
        .await
        .unwrap_err();
    assert_eq!(back.code(), Code::InvalidArgument);
    c.delete_node(pb::DeleteNodeRequest { node_id: n.id })
        .await
        .unwrap();
    assert!(
        f.state
            .store()
            .load()
            .node(hs_types::NodeId(n.id))
            .is_none(),
        "the control plane forgot the deleted node"
    );

    // auth sessions
    f.pending(PHONE_AUTH_ID, "phone");
    let reg = c
        .auth_register(pb::AuthRegisterRequest {
            user: "alice".into(),
            auth_id: PHONE_AUTH_ID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(reg.name, "phone");
    let approve = c
        .auth_approve(pb::AuthApproveRequest {
            auth_id: PHONE_AUTH_ID.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(approve.code(), Code::NotFound);
    f.pending(X_AUTH_ID, "x");
    c.auth_reject(pb::AuthRejectRequest {
        auth_id: X_AUTH_ID.into(),
    })
    .await
    .unwrap();

    // API keys
    let k2 = c
        .create_api_key(pb::CreateApiKeyRequest { expiration: None })
        .await
        .unwrap()
        .into_inner()
        .api_key;
    assert!(k2.starts_with("hskey-api-"));
    let keys = c
        .list_api_keys(pb::ListApiKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].last_seen.is_none(),
        "as Go 0.29.3, use is not recorded"
    );
    c.expire_api_key(pb::ExpireApiKeyRequest {
        prefix: keys[1].prefix.clone(),
        id: 0,
    })
    .await
    .unwrap();
    c.delete_api_key(pb::DeleteApiKeyRequest {
        prefix: String::new(),
        id: keys[1].id,
    })
    .await
    .unwrap();

    // policy
    let missing = c.get_policy(pb::GetPolicyRequest {}).await.unwrap_err();
    assert_eq!(missing.code(), Code::Internal);
    let invalid = c
        .check_policy(pb::CheckPolicyRequest { policy: "{".into() })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    c.check_policy(pb::CheckPolicyRequest {
        policy: "{}".into(),
    })
    .await
    .unwrap();
    let set = c
        .set_policy(pb::SetPolicyRequest {
            policy: r#"{"acls":[]}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.policy, r#"{"acls":[]}"#);
    let get = c
        .get_policy(pb::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(get.policy, set.policy);

    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_missing_expired_and_deleted_keys() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let (addr, stop) = serve(&f).await;

    // No key: the raw generated client without the interceptor.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = pb::headscale_service_client::HeadscaleServiceClient::new(channel);
    let e = raw
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let mut c =
        hs_api::client::connect_remote(&format!("http://{addr}"), &key, RemoteTls::Plain, T)
            .await
            .unwrap();
    c.list_users(pb::ListUsersRequest::default()).await.unwrap();
    f.admin
        .expire_api_key(hs_api::ApiKeyRef::Id(1))
        .await
        .unwrap();
    let e = c
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let key2 = f.admin.create_api_key(Some(later())).await.unwrap();
    let mut c2 =
        hs_api::client::connect_remote(&format!("http://{addr}"), &key2, RemoteTls::Plain, T)
            .await
            .unwrap();
    c2.list_users(pb::ListUsersRequest::default())
        .await
        .unwrap();
    f.admin
        .delete_api_key(hs_api::ApiKeyRef::Id(2))
        .await
        .unwrap();
    let e = c2
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    stop.send(()).unwrap();
}

#[test]
fn grpc_listener_needs_tls_or_allow_insecure() {
    // Like Headscale 0.29: neither TLS nor grpc_allow_insecure means no remote gRPC listener.
    assert!(
        hs_api::serve::grpc_security(None, None, false)
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        hs_api::serve::grpc_security(None, None, true).unwrap(),
        Some(GrpcSecurity::Insecure)
    ));
    let half =
        hs_api::serve::grpc_security(Some(std::path::Path::new("/x.pem")), None, true).unwrap_err();
    assert!(half.to_string().contains("together"), "{half}");
    let missing = hs_api::serve::grpc_security(
        Some(std::path::Path::new("/nonexistent/cert.pem")),
        Some(std::path::Path::new("/nonexistent/key.pem")),
        true,
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/cert.pem"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_listener_serves_tls_with_api_key_auth() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let cert = manifest_dir().join("tests/testdata/tls.crt");
    let security = hs_api::serve::grpc_security(
        Some(&cert),
        Some(&manifest_dir().join("tests/testdata/tls.key")),
        false,
    )
    .unwrap()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let admin = f.admin.clone();
    let server = tokio::spawn(hs_api::serve::serve_grpc(
        listener,
        admin,
        security,
        async {
            rx.await.ok();
        },
    ));

    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let request = |bearer: Option<&str>| {
        let auth = bearer
            .map(|k| format!("authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        format!("GET /api/v1/health HTTP/1.1\r\nhost: localhost\r\n{auth}connection: close\r\n\r\n")
    };
    for (bearer, want) in [(None, "HTTP/1.1 401"), (Some(key.as_str()), "HTTP/1.1 200")] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(request(bearer).as_bytes()).await.unwrap();
        let mut out = String::new();
        tls.read_to_string(&mut out).await.ok();
        assert!(out.starts_with(want), "{out}");
    }

    // The generated gRPC client over TLS: verified against the test certificate, with
    // verification skipped (cli.insecure), and refused when the roots do not include it.
    let mut verify = rustls::RootCertStore::empty();
    verify
        .add(rustls_pki_types::CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let tls_addr = addr.to_string();
    let mut c = hs_api::client::connect_remote(
        &tls_addr,
        &key,
        RemoteTls::Verify(std::sync::Arc::new(verify)),
        T,
    )
    .await
    .unwrap();
    let h = c.health(pb::HealthRequest {}).await.unwrap().into_inner();
    assert!(h.database_connectivity);
    let mut c = hs_api::client::connect_remote(&tls_addr, &key, RemoteTls::SkipVerify, T)
        .await
        .unwrap();
    c.list_users(pb::ListUsersRequest::default()).await.unwrap();
    let untrusted = hs_api::client::connect_remote(
        &tls_addr,
        &key,
        RemoteTls::Verify(std::sync::Arc::new(rustls::RootCertStore::empty())),
        T,
    )
    .await;
    assert!(untrusted.is_err(), "an unknown certificate must be refused");

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_grpc_and_rest_without_a_key() {
    let f = Fixture::new().await;
    f.user("alice");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/headscale.sock");
    let listener = hs_api::serve::bind_unix(&path, 0o770).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let admin = f.admin.clone();
    let server = tokio::spawn(async move {
        hs_api::serve::serve_unix(listener, admin, async {
            rx.await.ok();
        })
        .await
    });
    let mut c = hs_api::client::connect_unix(&path, T).await.unwrap();
    let users = c
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users[0].name, "alice");

    // A plain HTTP/1.1 REST request over the same socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"GET /api/v1/user HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(r#""name":"alice""#), "{out}");

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    // A stale socket from a previous run is replaced, not an error.
    drop(hs_api::serve::bind_unix(&path, 0o700).unwrap());
}

/// gRPC `ListNodes` shows the same tagged-devices owner as REST, and `SetTags` with no tags
/// is `InvalidArgument` with Headscale's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_nodes_list_as_tagged_devices_over_grpc() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "owned", &u, &[]);
    f.node_with_key(2, "tagged", &u, &["tag:server"]);
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let (addr, stop) = serve(&f).await;
    let mut c =
        hs_api::client::connect_remote(&format!("http://{addr}"), &key, RemoteTls::Plain, T)
            .await
            .unwrap();
    let nodes = c
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].user.as_ref().unwrap().name, "alice");
    let owner = nodes[1].user.as_ref().unwrap();
    assert_eq!(owner.id, 2_147_455_555);
    assert_eq!(owner.name, "tagged-devices");
    assert_eq!(owner.display_name, "Tagged Devices");
    assert_eq!(
        owner.created_at.as_ref().map(|t| t.seconds),
        Some(-62_135_596_800),
        "Go's zero time"
    );
    let err = c
        .set_tags(pb::SetTagsRequest {
            node_id: 2,
            tags: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "cannot remove all tags from a node - tagged nodes must have at least one tag"
    );
    stop.send(()).ok();
}
