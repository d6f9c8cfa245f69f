//! SSHPolicy, SSHRule, SSHPrincipal, SSHAction, SSHRecorderFailureAction.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use hs_types::tailcfg::{SSHAction, SSHPolicy, SSHPrincipal, SSHRecorderFailureAction, SSHRule};

use super::{assert_lossless, parse, to_json};

#[test]
fn policy_in_go_shape() {
    let json = r#"{"rules":[{"principals":[{"node":"n123CNTRL"},{"nodeIP":"100.64.0.2"},{"userLogin":"a@b.example"},{"any":true}],"sshUsers":{"*":"=","root":""},"action":{"accept":true,"allowAgentForwarding":true,"allowLocalPortForwarding":true,"allowRemotePortForwarding":true},"acceptEnv":["LANG","LC_*"]},{"ruleExpires":"2030-01-02T03:04:05Z","principals":[{"any":true}],"sshUsers":{"alice":"alice"},"action":{"message":"check \u0026 go","sessionDuration":43200000000000,"holdAndDelegate":"https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER","recorders":["100.64.0.9:80","[fd7a:115c:a1e0::9]:80"],"onRecordingFailure":{"RejectSessionWithMessage":"no recorder","NotifyURL":"https://unused/notify"}}}]}"#;
    let p: SSHPolicy = assert_lossless(json);
    assert_eq!(p.rules.len(), 2);
    let r0 = &p.rules[0];
    assert_eq!(r0.rule_expires, None);
    assert_eq!(
        r0.principals[0],
        SSHPrincipal {
            node: "n123CNTRL".into(),
            ..Default::default()
        }
    );
    assert_eq!(r0.principals[2].user_login, "a@b.example");
    assert!(r0.principals[3].any);
    assert_eq!(r0.ssh_users["*"], "=");
    assert_eq!(r0.ssh_users["root"], "");
    let a0 = r0.action.as_ref().expect("action");
    assert!(a0.accept && a0.allow_agent_forwarding && !a0.reject);
    assert_eq!(r0.accept_env, ["LANG", "LC_*"]);
    let r1 = &p.rules[1];
    assert_eq!(
        r1.rule_expires,
        Some(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap())
    );
    let a1 = r1.action.as_ref().expect("action");
    assert_eq!(a1.message, "check & go");
    assert_eq!(a1.session_duration, Duration::from_secs(12 * 3600));
    assert!(a1.hold_and_delegate.contains("$SRC_NODE_ID"));
    assert_eq!(a1.recorders[1].to_string(), "[fd7a:115c:a1e0::9]:80");
    assert_eq!(
        a1.on_recording_failure,
        Some(SSHRecorderFailureAction {
            reject_session_with_message: "no recorder".into(),
            notify_url: "https://unused/notify".into(),
            ..Default::default()
        })
    );
}

#[test]
fn serializes_exactly() {
    let p = SSHPolicy {
        rules: vec![SSHRule {
            principals: vec![SSHPrincipal {
                user_login: "u@x".into(),
                ..Default::default()
            }],
            ssh_users: [("*".to_owned(), "=".to_owned())].into(),
            action: Some(SSHAction {
                reject: true,
                message: "no".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    assert_eq!(
        to_json(&p),
        r#"{"rules":[{"principals":[{"userLogin":"u@x"}],"sshUsers":{"*":"="},"action":{"message":"no","reject":true}}]}"#
    );
    // action is not omitempty in Go: a rule without one says `null`, meaning deny.
    assert_eq!(
        to_json(&SSHRule::default()),
        r#"{"principals":[],"sshUsers":{},"action":null}"#
    );
    assert_eq!(to_json(&SSHPolicy::default()), r#"{"rules":[]}"#);
    assert_eq!(to_json(&SSHAction::default()), "{}");
}

#[test]
fn go_nil_fields_read_as_empty() {
    let r: SSHRule = parse(r#"{"principals":null,"sshUsers":null,"action":null,"pubKeysX":1}"#);
    assert_eq!(r, SSHRule::default());
    let p: SSHPrincipal = assert_lossless(r#"{"pubKeys":["ssh-ed25519 AAA"]}"#);
    assert_eq!(p.unused_pub_keys.len(), 1);
}

#[test]
fn bad_durations_and_recorders_error() {
    let err = serde_json::from_str::<SSHAction>(r#"{"sessionDuration":-5}"#).unwrap_err();
    assert!(err.to_string().contains("negative duration -5ns"), "{err}");
    let err = serde_json::from_str::<SSHAction>(r#"{"recorders":["100.64.0.9"]}"#).unwrap_err();
    assert!(err.to_string().contains("socket address"), "{err}");
}

#[test]
fn session_duration_is_int64_nanoseconds() {
    let a = SSHAction {
        accept: true,
        session_duration: Duration::from_secs(90),
        ..Default::default()
    };
    let json = to_json(&a);
    assert_eq!(json, r#"{"accept":true,"sessionDuration":90000000000}"#);
    assert_eq!(parse::<SSHAction>(&json), a);
}
