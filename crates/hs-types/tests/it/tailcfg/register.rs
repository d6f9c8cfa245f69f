//! RegisterRequest, RegisterResponse, RegisterResponseAuth, Oauth2Token, SignatureType,
//! User, Login, CapabilityVersion.

use chrono::{TimeZone, Utc};
use hs_types::tailcfg::{
    CapabilityVersion, Login, Oauth2Token, RegisterRequest, RegisterResponse, RegisterResponseAuth,
    SignatureType, User, gojson,
};
use hs_types::{NodePublic, UserId};

use super::{assert_lossless, parse, to_json};

fn hex_key(prefix: &str, byte: u8) -> String {
    format!("{prefix}{}", format!("{byte:02x}").repeat(32))
}

/// An auth-key login as tailscaled writes it: zero OldNodeKey, zero Expiry, a null
/// NodeKeySignature, an escaped `&` in the key, and a Hostinfo with RoutableIPs.
fn auth_key_login() -> String {
    format!(
        concat!(
            r#"{{"Version":145,"NodeKey":"{nk}","OldNodeKey":"{zero}","NLKey":"{nl}","#,
            r#""Auth":{{"AuthKey":"hskey-auth-abc\u0026def"}},"Expiry":"0001-01-01T00:00:00Z","#,
            r#""Followup":"","Hostinfo":{{"IPNVersion":"1.84.0","OS":"linux","Hostname":"router","#,
            r#""RoutableIPs":["10.1.0.0/16"],"RequestTags":["tag:router"]}},"Ephemeral":true,"#,
            r#""NodeKeySignature":null}}"#
        ),
        nk = hex_key("nodekey:", 0x11),
        zero = hex_key("nodekey:", 0),
        nl = hex_key("nlpub:", 0x22),
    )
}

#[test]
fn auth_key_login_parses() {
    let json = auth_key_login();
    let r: RegisterRequest = parse(&json);
    assert_eq!(r.version, CapabilityVersion(145));
    assert_eq!(r.node_key, NodePublic::from_bytes([0x11; 32]));
    assert!(r.old_node_key.is_zero());
    assert_eq!(r.nl_key, hex_key("nlpub:", 0x22));
    assert_eq!(r.auth.as_ref().unwrap().auth_key, "hskey-auth-abc&def");
    assert_eq!(r.expiry, None);
    assert!(r.ephemeral);
    assert!(r.node_key_signature.is_empty());
    assert_eq!(r.signature_type, SignatureType::None);
    let hi = r.hostinfo.as_ref().unwrap();
    assert_eq!(hi.routable_ips[0].to_string(), "10.1.0.0/16");
    assert_eq!(hi.request_tags, ["tag:router"]);
    // Our output is Go's, apart from `&` not being escaped.
    assert_eq!(to_json(&r), json.replace(r"\u0026", "&"));
    assert_eq!(
        String::from_utf8(gojson::to_vec(&r).unwrap()).unwrap(),
        json
    );
    assert_lossless::<RegisterRequest>(&json);
}

#[test]
fn auth_key_is_redacted_in_debug() {
    let r: RegisterRequest = parse(&auth_key_login());
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("hskey-auth-abc"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
    let t = Oauth2Token {
        access_token: "secret-at".into(),
        refresh_token: "secret-rt".into(),
        ..Default::default()
    };
    let dbg = format!("{t:?}");
    assert!(!dbg.contains("secret"), "{dbg}");
}

#[test]
fn logout_followup_and_rotation_shapes() {
    let json = format!(
        r#"{{"Version":130,"NodeKey":"{}","OldNodeKey":"{}","Expiry":"1970-01-01T00:02:03Z","Followup":"https://hs.example.com/register/abc","Hostinfo":null,"NodeKeySignature":"AQID","SignatureType":"signature-v2","Timestamp":"2026-01-01T00:00:00.5Z","DeviceCert":"BAU=","Signature":"Bg==","Tailnet":"example.com"}}"#,
        hex_key("nodekey:", 0x33),
        hex_key("nodekey:", 0x44),
    );
    let r: RegisterRequest = parse(&json);
    assert_eq!(r.expiry.unwrap().timestamp(), 123);
    assert_eq!(r.followup, "https://hs.example.com/register/abc");
    assert_eq!(r.old_node_key, NodePublic::from_bytes([0x44; 32]));
    assert!(r.hostinfo.is_none());
    assert!(r.auth.is_none());
    assert_eq!(r.node_key_signature, [1, 2, 3]);
    assert_eq!(r.signature_type, SignatureType::V2);
    assert_eq!(r.device_cert, [4, 5]);
    assert_eq!(r.signature, [6]);
    assert_eq!(r.tailnet, "example.com");
    // NLKey was absent: written back as Go's zero key.
    let out = to_json(&r);
    assert!(
        out.contains(&format!(r#""NLKey":"{}""#, hex_key("nlpub:", 0))),
        "{out}"
    );
    assert!(
        out.contains(r#""Timestamp":"2026-01-01T00:00:00.5Z""#),
        "{out}"
    );
    assert_eq!(parse::<RegisterRequest>(&out), r);
}

#[test]
fn default_request_writes_go_required_fields() {
    let zero = hex_key("nodekey:", 0);
    assert_eq!(
        to_json(&RegisterRequest::default()),
        format!(
            r#"{{"Version":0,"NodeKey":"{zero}","OldNodeKey":"{zero}","NLKey":"{}","Expiry":"0001-01-01T00:00:00Z","Followup":"","Hostinfo":null,"NodeKeySignature":null}}"#,
            hex_key("nlpub:", 0)
        )
    );
}

#[test]
fn legacy_oauth_auth_round_trips() {
    let a: RegisterResponseAuth = assert_lossless(
        r#"{"Oauth2Token":{"access_token":"at","token_type":"Bearer","expiry":"2030-01-01T00:00:00Z"}}"#,
    );
    let t = a.oauth2_token.unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(
        t.expiry,
        Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap())
    );
    assert_eq!(to_json(&RegisterResponseAuth::default()), "{}");
}

#[test]
fn response_has_no_omissions() {
    let r = RegisterResponse {
        user: User {
            id: UserId(1),
            display_name: "alice".into(),
            ..Default::default()
        },
        login: Login {
            id: 1,
            provider: "oidc".into(),
            login_name: "alice@example.com".into(),
            display_name: "Alice".into(),
            profile_pic_url: String::new(),
        },
        machine_authorized: true,
        ..Default::default()
    };
    let json = r#"{"User":{"ID":1,"DisplayName":"alice"},"Login":{"ID":1,"Provider":"oidc","LoginName":"alice@example.com","DisplayName":"Alice"},"NodeKeyExpired":false,"MachineAuthorized":true,"AuthURL":"","NodeKeySignature":null,"Error":""}"#;
    assert_eq!(to_json(&r), json);
    assert_eq!(assert_lossless::<RegisterResponse>(json), r);

    let pending = RegisterResponse {
        auth_url: "https://hs.example.com/register/xyz".into(),
        ..Default::default()
    };
    assert!(to_json(&pending).contains(r#""AuthURL":"https://hs.example.com/register/xyz""#));
    let err = RegisterResponse {
        error: "invalid auth key".into(),
        ..Default::default()
    };
    assert!(to_json(&err).ends_with(r#""Error":"invalid auth key"}"#));
}

#[test]
fn user_and_login_optional_fields() {
    let u: User = assert_lossless(
        r#"{"ID":7,"DisplayName":"Bob","ProfilePicURL":"https://pic/b.png","Created":"2024-02-03T04:05:06Z"}"#,
    );
    assert_eq!(
        u.created,
        Some(Utc.with_ymd_and_hms(2024, 2, 3, 4, 5, 6).unwrap())
    );
    assert_eq!(u.id, UserId(7));
    let l: Login = assert_lossless(
        r#"{"ID":0,"Provider":"","LoginName":"b","DisplayName":"","ProfilePicURL":"p"}"#,
    );
    assert_eq!(l.profile_pic_url, "p");
}

#[test]
fn signature_type_text_forms() {
    for (text, st) in [
        ("signature-none", SignatureType::None),
        ("signature-unknown", SignatureType::Unknown),
        ("signature-v1", SignatureType::V1),
        ("signature-v2", SignatureType::V2),
        ("signature-unknown(9)", SignatureType::Other(9)),
    ] {
        let json = format!("\"{text}\"");
        assert_eq!(parse::<SignatureType>(&json), st, "{text}");
        assert_eq!(to_json(&st), json);
    }
    assert_eq!(
        parse::<SignatureType>("\"garbage\""),
        SignatureType::Unknown
    );
    assert_eq!(SignatureType::from_i64(3), SignatureType::V2);
    assert_eq!(SignatureType::Other(9).as_i64(), 9);
}

#[test]
fn capability_versions() {
    assert!(CapabilityVersion::CURRENT.is_supported());
    assert!(CapabilityVersion(113).is_supported());
    assert!(!CapabilityVersion(112).is_supported());
    assert_eq!(CapabilityVersion(120).release(), Some("v1.84"));
    assert_eq!(CapabilityVersion(113).release(), Some("v1.80"));
    assert_eq!(CapabilityVersion(100).release(), None);
    assert_eq!(to_json(&CapabilityVersion(145)), "145");
    assert_eq!(parse::<CapabilityVersion>("130"), CapabilityVersion(130));
    assert!(serde_json::from_str::<CapabilityVersion>("-1").is_err());
}
