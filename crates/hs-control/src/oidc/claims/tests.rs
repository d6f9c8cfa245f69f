#![allow(clippy::unwrap_used)]

use super::*;

fn claims(v: serde_json::Value) -> Claims {
    serde_json::from_value(v).unwrap()
}

#[test]
fn identifier_joins_issuer_and_subject_like_go() {
    let id = |iss: &str, sub: &str| {
        Claims {
            iss: iss.into(),
            sub: sub.into(),
            ..Claims::default()
        }
        .identifier()
    };
    assert_eq!(
        id("https://idp.example.com", "abc"),
        "https://idp.example.com/abc"
    );
    assert_eq!(
        id("https://idp.example.com/", "/abc"),
        "https://idp.example.com/abc"
    );
    assert_eq!(
        id("https://idp.example.com/realms/x/", "abc"),
        "https://idp.example.com/realms/x/abc"
    );
    assert_eq!(
        id("HTTPS://idp.example.com//a", " b "),
        "https://idp.example.com/a/b"
    );
    assert_eq!(id("oidc", "sub"), "oidc/sub");
    assert_eq!(id("", "sub"), "/sub");
    assert_eq!(id("", ""), "");
}

#[test]
fn email_verified_may_be_a_string_and_groups_a_single_name() {
    let c = claims(serde_json::json!({"sub": "s", "email_verified": "true", "groups": "ops"}));
    assert!(c.email_verified);
    assert_eq!(c.groups, ["ops"]);
    let c = claims(serde_json::json!({"sub": "s", "email_verified": null, "groups": null}));
    assert!(!c.email_verified);
    assert!(c.groups.is_empty());
    assert!(
        serde_json::from_value::<Claims>(serde_json::json!({"email_verified": "maybe"})).is_err()
    );
}

#[test]
fn userinfo_overrides_non_empty_fields_of_the_same_subject_only() {
    let mut c =
        claims(serde_json::json!({"sub": "s", "email": "a@x.org", "name": "A", "groups": ["g1"]}));
    c.merge_userinfo(&serde_json::json!({"sub": "other", "email": "evil@x.org"}));
    assert_eq!(c.email, "a@x.org");
    c.merge_userinfo(&serde_json::json!({"sub": "s", "email": "", "name": "Alice", "email_verified": true, "groups": ["g2", "g3"]}));
    assert_eq!((c.email.as_str(), c.name.as_str()), ("a@x.org", "Alice"));
    assert!(c.email_verified);
    assert_eq!(c.groups, ["g2", "g3"]);
    c.merge_userinfo(&serde_json::json!({"sub": "s"}));
    assert_eq!(c.groups, ["g2", "g3"], "absent groups keep the token's");
}

fn policy(domains: &[&str], users: &[&str], groups: &[&str], verified: bool) -> Policy {
    let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
    Policy {
        allowed_domains: v(domains),
        allowed_users: v(users),
        allowed_groups: v(groups),
        email_verified_required: verified,
    }
}

#[test]
fn allow_lists_refuse_with_gos_reasons_in_gos_order() {
    let alice = claims(
        serde_json::json!({"sub": "1", "email": "alice@corp.com", "email_verified": true, "groups": ["eng"]}),
    );
    let unverified = Claims {
        email_verified: false,
        ..alice.clone()
    };
    assert_eq!(policy(&[], &[], &[], true).authorize(&alice), Ok(()));
    assert_eq!(
        policy(&["corp.com"], &[], &[], true).authorize(&alice),
        Ok(())
    );
    assert_eq!(
        policy(&["other.com"], &[], &[], true).authorize(&alice),
        Err(Refused::Domain)
    );
    assert_eq!(
        policy(&[], &["bob@corp.com"], &[], true).authorize(&alice),
        Err(Refused::User)
    );
    assert_eq!(
        policy(&[], &["alice@corp.com"], &[], true).authorize(&alice),
        Ok(())
    );
    assert_eq!(
        policy(&[], &[], &["ops"], true).authorize(&alice),
        Err(Refused::Group)
    );
    assert_eq!(
        policy(&[], &[], &["ops", "eng"], true).authorize(&alice),
        Ok(())
    );
    // Groups are checked before the email.
    assert_eq!(
        policy(&["other.com"], &[], &["ops"], true).authorize(&alice),
        Err(Refused::Group)
    );
    // An unverified email is refused only when an email list decides, and only if required.
    assert_eq!(policy(&[], &[], &[], true).authorize(&unverified), Ok(()));
    assert_eq!(
        policy(&["corp.com"], &[], &[], true).authorize(&unverified),
        Err(Refused::UnverifiedEmail)
    );
    assert_eq!(
        policy(&["corp.com"], &[], &[], false).authorize(&unverified),
        Ok(())
    );
    // A domain is the text after the last '@'; no '@' is no domain.
    let bare = Claims {
        email: "alice".into(),
        ..alice.clone()
    };
    assert_eq!(
        policy(&["alice"], &[], &[], true).authorize(&bare),
        Err(Refused::Domain)
    );
}

#[test]
fn profile_keeps_a_valid_username_and_a_trusted_email_only() {
    let c = claims(
        serde_json::json!({"iss": "https://idp", "sub": "1", "preferred_username": "alice",
        "email": "alice@corp.com", "email_verified": false, "name": "Alice A", "picture": "https://p/a.png"}),
    );
    let p = Profile::of(&c, true);
    assert_eq!(p.name.as_deref(), Some("alice"));
    assert_eq!(p.email, None, "unverified email with verification required");
    assert_eq!(p.identifier, "https://idp/1");
    assert_eq!(
        (p.display_name.as_str(), p.picture.as_str()),
        ("Alice A", "https://p/a.png")
    );
    assert_eq!(
        Profile::of(&c, false).email.as_deref(),
        Some("alice@corp.com")
    );
    let odd = Claims {
        preferred_username: "1bad name".into(),
        email: "not an address".into(),
        ..c
    };
    let p = Profile::of(&odd, false);
    assert_eq!(p.name, None);
    assert_eq!(p.email, None);
}
